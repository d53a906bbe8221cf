/**
 * The receiving side: listeners on one or more endpoints, one ReceiverSession per connection, and the
 * stream registry that makes reliable delivery exactly-once across reconnects and restarts.
 *
 * A frame is acknowledged only after every sink has stored it. Frames of one stream are stored one at a
 * time in sequence order while the network keeps reading (bounded by maxPendingBytes per connection, beyond
 * which the socket is paused and TCP pushes back on the sender).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { authError, type ErrorCode, FramewireError, toFramewireError } from '../errors.js';
import {
  DEFAULT_LIMITS,
  Flags,
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
  type AuthBody,
  type ErrorBody,
  encodeAck,
  encodeControl,
  encodePing,
  type HelloBody,
  type Message,
  type ResumePoint,
  type StreamDecl,
  type WelcomeBody,
  type WireFrame,
  type WireMessage,
} from '../protocol/messages.js';
import { knownSchemes, parseEndpoint, transportFor } from '../transports/index.js';
import type { Connection, Listener, TlsServerOptions } from '../transports/types.js';
import type {
  ConnectionInfo,
  ReceivedFrame,
  ReceivedMessage,
  ReceiverInfo,
  Sink,
  StreamInfo,
} from '../types.js';

export type { ConnectionInfo };

import { channels } from '../diagnostics.js';
import { checkFileName, checkStreamName } from '../names.js';
import { monoMs, wallUs } from '../time.js';
import { VERSION } from '../version.js';
import { checkProof, checkToken, isNonce, newNonce, proof } from './auth.js';
import { CLOCK_VERSION, ClockSync, correctCapture } from './clock.js';
import { type SyncIteratorOptions, syncGroups } from './sync.js';

export interface ServerOptions {
  /** Endpoints to listen on, e.g. `tcp://0.0.0.0:7070`. Default `tcp://0.0.0.0:7070`. */
  listen?: string | string[];
  /** Where received frames and messages go, in addition to the 'frame' and 'message' events. */
  sinks?: Sink[];
  /**
   * Endpoint schemes beyond the protocol v1 transports, each with the function that starts it (the seed
   * formats of src/compat). `createServer` from the package adds the built-in ones (src/endpoints.ts).
   */
  endpoints?: Readonly<Record<string, EndpointStarter>>;
  /** Decoder limits: frame, metadata, message and control sizes. */
  limits?: Partial<Limits>;
  /** Time a new connection has to send HELLO (ms, default 10000). */
  handshakeTimeoutMs?: number;
  /** A connection that sends nothing for this long is closed (ms, default 60000; clients ping every 5 s). */
  idleTimeoutMs?: number;
  /** Bytes received but not yet stored, per connection, beyond which reading pauses (default 64 MiB). */
  maxPendingBytes?: number;
  /** Streams one connection may declare (default 64). */
  maxStreamsPerConnection?: number;
  /** Frames a live stream may queue before the oldest queued one is dropped (default 2). */
  liveQueueFrames?: number;
  /** Frames one reliable stream may hold received but not yet stored before reading pauses (default 512). */
  maxPendingFrames?: number;
  /** Connections in total; more are refused with ERR_TOO_MANY_CONNECTIONS (default 256). */
  maxConnections?: number;
  /** Connections from one IP address (default 32). */
  maxConnectionsPerAddress?: number;
  /**
   * Bytes received but not yet stored, all connections together, beyond which every connection that
   * receives more pauses (default 256 MiB): the bound on the receiver's memory however many senders there are.
   */
  maxTotalPendingBytes?: number;
  /**
   * Shared secret: senders must prove they know it (challenge-response, the token never crosses the
   * wire); a wrong or missing token ends the connection with ERR_AUTH before anything is stored.
   */
  token?: string;
  /** Certificate and key for tls:// endpoints (PEM); `ca` and `requestCert` ask senders for certificates. */
  tls?: TlsServerOptions;
  /**
   * Check every frame against its CRC32 (default true). With false the receiver relies on the transport's
   * integrity (TCP's checksum, TLS's authentication) and tells senders to skip computing CRCs, which saves
   * about a third of the CPU per byte on both sides.
   */
  verifyCrc?: boolean;
  /**
   * Take senders' capture times as they are (default false): PTP or chrony keep the clocks together. By
   * default each connection measures its sender's clock offset and frames get `correctedUs` (docs/sync.md).
   */
  trustClocks?: boolean;
  /** Period of the clock exchange with each sender (ms, default 2000). */
  clockIntervalMs?: number;
}

