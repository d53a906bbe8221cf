/**
 * The folder sink: saves every received frame as a file in `OUT/<stream>/`, keeps an append-only
 * `OUT/<stream>/index.jsonl` describing the saved frames, and `OUT/messages.jsonl` for JSON messages.
 *
 * The index is the sink's memory: a receiver restarted mid-stream reads it to tell the sender where to
 * resume, so a line is appended only once its file is in place under its final name.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, renameSync, writeSync } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FramewireError } from '../errors.js';
import { checkFileName, checkStreamName, TEMP_PREFIX } from '../names.js';
import type { ContentType, PixelFormat } from '../protocol/constants.js';
import { monoMs } from '../time.js';
import type { ReceivedFrame, ReceivedMessage, Sink, StreamInfo } from '../types.js';

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
   * Write frames up to this many bytes with synchronous calls (open, write, close, rename on the event
   * loop) instead of four trips through libuv's thread pool. It blocks the process for the write (tens of
   * microseconds for a 123 KB JPEG in the page cache), but cuts the latency of each frame, which is what
   * bounds a lockstep protocol with one frame in flight (ImageZMQ's REQ/REP: `serve --listen izmq://` turns
   * it on with 4 MiB). Ignored with `fsync`. Default 0 (off).
   */
  syncWriteMaxBytes?: number;
}

/** One line of `OUT/<stream>/index.jsonl`. */
export interface IndexEntry {
  seq: number;
  /** The file's name inside the stream folder. */
  name: string;
  bytes: number;
  captureUs: number;
  receivedUs: number;
  contentType: ContentType;
  epoch: string;
  /** "host:port" of the sender. */
  sender: string;
  crc: number;
  /** Present when known (not 0). */
  width?: number;
  height?: number;
  /** Present for frames that carry one (raw frames), absent for 'none'. */
  pixelFormat?: PixelFormat;
  /** Present when the frame carried metadata. */
  meta?: unknown;
  /** The capture time on the receiver's clock, and the clock offset and error used (docs/sync.md). */
  correctedUs?: number;
  clockOffsetUs?: number;
  clockErrorUs?: number;
}

const INDEX_FILE = 'index.jsonl';
const LATEST_FILE = 'latest.jpg';
const LATEST_INTERVAL_MS = 100;

interface LatestState {
  last: number;
  next: { dir: string; saved: string; seq: number } | undefined;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
}
const MESSAGES_FILE = 'messages.jsonl';

const EXTENSIONS: Record<ContentType, string> = {
  'image/jpeg': '.jpg',
  'image/png': '.png',
  raw: '.raw',
  'application/octet-stream': '.bin',
};

// O_NOFOLLOW makes the open itself refuse a symlink, so there is no window between a check and the open.
// Windows has no such flag (and symlinks there need privileges), hence the fallback to 0.
const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
// Read and write: the tail of an existing log is read once to repair a torn last line.
const LOG_FLAGS = fsConstants.O_RDWR | fsConstants.O_APPEND | fsConstants.O_CREAT | NOFOLLOW;
const READ_FLAGS = fsConstants.O_RDONLY | NOFOLLOW;

const NEWLINE = 0x0a;

function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function writeFailed(
  context: string,
  err: unknown,
  details: { stream?: string; seq?: number } = {},
): FramewireError {
  if (err instanceof FramewireError) return err;
  // Node's own messages already start with the errno code and name the syscall and paths.
  const code = errnoOf(err);
  const msg = describe(err);
  return new FramewireError(
    ErrorCode.WRITE_FAILED,
    `${context}: ${msg.startsWith(code) ? msg : `${code}: ${msg}`}`,
    {
      ...details,
      cause: err,
      hint: 'check that the output folder exists, is writable and has free space',
    },
  );
}

function refused(path: string, why: string, stream?: string): FramewireError {
  return new FramewireError(ErrorCode.UNSAFE_NAME, `${path} is refused: ${why}`, {
    ...(stream === undefined ? {} : { stream }),
    hint: 'remove the link; the folder sink writes only inside its output folder',
  });
}

