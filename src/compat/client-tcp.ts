// The legacy-tcp:// client: named frames to a seed-style TCP folder server (FORMAT|FOLDER, LENGTH|NAME,
// halves each answered by `ok`, continue/over), reconnecting within retryForMs.
import net from 'node:net';
import { FramewireError, toFramewireError } from '../errors.js';
import { checkFileName, checkStreamName } from '../names.js';
import { backoffMs, monoMs } from '../time.js';
import { describeSocketError } from '../transports/tcp.js';
import { newClientStats, type Resolved } from './client-common.js';
import {
  abortedError,
  type LegacyAddress,
  legacyAddress,
  numberParam,
  sleep,
  TCP_CONTINUE,
  TCP_OVER,
} from './common.js';

// ---- TCP folder protocol --------------------------------------------------------------------------------

export interface LegacyTcpClientOptions {
  /** The folder the server saves the frames in (its stream name). */
  folder: string;
  /** The data format of the session header; framewire servers take it as the stream kind. Default `visible`. */
  format?: string;
  /** How long to wait for each `ok` (ms, default 10000). URL: `?timeout=MS`. */
  replyTimeoutMs?: number;
  /** How long to wait for the connection (ms, default 10000). */
  connectTimeoutMs?: number;
  /** Keep trying to connect, and to reconnect after a lost connection, this long (ms, default 0: no). */
  retryForMs?: number;
  /**
   * After a frame's last `ok`, wait until the answers have been quiet this long before the next text (ms,
   * default 10): a seed server that read a piece in several reads sends more `ok`s than pieces, and its last
   * read must be done before `continue` arrives, or it reads `continue` into the file. URL: `?settle=MS`.
   */
  settleMs?: number;
  /**
   * Pause between `continue` and the next header (ms, default 10): the seed server reads `continue` with one
   * recv(1024) and the header with the next; both in one read leave it waiting forever. URL: `?gap=MS`.
   * Both can be 0 against a framewire server, which reads the protocol as a byte stream.
   */
  continueGapMs?: number;
  signal?: AbortSignal;
}

/** Counts the `ok` answers of a seed-protocol server. */
class OkCounter {
  count = 0;
  lastAt = 0;
  #carry = '';
  #failure: FramewireError | undefined;
  #wake: (() => void) | undefined;
  readonly #target: string;

