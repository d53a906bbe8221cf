/**
 * The sending side. A client holds one connection at a time to one receiver and multiplexes named streams
 * over it. Frames are pipelined under a window (frames and bytes): no round trip per frame; the receiver
 * acknowledges cumulatively. Reliable streams keep every unacknowledged frame and resend it after a
 * reconnect from the resume point the receiver gives; live streams keep only the newest unsent frame.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { crc32 } from 'node:zlib';
import { authError, type ErrorCode, FramewireError, toFramewireError } from '../errors.js';
import { checkStreamName, contentTypeOf } from '../names.js';
import {
  type ContentType,
  DEFAULT_LIMITS,
  Flags,
  HEADER_BYTES,
  type Limits,
  MAX_STREAM_ID,
  MESSAGE_CHANNEL,
  MessageType,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
} from '../protocol/constants.js';
import {
  type Encoded,
  type ErrorBody,
  encodeControl,
  encodeFrame,
  encodeMessage,
  encodePing,
  type FrameRef,
  type HelloBody,
  type Message,
  type ResumePoint,
  type WelcomeBody,
} from '../protocol/messages.js';
import { backoffMs, monoMs, wallUs } from '../time.js';
import { knownSchemes, parseEndpoint, transportFor } from '../transports/index.js';
import type { Connection, TlsClientOptions } from '../transports/types.js';
import type { Frame } from '../types.js';
import { VERSION } from '../version.js';
import { checkProof, checkToken, isNonce, newNonce, proof } from './auth.js';
import { CLOCK_VERSION, ClockSync } from './clock.js';

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

interface OutFrame {
  seq: number;
  parts: Encoded;
  bytes: number;
  sent: boolean;
  sentAt: number;
}

interface OutMessage {
  seq: number;
  parts: Encoded;
  sent: boolean;
}

/** A frame's content type when none is given: from its name's extension, JPEG for unnamed frames. */
function guessContentType(name: string | undefined): ContentType {
  return name?.includes('.') ? contentTypeOf(name) : 'image/jpeg';
}

/** Errors after which reconnecting cannot help. */
const FINAL_CODES = new Set<string>([
  'ERR_UNSUPPORTED_VERSION',
  'ERR_BAD_MAGIC',
  'ERR_UNKNOWN_TYPE',
  'ERR_BAD_HEADER',
  'ERR_BAD_JSON',
  'ERR_PROTOCOL',
  'ERR_AUTH',
  'ERR_TLS',
  'ERR_FRAME_TOO_LARGE',
  'ERR_META_TOO_LARGE',
  'ERR_MESSAGE_TOO_LARGE',
]);

/** One named stream of a client. */
export class ClientStream {
  readonly name: string;
  readonly kind: StreamKind;
  readonly mode: StreamMode;
  readonly id: number;
  /** @internal */ pending: OutFrame[] = [];
  /** @internal */ nextSeq = 0;
  /** @internal */ open = false;
  /** @internal */ failed: FramewireError | undefined;
  /** @internal */ refused = new Map<number, FramewireError>();
  /** @internal */ acked = -1;
  /** @internal */ unsent = 0;
  /** The receiver's resume point at the last open: frames below it were already held. */
  resumedAt = 0;
  /** @internal */ openWaiters: Array<{
    resolve: (next: number) => void;
    reject: (e: FramewireError) => void;
  }> = [];
  private readonly client: FramewireClient;

  /** @internal */
  constructor(client: FramewireClient, id: number, name: string, kind: StreamKind, mode: StreamMode) {
    this.client = client;
    this.id = id;
    this.name = name;
    this.kind = kind;
    this.mode = mode;
  }

  /**
   * Queues a frame. Resolves once the frame is inside the window (reliable streams wait here when the
   * receiver is slow: that is the backpressure). Live streams never wait: a newer frame replaces an unsent
   * older one. Rejects when the stream was refused or the client gave up.
   */
  send(frame: Frame, options?: { captureUs?: number }): Promise<number> {
    // `captureUs`: when the camera took the frame, on this machine's wall clock (default: now).
    const f = options?.captureUs === undefined ? frame : { ...frame, captureUs: options.captureUs };
    return this.client.sendFrame(this, f);
  }