export interface ServerEvents {
  /** A sender completed its handshake. */
  connection: [ConnectionInfo];
  /** A sender went away; `error` says why when it was not a clean BYE. */
  disconnect: [ConnectionInfo, FramewireError | undefined];
  /** A stream was opened (or reopened after a reconnect) and will resume at `next`. */
  stream: [StreamInfo, { next: number }];
  /** A frame was stored by every sink and will be acknowledged. */
  frame: [ReceivedFrame];
  /** A JSON message was stored by every sink and will be acknowledged. */
  message: [ReceivedMessage];
  /** A frame was refused (unsafe name) or a live frame dropped; nothing was written for it. */
  'frame-error': [FramewireError];
  /** A problem that did not stop the server: a malformed peer, a failed write, a refused stream. */
  warning: [FramewireError];
  /** close() finished: every connection is closed and the sinks too. */
  close: [];
}

/** Per (stream name) state kept across connections, so that a reconnect resumes where it left off. */
interface StreamRecord {
  name: string;
  epoch: string;
  /** Sequence number after the last frame stored by every sink. */
  durableNext: number;
  owner: ReceiverSession | undefined;
  /** Resolves when the owner's pipeline for this stream has stored what it had started. */
  idle: Promise<void>;
}

interface QueueItem {
  frame: WireFrame;
  refused: FramewireError | undefined;
}

interface RxStream {
  id: number;
  info: StreamInfo;
  record: StreamRecord;
  /** Next sequence number expected from the network. */
  next: number;
  queue: QueueItem[];
  busy: boolean;
  /** Highest sequence number stored (or refused), -1 before the first. */
  acked: number;
  ackSent: number;
  drops: number;
  idleResolve: (() => void) | undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Checks one stream declaration from HELLO or OPEN; throws ERR_PROTOCOL or ERR_UNSAFE_NAME. */
function checkDecl(d: unknown): StreamDecl {
  if (!isObject(d)) throw new FramewireError('ERR_PROTOCOL', 'stream declaration is not an object');
  const { id, name, kind, mode, epoch } = d;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_STREAM_ID) {
    throw new FramewireError('ERR_PROTOCOL', `stream id ${String(id)} is outside 0..${MAX_STREAM_ID}`);
  }
  if (typeof name !== 'string') throw new FramewireError('ERR_PROTOCOL', 'stream name is not a string');
  if (!STREAM_KINDS.includes(kind as StreamKind)) {
    throw new FramewireError(
      'ERR_PROTOCOL',
      `stream kind ${JSON.stringify(kind)} is not one of ${STREAM_KINDS.join(', ')}`,
    );
  }
  if (!STREAM_MODES.includes(mode as StreamMode)) {
    throw new FramewireError(
      'ERR_PROTOCOL',
      `stream mode ${JSON.stringify(mode)} is not one of ${STREAM_MODES.join(', ')}`,
    );
  }
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) {
    throw new FramewireError('ERR_PROTOCOL', 'stream epoch must be a string of 1..64 characters');
  }
  checkStreamName(name);
  return { id, name, kind: kind as StreamKind, mode: mode as StreamMode, epoch };
}

/**
 * An endpoint that is not a protocol v1 transport (e.g. the seed programs' formats in src/compat): it is
 * started with the server and hands what it receives to {@link FramewireServer.deliverFrame} and
 * {@link FramewireServer.deliverMessage}.
 */
export type EndpointStarter = (url: URL, server: FramewireServer) => Promise<Listener>;

export class FramewireServer extends EventEmitter<ServerEvents> implements ReceiverInfo {
  readonly options: Required<
    Omit<ServerOptions, 'listen' | 'sinks' | 'limits' | 'token' | 'tls' | 'endpoints'>
  > & {
    limits: Limits;
    token: string | undefined;
    tls: TlsServerOptions | undefined;
  };
  readonly sinks: Sink[];
  private readonly endpoints: string[];
  private readonly extraEndpoints: Readonly<Record<string, EndpointStarter>>;
  private bound: Listener[] = [];
  private readonly sessions = new Set<ReceiverSession>();
  private readonly records = new Map<string, StreamRecord>();
  private readonly messageNext = new Map<string, number>();
  private closing = false;
  /** Bytes received but not yet stored, all sessions together. */
  private pending = 0;

  constructor(options: ServerOptions = {}) {
    super();
    const listen = options.listen ?? 'tcp://0.0.0.0:7070';
    this.endpoints = Array.isArray(listen) ? listen : [listen];
    if (this.endpoints.length === 0)
      throw new FramewireError('ERR_BAD_OPTION', 'listen needs at least one endpoint');
    this.sinks = options.sinks ?? [];
    this.extraEndpoints = options.endpoints ?? {};
    this.options = {
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxPendingBytes: options.maxPendingBytes ?? 64 * 1024 * 1024,
      maxStreamsPerConnection: options.maxStreamsPerConnection ?? 64,
      liveQueueFrames: options.liveQueueFrames ?? 2,
      maxPendingFrames: options.maxPendingFrames ?? 512,
      maxConnections: options.maxConnections ?? 256,
      maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? 32,
      maxTotalPendingBytes: options.maxTotalPendingBytes ?? 256 * 1024 * 1024,
      token: checkToken(options.token),
      tls: options.tls,
      verifyCrc: options.verifyCrc ?? true,
      trustClocks: options.trustClocks ?? false,
      clockIntervalMs: options.clockIntervalMs ?? 2000,
    };
  }

