/**
 * framewire as a client of servers written like the seed programs: pictures to a UDP picture server
 * (`legacy-udp://`), frames of a folder to a TCP folder server (`legacy-tcp://`), JSON messages to a UDP
 * message port (`legacy-json://`). Each waits for the server's answer as the seed clients do, but with a
 * deadline, and (where the format allows it) sends again instead of hanging. See docs/compat.md.
 */
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { FramewireError, toFramewireError } from '../errors.js';
import { checkFileName, checkStreamName } from '../names.js';
import { backoffMs, monoMs } from '../time.js';
import { describeSocketError } from '../transports/tcp.js';
import {
  abortedError,
  flagParam,
  type LegacyAddress,
  legacyAddress,
  MAX_DATAGRAM,
  MESSAGE_BAD,
  MESSAGE_LOST,
  numberParam,
  PICTURE_NAK,
  SEED_JSON_MAX,
  sleep,
  TCP_CONTINUE,
  TCP_OVER,
  UDP_CHUNK,
} from './common.js';

// ---- datagrams ------------------------------------------------------------------------------------------

/** A UDP socket connected to one server: sends datagrams, queues the server's answers. */
class DatagramPeer {
  readonly #socket: dgram.Socket;
  readonly #target: string;
  readonly #replies: Buffer[] = [];
  #wake: (() => void) | undefined;
  /** The last socket error (ECONNREFUSED: nothing listens at the port). */
  lastError: NodeJS.ErrnoException | undefined;

