/**
 * The one Transport interface. A transport turns a URL into connections that carry whole protocol
 * messages; sessions know nothing else about the network.
 */
import type { EventEmitter } from 'node:events';
import type { FramewireError } from '../errors.js';
import type { Limits } from '../protocol/constants.js';
import type { DecoderIntake } from '../protocol/decoder.js';
import type { FrameBufferPool } from '../protocol/frame-buffers.js';
import type { Encoded, Message } from '../protocol/messages.js';

/**
 * Delivery class of one message. Default: reliable (exactly once, in order with the other reliable
 * messages). Live: delivered whole by its deadline or not at all, never holding back a newer message.
 */
export interface SendOptions {
  live?: boolean;
  /** Latency budget of a live message (ms). */
  deadlineMs?: number;
  /** Called once if the transport gives a live message up (too late, or dropped by the receiver). */
  onDrop?: () => void;
}

/** A connected peer that carries whole messages. Events: 'message', 'drain', 'close'. */
export interface Connection extends EventEmitter {
  /** "host:port" of the peer, for logs and the messages file. */
  readonly remote: string;
  /**
   * Writes one message; returns false when the caller should wait for 'drain' before writing more.
   * `opts` gives the message's delivery class; transports over a byte stream (TCP, TLS) ignore it.
   */
  send(parts: Encoded, opts?: SendOptions): boolean;
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
  /**
   * The decoder's intake, on transports that decode a byte stream (tcp, tls, ws): a receiver session
   * restricts it to control messages until its handshake is done, and shares the server's budget for
   * partly received messages with it.
   */
  readonly intake?: DecoderIntake;
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

/** TLS material for a receiver's tls:// endpoints (PEM text or Buffers). */
export interface TlsServerOptions {
  cert: string | Buffer;
  key: string | Buffer;
  /** Trusted CAs for client certificates; with `requestCert`, senders must present one signed by them. */
  ca?: string | Buffer;
  requestCert?: boolean;
}

/** TLS options of a sender for tls:// URLs. The receiver's certificate is always verified. */
export interface TlsClientOptions {
  /** CA certificate(s) to trust besides the system's (e.g. the receiver's self-signed certificate). */
  ca?: string | Buffer;
  /** Client certificate and key, when the receiver asks for one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name to verify the certificate against, when it differs from the URL's host. */
  servername?: string;
}

export interface TransportOptions {
  limits: Limits;
  /** Milliseconds to wait for the connection to open. */
  connectTimeoutMs: number;
  tlsServer?: TlsServerOptions | undefined;
  /** Receivers: check frame CRCs in the decoder (default true). */
  verifyCrc?: boolean | undefined;
  /** Receivers: where the decoders take the buffers of large messages (the server's, used again). */
  frameBuffers?: FrameBufferPool | undefined;
  tlsClient?: TlsClientOptions | undefined;
  /**
   * The shared token of the session (both sides). udp:// seals every datagram with keys derived from it and
   * refuses a peer without it; tcp:// and tls:// ignore it (the session's challenge-response authenticates,
   * TLS encrypts).
   */
  token?: string | undefined;
}

export interface Transport {
  readonly schemes: readonly string[];
  connect(url: URL, options: TransportOptions): Promise<Connection>;
  listen(url: URL, options: TransportOptions, onConnection: (conn: Connection) => void): Promise<Listener>;
}