  /** Binds every endpoint. Rejects with ERR_BAD_URL, ERR_UNSUPPORTED_SCHEME or ERR_LISTEN_FAILED. */
  async start(): Promise<void> {
    const endpointStarters = new Map(Object.entries(this.extraEndpoints));
    const schemes = [...knownSchemes(), ...endpointStarters.keys()];
    const urls = this.endpoints.map((e) => parseEndpoint(e, schemes));
    try {
      for (const url of urls) {
        const starter = endpointStarters.get(url.protocol.slice(0, -1));
        if (starter) {
          this.bound.push(await starter(url, this));
          continue;
        }
        const t = transportFor(url);
        const l = await t.listen(
          url,
          {
            limits: this.options.limits,
            connectTimeoutMs: 0,
            tlsServer: this.options.tls,
            verifyCrc: this.options.verifyCrc,
            token: this.options.token,
          },
          (conn) => this.accept(conn),
        );
        this.bound.push(l);
      }
    } catch (err) {
      await Promise.all(this.bound.map((l) => l.close()));
      this.bound = [];
      throw err;
    }
  }

  /** The bound endpoints, with real ports. */
  get urls(): string[] {
    return this.bound.map((l) => l.url);
  }

  /** The port of the first endpoint (handy with port 0). */
  get port(): number {
    return this.bound[0]?.port ?? 0;
  }

  /** Number of connected senders. */
  get connections(): number {
    return this.sessions.size;
  }

  /** Stops listening, closes every connection after storing what was received, then closes the sinks. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all(this.bound.map((l) => l.close()));
    await Promise.all([...this.sessions].map((s) => s.shutdown('server closing')));
    for (const sink of this.sinks) await sink.close?.();
    this.emit('close');
  }

  /**
   * Groups the frames of `streams` taken at the same moment, by capture time on this receiver's clock
   * (docs/sync.md): an async iterator of groups, ending when the server closes or `options.signal` aborts.
   */
  sync(streams: string[], options: SyncIteratorOptions = {}) {
    return syncGroups(this, streams, { trustClocks: this.options.trustClocks, ...options });
  }

  private accept(conn: Connection): void {
    if (this.closing) {
      conn.destroy();
      return;
    }
    const o = this.options;
    const address = hostOfRemote(conn.remote);
    let fromAddress = 0;
    for (const s of this.sessions) if (hostOfRemote(s.remote) === address) fromAddress++;
    const refusal =
      this.sessions.size >= o.maxConnections
        ? `the receiver has ${o.maxConnections} connections already (maxConnections)`
        : fromAddress >= o.maxConnectionsPerAddress
          ? `${address} has ${o.maxConnectionsPerAddress} connections already (maxConnectionsPerAddress)`
          : undefined;
    if (refusal) {
      const err = new FramewireError('ERR_TOO_MANY_CONNECTIONS', refusal);
      this.warn(err);
      conn.send(encodeControl(MessageType.ERROR, { code: err.code, message: err.message, fatal: true }));
      conn.close();
      setTimeout(() => conn.destroy(), 1000).unref();
      return;
    }
    const s = new ReceiverSession(this, conn);
    this.sessions.add(s);
    conn.on('close', () => this.sessions.delete(s));
  }

