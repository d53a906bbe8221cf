/**
 * Writes each frame once into a folder sink, whatever the bus delivers again: a frame is known by its
 * stream, epoch and sequence number, read from the stream's `index.jsonl` (what this worker and any other
 * process writing the same folder recorded) and remembered for what this worker wrote. JetStream delivers
 * at least once; this makes the folder exactly once.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { checkStreamName } from '../names.js';
import type { ReceivedFrame, ReceivedMessage, Sink } from '../types.js';
import type { FolderSink } from './folder.js';

/**
 * The (epoch, seq) pairs recorded in one JSON-lines log, read incrementally from where it was left.
 *
 * Every frame's check reads what other writers appended since the last one, so the calls are synchronous
 * (fstat and one read of the new tail, a few microseconds on a local disk): through the thread pool, the two
 * round trips per frame, one check after another, held a bus consumer to about 1 ms a frame.
 */
class SeenLog {
  readonly #path: string;
  readonly keys = new Set<string>();
  #fd: number | undefined;
  #offset = 0;
  #carry = '';

  constructor(path: string) {
    this.#path = path;
  }

  /** Reads what was appended since the last call. A missing file is empty. */
  refresh(): void {
    if (this.#fd === undefined) {
      try {
        this.#fd = openSync(this.#path, 'r');
      } catch {
        return;
      }
    }
    const { size } = fstatSync(this.#fd);
    if (size <= this.#offset) return;
    const buf = Buffer.allocUnsafe(size - this.#offset);
    const bytesRead = readSync(this.#fd, buf, 0, buf.length, this.#offset);
    this.#offset += bytesRead;
    const text = this.#carry + buf.toString('utf8', 0, bytesRead);
    const lines = text.split('\n');
    this.#carry = lines.pop() ?? '';
    for (const line of lines) {
      try {
        const e = JSON.parse(line) as { epoch?: unknown; seq?: unknown };
        if (typeof e.epoch === 'string' && typeof e.seq === 'number') this.keys.add(`${e.epoch}:${e.seq}`);
      } catch {
        // A torn line (a writer that crashed) names no frame.
      }
    }
  }

  close(): void {
    if (this.#fd === undefined) return;
    try {
      closeSync(this.#fd);
    } catch {
      // Already gone.
    }
    this.#fd = undefined;
  }
}

/** Counters of a {@link OnceFolderSink}. */
export interface OnceStats {
  written: number;
  /** Frames and messages skipped because the folder already held them. */
  skipped: number;
}

/**
 * A folder sink that writes a frame (and a JSON message) only if the folder does not hold it yet. Meant for
 * consumers of an at-least-once bus; several processes may write the same folder.
 */
export class OnceFolderSink implements Sink {
  readonly folder: FolderSink;
  readonly stats: OnceStats = { written: 0, skipped: 0 };
  readonly #logs = new Map<string, SeenLog>();
  #root: string | undefined;
  /**
   * Frames being written now (stream:epoch:seq) with their writes: a second delivery of one of them settles
   * as that write does, so it is acknowledged only if the frame was saved.
   */
  readonly #writing = new Map<string, Promise<void>>();
  /** Resolves once the newest frame's check is done and its write started: writes start in order. */
  #gate: Promise<void> = Promise.resolve();
  /** As many frames at once as the folder sink writes (its frameConcurrency). */
  readonly frameConcurrency: number;

  constructor(folder: FolderSink) {
    this.folder = folder;
    this.frameConcurrency = folder.frameConcurrency;
  }

  async #log(key: string, rel: () => string[]): Promise<SeenLog> {
    let log = this.#logs.get(key);
    if (!log) {
      this.#root ??= await this.folder.init();
      log = new SeenLog(join(this.#root, ...rel()));
      this.#logs.set(key, log);
    }
    return log;
  }

  /** True when (key) is recorded: first from memory, then from what other writers appended since. */
  #seen(log: SeenLog, key: string): boolean {
    if (log.keys.has(key)) return true;
    log.refresh();
    return log.keys.has(key);
  }

  async frame(f: ReceivedFrame): Promise<void> {
    // Checks run one after another and each write starts in the order the frames came (the folder sink
    // wants a stream's frames in order); the writes themselves overlap, up to frameConcurrency.
    const before = this.#gate;
    let started!: () => void;
    this.#gate = new Promise<void>((r) => {
      started = r;
    });
    let write: Promise<void>;
    let key: string;
    let log: SeenLog;
    let underWay: Promise<void> | undefined;
    try {
      await before;
      const stream = checkStreamName(f.stream.name);
      log = await this.#log(`s:${stream}`, () => [stream, 'index.jsonl']);
      key = `${f.stream.epoch}:${f.seq}`;
      underWay = this.#writing.get(`${stream}:${key}`);
      if (underWay === undefined && this.#seen(log, key)) {
        this.stats.skipped++;
        return;
      }
      write = underWay ?? this.folder.frame(f);
      if (!underWay) this.#writing.set(`${stream}:${key}`, write);
    } finally {
      started();
    }
    if (underWay) {
      // Another delivery of this frame is being written: this one is done when (and only if) that one is.
      await underWay;
      this.stats.skipped++;
      return;
    }
    try {
      await write;
      log.keys.add(key);
      this.stats.written++;
    } finally {
      this.#writing.delete(`${f.stream.name}:${key}`);
    }
  }

  async message(m: ReceivedMessage): Promise<void> {
    const log = await this.#log('m', () => ['messages.jsonl']);
    const key = `${m.epoch}:${m.seq}`;
    if (this.#seen(log, key)) {
      this.stats.skipped++;
      return;
    }
    await this.folder.message(m);
    log.keys.add(key);
    this.stats.written++;
  }

  async close(): Promise<void> {
    for (const log of this.#logs.values()) log.close();
    await this.folder.close();
  }
}
