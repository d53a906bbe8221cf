/**
 * The one Transport interface. A transport turns a URL into connections that carry whole protocol
 * messages; sessions know nothing else about the network.
 */
import type { EventEmitter } from 'node:events';
import type { FramewireError } from '../errors.js';
import type { Limits } from '../protocol/constants.js';
import type { Encoded, Message } from '../protocol/messages.js';

/** A connected peer that carries whole messages. Events: 'message', 'drain', 'close'. */
export interface Connection extends EventEmitter {
  /** "host:port" of the peer, for logs and the messages file. */
  readonly remote: string;
  /** Writes one message; returns false when the caller should wait for 'drain' before writing more. */
  send(parts: Encoded): boolean;
  /** True while writes are being buffered beyond the high-water mark. */
  readonly congested: boolean;
  /** Stops delivering messages (and reading from the network) until resume(). */
  pause(): void;
  resume(): void;
  /** Ends the connection after what was sent is flushed. */
  close(): void;
  /** Ends the connection at once. */
  destroy(err?: FramewireError): void;
  readonly closed: boolean;
  on(event: 'message', listener: (msg: Message) => void): this;
  on(event: 'drain', listener: () => void): this;
  /** `err` is set when the connection ended because of an error (decoder, socket). */
  on(event: 'close', listener: (err: FramewireError | undefined) => void): this;
}

export interface Listener {
  /** The URL the listener is bound to, with the real port when port 0 was asked for. */
  readonly url: string;
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

export interface TransportOptions {
  limits: Limits;
  /** Milliseconds to wait for the connection to open. */
  connectTimeoutMs: number;
}

export interface Transport {
  readonly schemes: readonly string[];
  connect(url: URL, options: TransportOptions): Promise<Connection>;
  listen(url: URL, options: TransportOptions, onConnection: (conn: Connection) => void): Promise<Listener>;
}
