/**
 * The client's vocabulary: its options, events and statistics, and the settings resolved and checked from
 * the options when a client is made.
 */
import { randomBytes } from 'node:crypto';
import { FramewireError } from '../errors.js';
import { DEFAULT_LIMITS, type Limits, type StreamKind, type StreamMode } from '../protocol/constants.js';
import { knownSchemes, parseEndpoint, transportFor } from '../transports/index.js';
import type { TlsClientOptions } from '../transports/types.js';
import { VERSION } from '../version.js';
import { checkToken } from './auth.js';

export interface ConnectOptions {
  /** Unacknowledged frames in flight, all streams together (default 128). */
  windowFrames?: number;
  /** Unacknowledged payload bytes in flight, all streams together (default 32 MiB). */
  windowBytes?: number;
  /** Unacknowledged JSON messages (default 1024). */
  windowMessages?: number;
  /** How long to keep trying to connect or reconnect before giving up with ERR_UNREACHABLE (ms, default 30000). */
  retryForMs?: number;
  /** Time for one connection attempt (ms, default 5000). */
  connectTimeoutMs?: number;
  /** Time for the receiver to answer HELLO (ms, default 10000). */
  handshakeTimeoutMs?: number;
  /** Interval of keepalive pings (ms, default 5000). */
  keepaliveMs?: number;
  /** A receiver silent for this long is taken as dead and the client reconnects (ms, default 20000). */
  peerTimeoutMs?: number;
  /** Largest backoff between reconnect attempts (ms, default 5000). */
  maxBackoffMs?: number;
  /** Decoder limits for what the receiver sends. */
  limits?: Partial<Limits>;
  /** Identifies this run of the sender; a receiver keeps resume points per (stream, epoch). Default: random. */
  epoch?: string;
  /** Free text naming the client software, shown in the receiver's logs. */
  clientName?: string;
  /** Aborting it stops connecting or reconnecting at once and closes the client (ERR_CLOSED). */
  signal?: AbortSignal;
  /**
   * Latency budget of live frames (ms, default 120, or the URL's `latency` parameter): over udp:// a live
   * frame that cannot be delivered whole within it is dropped and counted. Stream transports ignore it.
   */
  latencyMs?: number;
  /**
   * Shared secret with the receiver. The client proves it knows it and checks that the receiver does too
   * (challenge-response; the token never crosses the wire). A receiver without a token is refused.
   */
  token?: string;
  /** TLS options for tls:// URLs (trusted CA, client certificate). */
  tls?: TlsClientOptions;
}

export interface StreamOptions {
  kind?: StreamKind;
  mode?: StreamMode;
}

export interface AckEvent {
  stream: string;
  /** Highest sequence number now acknowledged. */
  seq: number;
  /** Frames and payload bytes newly acknowledged. */
  frames: number;
  bytes: number;
}

export interface ClientStats {
  framesSent: number;
  framesAcked: number;
  bytesAcked: number;
  framesRefused: number;
  framesDropped: number;
  retransmits: number;
  messagesAcked: number;
  reconnects: number;
  /** Latest PING round-trip time in ms, or undefined before the first PONG. */
  rttMs: number | undefined;
  /**
   * This sender's clock minus the receiver's, ms, from the clock exchange (docs/sync.md), and its error
   * bound; undefined before the first exchange or with a receiver that does not speak it.
   */
  clockOffsetMs: number | undefined;
  clockErrorMs: number | undefined;
  /** Time from writing a frame to its acknowledgement, over the last 10,000 frames (ms). */
  ackLatencyMs: { p50: number; p99: number; max: number; samples: number };
}

export interface ClientEvents {
  /** The handshake completed (first time or after a reconnect). */
  connected: [{ url: string; session: string; reconnect: boolean }];
  /** The connection was lost; the client is reconnecting. */
  disconnected: [FramewireError | undefined];
  reconnecting: [{ attempt: number; delayMs: number; error: FramewireError }];
  ack: [AckEvent];
  /** The receiver refused one frame (e.g. unsafe file name). The frame will not be sent again. */
  'frame-error': [FramewireError];
  /** The receiver refused a whole stream (unsafe stream name, stream busy, too many streams). */
  'stream-error': [FramewireError];
  /** A live frame was dropped at the sender: a newer one replaced it, or the transport gave it up as too late. */
  drop: [{ stream: string; seq: number }];
  /** The client gave up (receiver unreachable past retryForMs, or a fatal protocol error). */
  error: [FramewireError];
}

/** The options with their defaults filled in. */
export type ClientSettings = Required<
  Omit<ConnectOptions, 'limits' | 'epoch' | 'clientName' | 'signal' | 'token' | 'tls'>
> & {
  limits: Limits;
  clientName: string;
  token: string | undefined;
  tls: TlsClientOptions | undefined;
};

/**
 * Parses the URL (its scheme must have a transport) and checks the options; throws ERR_BAD_URL,
 * ERR_UNSUPPORTED_SCHEME or ERR_BAD_OPTION.
 */
export function resolveClientOptions(
  href: string,
  options: ConnectOptions,
): { url: URL; epoch: string; settings: ClientSettings } {
  const url = parseEndpoint(href, knownSchemes());
  transportFor(url);
  const epoch = options.epoch ?? randomBytes(8).toString('hex');
  if (epoch.length === 0 || epoch.length > 64) {
    throw new FramewireError('ERR_BAD_OPTION', 'epoch must be 1..64 characters');
  }
  const positive = (name: string, v: number | undefined, dflt: number): number => {
    const x = v ?? dflt;
    if (!(x > 0))
      throw new FramewireError('ERR_BAD_OPTION', `${name} must be a positive number, got ${String(v)}`);
    return x;
  };
  const settings: ClientSettings = {
    windowFrames: positive('windowFrames', options.windowFrames, 128),
    windowBytes: positive('windowBytes', options.windowBytes, 32 * 1024 * 1024),
    windowMessages: positive('windowMessages', options.windowMessages, 1024),
    retryForMs: options.retryForMs ?? 30_000,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs, 5000),
    handshakeTimeoutMs: positive('handshakeTimeoutMs', options.handshakeTimeoutMs, 10_000),
    keepaliveMs: positive('keepaliveMs', options.keepaliveMs, 5000),
    peerTimeoutMs: positive('peerTimeoutMs', options.peerTimeoutMs, 20_000),
    maxBackoffMs: positive('maxBackoffMs', options.maxBackoffMs, 5000),
    latencyMs: positive(
      'latencyMs',
      options.latencyMs ?? (Number(url.searchParams.get('latency')) || undefined),
      120,
    ),
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    clientName: options.clientName ?? `framewire/${VERSION} node/${process.versions.node}`,
    token: checkToken(options.token),
    tls: options.tls,
  };
  return { url, epoch, settings };
}