  /**
   * Resolves with the receiver's resume point once the receiver has accepted the stream (every frame below
   * it is held already; a sender that replays the same source with the same epoch skips them). Rejects
   * when the receiver refused the stream.
   */
  ready(): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.open) return Promise.resolve(this.resumedAt);
    return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
  }

  /** Next sequence number this stream will assign. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Sets the next sequence number (before the first frame), e.g. to skip frames the receiver holds. */
  startAt(seq: number): void {
    if (this.nextSeq !== 0 || this.pending.length > 0) {
      throw new FramewireError('ERR_BAD_OPTION', 'startAt() must be called before the first frame is sent');
    }
    this.nextSeq = seq;
  }
}

export class FramewireClient extends EventEmitter<ClientEvents> {
  readonly url: URL;
  readonly epoch: string;
  private readonly o: Required<
    Omit<ConnectOptions, 'limits' | 'epoch' | 'clientName' | 'signal' | 'token' | 'tls'>
  > & {
    limits: Limits;
    clientName: string;
    token: string | undefined;
    tls: TlsClientOptions | undefined;
  };
  private conn: Connection | undefined;
  /** The clock exchange with the current receiver, when it speaks it. */
  private clock: ClockSync | undefined;
  private ready = false;
  private readonly streams: ClientStream[] = [];
  private readonly byId = new Map<number, ClientStream>();
  private pendingFrames = 0;
  private pendingBytes = 0;
  private messages: OutMessage[] = [];
  private messageSeq = 0;
  private messagesUnsent = 0;
  private waiters: Array<() => void> = [];
  private flushWaiters: Array<{ resolve: () => void; reject: (e: FramewireError) => void }> = [];
  private failure: FramewireError | undefined;
  private closing = false;
  private closed = false;
  private connecting: Promise<void> | undefined;
  private serverLimits = {
    maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
    maxMetaBytes: DEFAULT_LIMITS.maxMetaBytes,
    maxMessageBytes: DEFAULT_LIMITS.maxMessageBytes,
  };
  private keepalive: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  private rr = 0;
  private everConnected = false;
  /** Whether the current receiver checks CRCs (WELCOME); when it does not, frames go without one. */
  private sendCrc = true;
  /** Wakes backoff sleeps when the client fails or is destroyed. */
  private readonly sleepers = new Set<() => void>();
  private readonly latencies = new Float64Array(10_000);
  private latencyCount = 0;
  private readonly s = {
    framesSent: 0,
    framesAcked: 0,
    bytesAcked: 0,
    framesRefused: 0,
    framesDropped: 0,
    retransmits: 0,
    messagesAcked: 0,
    reconnects: 0,
    rttMs: undefined as number | undefined,
  };

  constructor(url: string, options: ConnectOptions = {}) {
    super();
    this.url = parseEndpoint(url, knownSchemes());
    transportFor(this.url);
    this.epoch = options.epoch ?? randomBytes(8).toString('hex');
    if (this.epoch.length === 0 || this.epoch.length > 64) {
      throw new FramewireError('ERR_BAD_OPTION', 'epoch must be 1..64 characters');
    }
    const positive = (name: string, v: number | undefined, dflt: number): number => {
      const x = v ?? dflt;
      if (!(x > 0))
        throw new FramewireError('ERR_BAD_OPTION', `${name} must be a positive number, got ${String(v)}`);
      return x;
    };
    this.o = {
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
        options.latencyMs ?? (Number(this.url.searchParams.get('latency')) || undefined),
        120,
      ),
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      clientName: options.clientName ?? `framewire/${VERSION} node/${process.versions.node}`,
      token: checkToken(options.token),
      tls: options.tls,
    };
    const signal = options.signal;
    if (signal) {
      const onAbort = () => {
        this.fail(new FramewireError('ERR_CLOSED', 'aborted'));
        this.destroy();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  /** The error the client gave up with, if it did. */
  get error(): FramewireError | undefined {
    return this.failure;
  }

  /** True while a connection is up and its handshake done. */
  get connected(): boolean {
    return this.ready;
  }

  /** Limits the receiver announced in WELCOME. */
  get receiverLimits(): Readonly<{ maxFrameBytes: number; maxMetaBytes: number; maxMessageBytes: number }> {
    return this.serverLimits;
  }

  stats(): ClientStats {
    const n = Math.min(this.latencyCount, this.latencies.length);
    const sorted = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    const pick = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]!);
    const clock = this.clock?.estimate();
    return {
      ...this.s,
      // The exchange measures the receiver's clock minus ours; report ours minus the receiver's.
      clockOffsetMs: clock ? -clock.offsetUs / 1000 : undefined,
      clockErrorMs: clock ? clock.errorUs / 1000 : undefined,
      ackLatencyMs: { p50: pick(0.5), p99: pick(0.99), max: n ? sorted[n - 1]! : 0, samples: n },
    };
  }