  constructor(socket: net.Socket, target: string) {
    this.#target = target;
    socket.on('data', (chunk: Buffer) => {
      this.lastAt = monoMs();
      let text = this.#carry + chunk.toString('latin1');
      while (text.startsWith('ok')) {
        this.count++;
        text = text.slice(2);
      }
      this.#carry = '';
      if (text === 'o') this.#carry = text;
      else if (text !== '') {
        this.#failure ??= new FramewireError(
          'ERR_REMOTE',
          `${target} answered ${JSON.stringify(text.slice(0, 60))} where "ok" was expected`,
        );
      }
      this.#wake?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#failure ??= new FramewireError(
        'ERR_CLOSED',
        `connection to ${target} failed: ${err.code ?? err.message}`,
        { cause: err },
      );
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#failure ??= new FramewireError('ERR_CLOSED', `${target} closed the connection`);
      this.#wake?.();
    });
  }

  /** Resolves once `count >= n`; rejects on a timeout, a closed connection or a strange answer. */
  async atLeast(n: number, timeoutMs: number, what: string, signal?: AbortSignal): Promise<void> {
    const deadline = monoMs() + timeoutMs;
    while (this.count < n) {
      if (this.#failure) throw this.#failure;
      if (signal?.aborted) throw abortedError(this.#target);
      const left = deadline - monoMs();
      if (left <= 0) {
        throw new FramewireError(
          'ERR_REPLY_TIMEOUT',
          `${this.#target} sent no "ok" for ${what} within ${timeoutMs} ms`,
          {
            hint: 'a seed server that read "continue" and the next header at once waits forever: raise ?gap=MS; a slow one: raise ?timeout=MS',
          },
        );
      }
      await this.#sleep(left, signal);
    }
    if (this.#failure?.code === 'ERR_REMOTE') throw this.#failure;
  }

  /** Resolves once no answer has come for `quietMs` (at most `capMs` in all). */
  async quiet(quietMs: number, capMs: number, signal?: AbortSignal): Promise<void> {
    const cap = monoMs() + capMs;
    for (;;) {
      if (this.#failure) throw this.#failure;
      const wait = Math.min(this.lastAt + quietMs, cap) - monoMs();
      if (wait <= 0 || signal?.aborted) return;
      await sleep(wait, signal);
    }
  }

  #sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        self.#wake = undefined;
        resolve();
      }
      this.#wake = done;
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}

interface TcpLink {
  socket: net.Socket;
  oks: OkCounter;
  /** Frames sent on this connection ("continue" goes before each after the first). */
  frames: number;
}

/**
 * Sends named frames as the seed's TCP client does: `FORMAT|FOLDER`, then per frame `LENGTH|NAME`, the
 * payload in halves (`data[go:go+LENGTH//2]`), each followed by a wait for `ok`, then `continue` before the
 * next frame and `over` at the end. It connects at the first frame (a seed server fails on a session
 * without frames) and reconnects within `retryForMs` when the connection is lost, sending the unconfirmed
 * frame again (frames are named, so the server overwrites rather than duplicates).
 */
export class LegacyTcpClient {
  readonly target: string;
  readonly stats = newClientStats();
  readonly #a: LegacyAddress;
  readonly #o: Resolved<LegacyTcpClientOptions>;
  #link: TcpLink | undefined;
  #closed = false;

  private constructor(a: LegacyAddress, o: Resolved<LegacyTcpClientOptions>) {
    this.#a = a;
    this.target = a.text;
    this.#o = o;
  }

  /** Checks the options; connects with the first frame. */
  static async open(url: string | URL, options: LegacyTcpClientOptions): Promise<LegacyTcpClient> {
    const a = legacyAddress(url, ['legacy-tcp']);
    checkStreamName(options.folder);
    const format = options.format ?? 'visible';
    // The format travels in the session header: no "|", and no control characters (the server logs it).
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we refuse
    if (format.includes('|') || /[\u0000-\u001f]/.test(format)) {
      throw new FramewireError(
        'ERR_BAD_OPTION',
        `format ${JSON.stringify(format)} may not hold "|" or control characters`,
      );
    }
    const o = {
      folder: options.folder,
      format,
      replyTimeoutMs: options.replyTimeoutMs ?? numberParam(a, 'timeout', 10_000, { min: 1, max: 3_600_000 }),
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      retryForMs: options.retryForMs ?? 0,
      settleMs: options.settleMs ?? numberParam(a, 'settle', 10, { min: 0, max: 60_000 }),
      continueGapMs: options.continueGapMs ?? numberParam(a, 'gap', 10, { min: 0, max: 60_000 }),
      signal: options.signal,
    };
    return new LegacyTcpClient(a, o);
  }

  /**
   * Sends one frame and waits for its last `ok`. Throws ERR_UNSAFE_NAME for a name the server would
   * refuse, ERR_BAD_FRAME for a frame the seed protocol cannot carry, ERR_REPLY_TIMEOUT, ERR_CLOSED.
   */
  async send(frame: { data: Buffer; name?: string | undefined }): Promise<void> {
    if (this.#closed) throw new FramewireError('ERR_CLOSED', `${this.target}: the client is closed`);
    const name = frame.name;
    if (!name)
      throw new FramewireError('ERR_BAD_FRAME', 'the seed TCP protocol needs a file name for every frame');
    checkFileName(name, this.#o.folder);
    if (frame.data.length === 1) {
      throw new FramewireError('ERR_BAD_FRAME', `${name} is 1 byte long; the seed protocol cannot carry it`, {
        hint: 'the seed sends a file in pieces of LENGTH//2 bytes, which is 0 for 1 byte, and both seed programs then loop forever',
      });
    }
    let retryUntil: number | undefined;
    let first: FramewireError | undefined;
    let attempt = 0;
    for (;;) {
      const reconnecting = first !== undefined && this.#link === undefined;
      try {
        const link = this.#link ?? (await this.#connect());
        await this.#sendOn(link, name, frame.data);
        this.stats.sent++;
        this.stats.bytes += frame.data.length;
        return;
      } catch (err) {
        const e = toFramewireError(err, 'ERR_CLOSED', this.target);
        this.#drop();
        first ??= e;
        retryUntil ??= monoMs() + this.#o.retryForMs;
        // A lost connection, or a receiver not (yet, or again) listening, is worth trying again; a timeout
        // is not (a seed server that stopped answering is stuck, and a new connection would wait behind it).
        const retryable = e.code === 'ERR_CLOSED' || e.code === 'ERR_UNREACHABLE';
        if (!retryable || monoMs() >= retryUntil || this.#o.signal?.aborted) {
          if (!reconnecting || e === first || first.code === 'ERR_UNREACHABLE') throw e;
          throw new FramewireError(first.code, `${first.detail}; sending ${name} again failed: ${e.detail}`, {
            ...(first.hint ? { hint: first.hint } : {}),
            cause: e,
          });
        }
        await sleep(Math.min(backoffMs(++attempt, 1000), retryUntil - monoMs()), this.#o.signal);
        this.stats.reconnects++;
      }
    }
  }

  async #connect(): Promise<TcpLink> {
    const { host, port } = this.#a;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port });
      const t = setTimeout(() => {
        s.destroy();
        reject(
          new FramewireError(
            'ERR_UNREACHABLE',
            `no answer from ${this.target} within ${this.#o.connectTimeoutMs} ms`,
          ),
        );
      }, this.#o.connectTimeoutMs);
      s.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(t);
        reject(describeSocketError(err, this.target));
      });
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(s);
      });
    });
    // Our texts go out when written; the pauses the seed server needs are explicit (settle, gap).
    socket.setNoDelay(true);
    const link: TcpLink = { socket, oks: new OkCounter(socket, this.target), frames: 0 };
    this.#link = link;
    socket.write(`${this.#o.format}|${this.#o.folder}`);
    try {
      await link.oks.atLeast(1, this.#o.replyTimeoutMs, 'the session header', this.#o.signal);
    } catch (err) {
      const e = err as FramewireError;
      if (e.code === 'ERR_CLOSED') {
        throw new FramewireError(
          'ERR_LEGACY_HEADER',
          `${this.target} closed the connection after the session header "${this.#o.format}|${this.#o.folder}"`,
          {
            hint: 'the seed server does this when the header is not FORMAT|FOLDER; a framewire server logs why',
          },
        );
      }
      throw e;
    }
    return link;
  }

  async #sendOn(link: TcpLink, name: string, data: Buffer): Promise<void> {
    const o = this.#o;
    const { socket, oks } = link;
    if (link.frames > 0) {
      socket.write(TCP_CONTINUE);
      await sleep(o.continueGapMs, o.signal);
    }
    // Answers that came before this header are stale; count from here.
    const base = oks.count;
    socket.write(`${data.length}|${name}`);
    await oks.atLeast(base + 1, o.replyTimeoutMs, `the header of ${name}`, o.signal);
    const h = Math.floor(data.length / 2);
    let pieces = 0;
    for (let go = 0; go < data.length; ) {
      const piece = data.subarray(go, go + h);
      socket.write(piece);
      go += piece.length;
      pieces++;
      await oks.atLeast(base + 1 + pieces, o.replyTimeoutMs, `piece ${pieces} of ${name}`, o.signal);
    }
    if (pieces > 0 && o.settleMs > 0) await oks.quiet(o.settleMs, o.replyTimeoutMs, o.signal);
    link.frames++;
  }

  /** Ends the session with `over` (when a frame was sent) and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const link = this.#link;
    if (!link) return;
    this.#link = undefined;
    const { socket } = link;
    // A framewire server closes its side after "over"; the seed server leaves it open, so ours is closed
    // after a grace period (long enough for "over" to be read: closing earlier could reset the connection).
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        socket.destroy();
        resolve();
      }, 500);
      socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      socket.end(TCP_OVER);
    });
  }

  /** Closes at once, without `over`. */
  destroy(): void {
    this.#closed = true;
    this.#drop();
  }

  #drop(): void {
    this.#link?.socket.destroy();
    this.#link = undefined;
  }
}
