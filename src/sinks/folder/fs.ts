/** File-system helpers of the folder sink: error wrapping, whole-file writes, content comparison. */
import {
  close,
  closeSync,
  constants as fsConstants,
  fsync,
  linkSync,
  lstatSync,
  open,
  openSync,
  renameSync,
  write,
  writeSync,
} from 'node:fs';
import { link, lstat, open as openFile, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, FramewireError } from '../../errors.js';
import { TEMP_PREFIX } from '../../names.js';
import { crc32 } from '../../protocol/crc.js';

// O_NOFOLLOW makes the open itself refuse a symlink, so there is no window between a check and the open.
// Windows has no such flag (and symlinks there need privileges), hence the fallback to 0.
export const NOFOLLOW = fsConstants.O_NOFOLLOW ?? 0;
export const READ_FLAGS = fsConstants.O_RDONLY | NOFOLLOW;
// O_EXCL never follows or reuses an existing entry.
const CREATE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | NOFOLLOW;

export function errnoOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function writeFailed(
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

export function refused(path: string, why: string, stream?: string): FramewireError {
  return new FramewireError(ErrorCode.UNSAFE_NAME, `${path} is refused: ${why}`, {
    ...(stream === undefined ? {} : { stream }),
    hint: 'remove the link; the folder sink writes only inside its output folder',
  });
}

/**
 * Creates `path` (which must not exist) holding `data`, optionally flushed, and closes it: open, write(s),
 * [fsync,] close. Callback calls rather than a FileHandle: one thread-pool round trip per system call and
 * no promise per step, which is most of the cost of a small file on tmpfs.
 */
export function writeNewFile(path: string, data: Uint8Array, sync: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    open(path, CREATE_FLAGS, 0o644, (err, fd) => {
      if (err) {
        reject(err);
        return;
      }
      const finish = (failure: Error | null): void => {
        close(fd, (closeErr) => {
          const e = failure ?? closeErr;
          if (e) reject(e);
          else resolve();
        });
      };
      const flush = (): void => {
        if (sync) fsync(fd, finish);
        else finish(null);
      };
      let off = 0;
      const next = (): void => {
        if (off >= data.length) {
          flush();
          return;
        }
        write(fd, data, off, data.length - off, null, (e, n) => {
          if (e) {
            finish(e);
            return;
          }
          off += n;
          next();
        });
      };
      next();
    });
  });
}

/**
 * The synchronous form of {@link writeNewFile} without the flush: open, write(s), close on the event loop.
 * It blocks the process for the write (tens of microseconds for a 123 KB JPEG in the page cache) but saves
 * the thread-pool round trips, which is what bounds a lockstep sender with one frame in flight.
 */
export function writeNewFileSync(path: string, data: Uint8Array): void {
  const fd = openSync(path, CREATE_FLAGS, 0o644);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
  } finally {
    closeSync(fd);
  }
}

/** What link() answers on a file system without hard links (FAT, exFAT, some SMB and FUSE mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

function takenError(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EEXIST: file already exists, ${path}`), { code: 'EEXIST', path });
}

/**
 * Gives the temporary file `tmp` the name `path` unless the name is taken (then throws EEXIST): link(), which
 * fails on an existing name, so nothing is ever replaced ('linked': `tmp` is still there, for the caller to
 * remove). Where the file system has no hard links (a FAT or exFAT card), the name is checked, then `tmp` is
 * renamed to it ('renamed'): within one sink the names claimed by frames under way keep that safe; another
 * process writing the same folder at that moment could still lose a file.
 */
export async function placeNew(tmp: string, path: string): Promise<'linked' | 'renamed'> {
  try {
    await link(tmp, path);
    return 'linked';
  } catch (err) {
    if (!NO_HARD_LINKS.has(errnoOf(err))) throw err;
  }
  if (
    await lstat(path).then(
      () => true,
      (e: unknown) => errnoOf(e) !== 'ENOENT',
    )
  )
    throw takenError(path);
  await rename(tmp, path);
  return 'renamed';
}

/** The synchronous form of {@link placeNew}. */
export function placeNewSync(tmp: string, path: string): 'linked' | 'renamed' {
  try {
    linkSync(tmp, path);
    return 'linked';
  } catch (err) {
    if (!NO_HARD_LINKS.has(errnoOf(err))) throw err;
  }
  let exists = true;
  try {
    lstatSync(path);
  } catch (e) {
    if (errnoOf(e) !== 'ENOENT') throw e;
    exists = false;
  }
  if (exists) throw takenError(path);
  renameSync(tmp, path);
  return 'renamed';
}

/** Flushes the file at `path` to disk (a copy taken as it is, which its crashed writer may not have flushed). */
export async function syncFile(path: string): Promise<void> {
  const fh = await openFile(path, READ_FLAGS);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Whether the file at `path` holds exactly `size` bytes whose CRC-32 is `crc` (false if unreadable). */
export async function hasContent(path: string, size: number, crc: number): Promise<boolean> {
  let fh: Awaited<ReturnType<typeof openFile>> | undefined;
  try {
    fh = await openFile(path, READ_FLAGS);
    const st = await fh.stat();
    if (!st.isFile() || st.size !== size) return false;
    return crc32(await fh.readFile()) === crc >>> 0;
  } catch {
    return false;
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Removes temporary files left by a writer that died mid-frame (SIGKILL, power loss): their names carry the
 * writer's pid, and a pid that no longer runs cannot finish its rename. Files of live writers are kept.
 */
export async function removeStaleTemps(dir: string): Promise<void> {
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

/**
 * Calls `onLine` for every line of the file at `path`, read in chunks so that a file of any size fits in
 * memory. A last line without its newline is passed too (it may be whole). A missing file has no lines.
 */
export async function forEachLine(path: string, onLine: (line: string) => void): Promise<void> {
  let fh: Awaited<ReturnType<typeof openFile>>;
  try {
    fh = await openFile(path, READ_FLAGS);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
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
      for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
        onLine(chunk.toString('utf8', start, nl));
        start = nl + 1;
      }
      // Copied: buf is reused by the next read.
      carry = Buffer.from(chunk.subarray(start));
    }
    if (carry.length > 0) onLine(carry.toString('utf8'));
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Removes `path`, ignoring a file that is already gone; other failures go to `onError`. */
export async function removeQuietly(path: string, onError: (err: unknown) => void): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') onError(err);
  }
}
