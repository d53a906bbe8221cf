/**
 * The folder source: frames read from image files on disk, named by folders, glob patterns or file paths.
 */

import { constants as bufferConstants } from 'node:buffer';
import {
  constants,
  type Dirent,
  close as fsClose,
  open as fsOpen,
  read as fsRead,
  fstat,
  type Stats,
} from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import { basename, extname, join, resolve, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { glob, isDynamicPattern } from 'tinyglobby';
import { ErrorCode, FramewireError } from '../errors.js';
import { contentTypeOf } from '../names.js';
import type { FrameBufferPool } from '../protocol/frame-buffers.js';
import { Slots } from '../slots.js';
import type { Frame } from '../types.js';

/** Extensions taken from a folder input when `extensions` is not given. */
export const DEFAULT_EXTENSIONS: readonly string[] = Object.freeze([
  '.jpg',
  '.jpeg',
  '.png',
  '.bmp',
  '.tif',
  '.tiff',
  '.webp',
  '.raw',
  '.bin',
]);

export interface FolderSourceOptions {
  /**
   * Pace the frames: frame i is yielded no earlier than start + i/fps, start being the first frame. The
   * schedule is absolute, so timer lateness does not add up; a consumer that falls more than a second behind
   * it does not get a burst of frames afterwards, the schedule restarts from the late frame instead.
   * Default: as fast as the consumer takes them.
   */
  fps?: number;
  /** Start again from the first file after the last one, forever (until `signal` aborts). */
  loop?: boolean;
  /** Ends the iteration promptly, also during a pacing wait or a file read; iteration ends without error. */
  signal?: AbortSignal;
  /**
   * Extensions (case-insensitive, with or without the dot) of the files taken from a folder input. Files
   * named explicitly and files matched by a glob pattern are taken whatever their extension.
   * Default: {@link DEFAULT_EXTENSIONS}.
   */
  extensions?: readonly string[];
  /**
   * Bytes of files read ahead of the consumer, at most (whole files; one file is always read, however large).
   * Reads overlap the sending, so that a sender never waits on the disk between frames. Default 64 MiB.
   */
  readAheadBytes?: number;
  /**
   * Capture times by file name (µs since the Unix epoch), e.g. from `readTimesFile` (`send --times`): a file
   * listed here gets its time; the others keep their modification time.
   */
  times?: ReadonlyMap<string, number>;
  /**
   * Where file contents are read into (default: a new buffer per file). Whoever consumes the frames gives a
   * frame's `data` back with `frameBuffers.give(frame.data)` once nothing reads it any more (`send` does so
   * when the receiver acknowledged the frame), so that later files are read into memory already in use
   * rather than fresh pages (docs/benchmarks.md, "Frame buffers used again").
   */
  frameBuffers?: FrameBufferPool;
}

/** A {@link FolderSource} whose inputs are resolved: what `await source.open()` returns. */
export interface OpenedFolderSource extends FolderSource {
  /** Absolute paths of the files of one pass, in the order they are sent. */
  readonly files: readonly string[];
  /** Total size of those files (one pass, as they were at open time). */
  readonly totalBytes: number;
}

/** Bytes read ahead of the consumer by default; bounds the memory the source holds. */
export const DEFAULT_READ_AHEAD_BYTES = 64 * 1024 * 1024;
/** Files read ahead at most, whatever their size (bounds the open files and the promises held). */
const READ_AHEAD_FILES = 256;
/** Files read at once: enough to keep a disk's queue busy, few enough not to crowd the thread pool. */
const READ_CONCURRENCY = 4;
/** A consumer this far behind the pacing schedule restarts the schedule rather than get a burst. */
const MAX_LAG_MS = 1000;
/** Concurrent stat() calls while resolving inputs. */
const STAT_CONCURRENCY = 32;

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

/**
 * Natural order for file names: digit runs compare as numbers (`frame2` < `frame10`), case and accents are
 * ignored, and names still equal are ordered by their code units so that the order is total and stable.
 */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0);
}

/** Natural order of paths, compared folder by folder so that `a/2/x` < `a/10/x`. */
function comparePaths(a: string, b: string): number {
  const pa = a.split(sep);
  const pb = b.split(sep);
  const n = Math.min(pa.length, pb.length);
  for (let i = 0; i < n; i++) {
    const c = naturalCompare(pa[i]!, pb[i]!);
    if (c !== 0) return c;
  }
  return pa.length - pb.length;
}

