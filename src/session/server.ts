/**
 * The receiving side: listeners on one or more endpoints, one ReceiverSession per connection, and the
 * stream registry that makes reliable delivery exactly-once across reconnects and restarts.
 *
 * A frame is acknowledged only after every sink has stored it. Frames of one stream are stored one at a
 * time in sequence order while the network keeps reading (bounded by maxPendingBytes per connection, beyond
 * which the socket is paused and TCP pushes back on the sender).
 *
 * This file is the public face (FramewireServer: options, listening, handing frames to the sinks); the
 * sessions are receiver.ts (connection, handshake) over delivery.ts (data path), with records.ts (streams
 * across connections), limits.ts and host.ts (what a session sees of the server).
 */
import { EventEmitter } from 'node:events';
import { channels } from '../diagnostics.js';
import { FramewireError, toFramewireError } from '../errors.js';
import { DEFAULT_LIMITS, type Limits, MessageType } from '../protocol/constants.js';
import { PartialBudget } from '../protocol/decoder.js';
import { FrameBufferPool } from '../protocol/frame-buffers.js';
import { encodeControl, type StreamDecl } from '../protocol/messages.js';
import { knownSchemes, parseEndpoint, transportFor } from '../transports/index.js';
import type { Connection, Listener, TlsServerOptions } from '../transports/types.js';
import {
  type ConnectionInfo,
  framesAtOnce,
  type ReceivedFrame,
  type ReceivedMessage,
  type ReceiverInfo,
  type Sink,
  type StreamInfo,
} from '../types.js';
import { checkToken } from './auth.js';
import type { ServerEvents } from './host.js';
import { connectionRefusal } from './limits.js';
import { ReceiverSession } from './receiver.js';
import { type RecordOwner, type StreamRecord, StreamRegistry } from './records.js';
import { type SyncIteratorOptions, syncGroups } from './sync.js';

export type { ServerEvents } from './host.js';
export { ReceiverSession } from './receiver.js';
export type { ConnectionInfo };

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
   * Bytes of messages still arriving (partly received, counted by their announced size), all connections
   * together, beyond which a connection whose message would go over is closed with ERR_RECEIVER_BUSY
   * (default 256 MiB, or 4 of the largest frame when that is more; at least one largest frame). Before its
   * handshake is done a connection may not start a FRAME or MESSAGE at all (ERR_EARLY_DATA), so strangers
   * hold at most `maxControlBytes` each.
   */
  maxPartialBytes?: number;
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
  /** @internal Frames of one stream handed to the sinks at once: the smallest frameConcurrency (max 1024). */
  readonly frameDepth: number;
  private readonly endpoints: string[];
  private readonly extraEndpoints: Readonly<Record<string, EndpointStarter>>;
  private bound: Listener[] = [];
  private readonly sessions = new Set<ReceiverSession>();
  private readonly registry = new StreamRegistry();
  private closing = false;
  /** Bytes received but not yet stored, all sessions together. */
  private pending = 0;
  /** @internal What the decoders of all connections hold of messages still arriving. */
  readonly partialBudget: PartialBudget;
  /** @internal Buffers of frame payloads, given back by releaseFrameData() and used again. */
  readonly frameBuffers = new FrameBufferPool();
  /** Payloads that 'frame' listeners or diagnostics subscribers saw: they may keep them. */
  readonly #shared = new WeakSet<Buffer>();

  constructor(options: ServerOptions = {}) {
    super();
    const listen = options.listen ?? 'tcp://0.0.0.0:7070';
    this.endpoints = Array.isArray(listen) ? listen : [listen];
    if (this.endpoints.length === 0)
      throw new FramewireError('ERR_BAD_OPTION', 'listen needs at least one endpoint');
    this.sinks = options.sinks ?? [];
    this.frameDepth = framesAtOnce(this.sinks, 1024);
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
      maxPartialBytes: 0,
    };
    const L = this.options.limits;
    // The most one message may announce: a full 16-bit head and the largest body.
    const largest = 0xffff + Math.max(L.maxFrameBytes, L.maxMessageBytes);
    const partial = options.maxPartialBytes ?? Math.max(256 * 1024 * 1024, 4 * largest);
    if (!Number.isSafeInteger(partial) || partial < largest) {
      throw new FramewireError(
        'ERR_BAD_OPTION',
        `maxPartialBytes ${String(options.maxPartialBytes)} must be an integer of at least one largest message (${largest} bytes: the largest body the limits allow and a full head)`,
      );
    }
    this.options.maxPartialBytes = partial;
    this.partialBudget = new PartialBudget(partial);
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
            frameBuffers: this.frameBuffers,
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

  /**
   * Takes a connection made outside the server's own listeners (e.g. a WebSocket the viewer's `/ws`
   * handed over, see webSocketSenders() in ws-senders.ts) as if one of them had accepted it: same limits, same token.
   */
  accept(conn: Connection): void {
    if (this.closing) {
      conn.destroy();
      return;
    }
    const refusal = connectionRefusal(
      this.options,
      conn.remote,
      [...this.sessions].map((s) => s.remote),
    );
    if (refusal) {
      // It goes in a moment; meanwhile it may not make the decoder reserve anything.
      conn.intake?.restrict(0, 'the connection was refused');
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

  /**
   * @internal A frame's sinks are done with it (its storing settled): its buffer goes back to the decoders'
   * pool when nothing can still hold it, i.e. every sink with frame() borrows frame data only for the call
   * (Sink.borrowsFrameData) and no 'frame' listener or diagnostics subscriber saw it. Otherwise the buffer is
   * left to the garbage collector, as any other.
   */
  releaseFrameData(data: Buffer): void {
    if (this.#shared.has(data)) return;
    for (const sink of this.sinks) if (sink.frame && sink.borrowsFrameData !== true) return;
    this.frameBuffers.give(data);
  }

  private announceFrame(frame: ReceivedFrame): void {
    if (channels.frame.hasSubscribers || this.listenerCount('frame') > 0) this.#shared.add(frame.data);
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
  claim(
    s: RecordOwner,
    decl: StreamDecl,
    sender: string,
  ): Promise<{ record: StreamRecord; info: StreamInfo }> {
    return this.registry.claim(s, decl, sender, this.sinks);
  }

  /** @internal */
  messageResume(epoch: string): number {
    return this.registry.messageResume(epoch);
  }

  /** @internal */
  setMessageResume(epoch: string, next: number): void {
    this.registry.setMessageResume(epoch, next);
  }
}
