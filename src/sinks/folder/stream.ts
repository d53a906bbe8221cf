/**
 * One stream folder of the folder sink: its files and its `index.jsonl`, written by a pipeline in which
 * several frames are saved at once while their index lines are appended, and their promises settled, in
 * the order the frames arrived.
 *
 * A frame goes through two stages:
 * 1. in parallel (at most `slots.limit` frames of all streams together): the bytes go to a temporary file,
 *    which is then linked under its final name. `link()` fails on an existing name, so a saved file is never
 *    replaced (except under `--on-conflict overwrite`, which renames over it); on a file system without hard
 *    links (FAT, exFAT) the name is checked, then the file renamed to it (fs.ts placeNew);
 * 2. in order: once every earlier frame is through stage 1, the lines of all the frames that are ready are
 *    appended to the index with one write, and their promises resolve (the receiver then acknowledges them).
 *
 * A crash at any point leaves whole files only (temporary names are removed on the next start), and an
 * index line is written only after its file is in place. It can leave a file whose line was not written
 * yet: such a file is unacknowledged, the sender sends the frame again, and the copy already there (same
 * name, same bytes, recorded by no line) is taken as it is.
 *
 * When a frame fails in stage 1 (a full disk, say), the frames after it that were already under way are not
 * recorded either and their promises reject, nor are later frames of its epoch handed in before it is sent
 * again and recorded: a later frame in the index would move the resume point past the failed one, which
 * would then never be sent again.
 */
import { renameSync, unlinkSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FramewireError } from '../../errors.js';
import { crc32 } from '../../protocol/crc.js';
import type { Slots } from '../../slots.js';
import { monoMs } from '../../time.js';
import type { ReceivedFrame } from '../../types.js';
import {
  errnoOf,
  forEachLine,
  hasContent,
  placeNew,
  placeNewSync,
  removeQuietly,
  syncFile,
  writeFailed,
  writeNewFile,
  writeNewFileSync,
} from './fs.js';
import type { LineLog } from './log.js';
import { alternativeName, firstName, MAX_ALTERNATIVES, type OnConflict } from './naming.js';
import type { SyncWrites } from './sync-writes.js';

/** One line of `OUT/<stream>/index.jsonl`. */
export interface IndexEntry {
  seq: number;
  /** The file's name inside the stream folder. */
  name: string;
  bytes: number;
  captureUs: number;
  receivedUs: number;
  contentType: ReceivedFrame['contentType'];
  epoch: string;
  /** "host:port" of the sender. */
  sender: string;
  crc: number;
  /** Present when known (not 0). */
  width?: number;
  height?: number;
  /** Present for frames that carry one (raw frames), absent for 'none'. */
  pixelFormat?: ReceivedFrame['pixelFormat'];
  /** Present when the frame carried metadata. */
  meta?: unknown;
  /** The capture time on the receiver's clock, and the clock offset and error used (docs/sync.md). */
  correctedUs?: number;
  clockOffsetUs?: number;
  clockErrorUs?: number;
}

/** The open files of a stream folder. */
export interface StreamFiles {
  dir: string;
  index: LineLog;
  /** The folder itself, kept open to flush renames when fsync is on (undefined where unsupported). */
  dirHandle: { sync(): Promise<void>; close(): Promise<void> } | undefined;
}

/** What a stream writer needs from its sink. */
export interface WriterContext {
  readonly fsync: boolean;
  /** Which frames are written with synchronous calls. */
  readonly syncWrites: SyncWrites;
  readonly onConflict: OnConflict;
  readonly slots: Slots;
  /** A fresh temporary file name (no folder). */
  tmpName(): string;
  /** Keeps a background task (a temporary file's removal) for close() to wait for. */
  track(p: Promise<unknown>): void;
  /** Told about failures no caller waits for. */
  onError(err: FramewireError): void;
  /** A frame is in place and in the index. */
  recorded(f: ReceivedFrame, name: string, path: string): void;
}

const WRITING = 0;
const READY = 1;
const FAILED = 2;
const REFUSED = 3;

interface Entry {
  f: ReceivedFrame;
  /** Entries of an older generation than the writer's are not recorded (an earlier frame failed). */
  gen: number;
  state: number;
  name: string;
  /** This frame made the file (false: it took a copy already there, or replaced one). */
  created: boolean;
  error: FramewireError | undefined;
  resolve: () => void;
  reject: (err: FramewireError) => void;
}

