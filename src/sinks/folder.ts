/**
 * The folder sink: saves every received frame as a file in `OUT/<stream>/`, keeps an append-only
 * `OUT/<stream>/index.jsonl` describing the saved frames, and `OUT/messages.jsonl` for JSON messages.
 *
 * The index is the sink's memory: a receiver restarted mid-stream reads it to tell the sender where to
 * resume, so a line is appended only once its file is in place under its final name. The writing pipeline
 * of one stream folder is in folder/stream.ts, file naming in folder/naming.ts.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { copyFile, type FileHandle, link, lstat, mkdir, open, realpath, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FramewireError } from '../errors.js';
import { checkFileName, checkStreamName, TEMP_PREFIX } from '../names.js';
import { Slots } from '../slots.js';
import { monoMs } from '../time.js';
import type { ReceivedFrame, ReceivedMessage, Sink, StreamInfo } from '../types.js';
import {
  errnoOf,
  forEachLine,
  NOFOLLOW,
  refused,
  removeQuietly,
  removeStaleTemps,
  writeFailed,
} from './folder/fs.js';
import { LineLog } from './folder/log.js';
import { firstName, ON_CONFLICT, type OnConflict } from './folder/naming.js';
import { type StreamFiles, StreamWriter, type WriterContext } from './folder/stream.js';
import { SyncWrites } from './folder/sync-writes.js';

export type { OnConflict } from './folder/naming.js';
export type { IndexEntry } from './folder/stream.js';

/**
 * The name an unrefused frame is first saved under: its own name, or `<epoch>-<seq, 9 digits>.<ext>` for an
 * unnamed frame. Under `--on-conflict keep-both` a frame whose name is taken gets another (folder/naming.ts).
 */
export function fileNameOf(f: ReceivedFrame): string {
  return firstName(f);
}

/** Options of {@link FolderSink}. */
export interface FolderSinkOptions {
  /**
   * Flush each frame, its folder entry and its index line to the disk before the frame is acknowledged, so
   * that an acknowledged frame survives a power cut. Costs several disk flushes per frame. Default false.
   */
  fsync?: boolean;
  /**
   * Told about failures that no caller is waiting for, such as a temporary file that could not be removed
   * after a failed write (the write itself rejects with its own error).
   */
  onError?: (err: FramewireError) => void;
  /**
   * Keep `OUT/<stream>/latest.jpg` as the newest JPEG frame of each stream, replaced atomically (a hard
   * link to the saved frame, or a copy where links fail, renamed over the old one), so that a reader never
   * sees half a picture. Only image/jpeg frames update it. A failure to update it is reported to `onError`
   * and does not fail the frame. Default true.
   */
  latest?: boolean;
  /**
   * Frames written at once, all streams together (each is written to a temporary file and linked under its
   * final name; index lines and acknowledgements still follow the sequence order). Default 16.
   */
  writeConcurrency?: number;
  /**
   * A frame whose file name is already taken in its stream folder (by a frame of another run, or a file
   * that is not the same frame): 'keep-both' (default) saves it as `NAME~EPOCH.EXT` (then `NAME~EPOCH-2.EXT`,
   * …), 'refuse' answers ERR_NAME_TAKEN to the sender, 'overwrite' replaces the file (its older index line
   * then describes bytes that are gone).
   */
  onConflict?: OnConflict;
  /**
   * A stream that received no frame for this long has its open files closed and its state dropped (they are
   * opened again by its next frame), so that many short-lived streams do not pile up file descriptors and
   * memory. Milliseconds; default 60000.
   */
  idleCloseMs?: number;
  /**
   * Write frames up to this many bytes with synchronous calls (open, write, close, link, unlink on the event
   * loop) while the file system keeps up, instead of trips through libuv's thread pool. Such a write blocks
   * the process (70-300 us for a 123 KB JPEG into the page cache on a small machine), but it saves the
   * thread-pool round trips, which cost more than the write itself: about a third less CPU per frame and
   * more frames per second (docs/benchmarks.md), and a lockstep protocol with one frame in flight (ImageZMQ's
   * REQ/REP) waits less. Larger frames, and every frame for `syncBackoffMs` once synchronous writes took
   * longer than `syncWriteSlowMs` on average (a slow or saturated disk, a network file system), are written
   * on the thread pool, several at once (`writeConcurrency`), so that the event loop is not held up. 0 writes
   * every frame on the thread pool. Ignored with `fsync`. Default 1 MiB.
   */
  syncWriteMaxBytes?: number;
  /**
   * When the recent synchronous writes took longer than this on average (ms; a moving average, so that one
   * write stalled by a busy machine does not count), synchronous writes are off for `syncBackoffMs`.
   * Default 3.
   */
  syncWriteSlowMs?: number;
  /** How long synchronous writes stay off after a slow one (ms). Default 2000. */
  syncBackoffMs?: number;
}