  /**
   * Hands a frame to every sink, then to 'frame' listeners. Resolves once every sink stored it; rejects with
   * ERR_UNSAFE_NAME for a refused name (nothing written) or ERR_WRITE_FAILED. The native sessions use it,
   * and so do endpoints that speak other wire formats (src/compat), so their frames reach every sink.
   */
  deliverFrame(frame: ReceivedFrame): Promise<void> {
    try {
      return this.deliverFrameFast(frame) ?? Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * @internal The same as deliverFrame, but synchronous while every sink is: the hot path of a receiver
   * whose sinks return at once (none, the viewer) costs no promise per frame.
   */
  deliverFrameFast(frame: ReceivedFrame): Promise<void> | undefined {
    const pending = this.storeFrame(frame);
    if (pending) return pending.then(() => this.announceFrame(frame));
    this.announceFrame(frame);
    return undefined;
  }

  /** Calls every sink in order; returns a promise only once one of them is asynchronous. */
  private storeFrame(frame: ReceivedFrame, from = 0): Promise<void> | undefined {
    const sinks = this.sinks;
    for (let i = from; i < sinks.length; i++) {
      const r = sinks[i]!.frame?.(frame);
      if (r && typeof (r as Promise<void>).then === 'function') {
        return (r as Promise<void>).then(() => this.storeFrame(frame, i + 1));
      }
    }
    return undefined;
  }

  private announceFrame(frame: ReceivedFrame): void {
    if (channels.frame.hasSubscribers) channels.frame.publish({ server: this, frame });
    try {
      this.emit('frame', frame);
    } catch (err) {
      this.warn(toFramewireError(err, 'ERR_PROTOCOL', "a 'frame' listener threw"));
    }
  }

  /** Hands a JSON message to every sink, then to 'message' listeners; like {@link deliverFrame}. */
  async deliverMessage(message: ReceivedMessage): Promise<void> {
    for (const sink of this.sinks) {
      if (sink.message) await sink.message(message);
    }
    if (channels.message.hasSubscribers) channels.message.publish({ server: this, message });
    try {
      this.emit('message', message);
    } catch (err) {
      this.warn(toFramewireError(err, 'ERR_PROTOCOL', "a 'message' listener threw"));
    }
  }

  /** @internal Bytes received and not yet stored, all connections together. */
  get pendingTotal(): number {
    return this.pending;
  }

  /** @internal Sessions report what they hold; when the total falls low enough, paused ones resume. */
  notePending(delta: number): void {
    const was = this.pending;
    this.pending += delta;
    const half = this.options.maxTotalPendingBytes / 2;
    if (delta < 0 && was > half && this.pending <= half) for (const s of this.sessions) s.tryResume();
  }

  /** @internal */
  warn(err: FramewireError): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', err);
  }

  /** @internal Claims stream `decl` for session `s`, waiting for a previous owner to settle. */
  async claim(
    s: ReceiverSession,
    decl: StreamDecl,
    sender: string,
  ): Promise<{ record: StreamRecord; info: StreamInfo }> {
    let record = this.records.get(decl.name);
    if (record?.owner && record.owner !== s && !record.owner.closed) {
      if (record.epoch !== decl.epoch) {
        throw new FramewireError(
          'ERR_STREAM_BUSY',
          `stream "${decl.name}" is being sent by ${record.owner.remote}`,
          {
            hint: 'give each sender its own --stream name',
            stream: decl.name,
          },
        );
      }
      // Same epoch: the sender reconnected before we noticed its old connection died.
      record.owner.release(
        decl.name,
        new FramewireError('ERR_CLOSED', 'stream taken over by a newer connection'),
      );
    }
    if (record) await record.idle;
    const info: StreamInfo = { name: decl.name, kind: decl.kind, mode: decl.mode, epoch: decl.epoch, sender };
    if (!record || record.epoch !== decl.epoch) {
      let durableNext = 0;
      for (const sink of this.sinks) {
        if (sink.resumePoint) durableNext = Math.max(durableNext, await sink.resumePoint(info));
      }
      record = { name: decl.name, epoch: decl.epoch, durableNext, owner: undefined, idle: Promise.resolve() };
      this.records.set(decl.name, record);
    }
    record.owner = s;
    return { record, info };
  }

  /** @internal */
  messageResume(epoch: string): number {
    return this.messageNext.get(epoch) ?? 0;
  }

  /** @internal */
  setMessageResume(epoch: string, next: number): void {
    this.messageNext.set(epoch, next);
  }
}

function hostOfRemote(remote: string): string {
  const i = remote.lastIndexOf(':');
  return i < 0 ? remote : remote.slice(0, i);
}

/** One connected sender. */
export class ReceiverSession {
  readonly id = randomBytes(6).toString('hex');
  readonly remote: string;
  private readonly server: FramewireServer;
  private readonly conn: Connection;
  private readonly streams = new Map<number, RxStream>();
  /** Streams being claimed (id → name): a declaration of the same id or name meanwhile is refused. */
  private readonly opening = new Map<number, string>();
  private client = '';
  private epoch = '';
  private handshaken = false;
  /** HELLO of a sender that still has to answer the token challenge. */
  private pendingHello: HelloBody | undefined;
  private receiverNonce = '';
  private byeReceived = false;
  private pendingBytes = 0;
  private paused = false;
  private ackScheduled = false;
  private messageNext = 0;
  private messageAcked = -1;
  private messageAckSent = -1;
  private messageChain: Promise<void> = Promise.resolve();
  private lastHeard = monoMs();
  private readonly timers: NodeJS.Timeout[] = [];
  private finished = false;
  private closeError: FramewireError | undefined;
  /** The clock exchange, when the sender speaks it. */
  private clock: ClockSync | undefined;

