/**
 * `serve --sync A,B[,…]`: groups the frames of the named streams by corrected capture time (src/sync) and
 * writes one JSON line per group to `OUT/sync.jsonl`. Frames left without a group are counted by stream and
 * reason ({@link SyncSink.unpaired}); the viewer and the metrics show the counts.
 */
import { EventEmitter } from 'node:events';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { toFramewireError } from '../errors.js';
import {
  FrameSync,
  type SyncGroup,
  type SyncOptions,
  type SyncUnpairedReason,
  syncLine,
} from '../sync/frames.js';
import { wallUs } from '../time.js';
import type { ReceivedFrame, Sink } from '../types.js';
import { fileNameOf } from './folder.js';

export interface SyncSinkOptions extends Omit<SyncOptions, 'nameOf'> {
  /** How often waiting frames are looked at again (ms, default 20). */
  tickMs?: number;
  /** Called when writing sync.jsonl failed (the sink goes on). */
  onError?: (err: Error) => void;
}

export interface SyncSinkEvents {
  group: [SyncGroup];
  unpaired: [{ stream: string; seq: number; reason: SyncUnpairedReason }];
}

export class SyncSink extends EventEmitter<SyncSinkEvents> implements Sink {
  /** One pairer per `--sync` group. */
  readonly syncs: readonly FrameSync[];
  readonly path: string | undefined;
  readonly #file: FileHandle | undefined;
  readonly #timer: NodeJS.Timeout;
  readonly #onError: (err: Error) => void;
  #writing: Promise<void> = Promise.resolve();
  #buffer: string[] = [];
  #closed = false;

  private constructor(
    groups: readonly (readonly string[])[],
    file: FileHandle | undefined,
    path: string | undefined,
    options: SyncSinkOptions,
  ) {
    super();
    this.syncs = groups.map((g) => new FrameSync(g, { ...options, nameOf: fileNameOf }));
    this.#file = file;
    this.path = path;
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(
      () => this.#handle(this.syncs.flatMap((s) => s.advance(wallUs()))),
      options.tickMs ?? 20,
    );
    this.#timer.unref();
  }

  /**
   * A sink grouping the given streams (each group at least two streams); with `dir`, groups are appended to
   * `dir/sync.jsonl`. Throws ERR_BAD_OPTION for a bad group or option.
   */
  static async open(
    groups: readonly (readonly string[])[],
    dir: string | undefined,
    options: SyncSinkOptions = {},
  ): Promise<SyncSink> {
    // Checks the options before a file is made.
    for (const g of groups) new FrameSync(g, options);
    let file: FileHandle | undefined;
    let path: string | undefined;
    if (dir !== undefined) {
      await mkdir(dir, { recursive: true });
      path = join(dir, 'sync.jsonl');
      file = await open(path, 'a');
    }
    return new SyncSink(groups, file, path, options);
  }

  frame(f: ReceivedFrame): void {
    if (this.#closed) return;
    const now = wallUs();
    for (const s of this.syncs) if (s.has(f.stream.name)) this.#handle(s.push(f, now));
  }

  /** Frames left without a group, by stream and reason (every group together). */
  unpaired(): Record<string, Partial<Record<SyncUnpairedReason, number>>> {
    const out: Record<string, Partial<Record<SyncUnpairedReason, number>>> = {};
    for (const s of this.syncs) {
      for (const [stream, counts] of Object.entries(s.unpaired())) {
        out[stream] ??= {};
        const o = out[stream];
        for (const [r, n] of Object.entries(counts)) {
          o[r as SyncUnpairedReason] = (o[r as SyncUnpairedReason] ?? 0) + (n ?? 0);
        }
      }
    }
    return out;
  }

  /** Groups written so far. */
  get groups(): number {
    return this.syncs.reduce((n, s) => n + s.groups, 0);
  }

  /** Decides what is left (the senders are gone), writes it and closes sync.jsonl. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#handle(this.syncs.flatMap((s) => s.flush()));
    await this.#writing;
    await this.#file?.close();
  }

  #handle(events: ReturnType<FrameSync['push']>): void {
    for (const e of events) {
      if (e.type === 'group') {
        this.#buffer.push(`${syncLine(e.group)}\n`);
        this.emit('group', e.group);
      } else this.emit('unpaired', { stream: e.stream, seq: e.seq, reason: e.reason });
    }
    if (this.#buffer.length > 0 && this.#file) {
      const text = this.#buffer.join('');
      this.#buffer = [];
      const file = this.#file;
      this.#writing = this.#writing
        .then(() => file.appendFile(text))
        .catch((err) => this.#onError(toFramewireError(err, 'ERR_WRITE_FAILED', `writing ${this.path}`)));
    } else this.#buffer = [];
  }
}