  /**
   * Declares a stream. Throws ERR_UNSAFE_NAME at once for a name the receiver would refuse. The receiver
   * may still refuse it (ERR_STREAM_BUSY, ERR_TOO_MANY_STREAMS): then 'stream-error' is emitted and
   * send() rejects.
   */
  stream(name: string, options: StreamOptions = {}): ClientStream {
    this.assertUsable();
    checkStreamName(name);
    const kind = options.kind ?? 'other';
    const mode = options.mode ?? 'reliable';
    if (!STREAM_KINDS.includes(kind)) {
      throw new FramewireError('ERR_BAD_OPTION', `kind "${kind}" is not one of ${STREAM_KINDS.join(', ')}`);
    }
    if (!STREAM_MODES.includes(mode)) {
      throw new FramewireError('ERR_BAD_OPTION', `mode "${mode}" is not one of ${STREAM_MODES.join(', ')}`);
    }
    const existing = this.streams.find((s) => s.name === name);
    if (existing) return existing;
    if (this.streams.length > MAX_STREAM_ID)
      throw new FramewireError('ERR_TOO_MANY_STREAMS', 'too many streams');
    const st = new ClientStream(this, this.streams.length, name, kind, mode);
    this.streams.push(st);
    this.byId.set(st.id, st);
    if (this.ready && this.conn) {
      this.conn.send(encodeControl(MessageType.OPEN, this.decl(st)));
    }
    return st;
  }

  private decl(st: ClientStream) {
    return { id: st.id, name: st.name, kind: st.kind, mode: st.mode, epoch: this.epoch };
  }