  constructor(server: FramewireServer, conn: Connection) {
    this.server = server;
    this.conn = conn;
    this.remote = conn.remote;
    conn.on('message', (m) => this.onMessage(m));
    conn.on('close', (err) => this.onClose(err));
    const o = server.options;
    this.timers.push(
      setTimeout(() => {
        if (!this.handshaken) {
          this.fatal(
            new FramewireError(
              'ERR_HANDSHAKE_TIMEOUT',
              `no HELLO from ${this.remote} within ${o.handshakeTimeoutMs} ms`,
            ),
          );
        }
      }, o.handshakeTimeoutMs),
    );
    const idleCheck = Math.max(50, Math.min(5000, o.idleTimeoutMs / 4));
    this.timers.push(
      setInterval(() => {
        if (monoMs() - this.lastHeard > o.idleTimeoutMs) {
          this.fatal(
            new FramewireError('ERR_PEER_TIMEOUT', `${this.remote} sent nothing for ${o.idleTimeoutMs} ms`),
          );
        }
      }, idleCheck),
    );
    for (const t of this.timers) t.unref();
  }

  get closed(): boolean {
    return this.finished || this.conn.closed;
  }

  private info(): ConnectionInfo {
    return { id: this.id, remote: this.remote, client: this.client };
  }

  private onMessage(m: Message): void {
    this.lastHeard = monoMs();
    if (this.finished) return;
    try {
      if (
        !this.handshaken &&
        m.type !== MessageType.HELLO &&
        m.type !== MessageType.PING &&
        m.type !== MessageType.AUTH
      ) {
        throw new FramewireError('ERR_PROTOCOL', `expected HELLO first, got message type ${m.type}`);
      }
      switch (m.type) {
        case MessageType.FRAME:
          this.onFrame(m.frame);
          break;
        case MessageType.MESSAGE:
          this.onJsonMessage(m.message);
          break;
        case MessageType.HELLO:
          this.onHello(m.body);
          break;
        case MessageType.AUTH:
          this.onAuth(m.body);
          break;
        case MessageType.OPEN:
          this.onOpen(m.body);
          break;
        case MessageType.PING:
          this.conn.send(encodePing(MessageType.PONG, m.time));
          break;
        case MessageType.PONG:
          break;
        case MessageType.BYE:
          this.byeReceived = true;
          this.maybeFinishBye();
          break;
        case MessageType.ERROR:
          this.server.warn(
            new FramewireError('ERR_REMOTE', `${this.remote} reported ${m.body.code}: ${m.body.message}`),
          );
          break;
        default:
          if (this.clock?.handle(m)) break;
          throw new FramewireError('ERR_PROTOCOL', `a sender may not send message type ${m.type}`);
      }
    } catch (err) {
      this.fatal(toFramewireError(err, 'ERR_PROTOCOL', `session with ${this.remote}`));
    }
  }

  private sendError(code: ErrorCode | string, message: string, extra: Partial<ErrorBody> = {}): void {
    const body: ErrorBody = { code, message, fatal: false, ...extra };
    this.conn.send(encodeControl(MessageType.ERROR, body));
  }

  /** Reports a fatal error to the peer and closes the connection. Never throws. */
  private fatal(err: FramewireError): void {
    if (this.finished) return;
    this.closeError ??= err;
    this.server.warn(err);
    try {
      this.sendError(err.code, err.message, { fatal: true });
    } catch {
      /* the connection may already be gone */
    }
    this.finish();
    this.conn.close();
    setTimeout(() => this.conn.destroy(), 2000).unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clock?.stop();
    for (const t of this.timers) clearTimeout(t);
    // Queued frames that were not started are dropped: they were not acknowledged, the sender resends them.
    for (const s of this.streams.values()) this.detach(s);
  }

  private detach(s: RxStream): void {
    this.addPending(-s.queue.reduce((n, q) => n + q.frame.payload.length, 0));
    s.queue.length = 0;
    if (!s.busy) s.idleResolve?.();
    if (s.record.owner === this) s.record.owner = undefined;
  }

  /** @internal Gives up stream `name` (another connection of the same sender took it over). */
  release(name: string, _why: FramewireError): void {
    for (const [id, s] of this.streams) {
      if (s.info.name === name) {
        this.detach(s);
        this.streams.delete(id);
      }
    }
  }

  private onClose(err: FramewireError | undefined): void {
    const wasOpen = this.handshaken;
    this.finish();
    if (wasOpen) {
      const error = this.byeReceived ? undefined : (err ?? this.closeError);
      if (channels.disconnect.hasSubscribers) {
        channels.disconnect.publish({ server: this.server, connection: this.info(), error });
      }
      this.server.emit('disconnect', this.info(), error);
    } else if (err) this.server.warn(err);
  }