export const DEFAULT_WRITE_CONCURRENCY = 16;
export const DEFAULT_SYNC_WRITE_MAX_BYTES = 1024 * 1024;
const DEFAULT_SYNC_WRITE_SLOW_MS = 3;
const DEFAULT_SYNC_BACKOFF_MS = 2000;
const DEFAULT_IDLE_CLOSE_MS = 60_000;
const INDEX_FILE = 'index.jsonl';
const LATEST_FILE = 'latest.jpg';
const LATEST_INTERVAL_MS = 100;
const MESSAGES_FILE = 'messages.jsonl';

interface LatestState {
  last: number;
  next: { dir: string; saved: string; seq: number } | undefined;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
}

function checkOptions(o: FolderSinkOptions): void {
  const bad = (what: string, v: unknown) =>
    new FramewireError(ErrorCode.BAD_OPTION, `folder sink: ${what}, got ${JSON.stringify(v)}`);
  const c = o.writeConcurrency;
  if (c !== undefined && !(Number.isInteger(c) && c >= 1 && c <= 1024)) {
    throw bad('writeConcurrency must be an integer from 1 to 1024', c);
  }
  if (o.onConflict !== undefined && !ON_CONFLICT.includes(o.onConflict)) {
    throw bad(`onConflict must be one of ${ON_CONFLICT.join(', ')}`, o.onConflict);
  }
  const idle = o.idleCloseMs;
  if (idle !== undefined && !(typeof idle === 'number' && idle > 0 && Number.isFinite(idle))) {
    throw bad('idleCloseMs must be a number > 0', idle);
  }
  for (const key of ['syncWriteMaxBytes', 'syncWriteSlowMs', 'syncBackoffMs'] as const) {
    const v = o[key];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && !Number.isNaN(v))) {
      throw bad(`${key} must be a number >= 0`, v);
    }
  }
}

/**
 * Saves frames to `OUT/<stream>/<name>` and messages to `OUT/messages.jsonl`. A file appears under its final
 * name only whole (temporary file, then a link), and never replaces a saved one. Names are checked again
 * here, and symlinks inside OUT cannot redirect a write outside it. Every filesystem failure rejects with
 * `ERR_WRITE_FAILED`, so the receiver leaves the frame unacknowledged and the sender sends it again.
 *
 * Several frames (of one stream too) are written at once, up to `writeConcurrency`; a frame's promise
 * resolves only once it and every earlier frame of its stream are in place and in the index, in order.
 *
 * Use {@link FolderSink.open}, or the constructor followed by {@link FolderSink.init} (which the other
 * methods also call on first use).
 */
export class FolderSink implements Sink {
  /** The output folder as given. */
  readonly outDir: string;
  /** Frames of one stream the receiver may hand in before earlier ones resolved: `writeConcurrency`. */
  readonly frameConcurrency: number;
  /**
   * A frame's bytes are read only while its frame() is pending: its file is written (and compared, for a
   * name already taken) before the promise settles, on every path (StreamWriter settles an entry only after
   * its own write ended), and latest.jpg is made from the saved file, not from the bytes.
   */
  readonly borrowsFrameData = true;
  readonly #fsync: boolean;
  readonly #onError: ((err: FramewireError) => void) | undefined;
  readonly #latest: boolean;
  /** Stream folders whose leftover temporary files (of writers that died) were removed. */
  readonly #tempsRemoved = new Set<string>();
  readonly #idleCloseMs: number;
  readonly #latestState = new Map<string, LatestState>();
  // Unique per sink, so that two sinks (or processes) writing the same folder never pick the same temp name.
  // The pid in the name lets a later sink tell a crashed writer's leftovers from a live writer's files.
  readonly #tmpTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  #tmpCounter = 0;
  readonly #ctx: WriterContext;

