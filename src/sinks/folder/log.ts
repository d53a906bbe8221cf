/** Append-only JSON-lines files of the folder sink (`index.jsonl`, `messages.jsonl`). */
import { constants as fsConstants, writeSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { NOFOLLOW } from './fs.js';

// Read and write: the tail of an existing log is read once to repair a torn last line.
const LOG_FLAGS = fsConstants.O_RDWR | fsConstants.O_APPEND | fsConstants.O_CREAT | NOFOLLOW;
const NEWLINE = 0x0a;

/**
 * An append-only JSON-lines file whose lines never interleave or glue together: appends are queued, and the
 * tail is checked for a missing newline (left by a crash or a failed write) before the next line goes out.
 */
export class LineLog {
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
    return this.appendLines([line]);
  }

  /** Appends several lines with one write (each without its newline). */
  appendLines(lines: readonly string[]): Promise<void> {
    this.#queued++;
    const run = this.#tail.then(() => this.#write(lines)).finally(() => this.#queued--);
    this.#tail = run.catch(() => {});
    return run;
  }

  /**
   * The same, written at once with a synchronous call when nothing is queued before it and the end of the
   * file is known to be a line end (the folder sink's `syncWriteMaxBytes` path); otherwise like
   * appendLines(). Returns undefined when the lines are written.
   */
  appendLinesNow(lines: readonly string[]): Promise<void> | undefined {
    if (this.#queued > 0 || this.#checkTail || this.#sync) return this.appendLines(lines);
    const buf = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.#fh.fd, buf, off, buf.length - off, null);
    } catch (err) {
      // Part of the lines may be on disk; the next append must start on a fresh line.
      this.#checkTail = true;
      return Promise.reject(err);
    }
    return undefined;
  }

  async #write(lines: readonly string[]): Promise<void> {
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
    const buf = Buffer.from(`${prefix}${lines.join('\n')}\n`, 'utf8');
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await this.#fh.write(buf, off, buf.length - off, null);
        off += bytesWritten;
      }
      if (this.#sync) await this.#fh.datasync();
    } catch (err) {
      // Part of the lines may be on disk; the next append must start on a fresh line.
      this.#checkTail = true;
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.#tail;
    await this.#fh.close();
  }
}