  /** Closes the connection once what it received is stored. */
  async shutdown(reason: string): Promise<void> {
    if (this.finished) return;
    const idle = [...this.streams.values()].map((s) => s.record.idle);
    await Promise.all(idle);
    this.flushAcks();
    try {
      this.conn.send(encodeControl(MessageType.BYE, { reason }));
    } catch {
      /* gone */
    }
    this.finish();
    this.conn.close();
    await new Promise<void>((resolve) => {
      if (this.conn.closed) return resolve();
      const t = setTimeout(() => {
        this.conn.destroy();
        resolve();
      }, 1000);
      t.unref();
      this.conn.on('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ---- handshake and streams -------------------------------------------------------------------------

  private onHello(body: HelloBody): void {
    if (this.handshaken || this.pendingHello) throw new FramewireError('ERR_PROTOCOL', 'HELLO sent twice');
    if (body.protocol !== 1) {
      throw new FramewireError(
        'ERR_UNSUPPORTED_VERSION',
        `client speaks protocol ${String(body.protocol)}, this server speaks 1`,
      );
    }
    if (typeof body.epoch !== 'string' || body.epoch.length === 0 || body.epoch.length > 64) {
      throw new FramewireError('ERR_PROTOCOL', 'HELLO epoch must be a string of 1..64 characters');
    }
    if (!Array.isArray(body.streams))
      throw new FramewireError('ERR_PROTOCOL', 'HELLO streams must be an array');
    // It becomes the message channel's resume point, and an ACK's seq: a fraction or a number above
    // 2^53-1 would make encoding that ACK throw, outside any handler.
    const ms = body.messageSeq;
    if (ms !== undefined && !(Number.isSafeInteger(ms) && ms >= 0)) {
      throw new FramewireError(
        'ERR_PROTOCOL',
        `HELLO messageSeq ${JSON.stringify(ms)} is not an integer in 0..2^53-1`,
      );
    }
    this.client = typeof body.client === 'string' ? body.client.slice(0, 200) : '';
    const token = this.server.options.token;
    if (token !== undefined) {
      const senderNonce = body.auth?.nonce;
      if (!isNonce(senderNonce)) {
        throw authError(`${this.remote} sent no token; this receiver requires one`);
      }
      // Nothing is opened before the sender has proved it knows the token.
      this.pendingHello = body;
      this.receiverNonce = newNonce();
      const auth: AuthBody = {
        nonce: this.receiverNonce,
        proof: proof(token, 'receiver', senderNonce, this.receiverNonce),
      };
      this.conn.send(encodeControl(MessageType.AUTH, auth));
      return;
    }
    this.openSession(body);
  }

  private onAuth(body: AuthBody): void {
    const hello = this.pendingHello;
    const token = this.server.options.token;
    if (!hello || token === undefined || this.handshaken)
      throw new FramewireError('ERR_PROTOCOL', 'unexpected AUTH');
    this.pendingHello = undefined;
    if (!checkProof(token, 'sender', hello.auth!.nonce, this.receiverNonce, body.proof)) {
      throw authError(`${this.remote} gave a wrong token`);
    }
    this.openSession(hello);
  }

  private openSession(body: HelloBody): void {
    this.epoch = body.epoch;
    this.handshaken = true;
    // The HELLO arrived; the idle timer takes over from the handshake timer.
    const streams = body.streams;
    void (async () => {
      const points: ResumePoint[] = [];
      for (const d of streams) {
        const p = await this.openStream(d);
        if (p) points.push(p);
      }
      if (this.finished) return;
      const known = this.server.messageResume(this.epoch);
      const claimed = typeof body.messageSeq === 'number' ? body.messageSeq : 0;
      this.messageNext = Math.max(known, 0);
      // A restarted receiver does not know the channel; take the sender's word for where it starts.
      if (known === 0 && claimed > 0) this.messageNext = claimed;
      this.messageAcked = this.messageNext - 1;
      this.messageAckSent = this.messageAcked;
      const o = this.server.options.limits;
      const welcome: WelcomeBody = {
        protocol: 1,
        server: `framewire/${VERSION}`,
        session: this.id,
        streams: points,
        messageNext: this.messageNext,
        limits: {
          maxFrameBytes: o.maxFrameBytes,
          maxMetaBytes: o.maxMetaBytes,
          maxMessageBytes: o.maxMessageBytes,
        },
        verifyCrc: this.server.options.verifyCrc,
      };
      if (body.clock === CLOCK_VERSION) {
        this.clock = new ClockSync((m) => this.conn.send(m), {
          intervalMs: this.server.options.clockIntervalMs,
        });
        welcome.clock = CLOCK_VERSION;
      }
      this.conn.send(encodeControl(MessageType.WELCOME, welcome));
      this.clock?.start();
      if (channels.connection.hasSubscribers) {
        channels.connection.publish({ server: this.server, connection: this.info() });
      }
      this.server.emit('connection', this.info());
    })().catch((err) => this.fatal(toFramewireError(err, 'ERR_PROTOCOL', 'handshake')));
  }

  private onOpen(body: StreamDecl): void {
    void this.openStream(body)
      .then((p) => {
        if (p && !this.finished) this.conn.send(encodeControl(MessageType.OPENED, p));
      })
      .catch((err) => this.fatal(toFramewireError(err, 'ERR_PROTOCOL', 'open')));
  }

  /** Validates and claims one stream; answers a refusal with a non-fatal ERROR and returns undefined. */
  private async openStream(raw: unknown): Promise<ResumePoint | undefined> {
    const rawId = isObject(raw) && typeof raw.id === 'number' ? raw.id : undefined;
    try {
      const decl = checkDecl(raw);
      if (this.streams.has(decl.id) || this.opening.has(decl.id)) {
        throw new FramewireError('ERR_PROTOCOL', `stream id ${decl.id} is declared twice`);
      }
      if (this.streams.size + this.opening.size >= this.server.options.maxStreamsPerConnection) {
        throw new FramewireError(
          'ERR_TOO_MANY_STREAMS',
          `connection has ${this.server.options.maxStreamsPerConnection} streams already (maxStreamsPerConnection)`,
          { stream: decl.name },
        );
      }
      const names = [...[...this.streams.values()].map((s) => s.info.name), ...this.opening.values()];
      if (names.includes(decl.name)) {
        throw new FramewireError('ERR_PROTOCOL', `stream "${decl.name}" is declared twice`);
      }
      this.opening.set(decl.id, decl.name);
      try {
        const { record, info } = await this.server.claim(this, decl, this.remote);
        if (this.finished) {
          if (record.owner === this) record.owner = undefined;
          return undefined;
        }
        const s: RxStream = {
          id: decl.id,
          info,
          record,
          next: record.durableNext,
          queue: [],
          busy: false,
          acked: record.durableNext - 1,
          ackSent: record.durableNext - 1,
          drops: 0,
          idleResolve: undefined,
        };
        this.streams.set(decl.id, s);
        if (channels.stream.hasSubscribers) {
          channels.stream.publish({ server: this.server, stream: info, next: s.next });
        }
        this.server.emit('stream', info, { next: s.next });
        return { id: decl.id, next: s.next };
      } finally {
        this.opening.delete(decl.id);
      }
    } catch (err) {
      const e = toFramewireError(err, 'ERR_PROTOCOL', 'stream declaration');
      if (e.code === 'ERR_PROTOCOL' && rawId === undefined) throw e;
      this.server.warn(e);
      this.sendError(e.code, e.message, rawId === undefined ? {} : { stream: rawId });
      return undefined;
    }
  }

  // ---- frames ---------------------------------------------------------------------------------------

  private onFrame(f: WireFrame): void {
    const s = this.streams.get(f.streamId);
    if (!s) {
      this.sendError('ERR_UNKNOWN_STREAM', `stream id ${f.streamId} was not opened on this connection`, {
        stream: f.streamId,
        seq: f.seq,
      });
      return;
    }
    if (f.flags & Flags.RETRANSMIT && channels.retransmit.hasSubscribers) {
      const duplicate = f.seq < s.next;
      channels.retransmit.publish({ server: this.server, stream: s.info, seq: f.seq, duplicate });
    }
    if (f.seq < s.next) {
      // A resend of something we hold: acknowledge again once the pipeline has passed it.
      if (s.acked >= f.seq) {
        s.ackSent = Math.min(s.ackSent, f.seq - 1);
        this.scheduleAck();
      }
      return;
    }
    if (f.seq > s.next && s.info.mode === 'reliable') {
      throw new FramewireError(
        'ERR_SEQUENCE_GAP',
        `stream "${s.info.name}" expected frame ${s.next}, got ${f.seq}; resend from ${s.next}`,
        { stream: s.info.name, seq: f.seq },
      );
    }
    s.next = f.seq + 1;
    let refused: FramewireError | undefined;
    if (f.name !== '') {
      try {
        checkFileName(f.name, s.info.name, f.seq);
      } catch (err) {
        refused = err as FramewireError;
      }
    }
    if (s.info.mode === 'live' && s.queue.length >= this.server.options.liveQueueFrames) {
      // Newest wins: drop the oldest frame that is still waiting, never the one being stored.
      const dropped = s.queue.shift()!;
      this.addPending(-dropped.frame.payload.length);
      s.drops++;
      if (channels.drop.hasSubscribers) {
        const { seq, payload } = dropped.frame;
        const bytes = payload.length;
        channels.drop.publish({ server: this.server, stream: s.info, seq, bytes, reason: 'live-queue' });
      }
      this.server.emit(
        'frame-error',
        new FramewireError(
          'ERR_FRAME_DROPPED',
          `live stream "${s.info.name}" dropped frame ${dropped.frame.seq}: storage is slower than the stream`,
          {
            stream: s.info.name,
            seq: dropped.frame.seq,
          },
        ),
      );
    }
    s.queue.push({ frame: f, refused });
    this.addPending(f.payload.length);
    const o = this.server.options;
    if (
      !this.paused &&
      (this.pendingBytes > o.maxPendingBytes ||
        s.queue.length > o.maxPendingFrames ||
        this.server.pendingTotal > o.maxTotalPendingBytes)
    ) {
      this.paused = true;
      this.conn.pause();
    }
    if (!s.busy) void this.pump(s);
  }

  private addPending(delta: number): void {
    this.pendingBytes += delta;
    this.server.notePending(delta);
  }

  /** Reading resumes once what waits for storage is down to half of every limit. */
  private canResume(): boolean {
    const o = this.server.options;
    if (this.pendingBytes > o.maxPendingBytes / 2) return false;
    if (this.server.pendingTotal > o.maxTotalPendingBytes / 2) return false;
    for (const st of this.streams.values()) if (st.queue.length > o.maxPendingFrames / 2) return false;
    return true;
  }

  /** @internal Called by the server when the total pending bytes fell: resume if this session may. */
  tryResume(): void {
    if (this.paused && !this.finished && this.canResume()) {
      this.paused = false;
      this.conn.resume();
    }
  }

  private async pump(s: RxStream): Promise<void> {
    s.busy = true;
    s.record.idle = new Promise<void>((resolve) => {
      s.idleResolve = resolve;
    });
    try {
      for (;;) {
        const item = s.queue.shift();
        if (!item) break;
        const f = item.frame;
        this.addPending(-f.payload.length);
        this.tryResume();
        let refused = item.refused;
        if (!refused) {
          const rf: ReceivedFrame = {
            stream: s.info,
            seq: f.seq,
            captureUs: f.captureUs,
            receivedUs: wallUs(),
            contentType: f.contentType,
            pixelFormat: f.pixelFormat,
            width: f.width,
            height: f.height,
            name: f.name,
            meta: f.meta,
            data: f.payload,
            crc: f.crc,
            ...correctCapture(f.captureUs, this.clock?.estimate(), this.server.options.trustClocks),
          };
          try {
            const stored = this.server.deliverFrameFast(rf);
            if (stored) await stored;
          } catch (err) {
            const e = toFramewireError(err, 'ERR_WRITE_FAILED', `storing frame ${f.seq} of "${s.info.name}"`);
            if (e.code !== 'ERR_UNSAFE_NAME') {
              // Not stored: leave it unacknowledged, tell the sender, and let it resend after reconnecting.
              s.next = f.seq;
              s.queue.length = 0;
              this.fatal(e);
              return;
            }
            refused = e;
          }
          if (!refused) s.record.durableNext = f.seq + 1;
        }
        if (refused) {
          s.record.durableNext = f.seq + 1;
          this.sendError(refused.code, refused.message, { stream: s.id, seq: f.seq });
          this.server.emit('frame-error', refused);
        }
        s.acked = f.seq;
        this.scheduleAck();
        if (this.finished && s.record.owner !== this) break;
      }
    } finally {
      s.busy = false;
      s.idleResolve?.();
      s.idleResolve = undefined;
      this.maybeFinishBye();
    }
  }

  private scheduleAck(): void {
    if (this.ackScheduled || this.finished) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      this.flushAcks();
    });
  }

  /** Sends one cumulative ACK per stream that progressed: acks are coalesced, never one per frame. */
  private flushAcks(): void {
    if (this.conn.closed) return;
    for (const s of this.streams.values()) {
      if (s.acked > s.ackSent) {
        s.ackSent = s.acked;
        this.conn.send(encodeAck(s.id, s.acked));
      }
    }
    if (this.messageAcked > this.messageAckSent) {
      this.messageAckSent = this.messageAcked;
      this.conn.send(encodeAck(MESSAGE_CHANNEL, this.messageAcked));
    }
  }

  private maybeFinishBye(): void {
    if (!this.byeReceived || this.finished) return;
    for (const s of this.streams.values()) if (s.busy || s.queue.length > 0) return;
    this.flushAcks();
    this.conn.send(encodeControl(MessageType.BYE, { reason: 'bye' }));
    this.finish();
    this.conn.close();
  }

  // ---- JSON messages --------------------------------------------------------------------------------

  private onJsonMessage(m: WireMessage): void {
    if (m.seq < this.messageNext) {
      if (this.messageAcked >= m.seq) {
        this.messageAckSent = Math.min(this.messageAckSent, m.seq - 1);
        this.scheduleAck();
      }
      return;
    }
    this.messageNext = m.seq + 1;
    this.server.setMessageResume(this.epoch, this.messageNext);
    const rm: ReceivedMessage = {
      sender: this.remote,
      epoch: this.epoch,
      seq: m.seq,
      receivedUs: wallUs(),
      ref: m.ref,
      json: m.json,
      text: m.text,
    };
    this.messageChain = this.messageChain.then(async () => {
      if (this.finished) return;
      try {
        await this.server.deliverMessage(rm);
      } catch (err) {
        this.server.setMessageResume(this.epoch, m.seq);
        this.fatal(toFramewireError(err, 'ERR_WRITE_FAILED', `storing message ${m.seq}`));
        return;
      }
      this.messageAcked = m.seq;
      this.scheduleAck();
    });
  }
}