function indexLine(f: ReceivedFrame, name: string): string {
  const e: IndexEntry = {
    seq: f.seq,
    name,
    bytes: f.data.length,
    captureUs: f.captureUs,
    receivedUs: f.receivedUs,
    contentType: f.contentType,
    epoch: f.stream.epoch,
    sender: f.stream.sender,
    crc: f.crc,
  };
  if (f.width !== 0) e.width = f.width;
  if (f.height !== 0) e.height = f.height;
  // A raw file cannot be decoded without its pixel layout.
  if (f.pixelFormat !== 'none') e.pixelFormat = f.pixelFormat;
  if (f.meta !== undefined) e.meta = f.meta;
  if (f.correctedUs !== undefined) e.correctedUs = f.correctedUs;
  if (f.clockOffsetUs !== undefined) e.clockOffsetUs = f.clockOffsetUs;
  if (f.clockErrorUs !== undefined) e.clockErrorUs = f.clockErrorUs;
  return JSON.stringify(e);
}

function nameTaken(f: ReceivedFrame, name: string, why: string): FramewireError {
  return new FramewireError(
    ErrorCode.NAME_TAKEN,
    `frame ${f.seq} of stream "${f.stream.name}" is refused: ${name} ${why}`,
    {
      stream: f.stream.name,
      seq: f.seq,
      hint: 'rename the file, or start the receiver with --on-conflict keep-both (or overwrite)',
    },
  );
}

/** The writing pipeline of one stream folder. */
export class StreamWriter {
  readonly stream: string;
  readonly files: Promise<StreamFiles>;
  /** monoMs() of the last frame handed in; the sink releases writers idle for long. */
  lastUse = monoMs();
  readonly #ctx: WriterContext;
  readonly #queue: Entry[] = [];
  #head = 0;
  #gen = 0;
  /**
   * The first frame that failed (its epoch and seq), until it or an earlier frame of its epoch is recorded:
   * a later frame of that epoch handed in meanwhile is not recorded either, so the index never passes over it.
   */
  #hole: { epoch: string; seq: number } | undefined;
  #draining = false;
  /** Names taken by frames under way (not yet in the index). */
  readonly #claimed = new Set<string>();
  /** Names in the index, read only once a name is found taken (most streams never need it). */
  #recorded: Set<string> | undefined;
  #recordedLoad: Promise<Set<string>> | undefined;
  #recordedSince: string[] | undefined;

  constructor(stream: string, files: Promise<StreamFiles>, ctx: WriterContext) {
    this.stream = stream;
    this.files = files;
    this.#ctx = ctx;
    // A failed open rejects every frame's promise; this keeps it from being reported as unhandled.
    files.catch(() => {});
  }

  /** Whether frames are under way. */
  get busy(): boolean {
    return this.#head < this.#queue.length || this.#draining;
  }

  /** Saves `f`; resolves once it and every frame handed in before it are in place and in the index. */
  write(f: ReceivedFrame): Promise<void> {
    this.lastUse = monoMs();
    return new Promise<void>((resolve, reject) => {
      const h = this.#hole;
      const e: Entry = {
        f,
        // Past a hole (a failed frame not sent again yet): an old generation, never recorded.
        gen: h !== undefined && f.stream.epoch === h.epoch && f.seq > h.seq ? -1 : this.#gen,
        state: WRITING,
        name: '',
        created: false,
        error: undefined,
        resolve,
        reject,
      };
      this.#queue.push(e);
      void this.#run(e);
    });
  }