  private assertUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closing || this.closed) throw new FramewireError('ERR_CLOSED', 'the client is closed');
  }

  /** @internal */
  async sendFrame(st: ClientStream, frame: Frame): Promise<number> {
    this.assertUsable();
    if (st.failed) throw st.failed;
    if (!Buffer.isBuffer(frame.data))
      throw new FramewireError('ERR_BAD_FRAME', 'frame.data must be a Buffer');
    if (frame.data.length > this.serverLimits.maxFrameBytes) {
      throw new FramewireError(
        'ERR_FRAME_TOO_LARGE',
        `frame${frame.name ? ` ${frame.name}` : ''} of ${frame.data.length} bytes exceeds the receiver's maxFrameBytes ${this.serverLimits.maxFrameBytes}`,
        {
          stream: st.name,
          hint: 'raise the receiver limit (serve --max-frame-bytes) or send smaller frames',
        },
      );
    }
    const metaJson = frame.meta === undefined ? undefined : JSON.stringify(frame.meta);
    if (metaJson !== undefined && Buffer.byteLength(metaJson) > this.serverLimits.maxMetaBytes) {
      throw new FramewireError(
        'ERR_META_TOO_LARGE',
        `frame metadata exceeds the receiver's maxMetaBytes ${this.serverLimits.maxMetaBytes}`,
        {
          stream: st.name,
        },
      );
    }
    const contentType = frame.contentType ?? guessContentType(frame.name);
    const bytes = frame.data.length;
    if (st.mode === 'reliable') {
      while (this.windowFull(bytes)) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        this.assertUsable();
        if (st.failed) throw st.failed;
      }
    }
    const seq = st.nextSeq++;
    const parts = encodeFrame({
      streamId: st.id,
      seq,
      captureUs: frame.captureUs ?? wallUs(),
      contentType,
      pixelFormat: frame.pixelFormat ?? 'none',
      width: frame.width ?? 0,
      height: frame.height ?? 0,
      name: frame.name ?? '',
      metaJson,
      payload: frame.data,
      flags: this.sendCrc ? 0 : Flags.NO_CRC,
    });
    const out: OutFrame = { seq, parts, bytes, sent: false, sentAt: 0 };
    if (st.mode === 'live') {
      // Newest wins: an older frame that has not left yet is replaced, and counted.
      const last = st.pending[st.pending.length - 1];
      if (last && !last.sent) {
        st.pending.pop();
        st.unsent--;
        this.pendingFrames--;
        this.pendingBytes -= last.bytes;
        this.s.framesDropped++;
        this.emit('drop', { stream: st.name, seq: last.seq });
      }
    }
    st.pending.push(out);
    st.unsent++;
    this.pendingFrames++;
    this.pendingBytes += bytes;
    this.pump();
    return seq;
  }

  private windowFull(bytes: number): boolean {
    if (this.pendingFrames === 0) return false;
    return this.pendingFrames >= this.o.windowFrames || this.pendingBytes + bytes > this.o.windowBytes;
  }

  /**
   * Sends a JSON message, optionally naming the frame it describes. Resolves once queued; delivery is
   * reliable (acknowledged, resent after a reconnect). `json` may be a value or JSON text.
   */
  async message(json: unknown, options: { ref?: FrameRef; raw?: boolean } = {}): Promise<number> {
    this.assertUsable();
    let text: string;
    if (options.raw && typeof json === 'string') {
      try {
        JSON.parse(json);
      } catch (err) {
        throw new FramewireError('ERR_BAD_JSON', `message is not valid JSON: ${(err as Error).message}`, {
          hint: 'quote the JSON for the shell, e.g. \'{"a":1}\'',
        });
      }
      text = json;
    } else {
      const t = JSON.stringify(json);
      if (t === undefined) throw new FramewireError('ERR_BAD_JSON', 'message has no JSON representation');
      text = t;
    }
    if (Buffer.byteLength(text) > this.serverLimits.maxMessageBytes) {
      throw new FramewireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message exceeds the receiver's maxMessageBytes ${this.serverLimits.maxMessageBytes}`,
      );
    }
    while (this.messages.length >= this.o.windowMessages) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.assertUsable();
    }
    const seq = this.messageSeq++;
    this.messages.push({ seq, parts: encodeMessage(seq, text, options.ref), sent: false });
    this.messagesUnsent++;
    this.pump();
    return seq;
  }

  /** Resolves when every frame and message sent so far is acknowledged (or refused). */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pendingFrames === 0 && this.messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushWaiters.push({ resolve, reject }));
  }

  /** Waits for every acknowledgement, says BYE and closes. Rejects when the client gave up. */
  async close(): Promise<ClientStats> {
    if (this.closed) {
      if (this.failure) throw this.failure;
      return this.stats();
    }
    try {
      if (!this.failure) await this.flush();
    } finally {
      this.closing = true;
      await this.disconnect();
    }
    if (this.failure) throw this.failure;
    return this.stats();
  }

  /** Closes at once, dropping whatever is not acknowledged. */
  destroy(): void {
    this.closing = true;
    this.closed = true;
    this.stopKeepalive();
    this.conn?.destroy();
    this.fail(new FramewireError('ERR_CLOSED', 'client destroyed'), false);
  }

  private async disconnect(): Promise<void> {
    this.closed = true;
    this.stopKeepalive();
    const conn = this.conn;
    if (!conn || conn.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        conn.destroy();
        resolve();
      }, 2000);
      t.unref();
      conn.on('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.ready) conn.send(encodeControl(MessageType.BYE, { reason: 'done' }));
      else conn.close();
    });
  }

  // ---- connecting --------------------------------------------------------------------------------------

  /** @internal Connects, retrying with backoff until retryForMs has passed since the first failure. */
  connectLoop(): Promise<void> {
    this.connecting ??= this.runConnectLoop().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async runConnectLoop(): Promise<void> {
    const started = monoMs();
    let attempt = 0;
    for (;;) {
      if (this.closed || this.failure) return;
      try {
        await this.attempt();
        return;
      } catch (err) {
        const e = toFramewireError(err, 'ERR_UNREACHABLE', `connecting to ${this.url.href}`);
        if (FINAL_CODES.has(e.code)) {
          this.fail(e);
          return;
        }
        attempt++;
        const elapsed = monoMs() - started;
        if (elapsed >= this.o.retryForMs) {
          const reason = e.code === 'ERR_UNREACHABLE' ? e.detail : e.message;
          this.fail(
            new FramewireError(
              'ERR_UNREACHABLE',
              `gave up on ${this.url.href} after ${attempt} attempts in ${(elapsed / 1000).toFixed(1)} s: ${reason}`,
              {
                hint: e.hint ?? 'is the receiver running? start it with: framewire serve',
                cause: e,
              },
            ),
          );
          return;
        }
        const delayMs = Math.min(
          backoffMs(attempt, this.o.maxBackoffMs),
          Math.max(0, this.o.retryForMs - elapsed),
        );
        if (this.listenerCount('reconnecting') > 0) this.emit('reconnecting', { attempt, delayMs, error: e });
        await new Promise<void>((r) => {
          const wake = () => {
            clearTimeout(t);
            this.sleepers.delete(wake);
            r();
          };
          const t = setTimeout(wake, delayMs);
          this.sleepers.add(wake);
        });
      }
    }
  }

  private attempt(): Promise<void> {
    const t = transportFor(this.url);
    return t
      .connect(this.url, {
        limits: this.o.limits,
        connectTimeoutMs: this.o.connectTimeoutMs,
        tlsClient: this.o.tls,
        token: this.o.token,
      })
      .then((conn) => this.handshake(conn));
  }

  private handshake(conn: Connection): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) {
        conn.destroy();
        resolve();
        return;
      }
      this.conn = conn;
      this.lastHeard = monoMs();
      let settled = false;
      const token = this.o.token;
      const senderNonce = token === undefined ? '' : newNonce();
      let authenticated = token === undefined;
      let authFailure: FramewireError | undefined;
      const timer = setTimeout(() => {
        settle(
          new FramewireError(
            'ERR_HANDSHAKE_TIMEOUT',
            `${this.url.href} did not answer HELLO within ${this.o.handshakeTimeoutMs} ms`,
          ),
        );
      }, this.o.handshakeTimeoutMs);
      const settle = (err?: FramewireError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          conn.destroy(err);
          if (this.conn === conn) this.conn = undefined;
          reject(err);
        } else resolve();
      };
      conn.on('message', (m: Message) => {
        this.lastHeard = monoMs();
        if (!this.ready) {
          if (m.type === MessageType.AUTH && token !== undefined && !authenticated) {
            const nonce = m.body.nonce;
            if (!isNonce(nonce)) {
              settle(authError(`${this.url.href} sent a malformed challenge`));
              return;
            }
            // Answer even when the receiver's proof is wrong, so that both sides see ERR_AUTH; an answer
            // is an HMAC over fresh nonces and tells an impostor nothing about the token.
            conn.send(encodeControl(MessageType.AUTH, { proof: proof(token, 'sender', senderNonce, nonce) }));
            if (!checkProof(token, 'receiver', senderNonce, nonce, m.body.proof)) {
              const err = authError(`wrong token: ${this.url.href} does not prove the same token`);
              conn.close();
              setTimeout(() => settle(err), 1000).unref();
              authFailure = err;
              return;
            }
            authenticated = true;
          } else if (m.type === MessageType.WELCOME) {
            if (!authenticated) {
              settle(
                authError(`${this.url.href} does not check tokens; refusing to send to it with --token`),
              );
              return;
            }
            this.onWelcome(m.body, declared);
            settle();
          } else if (m.type === MessageType.ERROR) {
            if (m.body.fatal) settle(authFailure ?? this.remoteError(m.body));
            else this.onError(m.body);
          } else if (m.type === MessageType.BYE) {
            settle(
              new FramewireError(
                'ERR_CLOSED',
                `receiver said BYE during the handshake: ${String(m.body.reason)}`,
              ),
            );
          }
          return;
        }
        this.onMessage(m);
      });
      conn.on('drain', () => this.pump());
      conn.on('close', (err) => {
        if (!settled) {
          settle(
            authFailure ??
              err ??
              new FramewireError('ERR_CLOSED', `${this.url.href} closed the connection during the handshake`),
          );
          return;
        }
        this.onConnectionLost(conn, err);
      });
      // Streams made while this handshake is under way are not in the HELLO; WELCOME opens them.
      const declared = this.streams.filter((s) => !s.failed);
      const hello: HelloBody = {
        protocol: 1,
        client: this.o.clientName,
        epoch: this.epoch,
        streams: declared.map((s) => this.decl(s)),
        messageSeq: this.messages[0]?.seq ?? this.messageSeq,
        ...(token === undefined ? {} : { auth: { nonce: senderNonce } }),
        clock: CLOCK_VERSION,
      };
      conn.send(encodeControl(MessageType.HELLO, hello));
    });
  }

  private remoteError(body: ErrorBody): FramewireError {
    const code =
      typeof body.code === 'string' && body.code.startsWith('ERR_') ? (body.code as ErrorCode) : 'ERR_REMOTE';
    const msg = String(body.message ?? '').replace(/^ERR_[A-Z_]+: /, '');
    return new FramewireError(code, `receiver: ${msg}`);
  }

  private onWelcome(w: WelcomeBody, declared: readonly ClientStream[]): void {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.ready = true;
    if (reconnect) this.s.reconnects++;
    if (w.limits && typeof w.limits.maxFrameBytes === 'number') this.serverLimits = { ...w.limits };
    this.sendCrc = w.verifyCrc !== false;
    if (this.sendCrc) this.addMissingCrcs();
    for (const p of Array.isArray(w.streams) ? w.streams : []) this.applyResume(p);
    for (const st of this.streams) {
      if (!st.failed && !declared.includes(st))
        this.conn?.send(encodeControl(MessageType.OPEN, this.decl(st)));
    }
    // Messages the receiver already holds are done; the rest go again.
    const mnext = typeof w.messageNext === 'number' ? w.messageNext : 0;
    this.ackMessages(mnext - 1);
    this.startKeepalive();
    this.clock?.stop();
    this.clock = undefined;
    if (w.clock === CLOCK_VERSION && this.conn) {
      const conn = this.conn;
      this.clock = new ClockSync((m) => conn.send(m));
      this.clock.start();
    }
    this.emit('connected', { url: this.url.href, session: String(w.session), reconnect });
    this.pump();
  }

  /** Frames queued for a receiver that skipped CRCs get them before going to one that checks. */
  private addMissingCrcs(): void {
    for (const st of this.streams) {
      for (const f of st.pending) {
        const head = f.parts[0]!;
        if (!(head[4]! & Flags.NO_CRC)) continue;
        head[4] = head[4]! & ~Flags.NO_CRC;
        head.writeUInt32BE(crc32(f.parts[1] ?? Buffer.alloc(0)), HEADER_BYTES + 24);
      }
    }
  }

  private applyResume(p: ResumePoint): void {
    const st = this.byId.get(p.id);
    if (!st || typeof p.next !== 'number') return;
    st.open = true;
    st.resumedAt = p.next;
    for (const w of st.openWaiters.splice(0)) w.resolve(p.next);
    if (st.nextSeq === 0 && st.pending.length === 0 && p.next > 0 && st.mode === 'reliable') {
      // A fresh stream that the receiver already holds frames of (same epoch): continue after them.
      st.nextSeq = p.next;
    }
    this.ackStream(st, p.next - 1);
    if (st.nextSeq < p.next) st.nextSeq = p.next;
  }

  private onConnectionLost(conn: Connection, err: FramewireError | undefined): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.ready = false;
    this.stopKeepalive();
    for (const st of this.streams) {
      st.open = false;
      if (st.mode === 'live') {
        // Frames in flight on a live stream are not resent: freshness beats completeness.
        const lost = st.pending.filter((f) => f.sent);
        for (const f of lost) {
          this.pendingFrames--;
          this.pendingBytes -= f.bytes;
          this.s.framesDropped++;
        }
        st.pending = st.pending.filter((f) => !f.sent);
      } else {
        for (const f of st.pending) {
          if (f.sent) {
            f.sent = false;
            f.parts[0]![4]! |= Flags.RETRANSMIT;
            st.unsent++;
          }
        }
      }
    }
    for (const m of this.messages) {
      if (m.sent) {
        m.sent = false;
        this.messagesUnsent++;
      }
    }
    this.wake();
    if (this.closed || this.failure) return;
    this.emit('disconnected', err);
    void this.connectLoop();
  }

  private startKeepalive(): void {
    this.stopKeepalive();
    this.keepalive = setInterval(() => {
      const conn = this.conn;
      if (!conn || !this.ready) return;
      if (monoMs() - this.lastHeard > this.o.peerTimeoutMs) {
        conn.destroy(
          new FramewireError(
            'ERR_PEER_TIMEOUT',
            `${this.url.href} sent nothing for ${this.o.peerTimeoutMs} ms`,
          ),
        );
        return;
      }
      conn.send(encodePing(MessageType.PING, Math.round(performance.now() * 1000)));
    }, this.o.keepaliveMs);
    this.keepalive.unref();
  }

  private stopKeepalive(): void {
    this.clock?.stop();
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  // ---- while connected ---------------------------------------------------------------------------------

  private onMessage(m: Message): void {
    switch (m.type) {
      case MessageType.ACK:
        if (m.stream === MESSAGE_CHANNEL) this.ackMessages(m.seq);
        else {
          const st = this.byId.get(m.stream);
          if (st) this.ackStream(st, m.seq);
        }
        break;
      case MessageType.OPENED:
        if (m.body && typeof m.body.id === 'number') this.applyResume(m.body);
        this.pump();
        break;
      case MessageType.ERROR:
        if (m.body.fatal) {
          const e = this.remoteError(m.body);
          if (FINAL_CODES.has(e.code)) this.fail(e);
          // Otherwise the receiver closes the connection and we reconnect and resume.
        } else this.onError(m.body);
        break;
      case MessageType.PONG:
        this.s.rttMs = (performance.now() * 1000 - m.time) / 1000;
        break;
      case MessageType.PING:
        this.conn?.send(encodePing(MessageType.PONG, m.time));
        break;
      case MessageType.BYE:
        // The receiver is shutting down; it closes the connection and we reconnect.
        break;
      default:
        this.clock?.handle(m);
        break;
    }
  }

  private onError(body: ErrorBody): void {
    const err = this.remoteError(body);
    const st = typeof body.stream === 'number' ? this.byId.get(body.stream) : undefined;
    if (!st) return;
    if (typeof body.seq === 'number') {
      st.refused.set(body.seq, new FramewireError(err.code, err.detail, { stream: st.name, seq: body.seq }));
      return;
    }
    // The whole stream was refused: its frames can never be delivered.
    const e = new FramewireError(err.code, err.detail, { stream: st.name });
    st.failed = e;
    for (const w of st.openWaiters.splice(0)) w.reject(e);
    for (const f of st.pending) {
      this.pendingFrames--;
      this.pendingBytes -= f.bytes;
    }
    st.pending = [];
    st.unsent = 0;
    if (this.listenerCount('stream-error') > 0) this.emit('stream-error', e);
    this.wake();
    this.checkFlushed();
  }

  private ackStream(st: ClientStream, seq: number): void {
    if (seq <= st.acked && st.pending[0] && st.pending[0].seq > seq) return;
    const now = performance.now();
    let frames = 0;
    let bytes = 0;
    while (st.pending.length > 0 && st.pending[0]!.seq <= seq) {
      const f = st.pending.shift()!;
      if (!f.sent) st.unsent--;
      this.pendingFrames--;
      this.pendingBytes -= f.bytes;
      const refused = st.refused.get(f.seq);
      if (refused) {
        st.refused.delete(f.seq);
        this.s.framesRefused++;
        if (this.listenerCount('frame-error') > 0) this.emit('frame-error', refused);
        continue;
      }
      frames++;
      bytes += f.bytes;
      if (f.sent) {
        this.latencies[this.latencyCount++ % this.latencies.length] = now - f.sentAt;
      }
    }
    if (seq > st.acked) st.acked = seq;
    this.s.framesAcked += frames;
    this.s.bytesAcked += bytes;
    if (frames > 0 && this.listenerCount('ack') > 0)
      this.emit('ack', { stream: st.name, seq, frames, bytes });
    this.wake();
    this.checkFlushed();
  }

  private ackMessages(seq: number): void {
    let n = 0;
    while (this.messages.length > 0 && this.messages[0]!.seq <= seq) {
      const m = this.messages.shift()!;
      if (!m.sent) this.messagesUnsent--;
      n++;
    }
    this.s.messagesAcked += n;
    if (n > 0) {
      this.wake();
      this.checkFlushed();
    }
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  private checkFlushed(): void {
    if (this.pendingFrames !== 0 || this.messages.length !== 0 || this.flushWaiters.length === 0) return;
    const w = this.flushWaiters;
    this.flushWaiters = [];
    for (const f of w) f.resolve();
  }

  private fail(err: FramewireError, emit = true): void {
    if (this.failure) return;
    this.failure = err;
    for (const wake of [...this.sleepers]) wake();
    for (const st of this.streams) for (const w of st.openWaiters.splice(0)) w.reject(err);
    this.stopKeepalive();
    this.conn?.destroy();
    this.wake();
    const w = this.flushWaiters;
    this.flushWaiters = [];
    for (const f of w) f.reject(err);
    if (emit && this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Writes what the window and the socket allow, round-robin over streams, messages first. */
  private pump(): void {
    const conn = this.conn;
    if (!conn || !this.ready || conn.closed) return;
    if (this.messagesUnsent > 0) {
      for (const m of this.messages) {
        if (m.sent) continue;
        m.sent = true;
        this.messagesUnsent--;
        if (!conn.send(m.parts)) return;
      }
    }
    const n = this.streams.length;
    let idle = 0;
    while (idle < n) {
      const st = this.streams[this.rr++ % n]!;
      // A live frame waits while the connection is congested, so that a newer one replaces it (newest wins)
      // instead of queueing behind the older ones in the transport.
      if (!st.open || st.unsent === 0 || (st.mode === 'live' && conn.congested)) {
        idle++;
        continue;
      }
      idle = 0;
      const f = st.pending[st.pending.length - st.unsent]!;
      f.sent = true;
      f.sentAt = performance.now();
      st.unsent--;
      this.s.framesSent++;
      if (f.parts[0]![4]! & Flags.RETRANSMIT) this.s.retransmits++;
      const live =
        st.mode === 'live'
          ? { live: true, deadlineMs: this.o.latencyMs, onDrop: () => this.liveLost(st, f) }
          : undefined;
      if (!conn.send(f.parts, live)) return;
    }
  }

  /** The transport gave up a live frame in flight (too late): it has its outcome, a drop. */
  private liveLost(st: ClientStream, f: OutFrame): void {
    const i = st.pending.indexOf(f);
    if (i < 0 || !f.sent) return;
    st.pending.splice(i, 1);
    this.pendingFrames--;
    this.pendingBytes -= f.bytes;
    this.s.framesDropped++;
    this.emit('drop', { stream: st.name, seq: f.seq });
    this.wake();
    this.checkFlushed();
  }
}

/**
 * Connects to a receiver. Resolves once the first handshake is done; retries with backoff for
 * `retryForMs` and rejects with ERR_UNREACHABLE when the receiver cannot be reached.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<FramewireClient> {
  const client = new FramewireClient(url, options);
  await client.connectLoop();
  if (client.error) throw client.error;
  return client;
}
