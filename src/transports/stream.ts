/**
 * A Connection over any byte stream socket (TCP, TLS): a Decoder on the read side, corked
 * `[header, payload]` writes on the write side.
 */
import { EventEmitter } from 'node:events';
import { Socket } from 'node:net';
import { FramewireError, toFramewireError } from '../errors.js';
import type { Limits } from '../protocol/constants.js';
import { MessageType } from '../protocol/constants.js';
import { Decoder, type DecoderIntake, type DecoderOptions } from '../protocol/decoder.js';
import { type Encoded, encodeControl, type Message } from '../protocol/messages.js';
import type { Connection } from './types.js';

/** Bytes read and dropped after a failure before reading stops (see failWith). */
const MAX_DISCARD = 256 * 1024;

/** Size of the read buffer that all accepted TCP connections share (takeOverWithSharedReads). */
const SHARED_READ_BYTES = 256 * 1024;
let sharedReadBuffer: Buffer | undefined;

/**
 * Makes a socket a server accepted read into one buffer, the same for every read of every such connection
 * (net's `onread` option), and returns the socket to use instead of `accepted`; undefined where that cannot
 * be done (`accepted` is then to be used as it is).
 *
 * Why: Node's own reads take a new buffer of 64 KB for every read and copy what was read into another one
 * of the exact size. That is two allocations and a copy per read, each on fresh memory that the kernel
 * faults in page by page; on the 2-core test machine it was most of a receiver's CPU (a plain receiver of
 * 123 KB files: 370-430 µs of CPU a file with 'data' events, 130-140 with one read buffer; docs/benchmarks.md,
 * "One read buffer"). Reading into one buffer is safe because each read is handed on (the decoder copies
 * what it keeps, Decoder.writeLent) before the next read is made.
 *
 * Node takes `onread` only for a socket it creates, not for one a server accepts: the accepted socket's
 * handle (the server is created with `pauseOnConnect`, so nothing was read from it yet) goes to a new Socket
 * made with `onread`. The accepted Socket keeps its place in the server's count of connections (what
 * `server.close()` waits for) until the new one closes; closing either closes both.
 */
export function takeOverWithSharedReads(
  accepted: Socket,
  onChunk: (chunk: Buffer) => void,
): Socket | undefined {
  if (process.env.FRAMEWIRE_SHARED_READS === '0') return undefined;
  const a = accepted as unknown as { _handle?: { readStart?: unknown; useUserBuffer?: unknown } | null };
  const handle = a._handle;
  if (
    !handle ||
    typeof handle.readStart !== 'function' ||
    typeof handle.useUserBuffer !== 'function' ||
    accepted.readableFlowing === true
  ) {
    return undefined;
  }
  sharedReadBuffer ??= Buffer.allocUnsafe(SHARED_READ_BYTES);
  const socket = new Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: sharedReadBuffer,
      callback: (n: number, buf: Uint8Array) => {
        onChunk((buf as Buffer).subarray(0, n));
      },
    },
  } as ConstructorParameters<typeof Socket>[0]);
  // The accepted Socket lets go of the handle: destroying it now closes nothing but itself.
  a._handle = null;
  socket.once('close', () => accepted.destroy());
  accepted.once('close', () => socket.destroy());
  return socket;
}

export class StreamConnection extends EventEmitter implements Connection {
  readonly remote: string;
  private readonly socket: Socket;
  private readonly decoder: Decoder;
  private closeError: FramewireError | undefined;
  private done = false;
  private discarded = 0;

  /**
   * `socketError` names a socket error more precisely than ERR_CLOSED (tls.ts: a TLS alert is ERR_TLS).
   * `lentReads`: the socket was made with `onread` feeding {@link take} (see {@link accept}).
   */
  constructor(
    socket: Socket,
    limits: Limits,
    decoding: DecoderOptions = {},
    socketError?: (err: NodeJS.ErrnoException) => FramewireError | undefined,
    lentReads = false,
  ) {
    super();
    this.socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.decoder = new Decoder((msg: Message) => this.emit('message', msg), limits, decoding);
    if (!lentReads) socket.on('data', (chunk: Buffer) => this.take(chunk, false));
    socket.on('end', () => {
      try {
        this.decoder.end();
      } catch (err) {
        this.closeError ??= toFramewireError(err, 'ERR_TRUNCATED', 'connection');
      }
      socket.end();
    });
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.closeError ??=
        socketError?.(err) ??
        new FramewireError('ERR_CLOSED', `connection to ${this.remote}: ${err.message}`, {
          cause: err,
        });
    });
    socket.on('close', () => {
      this.done = true;
      this.decoder.dispose();
      this.emit('close', this.closeError);
    });
  }

  /**
   * A connection over a socket that a server created with `pauseOnConnect` accepted: its reads go into one
   * buffer shared by all such connections (see {@link takeOverWithSharedReads}), or, where that cannot be
   * done, are read as usual.
   */
  static accept(
    accepted: Socket,
    limits: Limits,
    decoding: DecoderOptions = {},
    socketError?: (err: NodeJS.ErrnoException) => FramewireError | undefined,
  ): StreamConnection {
    let conn: StreamConnection | undefined;
    const socket = takeOverWithSharedReads(accepted, (chunk) => conn?.take(chunk, true));
    conn = new StreamConnection(socket ?? accepted, limits, decoding, socketError, socket !== undefined);
    if (socket === undefined) accepted.resume();
    return conn;
  }

  /** Bytes read; `lent`: only for this call (the shared read buffer). */
  private take(chunk: Buffer, lent: boolean): void {
    if (this.done) {
      // After a failure: read on to see the peer go, but a peer that keeps streaming is paused (the
      // kernel's buffers fill, not ours) until the grace period ends it.
      this.discarded += chunk.length;
      if (this.discarded > MAX_DISCARD) this.socket.pause();
      return;
    }
    try {
      if (lent) this.decoder.writeLent(chunk);
      else this.decoder.write(chunk);
    } catch (err) {
      this.failWith(toFramewireError(err, 'ERR_PROTOCOL', 'decoder'));
    }
  }

  get intake(): DecoderIntake {
    return this.decoder;
  }

  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  get closed(): boolean {
    return this.done || this.socket.destroyed;
  }

  send(parts: Encoded): boolean {
    if (this.closed || !this.socket.writable) return false;
    const s = this.socket;
    if (parts.length === 1) return s.write(parts[0]!);
    s.cork();
    let ok = true;
    for (const p of parts) ok = s.write(p);
    s.uncork();
    return ok;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): void {
    if (!this.closed) this.socket.end();
  }

  destroy(err?: FramewireError): void {
    if (err) this.closeError ??= err;
    this.socket.destroy();
  }

  /** Tells the peer why, then closes: used for malformed input, which must not crash anything. */
  private failWith(err: FramewireError): void {
    this.closeError ??= err;
    this.done = true;
    // Keep reading (the data handler drops everything now): a paused socket never sees the peer's FIN or
    // RST behind unread bytes, and would hold the connection, and its slot under maxConnectionsPerAddress,
    // for the whole grace period after the peer went.
    this.socket.resume();
    try {
      this.socket.end(
        Buffer.concat(
          encodeControl(MessageType.ERROR, { code: err.code, message: err.message, fatal: true }),
        ),
      );
    } catch {
      this.socket.destroy();
    }
    // A peer that never reads must not keep the socket: destroy after a short grace period.
    setTimeout(() => this.socket.destroy(), 2000).unref();
  }
}