/**
 * An append-only JSON-lines file whose lines never interleave or glue together: appends are queued, and the
 * tail is checked for a missing newline (left by a crash or a failed write) before the next line goes out.
 */
class LineLog {
  readonly path: string;
  readonly #fh: FileHandle;
  readonly #sync: boolean;
  #tail: Promise<unknown> = Promise.resolve();
  #queued = 0;
  #checkTail = true;

  private constructor(path: string, fh: FileHandle, sync: boolean) {
    this.path = path;
    this.#fh = fh;
    this.#sync = sync;
  }

  static async open(path: string, sync: boolean): Promise<LineLog> {
    const fh = await open(path, LOG_FLAGS, 0o644);
    try {
      // A FIFO or device under the log's name would block or misbehave.
      if (!(await fh.stat()).isFile()) {
        throw Object.assign(new Error(`${path} is not a regular file`), { code: 'EINVAL' });
      }
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    return new LineLog(path, fh, sync);
  }

  /** Appends `line` (without its newline). Concurrent calls are written one after the other. */
  append(line: string): Promise<void> {
    this.#queued++;
    const run = this.#tail.then(() => this.#write(line)).finally(() => this.#queued--);
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * The same, written at once with a synchronous call when nothing is queued before it and the end of the
   * file is known to be a line end (the `syncWriteMaxBytes` path); otherwise like append().
   */
  appendNow(line: string): Promise<void> | undefined {
    if (this.#queued > 0 || this.#checkTail || this.#sync) return this.append(line);
    const buf = Buffer.from(`${line}\n`, 'utf8');
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.#fh.fd, buf, off, buf.length - off, null);
    } catch (err) {
      this.#checkTail = true;
      return Promise.reject(err);
    }
    return undefined;
  }

  async #write(line: string): Promise<void> {
    let prefix = '';
    if (this.#checkTail) {
      const { size } = await this.#fh.stat();
      if (size > 0) {
        const last = Buffer.alloc(1);
        await this.#fh.read(last, 0, 1, size - 1);
        if (last[0] !== NEWLINE) prefix = '\n';
      }
      this.#checkTail = false;
    }
    const buf = Buffer.from(`${prefix}${line}\n`, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await this.#fh.write(buf, off, buf.length - off, null);
        off += bytesWritten;
      }
      if (this.#sync) await this.#fh.datasync();
    } catch (err) {
      // Part of the line may be on disk; the next append must start on a fresh line.
      this.#checkTail = true;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#fh.close();
  }
}

/** A stream folder that passed the symlink check, with its open index. */
interface StreamDir {
  dir: string;
  index: LineLog;
  /** The folder itself, kept open to flush renames when fsync is on (undefined where unsupported). */
  dirHandle: FileHandle | undefined;
}

/** The synchronous form of the frame write: 'wx' (O_EXCL) temporary file, all of it written, then rename. */
function writeSyncAndRename(tmp: string, target: string, data: Buffer): void {
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, target);
}

/** The name a frame is saved under. */
export function fileNameOf(f: ReceivedFrame): string {
  if (f.name !== '') return f.name;
  return String(f.seq).padStart(9, '0') + (EXTENSIONS[f.contentType] ?? '.bin');
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

/**
 * Saves frames to `OUT/<stream>/<name>` (atomically: temporary file, then rename) and messages to
 * `OUT/messages.jsonl`. Names are checked again here, and symlinks inside OUT cannot redirect a write
 * outside it. Every filesystem failure rejects with `ERR_WRITE_FAILED`, so the receiver leaves the frame
 * unacknowledged and the sender sends it again.
 *
 * Use {@link FolderSink.open}, or the constructor followed by {@link FolderSink.init} (which the other
 * methods also call on first use).
 */
export class FolderSink implements Sink {
  /** The output folder as given. */
  readonly outDir: string;
  readonly #fsync: boolean;
  readonly #syncWriteMax: number;
  readonly #onError: ((err: FramewireError) => void) | undefined;
  readonly #latest: boolean;
  readonly #latestState = new Map<string, LatestState>();
  // Unique per sink, so that two sinks (or processes) writing the same folder never pick the same temp name.
  // The pid in the name lets a later sink tell a crashed writer's leftovers from a live writer's files.
  readonly #tmpTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
  #tmpCounter = 0;

  #init: Promise<string> | undefined;
  /** Per stream name; memoised so that concurrent first frames share one mkdir and one index handle. */
  readonly #streams = new Map<string, Promise<StreamDir>>();
  #messages: Promise<LineLog> | undefined;
  /** Next sequence number per stream name and epoch: what was read from the index plus what was written. */
  readonly #next = new Map<string, Map<string, number>>();
  readonly #loads = new Map<string, Promise<void>>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;

  constructor(outDir: string, options: FolderSinkOptions = {}) {
    this.outDir = outDir;
    this.#fsync = options.fsync ?? false;
    this.#syncWriteMax = this.#fsync ? 0 : (options.syncWriteMaxBytes ?? 0);
    this.#onError = options.onError;
    this.#latest = options.latest ?? true;
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

  /** Saves one frame and appends its index line. Rejects with ERR_UNSAFE_NAME or ERR_WRITE_FAILED. */
  frame(f: ReceivedFrame): Promise<void> {
    return this.#track(this.#frame(f));
  }

  async #frame(f: ReceivedFrame): Promise<void> {
    const stream = f.stream.name;
    const name = fileNameOf(f);
    // Both checks come before anything touches the disk, so a refused frame leaves no trace.
    this.#checkStream(stream);
    checkFileName(name, stream, f.seq);
    const sd = await this.#stream(stream);
    const target = join(sd.dir, name);
    const tmp = join(sd.dir, `${TEMP_PREFIX}${this.#tmpTag}-${(++this.#tmpCounter).toString(36)}`);
    const where = { stream, seq: f.seq };

    let fh: FileHandle | undefined;
    try {
      if (f.data.length <= this.#syncWriteMax) {
        writeSyncAndRename(tmp, target, f.data);
      } else {
        // 'wx' (O_EXCL) never follows or reuses an existing entry.
        fh = await open(tmp, 'wx', 0o644);
        await fh.writeFile(f.data);
        if (this.#fsync) await fh.sync();
        await fh.close();
        fh = undefined;
        // rename() replaces a symlink at the target rather than writing through it.
        await rename(tmp, target);
      }
    } catch (err) {
      if (fh) await fh.close().catch(() => {});
      await this.#removeTemp(tmp, stream, f.seq);
      throw writeFailed(`cannot save frame ${f.seq} of stream "${stream}" as ${target}`, err, where);
    }
    try {
      if (sd.dirHandle) await sd.dirHandle.sync();
      const line = indexLine(f, name);
      await (f.data.length <= this.#syncWriteMax ? sd.index.appendNow(line) : sd.index.append(line));
    } catch (err) {
      // The file is in place but unrecorded; the retransmission will replace it and record it.
      throw writeFailed(`cannot record frame ${f.seq} of stream "${stream}" in ${sd.index.path}`, err, where);
    }
    this.#noteWritten(stream, f.stream.epoch, f.seq);
    if (this.#latest && f.contentType === 'image/jpeg') this.#scheduleLatest(sd.dir, target, stream, f.seq);
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
    const tmp = join(dir, `${TEMP_PREFIX}${this.#tmpTag}-${(++this.#tmpCounter).toString(36)}`);
    const latest = join(dir, LATEST_FILE);
    try {
      try {
        await link(saved, tmp);
      } catch {
        // File systems without hard links (FAT, some network shares): copy instead.
        await copyFile(saved, tmp, fsConstants.COPYFILE_EXCL);
      }
      await rename(tmp, latest);
    } catch (err) {
      await this.#removeTemp(tmp, stream, seq);
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
      p.catch(() => {
        if (this.#loads.get(stream.name) === p) this.#loads.delete(stream.name);
      });
      this.#loads.set(stream.name, p);
      load = p;
    }
    await load;
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
   * Waits for writes under way, then closes every file. Later calls return the same promise; frames and
   * messages arriving after it reject with ERR_CLOSED.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // Bring latest.jpg up to the last frame before closing.
    for (const [stream, st] of this.#latestState) {
      if (st.timer) clearTimeout(st.timer);
      st.timer = undefined;
      await st.running;
      if (st.next) this.#runLatest(stream, st);
    }
    await Promise.allSettled([...this.#inFlight]);
    const files: { path: string; close(): Promise<void> }[] = [];
    for (const r of await Promise.allSettled([...this.#streams.values()])) {
      if (r.status !== 'fulfilled') continue;
      const { index, dirHandle, dir } = r.value;
      files.push(index);
      if (dirHandle) files.push({ path: dir, close: () => dirHandle.close() });
    }
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

  #stream(name: string): Promise<StreamDir> {
    let p = this.#streams.get(name);
    if (!p) {
      const created = this.#openStream(name);
      // A refusal or a transient failure is checked afresh on the next frame rather than remembered.
      created.catch(() => {
        if (this.#streams.get(name) === created) this.#streams.delete(name);
      });
      this.#streams.set(name, created);
      p = created;
    }
    return p;
  }

  async #openStream(name: string): Promise<StreamDir> {
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
    await removeStaleTemps(dir);

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
      // Flushing the folder makes the rename durable; platforms that cannot open folders skip it.
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

  async #removeTemp(tmp: string, stream: string, seq: number): Promise<void> {
    try {
      await unlink(tmp);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') {
        this.#onError?.(writeFailed(`cannot remove temporary file ${tmp}`, err, { stream, seq }));
      }
    }
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

  /** Reads `OUT/<stream>/index.jsonl` in chunks, so that an index of any size fits in memory. */
  async #loadIndex(stream: string): Promise<void> {
    const root = await this.init();
    const dir = join(root, stream);
    const path = join(dir, INDEX_FILE);
    let fh: FileHandle;
    try {
      const st = await lstat(dir);
      if (st.isSymbolicLink()) throw refused(dir, 'it is a symbolic link', stream);
      if (!st.isDirectory()) throw refused(dir, 'it is not a folder', stream);
      fh = await open(path, READ_FLAGS);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return;
      if (errnoOf(err) === 'ELOOP') throw refused(path, 'it is a symbolic link', stream);
      throw writeFailed(`cannot read ${path}`, err, { stream });
    }
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      let carry = Buffer.alloc(0);
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        let chunk = buf.subarray(0, bytesRead);
        if (carry.length > 0) chunk = Buffer.concat([carry, chunk]);
        let start = 0;
        for (let nl = chunk.indexOf(NEWLINE); nl !== -1; nl = chunk.indexOf(NEWLINE, start)) {
          this.#indexLine(stream, chunk.toString('utf8', start, nl));
          start = nl + 1;
        }
        // Copied: buf is reused by the next read.
        carry = Buffer.from(chunk.subarray(start));
      }
      // A last line without its newline may still be whole; a torn one simply fails to parse.
      if (carry.length > 0) this.#indexLine(stream, carry.toString('utf8'));
    } catch (err) {
      throw writeFailed(`cannot read ${path}`, err, { stream });
    } finally {
      await fh.close().catch(() => {});
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

/**
 * Removes temporary files left by a writer that died mid-frame (SIGKILL, power loss): their names carry the
 * writer's pid, and a pid that no longer runs cannot finish its rename. Files of live writers are kept.
 */
async function removeStaleTemps(dir: string): Promise<void> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));
  } catch {
    return;
  }
  for (const n of names) {
    const pid = Number(/^(\d+)-/.exec(n.slice(TEMP_PREFIX.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isRunning(pid)) continue;
    await unlink(join(dir, n)).catch(() => undefined);
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