/**
 * Frames from image files. Iterating reads each file whole and yields it as a {@link Frame}:
 * - `data`: the file's bytes;
 * - `name`: the file's base name (files of different folders can share one);
 * - `contentType`: guessed from the extension (.jpg/.jpeg, .png, .raw, else application/octet-stream);
 * - `captureUs`: the time given for the file in `times` (`send --times FILE`), else the file's
 *   modification time in microseconds. Files have no capture time; a camera source gives real ones, and the
 *   mtime is the closest a copied folder keeps (docs/sync.md).
 *
 * Inputs are resolved by {@link FolderSource.open} (iteration calls it when it was not called), so that
 * missing or empty inputs fail before any frame is sent. Each iteration is a new pass over the files; files
 * are read ahead of the consumer, up to `readAheadBytes`, so that disk reads overlap the sending.
 */
export class FolderSource implements AsyncIterable<Frame> {
  readonly #inputs: readonly string[];
  readonly #fps: number | undefined;
  readonly #loop: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #extensions: ReadonlySet<string>;
  #opening: Promise<OpenedFolderSource> | undefined;
  #files: readonly string[] | undefined;
  #sizes: readonly number[] = [];
  #totalBytes: number | undefined;
  readonly #readAheadBytes: number;
  readonly #pool: FrameBufferPool | undefined;
  readonly #times: ReadonlyMap<string, number> | undefined;

  constructor(inputs: string | readonly string[], options: FolderSourceOptions = {}) {
    const list = typeof inputs === 'string' ? [inputs] : [...inputs];
    if (list.length === 0) {
      throw new FramewireError(ErrorCode.BAD_OPTION, 'folder source: no input given', {
        hint: 'give a folder, a glob pattern such as "frames/*.jpg", or image files',
      });
    }
    for (const input of list) {
      if (typeof input !== 'string' || input === '') {
        throw new FramewireError(ErrorCode.BAD_OPTION, `folder source: bad input ${JSON.stringify(input)}`);
      }
    }
    const { fps, extensions = DEFAULT_EXTENSIONS, readAheadBytes = DEFAULT_READ_AHEAD_BYTES } = options;
    if (!(typeof readAheadBytes === 'number' && Number.isFinite(readAheadBytes) && readAheadBytes >= 0)) {
      throw new FramewireError(
        ErrorCode.BAD_OPTION,
        `folder source: readAheadBytes must be a number >= 0, got ${readAheadBytes}`,
      );
    }
    if (fps !== undefined && !(typeof fps === 'number' && Number.isFinite(fps) && fps > 0)) {
      throw new FramewireError(ErrorCode.BAD_OPTION, `folder source: fps must be a number > 0, got ${fps}`);
    }
    const exts = new Set<string>();
    for (const ext of extensions) {
      if (typeof ext !== 'string' || ext === '' || ext === '.') {
        throw new FramewireError(ErrorCode.BAD_OPTION, `folder source: bad extension ${JSON.stringify(ext)}`);
      }
      exts.add((ext.startsWith('.') ? ext : `.${ext}`).toLowerCase());
    }
    this.#inputs = list;
    this.#fps = fps;
    this.#loop = options.loop === true;
    this.#signal = options.signal;
    this.#extensions = exts;
    this.#readAheadBytes = readAheadBytes;
    this.#times = options.times;
    this.#pool = options.frameBuffers;
  }

  /** Absolute paths of the files, in order; undefined until {@link open} resolved. */
  get files(): readonly string[] | undefined {
    return this.#files;
  }

  /** Total bytes of one pass; undefined until {@link open} resolved. */
  get totalBytes(): number | undefined {
    return this.#totalBytes;
  }

  /**
   * Resolves the inputs to files and checks them. Calling it again returns the same promise.
   * @throws FramewireError ERR_SOURCE_NOT_FOUND (a missing path), ERR_SOURCE_EMPTY (a folder or pattern
   *   without matching files), ERR_SOURCE_READ (a path that cannot be listed or is not a file).
   */
  open(): Promise<OpenedFolderSource> {
    this.#opening ??= this.#resolve();
    return this.#opening;
  }