  #init: Promise<string> | undefined;
  /** Per stream name; made on the first frame, so that concurrent first frames share one open. */
  readonly #streams = new Map<string, StreamWriter>();
  #messages: Promise<LineLog> | undefined;
  /** Next sequence number per stream name and epoch: what was read from the index plus what was written. */
  readonly #next = new Map<string, Map<string, number>>();
  readonly #loads = new Map<string, { p: Promise<void>; at: number }>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #sweeper: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  readonly #syncWrites: SyncWrites;

  constructor(outDir: string, options: FolderSinkOptions = {}) {
    checkOptions(options);
    this.outDir = outDir;
    this.#fsync = options.fsync ?? false;
    this.#onError = options.onError;
    this.#latest = options.latest ?? true;
    this.#idleCloseMs = options.idleCloseMs ?? DEFAULT_IDLE_CLOSE_MS;
    this.frameConcurrency = options.writeConcurrency ?? DEFAULT_WRITE_CONCURRENCY;
    this.#syncWrites = new SyncWrites(
      this.#fsync ? 0 : (options.syncWriteMaxBytes ?? DEFAULT_SYNC_WRITE_MAX_BYTES),
      options.syncWriteSlowMs ?? DEFAULT_SYNC_WRITE_SLOW_MS,
      options.syncBackoffMs ?? DEFAULT_SYNC_BACKOFF_MS,
    );
    this.#ctx = {
      fsync: this.#fsync,
      syncWrites: this.#syncWrites,
      onConflict: options.onConflict ?? 'keep-both',
      slots: new Slots(this.frameConcurrency),
      tmpName: () => `${TEMP_PREFIX}${this.#tmpTag}-${(++this.#tmpCounter).toString(36)}`,
      track: (p) => void this.#track(p),
      onError: (err) => this.#onError?.(err),
      recorded: (f, _name, path) => {
        this.#noteWritten(f.stream.name, f.stream.epoch, f.seq);
        if (this.#latest && f.contentType === 'image/jpeg') {
          this.#scheduleLatest(join(path, '..'), path, f.stream.name, f.seq);
        }
      },
    };
  }

  /** Creates the sink and its output folder. */
  static async open(outDir: string, options: FolderSinkOptions = {}): Promise<FolderSink> {
    const sink = new FolderSink(outDir, options);
    await sink.init();
    return sink;
  }

  /**
   * Creates the output folder (with its parents) and resolves its real path once; everything is written
   * below that real path, so a later change of a symlink above OUT does not move the output.
   * Returns the real path. Safe to call more than once.
   */
  init(): Promise<string> {
    if (!this.#init) {
      const p = (async () => {
        try {
          await mkdir(this.outDir, { recursive: true });
          return await realpath(this.outDir);
        } catch (err) {
          throw writeFailed(`cannot create output folder ${this.outDir}`, err);
        }
      })();
      // A failed init (say, a missing mount) may succeed later.
      p.catch(() => {
        if (this.#init === p) this.#init = undefined;
      });
      this.#init = p;
    }
    return this.#init;
  }

  /**
   * Saves one frame and appends its index line. Resolves once the frame and every earlier frame of its
   * stream are recorded. Rejects with ERR_UNSAFE_NAME, ERR_NAME_TAKEN (`onConflict: 'refuse'`) or
   * ERR_WRITE_FAILED.
   */
  frame(f: ReceivedFrame): Promise<void> {
    let writer: StreamWriter;
    try {
      const stream = f.stream.name;
      const known = this.#streams.get(stream);
      // The stream's checks run once, when its writer is made; the file name's on every frame. Both come
      // before anything touches the disk, so a refused frame leaves no trace.
      if (known === undefined || this.#closing) this.#checkStream(stream);
      if (f.name !== '') checkFileName(f.name, stream, f.seq);
      writer = known ?? this.#writer(stream);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#track(writer.write(f));
  }

  #writer(name: string): StreamWriter {
    const files = this.#openStream(name);
    const w = new StreamWriter(name, files, this.#ctx);
    this.#streams.set(name, w);
    // A refusal or a transient failure is checked afresh on the next frame rather than remembered.
    files.catch(() => {
      if (this.#streams.get(name) === w) this.#streams.delete(name);
    });
    this.#startSweeper();
    return w;
  }

  #startSweeper(): void {
    // Timers take at most 2^31-1 ms (about 24.8 days); a longer idleCloseMs sweeps that often.
    const every = Math.min(2 ** 31 - 1, Math.max(10, this.#idleCloseMs / 2));
    this.#sweeper ??= setInterval(() => this.#sweep(), every).unref();
  }

  /** Closes the files of streams idle for idleCloseMs and forgets them (their next frame opens them again). */
  #sweep(): void {
    if (this.#closing) return;
    const now = monoMs();
    for (const [name, w] of this.#streams) {
      if (w.busy || now - w.lastUse < this.#idleCloseMs) continue;
      const latest = this.#latestState.get(name);
      if (latest && (latest.timer || latest.running || latest.next)) continue;
      this.#streams.delete(name);
      this.#latestState.delete(name);
      this.#next.delete(name);
      this.#loads.delete(name);
      this.#track(
        w.close().catch((err) => this.#onError?.(writeFailed(`cannot close files of stream "${name}"`, err))),
      );
    }
    // Resume points read for streams that sent nothing since.
    for (const [name, load] of this.#loads) {
      if (!this.#streams.has(name) && now - load.at >= this.#idleCloseMs) {
        this.#loads.delete(name);
        this.#next.delete(name);
      }
    }
    if (this.#streams.size === 0 && this.#loads.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /**
   * latest.jpg is refreshed at most every LATEST_INTERVAL_MS per stream, always ending on the newest frame:
   * a link and a rename per frame would double the metadata work of a fast stream for no reader's benefit.
   * It runs beside the frame writes, never delaying an acknowledgement.
   */
  #scheduleLatest(dir: string, saved: string, stream: string, seq: number): void {
    let st = this.#latestState.get(stream);
    if (!st) {
      st = { last: 0, next: undefined, timer: undefined, running: undefined };
      this.#latestState.set(stream, st);
    }
    st.next = { dir, saved, seq };
    if (st.timer || st.running) return;
    const state = st;
    const wait = Math.max(0, st.last + LATEST_INTERVAL_MS - monoMs());
    if (wait === 0) {
      this.#runLatest(stream, state);
      return;
    }
    st.timer = setTimeout(() => {
      state.timer = undefined;
      this.#runLatest(stream, state);
    }, wait);
  }

  #runLatest(stream: string, st: LatestState): void {
    const n = st.next;
    if (!n) return;
    st.next = undefined;
    st.last = monoMs();
    st.running = this.#track(this.#updateLatest(n.dir, n.saved, stream, n.seq)).finally(() => {
      st.running = undefined;
      if (st.next && !this.#closing) this.#scheduleLatest(st.next.dir, st.next.saved, stream, st.next.seq);
    });
  }

  /** Points `latest.jpg` at the frame just saved: link (or copy) to a temporary name, then rename. */
  async #updateLatest(dir: string, saved: string, stream: string, seq: number): Promise<void> {
    const tmp = join(dir, this.#ctx.tmpName());
    const latest = join(dir, LATEST_FILE);
    try {
      try {
        await link(saved, tmp);
      } catch {
        // File systems without hard links (FAT, some network shares): copy instead.
        await copyFile(saved, tmp, fsConstants.COPYFILE_EXCL);
      }
      await rename(tmp, latest);
      // rename() does nothing when both names are links to one file (latest.jpg already pointed at this
      // frame, whose file was replaced meanwhile under --on-conflict overwrite): the temporary name stays.
      await removeQuietly(tmp, (err) =>
        this.#onError?.(writeFailed(`cannot remove ${tmp}`, err, { stream, seq })),
      );
    } catch (err) {
      await removeQuietly(tmp, () => {});
      this.#onError?.(writeFailed(`cannot update ${latest}`, err, { stream, seq }));
    }
  }

  /**
   * 1 + the highest sequence number saved for (stream name, epoch), from `index.jsonl` and the frames
   * written since; 0 when there are none. The index is read once per stream name.
   */
  resumePoint(stream: StreamInfo): Promise<number> {
    return this.#track(this.#resumePoint(stream));
  }

  async #resumePoint(stream: StreamInfo): Promise<number> {
    this.#checkStream(stream.name);
    let load = this.#loads.get(stream.name);
    if (!load) {
      const p = this.#loadIndex(stream.name);
      const entry = { p, at: monoMs() };
      p.catch(() => {
        if (this.#loads.get(stream.name) === entry) this.#loads.delete(stream.name);
      });
      this.#loads.set(stream.name, entry);
      this.#startSweeper();
      load = entry;
    }
    load.at = monoMs();
    await load.p;
    return this.#next.get(stream.name)?.get(stream.epoch) ?? 0;
  }

  /** Appends one line to `OUT/messages.jsonl`. */
  message(m: ReceivedMessage): Promise<void> {
    return this.#track(this.#message(m));
  }

  async #message(m: ReceivedMessage): Promise<void> {
    const log = await this.#messagesLog();
    // Stringified afresh rather than m.text: the sender's text may span lines, which would break JSONL.
    const line = JSON.stringify({
      receivedUs: m.receivedUs,
      sender: m.sender,
      epoch: m.epoch,
      seq: m.seq,
      ref: m.ref,
      json: m.json,
    });
    try {
      await log.append(line);
    } catch (err) {
      throw writeFailed(`cannot append message ${m.seq} to ${log.path}`, err, { seq: m.seq });
    }
  }

  /**
   * Frames written so far with synchronous calls (`sync`) and on the thread pool (`pool`), and how often
   * synchronous writes were found slow (`slowSync`: each time they were turned off for `syncBackoffMs`).
   */
  get writes(): { sync: number; pool: number; slowSync: number } {
    return this.#syncWrites.counts;
  }

  /** Stream folders with open files now (streams idle for `idleCloseMs` are closed). */
  get openStreams(): number {
    return this.#streams.size;
  }

  /**
   * Waits for writes under way, then closes every file. Later calls return the same promise; frames and
   * messages arriving after it reject with ERR_CLOSED.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    // Frames under way first: their index lines bring latest.jpg's next target.
    await Promise.allSettled([...this.#inFlight]);
    // Bring latest.jpg up to the last frame before closing.
    for (const [stream, st] of this.#latestState) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = undefined;
      await st.running;
      if (st.next) this.#runLatest(stream, st);
    }
    await Promise.allSettled([...this.#inFlight]);
    const files: { path: string; close(): Promise<void> }[] = [];
    for (const w of this.#streams.values()) files.push({ path: w.stream, close: () => w.close() });
    const messages = await this.#messages?.catch(() => undefined);
    if (messages) files.push(messages);
    const errors: FramewireError[] = [];
    for (const file of files) {
      try {
        await file.close();
      } catch (err) {
        errors.push(writeFailed(`cannot close ${file.path}`, err));
      }
    }
    // close() can reject with one error only; the others go where unawaited failures go.
    for (const err of errors.slice(1)) this.#onError?.(err);
    if (errors[0]) throw errors[0];
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  #checkStream(name: string): void {
    if (this.#closing) {
      throw new FramewireError(ErrorCode.CLOSED, `folder sink for ${this.outDir} is closed`, {
        stream: name,
      });
    }
    checkStreamName(name);
    // The messages log lives next to the stream folders; a stream of that name would collide with it.
    if (name.toLowerCase() === MESSAGES_FILE) {
      throw new FramewireError(
        ErrorCode.UNSAFE_NAME,
        `stream name ${JSON.stringify(name)} is refused: the folder sink keeps a file of that name`,
        { stream: name, hint: 'rename the stream' },
      );
    }
  }

  async #openStream(name: string): Promise<StreamFiles> {
    const root = await this.init();
    const dir = join(root, name);
    try {
      // Not recursive: the only component created is the stream's own, directly below the real OUT.
      await mkdir(dir);
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST')
        throw writeFailed(`cannot create stream folder ${dir}`, err, { stream: name });
    }
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(dir);
    } catch (err) {
      throw writeFailed(`cannot inspect stream folder ${dir}`, err, { stream: name });
    }
    if (st.isSymbolicLink()) throw refused(dir, 'it is a symbolic link', name);
    if (!st.isDirectory()) throw refused(dir, 'it is not a folder', name);
    // Once per stream folder: a stream closed while idle and opened again does not list its folder again.
    if (!this.#tempsRemoved.has(name)) {
      await removeStaleTemps(dir);
      this.#tempsRemoved.add(name);
    }

    const indexPath = join(dir, INDEX_FILE);
    let index: LineLog;
    try {
      index = await LineLog.open(indexPath, this.#fsync);
    } catch (err) {
      if (errnoOf(err) === 'ELOOP') throw refused(indexPath, 'it is a symbolic link', name);
      throw writeFailed(`cannot open ${indexPath}`, err, { stream: name });
    }
    let dirHandle: FileHandle | undefined;
    if (this.#fsync) {
      // Flushing the folder makes the new names durable; platforms that cannot open folders skip it.
      dirHandle = await open(dir, fsConstants.O_RDONLY | NOFOLLOW).catch(() => undefined);
    }
    return { dir, index, dirHandle };
  }

  #messagesLog(): Promise<LineLog> {
    if (this.#closing) {
      return Promise.reject(new FramewireError(ErrorCode.CLOSED, `folder sink for ${this.outDir} is closed`));
    }
    if (!this.#messages) {
      const p = (async () => {
        const path = join(await this.init(), MESSAGES_FILE);
        try {
          return await LineLog.open(path, this.#fsync);
        } catch (err) {
          if (errnoOf(err) === 'ELOOP') throw refused(path, 'it is a symbolic link');
          throw writeFailed(`cannot open ${path}`, err);
        }
      })();
      p.catch(() => {
        if (this.#messages === p) this.#messages = undefined;
      });
      this.#messages = p;
    }
    return this.#messages;
  }

  #noteWritten(stream: string, epoch: string, seq: number): void {
    let byEpoch = this.#next.get(stream);
    if (!byEpoch) {
      byEpoch = new Map();
      this.#next.set(stream, byEpoch);
    }
    // Max rather than assignment: a load of the index may finish after this write, in either order.
    if (seq + 1 > (byEpoch.get(epoch) ?? 0)) byEpoch.set(epoch, seq + 1);
  }

  /** Reads `OUT/<stream>/index.jsonl` for the resume points of its epochs. */
  async #loadIndex(stream: string): Promise<void> {
    const root = await this.init();
    const dir = join(root, stream);
    const path = join(dir, INDEX_FILE);
    try {
      const st = await lstat(dir);
      if (st.isSymbolicLink()) throw refused(dir, 'it is a symbolic link', stream);
      if (!st.isDirectory()) throw refused(dir, 'it is not a folder', stream);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      throw writeFailed(`cannot read ${path}`, err, { stream });
    }
    try {
      // A last line without its newline may still be whole; a torn one simply fails to parse.
      await forEachLine(path, (line) => this.#indexLine(stream, line));
    } catch (err) {
      if (errnoOf(err) === 'ELOOP') throw refused(path, 'it is a symbolic link', stream);
      throw writeFailed(`cannot read ${path}`, err, { stream });
    }
  }

  #indexLine(stream: string, line: string): void {
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    if (typeof e !== 'object' || e === null) return;
    const { seq, epoch } = e as { seq?: unknown; epoch?: unknown };
    if (typeof epoch !== 'string' || !Number.isSafeInteger(seq) || (seq as number) < 0) return;
    this.#noteWritten(stream, epoch, seq as number);
  }
}