  async #run(e: Entry): Promise<void> {
    if (e.gen < this.#gen) {
      // Not to be recorded (an earlier frame failed): not written either.
      e.state = READY;
      this.#drain();
      return;
    }
    try {
      const files = await this.files;
      const wait = this.#ctx.slots.acquire();
      if (wait) await wait;
      try {
        await this.#save(files, e);
      } finally {
        this.#ctx.slots.release();
      }
      e.state = READY;
    } catch (err) {
      const fe = writeFailed(`cannot save frame ${e.f.seq} of stream "${this.stream}"`, err, {
        stream: this.stream,
        seq: e.f.seq,
      });
      e.error = fe;
      e.state = fe.code === ErrorCode.NAME_TAKEN || fe.code === ErrorCode.UNSAFE_NAME ? REFUSED : FAILED;
    }
    this.#drain();
  }

  async #save(files: StreamFiles, e: Entry): Promise<void> {
    const { f } = e;
    const tmp = join(files.dir, this.#ctx.tmpName());
    try {
      if (this.#ctx.syncWrites.use(f.data.length)) {
        const t0 = monoMs();
        writeNewFileSync(tmp, f.data);
        const placed = this.#placeSync(files, tmp, e);
        this.#ctx.syncWrites.took(monoMs() - t0);
        if (placed) return;
      } else {
        await writeNewFile(tmp, f.data, this.#ctx.fsync);
      }
      await this.#place(files, tmp, e);
    } catch (err) {
      await removeQuietly(tmp, (e2) => this.#report(`cannot remove temporary file ${tmp}`, e2, f));
      throw err instanceof FramewireError
        ? err
        : writeFailed(`cannot save frame ${f.seq} of stream "${this.stream}" in ${files.dir}`, err, {
            stream: this.stream,
            seq: f.seq,
          });
    }
  }

  /**
   * The synchronous form of #place() for the usual case, the frame's first name free: link, then remove the
   * temporary file. False when the name is taken or claimed (#place() then looks further).
   */
  #placeSync(files: StreamFiles, tmp: string, e: Entry): boolean {
    const name = firstName(e.f);
    const path = join(files.dir, name);
    if (this.#ctx.onConflict === 'overwrite') {
      renameSync(tmp, path);
      e.name = name;
      return true;
    }
    if (this.#claimed.has(name)) return false;
    let how: 'linked' | 'renamed';
    try {
      how = placeNewSync(tmp, path);
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return false;
      throw err;
    }
    this.#claimed.add(name);
    e.name = name;
    e.created = true;
    if (how === 'linked') {
      try {
        unlinkSync(tmp);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') this.#report(`cannot remove ${tmp}`, err, e.f);
      }
    }
    return true;
  }

  /** Gives the temporary file `tmp` its final name. */
  async #place(files: StreamFiles, tmp: string, e: Entry): Promise<void> {
    const { f } = e;
    const first = firstName(f);
    if (this.#ctx.onConflict === 'overwrite') {
      // rename() replaces whatever is there (a symlink too, rather than writing through it).
      await rename(tmp, join(files.dir, first));
      e.name = first;
      return;
    }
    let crc: number | undefined;
    for (let i = 0; i <= MAX_ALTERNATIVES; i++) {
      if (i === 1 && this.#ctx.onConflict === 'refuse') {
        throw nameTaken(f, first, 'is taken by another frame (--on-conflict refuse)');
      }
      const name = i === 0 ? first : alternativeName(first, f.stream.epoch, i);
      if (name === undefined) {
        throw nameTaken(f, first, 'is taken, and no name to keep both fits in 255 bytes');
      }
      if (this.#claimed.has(name)) continue;
      // Claimed before the first await, so that two frames under way never both take one name.
      this.#claimed.add(name);
      const path = join(files.dir, name);
      try {
        const how = await placeNew(tmp, path);
        e.name = name;
        e.created = true;
        if (how === 'linked') {
          this.#ctx.track(removeQuietly(tmp, (err) => this.#report(`cannot remove ${tmp}`, err, f)));
        }
        return;
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') {
          this.#claimed.delete(name);
          throw err;
        }
      }
      // The name exists. It is this frame's own copy when it holds the same bytes and no index line names
      // it: saved before a crash (or a failed index write) and sent again.
      let adopt = false;
      try {
        const recorded = await this.#recordedNames(files);
        crc ??= crc32(f.data);
        adopt = !recorded.has(name) && (await hasContent(path, f.data.length, crc));
      } catch (err) {
        this.#claimed.delete(name);
        throw err;
      }
      if (adopt) {
        // With fsync on, the copy is flushed before the frame counts as saved.
        if (this.#ctx.fsync) {
          try {
            await syncFile(path);
          } catch (err) {
            this.#claimed.delete(name);
            throw err;
          }
        }
        e.name = name;
        this.#ctx.track(removeQuietly(tmp, (err) => this.#report(`cannot remove ${tmp}`, err, f)));
        return;
      }
      this.#claimed.delete(name);
    }
    throw nameTaken(f, first, `and ${MAX_ALTERNATIVES} alternatives to it are taken`);
  }

  /** The names in the index, plus those recorded since; read once per writer. */
  #recordedNames(files: StreamFiles): Promise<Set<string>> {
    if (this.#recorded) return Promise.resolve(this.#recorded);
    if (!this.#recordedLoad) {
      this.#recordedSince = [];
      const load = (async () => {
        const names = new Set<string>();
        await forEachLine(files.index.path, (line) => {
          try {
            const name = (JSON.parse(line) as { name?: unknown } | null)?.name;
            if (typeof name === 'string') names.add(name);
          } catch {
            // A torn line records nothing.
          }
        });
        for (const n of this.#recordedSince ?? []) names.add(n);
        this.#recordedSince = undefined;
        this.#recorded = names;
        return names;
      })();
      load.catch(() => {
        if (this.#recordedLoad === load) this.#recordedLoad = undefined;
      });
      this.#recordedLoad = load;
    }
    return this.#recordedLoad;
  }

  #drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    void this.#drainLoop();
  }

  /** Settles the frames at the head of the queue whose stage 1 is over, in order. */
  async #drainLoop(): Promise<void> {
    try {
      for (;;) {
        const batch: Entry[] = [];
        const q = this.#queue;
        while (this.#head < q.length) {
          const e = q[this.#head]!;
          if (e.state === WRITING) break;
          if (e.gen < this.#gen) {
            this.#head++;
            this.#notRecorded(e);
            continue;
          }
          if (e.state === READY) {
            batch.push(e);
            this.#head++;
            continue;
          }
          // FAILED or REFUSED: the frames before it are recorded first.
          if (batch.length > 0) break;
          this.#head++;
          if (e.state === FAILED) this.#failedAt(e.f);
          e.reject(e.error!);
        }
        if (this.#head === q.length) {
          q.length = 0;
          this.#head = 0;
        } else if (this.#head > 1024) {
          q.splice(0, this.#head);
          this.#head = 0;
        }
        if (batch.length === 0) return;
        await this.#commit(batch);
      }
    } finally {
      this.#draining = false;
    }
  }

  async #commit(batch: Entry[]): Promise<void> {
    const files = await this.files;
    try {
      // With fsync on, the folder is flushed so that the new names are on disk before the lines naming them.
      if (files.dirHandle) await files.dirHandle.sync();
      const lines = batch.map((e) => indexLine(e.f, e.name));
      if (this.#ctx.syncWrites.index()) {
        // Timed like a frame's synchronous write: a slow disk sends the index to the thread pool too.
        const t0 = monoMs();
        await files.index.appendLinesNow(lines);
        this.#ctx.syncWrites.took(monoMs() - t0);
      } else {
        await files.index.appendLines(lines);
      }
    } catch (err) {
      const first = batch[0]!.f;
      const fe = writeFailed(`cannot record frames of stream "${this.stream}" in ${files.index.path}`, err, {
        stream: this.stream,
        seq: first.seq,
      });
      // The files stay: part of the lines may have reached the index. The frames are sent again, and a copy
      // found under its name with the same bytes is taken as it is.
      for (const e of batch) {
        this.#claimed.delete(e.name);
        e.reject(fe);
      }
      this.#failedAt(first);
      return;
    }
    const h = this.#hole;
    for (const e of batch) {
      if (h !== undefined && e.f.stream.epoch === h.epoch && e.f.seq <= h.seq) this.#hole = undefined;
      this.#claimed.delete(e.name);
      if (this.#recorded) this.#recorded.add(e.name);
      else this.#recordedSince?.push(e.name);
      this.#ctx.recorded(e.f, e.name, join(files.dir, e.name));
      e.resolve();
    }
  }

  /** Frame `f` failed: the frames under way after it are not recorded, nor those handed in until it is. */
  #failedAt(f: ReceivedFrame): void {
    this.#gen++;
    const h = this.#hole;
    if (h === undefined || h.epoch !== f.stream.epoch || f.seq < h.seq) {
      this.#hole = { epoch: f.stream.epoch, seq: f.seq };
    }
  }

  /** A frame under way when an earlier one failed: its file goes (no line names it) and it is not recorded. */
  #notRecorded(e: Entry): void {
    const { f } = e;
    if (e.state === READY && !e.created) this.#claimed.delete(e.name);
    if (e.state === READY && e.created) {
      // Removed before its name is free again (synchronously: a rare path), so that the frame sent again
      // under the same name is never the file this removal takes away.
      void this.files.then((files) => {
        const path = join(files.dir, e.name);
        try {
          unlinkSync(path);
        } catch (err) {
          if (errnoOf(err) !== 'ENOENT') this.#report(`cannot remove ${path}`, err, f);
        }
        this.#claimed.delete(e.name);
      });
    }
    e.reject(
      e.state === READY
        ? new FramewireError(
            ErrorCode.WRITE_FAILED,
            `frame ${f.seq} of stream "${this.stream}" was not recorded: a frame before it could not be saved`,
            { stream: this.stream, seq: f.seq },
          )
        : e.error!,
    );
  }

  #report(context: string, err: unknown, f: ReceivedFrame): void {
    this.#ctx.onError(writeFailed(context, err, { stream: this.stream, seq: f.seq }));
  }

  /** Closes the index and the folder handle; call once nothing is under way. */
  async close(): Promise<void> {
    const files = await this.files.catch(() => undefined);
    if (!files) return;
    try {
      await files.index.close();
    } finally {
      await files.dirHandle?.close();
    }
  }
}