  async #resolve(): Promise<OpenedFolderSource> {
    const files: string[] = [];
    const known = new Map<string, Stats>();
    for (const input of this.#inputs) {
      const path = resolve(input);
      let st: Stats | undefined;
      try {
        st = await stat(path);
      } catch (err) {
        if (!isMissing(err)) throw readError(`cannot access ${input}`, err);
      }
      if (st === undefined) {
        if (!isDynamicPattern(input)) {
          throw new FramewireError(ErrorCode.SOURCE_NOT_FOUND, `folder source: ${input} does not exist`, {
            hint: `give a folder, a glob pattern such as "frames/*.jpg" or image files; relative paths start at ${process.cwd()}`,
          });
        }
        files.push(...(await this.#glob(input)));
      } else if (st.isDirectory()) {
        files.push(...(await this.#listFolder(input, path)));
      } else if (st.isFile()) {
        known.set(path, st);
        files.push(path);
      } else {
        throw new FramewireError(ErrorCode.SOURCE_READ, `folder source: ${input} is not a file or a folder`);
      }
    }
    const sizes = await mapLimit(files, STAT_CONCURRENCY, async (file) => {
      const st = known.get(file) ?? (await statFile(file));
      if (!st.isFile())
        throw new FramewireError(ErrorCode.SOURCE_READ, `folder source: ${file} is not a file`);
      // Catches unreadable files before the first frame is sent (it cannot for a privileged user).
      await access(file, constants.R_OK).catch((err: unknown) => {
        throw readError(`cannot read ${file}`, err);
      });
      return st.size;
    });
    this.#files = Object.freeze(files);
    this.#sizes = sizes;
    this.#totalBytes = sizes.reduce((a, b) => a + b, 0);
    return this as OpenedFolderSource;
  }

  async #glob(pattern: string): Promise<string[]> {
    let matches: string[];
    try {
      matches = await glob(pattern, { absolute: true, onlyFiles: true, dot: false });
    } catch (err) {
      throw readError(`cannot expand pattern ${pattern}`, err);
    }
    if (matches.length === 0) {
      throw new FramewireError(ErrorCode.SOURCE_EMPTY, `folder source: no file matches ${pattern}`, {
        hint: `patterns are resolved from ${process.cwd()}; quote them so that the shell leaves them alone`,
      });
    }
    // Paths as resolve() writes them (native separators), so that they compare like folder inputs.
    return matches.map((m) => resolve(m)).sort(comparePaths);
  }

  async #listFolder(input: string, dir: string): Promise<string[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw readError(`cannot list folder ${input}`, err);
    }
    const names: string[] = [];
    for (const e of entries) {
      if (e.name.startsWith('.') || !this.#extensions.has(extname(e.name).toLowerCase())) continue;
      if (e.isFile()) names.push(e.name);
      else if (e.isSymbolicLink()) {
        // A link is taken when it leads to a regular file; a dangling link is skipped like a non-file.
        const st = await stat(join(dir, e.name)).catch(() => undefined);
        if (st?.isFile()) names.push(e.name);
      }
    }
    if (names.length === 0) {
      throw new FramewireError(ErrorCode.SOURCE_EMPTY, `folder source: no image file in folder ${input}`, {
        hint: `files ending in ${[...this.#extensions].join(' ')} are taken; dot-files and subfolders are not`,
      });
    }
    return names.sort(naturalCompare).map((n) => join(dir, n));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    const signal = this.#signal;
    if (signal?.aborted) return;
    const { files } = await this.open();
    const count = files.length;
    const end = this.#loop ? Number.POSITIVE_INFINITY : count;
    const interval = this.#fps === undefined ? 0 : 1000 / this.#fps;
    const sizes = this.#sizes;
    const budget = this.#readAheadBytes;
    // Reads started (or waiting for a read slot) and not yet yielded, oldest first, with the bytes they hold
    // (the sizes seen by open(); a file that grew since is read whole all the same).
    const pending: { read: Promise<Frame>; bytes: number }[] = [];
    let pendingBytes = 0;
    let next = 0;
    const slots = new Slots(READ_CONCURRENCY);
    const done = (): void => slots.release();
    const fill = (): void => {
      while (next < end && pending.length < READ_AHEAD_FILES) {
        const bytes = sizes[next % count] ?? 0;
        // Within the byte budget, except that the next frame is always read.
        if (pending.length > 0 && pendingBytes + bytes > budget) break;
        const file = files[next % count]!;
        const read = Promise.resolve(slots.acquire()).then(() =>
          readFrame(file, signal, this.#times, this.#pool).finally(done),
        );
        // Awaited later; this keeps a failure of a read-ahead from being reported as unhandled meanwhile.
        read.catch(() => {});
        pending.push({ read, bytes });
        pendingBytes += bytes;
        next++;
      }
    };
    let start = 0;
    for (let i = 0; ; i++) {
      fill();
      const head = pending.shift();
      if (head === undefined) return;
      pendingBytes -= head.bytes;
      let frame: Frame;
      try {
        frame = await head.read;
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      if (signal?.aborted) return;
      if (interval > 0) {
        if (i === 0) start = performance.now();
        let due = start + i * interval;
        if (performance.now() - due > MAX_LAG_MS) {
          start = performance.now() - i * interval;
          due = start + i * interval;
        }
        if (!(await waitUntil(due, signal))) return;
      }
      fill();
      yield frame;
    }
  }
}

/**
 * Frames from a folder, glob pattern(s) or file path(s), concatenated in the given order.
 * See {@link FolderSource}; `await folderSource(...).open()` resolves the inputs and gives `files` and
 * `totalBytes`.
 * @throws FramewireError ERR_BAD_OPTION for a bad option (fps <= 0, an empty input list).
 */
export function folderSource(
  inputs: string | readonly string[],
  options?: FolderSourceOptions,
): FolderSource {
  return new FolderSource(inputs, options);
}

/** The largest Buffer this Node makes (4 GiB on Node 20, 64-bit). */
const MAX_LENGTH = bufferConstants.MAX_LENGTH;

/**
 * Reads one file whole: open, fstat, read(s), close, as callback calls (one thread-pool round trip each and
 * no promise per step: on tmpfs or a warm cache those round trips are most of the cost of a file).
 * stat and read go through one descriptor, so that the time and the bytes belong to the same file.
 */
function readFrame(
  file: string,
  signal: AbortSignal | undefined,
  times: ReadonlyMap<string, number> | undefined,
  pool: FrameBufferPool | undefined,
): Promise<Frame> {
  return new Promise<Frame>((resolveFrame, reject) => {
    const fail = (err: unknown) => reject(readError(`cannot read ${file}`, err));
    fsOpen(file, 'r', (openErr, fd) => {
      if (openErr) {
        fail(openErr);
        return;
      }
      const finish = (err: unknown, frame?: Frame) => {
        fsClose(fd, (closeErr) => {
          const e = err ?? closeErr;
          if (e) fail(e);
          else resolveFrame(frame!);
        });
      };
      fstat(fd, (statErr, st) => {
        if (statErr) {
          finish(statErr);
          return;
        }
        if (st.size > MAX_LENGTH) {
          finish(new RangeError(`it holds ${st.size} bytes, more than one Buffer can (${MAX_LENGTH})`));
          return;
        }
        let data = pool ? pool.take(st.size) : Buffer.allocUnsafe(st.size);
        let off = 0;
        const done = () =>
          finish(null, {
            data,
            name: basename(file),
            contentType: contentTypeOf(file),
            captureUs: times?.get(basename(file)) ?? Math.round(st.mtimeMs * 1000),
          });
        const next = () => {
          if (signal?.aborted) {
            finish(signal.reason ?? new Error('aborted'));
            return;
          }
          if (off >= data.length) {
            done();
            return;
          }
          fsRead(fd, data, off, data.length - off, off, (readErr, n) => {
            if (readErr) {
              finish(readErr);
              return;
            }
            if (n === 0) {
              // The file shrank since fstat: what is there is the file.
              data = data.subarray(0, off);
              done();
              return;
            }
            off += n;
            next();
          });
        };
        next();
      });
    });
  });
}

/** Waits until performance.now() >= due with timers (never spinning); false when aborted. */
async function waitUntil(due: number, signal: AbortSignal | undefined): Promise<boolean> {
  for (;;) {
    if (signal?.aborted) return false;
    const left = due - performance.now();
    if (left <= 0) return true;
    try {
      // Rounded up: a timer can fire a fraction of a millisecond before `due` as performance.now() sees it.
      await sleep(Math.ceil(left), undefined, signal === undefined ? {} : { signal });
    } catch (err) {
      if (signal?.aborted) return false;
      throw err;
    }
  }
}

async function statFile(file: string): Promise<Stats> {
  try {
    return await stat(file);
  } catch (err) {
    if (isMissing(err)) {
      throw new FramewireError(ErrorCode.SOURCE_NOT_FOUND, `folder source: ${file} does not exist`, {
        cause: err,
      });
    }
    throw readError(`cannot access ${file}`, err);
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function readError(what: string, err: unknown): FramewireError {
  if (err instanceof FramewireError) return err;
  const reason =
    (err as NodeJS.ErrnoException | undefined)?.code ?? (err instanceof Error ? err.message : err);
  return new FramewireError(ErrorCode.SOURCE_READ, `folder source: ${what} (${String(reason)})`, {
    cause: err,
  });
}

/** Maps with at most `limit` calls in flight, keeping the order of the results. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
