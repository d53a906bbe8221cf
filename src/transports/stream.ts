/**
 * A Connection over any byte stream socket (TCP, TLS): a Decoder on the read side, corked
 * `[header, payload]` writes on the write side.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { FramewireError, toFramewireError } from '../errors.js';
import type { Limits } from '../protocol/constants.js';
import { MessageType } from '../protocol/constants.js';
import { Decoder, type DecoderIntake } from '../protocol/decoder.js';
import { type Encoded, encodeControl, type Message } from '../protocol/messages.js';
import type { Connection } from './types.js';

/** Bytes read and dropped after a failure before reading stops (see failWith). */
const MAX_DISCARD = 256 * 1024;

export class StreamConnection extends EventEmitter implements Connection {
  readonly remote: string;
  private readonly socket: Socket;
  private readonly decoder: Decoder;
  private closeError: FramewireError | undefined;
  private done = false;
  private discarded = 0;

  /** `socketError` names a socket error more precisely than ERR_CLOSED (tls.ts: a TLS alert is ERR_TLS). */
  constructor(
    socket: Socket,
    limits: Limits,
    verifyCrc = true,
    socketError?: (err: NodeJS.ErrnoException) => FramewireError | undefined,
  ) {
    super();
    this.socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    this.decoder = new Decoder((msg: Message) => this.emit('message', msg), limits, { verifyCrc });
    socket.on('data', (chunk: Buffer) => {
      if (this.done) {
        // After a failure: read on to see the peer go, but a peer that keeps streaming is paused (the
        // kernel's buffers fill, not ours) until the grace period ends it.
        this.discarded += chunk.length;
        if (this.discarded > MAX_DISCARD) socket.pause();
        return;
      }
      try {
        this.decoder.write(chunk);
      } catch (err) {
        this.failWith(toFramewireError(err, 'ERR_PROTOCOL', 'decoder'));
      }
    });
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