  private constructor(socket: dgram.Socket, target: string) {
    this.#socket = socket;
    this.#target = target;
    socket.on('message', (m) => {
      // Bounded: a server that floods answers cannot grow the queue.
      if (this.#replies.length < 64) this.#replies.push(m);
      this.#wake?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err;
      this.#wake?.();
    });
  }

  static async open(a: LegacyAddress): Promise<DatagramPeer> {
    let address: string;
    let family: number;
    try {
      ({ address, family } = await lookup(a.host));
    } catch (err) {
      throw describeSocketError(err as NodeJS.ErrnoException, a.text);
    }
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => reject(describeSocketError(err, a.text)));
      // Connected: only the server's datagrams arrive, and the OS reports an unreachable port.
      socket.connect(a.port, address, () => {
        socket.removeAllListeners('error');
        resolve();
      });
    });
    return new DatagramPeer(socket, a.text);
  }

  /** Forgets answers that arrived late for an earlier send. */
  flush(): void {
    this.#replies.length = 0;
    this.lastError = undefined;
  }

  send(buf: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(buf, (err) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ECONNREFUSED') {
          // An earlier datagram met a closed port; this one may well arrive (the server may be back).
          this.lastError = e;
          return resolve();
        }
        if (e.code === 'EMSGSIZE') {
          return reject(
            new FramewireError(
              'ERR_PICTURE_TOO_LARGE',
              `${this.#target}: the OS refuses a datagram of ${buf.length} bytes (EMSGSIZE)`,
              {
                hint: 'macOS sends at most 9216 bytes per datagram by default: sysctl -w net.inet.udp.maxdgram=65535, or use the chunked form',
                cause: e,
              },
            ),
          );
        }
        reject(toFramewireError(e, 'ERR_UNREACHABLE', `${this.#target}: cannot send`));
      });
    });
  }

  /** The next answer, or undefined after `timeoutMs` (or when `signal` aborts). */
  async nextReply(timeoutMs: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const deadline = monoMs() + timeoutMs;
    for (;;) {
      const r = this.#replies.shift();
      if (r) return r;
      const left = deadline - monoMs();
      if (left <= 0 || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        this.#wake = done;
        signal?.addEventListener('abort', done, { once: true });
      });
      this.#wake = undefined;
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

function noAnswer(
  peer: DatagramPeer,
  target: string,
  attempts: number,
  timeoutMs: number,
  what: string,
): FramewireError {
  if (peer.lastError?.code === 'ECONNREFUSED') {
    return new FramewireError(
      'ERR_UNREACHABLE',
      `nothing is listening at ${target} (port unreachable) after ${attempts} attempts`,
      {
        hint: 'start the receiver first, or check the host and port',
      },
    );
  }
  return new FramewireError(
    'ERR_REPLY_TIMEOUT',
    `${target} did not answer ${what} (${attempts} attempts, ${timeoutMs} ms each)`,
    {
      hint: 'check that the receiver runs and that the port is the picture (or message) port; raise ?timeout=MS for a slow receiver',
    },
  );
}

// ---- UDP pictures ---------------------------------------------------------------------------------------

export interface LegacyUdpClientOptions {
  /** One datagram per picture (the seed's first form; at most 65,507 bytes) instead of header + chunks. URL: `?single`. */
  single?: boolean;
  /** Header of the chunked form: 8 bytes (64-bit Linux and macOS senders, default) or 4 (Windows, 32-bit). URL: `?header=4`. */
  headerBytes?: 4 | 8;
  /** How long to wait for the answer before sending the picture again (ms, default 3000). URL: `?timeout=MS`. */
  replyTimeoutMs?: number;
  /** Times a picture is sent again, after a timeout or a `lost message!!!` answer (default 3). URL: `?retries=N`. */
  retries?: number;
  /**
   * Pacing of the chunks, so that a receiver with a default socket buffer (about 90 datagrams on Linux,
   * fewer elsewhere) is not overrun. The seed server appends every chunk to what it holds (`data_total +=
   * data`), so reading chunk i costs it about `readUs + i·copyUs` microseconds; chunks are sent on that
   * schedule, at most `ahead` chunks in front of such a reader. Defaults: ahead 16, readUs 50, copyUs 1,
   * measured against the seed server (Python 3.11) on a loaded 2-core machine: a 123 KB picture takes about
   * 11 ms, a 1 MB one 0.5 s. `false` sends every chunk at once (a framewire receiver, with its 8 MiB socket
   * buffer and linear reassembly, keeps up with that). URL: `?ahead=N`, `?readus=US`, `?copyus=US`, `?pace=0`.
   */
  pacing?: { ahead: number; readUs: number; copyUs: number } | false;
  /** Stops waiting and sending. */
  signal?: AbortSignal;
}

export interface LegacyClientStats {
  /** Pictures, frames or messages the server confirmed. */
  sent: number;
  bytes: number;
  /** Sends repeated after a timeout or a negative answer. */
  resends: number;
  /** Reconnections (TCP). */
  reconnects: number;
}

/** Options with every default filled in. */
type Resolved<T extends { signal?: AbortSignal }> = Required<Omit<T, 'signal'>> & {
  signal: AbortSignal | undefined;
};

function newClientStats(): LegacyClientStats {
  return { sent: 0, bytes: 0, resends: 0, reconnects: 0 };
}

/**
 * Sends pictures as the seed's UDP clients do: `struct.pack('l', n)` then 1024-byte chunks (or one datagram
 * with `single`), then waits for `get message!!!`; sends again after a timeout or `lost message!!!`.
 */
export class LegacyUdpClient {
  readonly target: string;
  readonly stats = newClientStats();
  readonly #peer: DatagramPeer;
  readonly #o: Resolved<LegacyUdpClientOptions>;

  private constructor(peer: DatagramPeer, target: string, o: Resolved<LegacyUdpClientOptions>) {
    this.#peer = peer;
    this.target = target;
    this.#o = o;
  }

  static async open(url: string | URL, options: LegacyUdpClientOptions = {}): Promise<LegacyUdpClient> {
    const a = legacyAddress(url, ['legacy-udp']);
    const headerBytes = options.headerBytes ?? numberParam(a, 'header', 8, { min: 4, max: 8, integer: true });
    if (headerBytes !== 4 && headerBytes !== 8) {
      throw new FramewireError('ERR_BAD_OPTION', `${a.text}: the header is 4 or 8 bytes, not ${headerBytes}`);
    }
    const o = {
      single: options.single ?? flagParam(a, 'single', false),
      headerBytes: headerBytes as 4 | 8,
      replyTimeoutMs: options.replyTimeoutMs ?? numberParam(a, 'timeout', 3000, { min: 1, max: 3_600_000 }),
      retries: options.retries ?? numberParam(a, 'retries', 3, { min: 0, max: 1000, integer: true }),
      pacing:
        options.pacing ??
        (flagParam(a, 'pace', true)
          ? {
              ahead: numberParam(a, 'ahead', 16, { min: 1, max: 1_000_000, integer: true }),
              readUs: numberParam(a, 'readus', 50, { min: 0, max: 1_000_000 }),
              copyUs: numberParam(a, 'copyus', 1, { min: 0, max: 1_000_000 }),
            }
          : false),
      signal: options.signal,
    };
    return new LegacyUdpClient(await DatagramPeer.open(a), a.text, o);
  }

  /** Sends one picture and waits for the server's answer; rejects with ERR_REPLY_TIMEOUT after the retries. */
  async send(picture: Buffer, label = 'a picture'): Promise<void> {
    const o = this.#o;
    if (picture.length === 0)
      throw new FramewireError(
        'ERR_BAD_FRAME',
        `${label} is empty; the seed server cannot take an empty picture`,
      );
    if (o.single && picture.length > MAX_DATAGRAM) {
      throw new FramewireError(
        'ERR_PICTURE_TOO_LARGE',
        `${label} is ${picture.length} bytes; one UDP datagram carries at most ${MAX_DATAGRAM}`,
        { hint: 'send it in chunks: drop ?single from the URL' },
      );
    }
    if (o.headerBytes === 4 && picture.length > 0x7fffffff) {
      throw new FramewireError('ERR_PICTURE_TOO_LARGE', `${label} is too large for a 4-byte header`);
    }
    for (let attempt = 0; attempt <= o.retries; attempt++) {
      if (o.signal?.aborted) throw abortedError(this.target);
      if (attempt > 0) this.stats.resends++;
      this.#peer.flush();
      await this.#transmit(picture);
      const answer = await this.#peer.nextReply(o.replyTimeoutMs, o.signal);
      if (answer === undefined) continue;
      if (answer.toString('latin1') === PICTURE_NAK) continue;
      this.stats.sent++;
      this.stats.bytes += picture.length;
      return;
    }
    if (o.signal?.aborted) throw abortedError(this.target);
    throw noAnswer(this.#peer, this.target, o.retries + 1, o.replyTimeoutMs, label);
  }

  async #transmit(picture: Buffer): Promise<void> {
    const o = this.#o;
    if (o.single) return this.#peer.send(picture);
    const header = Buffer.alloc(o.headerBytes);
    if (o.headerBytes === 8) header.writeBigInt64LE(BigInt(picture.length));
    else header.writeInt32LE(picture.length);
    await this.#peer.send(header);
    // As the seed: chunks of 1024 bytes, the last one shorter. (The seed also sends an empty datagram when
    // the length is a multiple of 1024; servers ignore it, so it is left out.)
    const pace = o.pacing;
    const start = performance.now();
    const sends: Promise<void>[] = [];
    for (let off = 0, i = 0; off < picture.length; off += UDP_CHUNK, i++) {
      // Chunk i may go when the modelled reader is done with chunk i - ahead.
      const j = pace ? i - pace.ahead : 0;
      if (pace && j > 0) {
        const wait = start + (j * pace.readUs + ((j * (j - 1)) / 2) * pace.copyUs) / 1000 - performance.now();
        if (wait >= 1) {
          await Promise.all(sends.splice(0));
          if (o.signal?.aborted) return;
          await sleep(wait);
        }
      }
      sends.push(this.#peer.send(picture.subarray(off, off + UDP_CHUNK)));
    }
    await Promise.all(sends);
  }

  close(): Promise<void> {
    return this.#peer.close();
  }
}

// ---- JSON messages --------------------------------------------------------------------------------------

export interface LegacyJsonClientOptions {
  /** How long to wait for `get the msg` before sending again (ms, default 3000). URL: `?timeout=MS`. */
  replyTimeoutMs?: number;
  /** Times a message is sent again (default 3). URL: `?retries=N`. */
  retries?: number;
  /**
   * Largest message sent (default 1024: the seed server reads 1024 bytes per datagram and would get a cut,
   * unreadable message). A framewire legacy-json server takes up to 65,507. URL: `?max=BYTES`.
   */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** Sends JSON messages as the seed's message client does, one datagram each, and waits for `get the msg`. */
export class LegacyJsonClient {
  readonly target: string;
  readonly stats = newClientStats();
  readonly #peer: DatagramPeer;
  readonly #o: Resolved<LegacyJsonClientOptions>;

  private constructor(peer: DatagramPeer, target: string, o: Resolved<LegacyJsonClientOptions>) {
    this.#peer = peer;
    this.target = target;
    this.#o = o;
  }

  static async open(url: string | URL, options: LegacyJsonClientOptions = {}): Promise<LegacyJsonClient> {
    const a = legacyAddress(url, ['legacy-json']);
    const o = {
      replyTimeoutMs: options.replyTimeoutMs ?? numberParam(a, 'timeout', 3000, { min: 1, max: 3_600_000 }),
      retries: options.retries ?? numberParam(a, 'retries', 3, { min: 0, max: 1000, integer: true }),
      maxBytes:
        options.maxBytes ??
        numberParam(a, 'max', SEED_JSON_MAX, { min: 1, max: MAX_DATAGRAM, integer: true }),
      signal: options.signal,
    };
    return new LegacyJsonClient(await DatagramPeer.open(a), a.text, o);
  }

  /**
   * Sends one message: a value (serialised with JSON.stringify) or, with `raw`, JSON text sent as it is
   * (checked first). Rejects with ERR_BAD_JSON, ERR_MESSAGE_TOO_LARGE or ERR_REPLY_TIMEOUT.
   */
  async send(message: unknown, options: { raw?: boolean } = {}): Promise<void> {
    let text: string;
    if (options.raw) {
      if (typeof message !== 'string')
        throw new FramewireError('ERR_BAD_JSON', 'a raw message must be a string of JSON');
      try {
        JSON.parse(message);
      } catch (err) {
        throw new FramewireError('ERR_BAD_JSON', `the message is not valid JSON: ${(err as Error).message}`);
      }
      text = message;
    } else {
      const s = JSON.stringify(message);
      if (s === undefined) throw new FramewireError('ERR_BAD_JSON', 'the message has no JSON form');
      text = s;
    }
    const buf = Buffer.from(text, 'utf8');
    const o = this.#o;
    if (buf.length > o.maxBytes) {
      throw new FramewireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message of ${buf.length} bytes exceeds ${o.maxBytes} for ${this.target}`,
        {
          hint:
            o.maxBytes === SEED_JSON_MAX
              ? 'the seed server reads 1024 bytes per datagram; a framewire legacy-json server takes more: add ?max=65507 to the URL'
              : 'send a smaller message',
        },
      );
    }
    for (let attempt = 0; attempt <= o.retries; attempt++) {
      if (o.signal?.aborted) throw abortedError(this.target);
      if (attempt > 0) this.stats.resends++;
      this.#peer.flush();
      await this.#peer.send(buf);
      const answer = await this.#peer.nextReply(o.replyTimeoutMs, o.signal);
      if (answer === undefined) continue;
      const a = answer.toString('utf8');
      if (a === MESSAGE_LOST) continue;
      if (a === MESSAGE_BAD)
        throw new FramewireError(
          'ERR_BAD_JSON',
          `${this.target} answered "${MESSAGE_BAD}": it could not read the message`,
        );
      this.stats.sent++;
      this.stats.bytes += buf.length;
      return;
    }
    if (o.signal?.aborted) throw abortedError(this.target);
    throw noAnswer(this.#peer, this.target, o.retries + 1, o.replyTimeoutMs, 'the message');
  }

  close(): Promise<void> {
    return this.#peer.close();
  }
}

/** Sends one JSON message to a `legacy-json://` server and waits for its answer. */
export async function sendLegacyJson(
  url: string | URL,
  message: unknown,
  options: LegacyJsonClientOptions & { raw?: boolean } = {},
): Promise<void> {
  const c = await LegacyJsonClient.open(url, options);
  try {
    await c.send(message, { raw: options.raw ?? false });
  } finally {
    await c.close();
  }
}

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
