/**
 * The live viewer: an HTTP server that shows every stream of a receiver in one web page, re-serves each
 * stream as MJPEG and as a latest-frame JPEG, lists the streams as JSON and exposes Prometheus metrics.
 *
 * It is a sink that never slows the receiver: `frame()` only puts the frame in one slot per stream and per
 * viewer (newest wins) and returns. Each viewer is fed from its own slots when its socket has room (a small
 * bufferedAmount limit), so a slow or stalled viewer costs at most one pending frame per stream plus that
 * limit, never slows the senders or the other viewers, and every frame it misses is counted.
 *
 * One WebSocket carries every stream to the page: browsers allow only about six HTTP connections per host,
 * so one MJPEG connection per tile would not scale. The protocol is described in docs/viewer.md.
 *
 * This file owns the ViewerSink facade (options, stream state, events, fan-out); the parts live beside it:
 * viewer-http.ts (routes), viewer-clients.ts (WebSocket pages), viewer-mjpeg.ts (MJPEG readers),
 * viewer-stats.ts (per-stream statistics), boxes.ts (detection boxes), viewer-page.ts (the page),
 * viewer-guard.ts (the Host allow-list and the viewer token), viewer-csp.ts (the pages' CSP).
 */

import diagnostics_channel from 'node:diagnostics_channel';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { WebSocket, WebSocketServer } from 'ws';
import { CHANNELS, type DisconnectEvent, type DropEvent, type StreamEvent } from '../diagnostics.js';
import { FramewireError } from '../errors.js';
import { jpegSize } from '../jpeg.js';
import { monoMs } from '../time.js';
import type {
  ReceivedFrame,
  ReceivedMessage,
  ReceiverInfo,
  Sink,
  StreamInfo,
  UpgradeHook,
} from '../types.js';
import { type Box, extractBoxes } from './boxes.js';
import { FramewireMetrics } from './metrics.js';
import { type SyncSource, SyncView } from './sync-view.js';
import { type Client, heartbeat, type ViewerDebug, WsClient } from './viewer-clients.js';
import { ViewerGuard } from './viewer-guard.js';
import { handleRequest, refuseUpgrade, send, type ViewerRoutes } from './viewer-http.js';
import { MjpegClient, startMjpeg } from './viewer-mjpeg.js';
import {
  countFrame,
  newState,
  type StreamState,
  type StreamStats,
  streamList,
  streamStats,
} from './viewer-stats.js';

const requireHere = createRequire(import.meta.url);

// The parts, importable from here as before the split.
export { type Box, extractBoxes } from './boxes.js';
export type { ViewerDebug } from './viewer-clients.js';
export { parseHostPort } from './viewer-http.js';
export type { StreamStats } from './viewer-stats.js';

/** Options of {@link ViewerSink}. */
export interface ViewerOptions {
  /** Address to listen on (default 127.0.0.1: only this machine; use 0.0.0.0 to share on the network). */
  host?: string;
  /** Port (default 8080; 0 picks a free one). */
  port?: number;
  /**
   * Bytes a viewer's socket may hold unsent before the viewer gets no more frames until it catches up
   * (newest wins meanwhile). Small, so that latency never builds up behind a slow viewer. Default 256 KiB.
   */
  maxBufferedBytes?: number;
  /** JSON messages kept and shown to a page that connects later (default 50). */
  messageHistory?: number;
  /** JSON text longer than this is cut for display (detections are still drawn). Default 16384 chars. */
  maxMessageChars?: number;
  /** Text bytes (messages, updates) queued for one viewer before its oldest are dropped. Default 1 MiB. */
  maxQueuedTextBytes?: number;
  /** WebSocket and MJPEG viewers at once (default 64); more are refused with 503. */
  maxViewers?: number;
  /** A stream whose sender left is shown as offline this long, then removed (ms, default 30000). */
  offlineMs?: number;
  /** How often pages get stream statistics (ms, default 1000). */
  statsIntervalMs?: number;
  /** Interval of WebSocket pings; a page that answers none of two is closed (ms, default 15000). */
  heartbeatMs?: number;
  /** Serve `GET /metrics` (default true). */
  metrics?: boolean;
  /** Serve the page over https (PEM): browsers give a page on another machine the camera only then. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  /**
   * More names the viewer answers to in the `Host` header (`--view-host`), with any port: the name of a
   * reverse proxy or of this machine on the LAN. Loopback names and the bound address always work (with a
   * wildcard bind address: this machine's interface addresses); any other `Host` gets 421 (DNS rebinding).
   */
  allowedHosts?: readonly string[] | undefined;
  /**
   * A secret every request must carry (`--view-token`): `?token=` (sets a cookie for the page's later
   * requests), `Authorization: Bearer`, or that cookie; otherwise 401.
   */
  token?: string | undefined;
}

/** Frames shown to viewers: what a browser decodes. MJPEG carries JPEG only. */
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png']);

/** Wire form of a message for the page. */
interface PageMessage {
  seq: number;
  sender: string;
  receivedUs: number;
  ref: { stream: string; seq: number } | undefined;
  text: string;
  truncated: boolean;
  boxes: Box[] | undefined;
  normalized: boolean;
}

/**
 * The live viewer sink. Put it first in the server's sinks (it returns at once, so the frame reaches the
 * page before slower sinks store it):
 *
 * ```ts
 * const viewer = await createViewer({ port: 8080 });
 * const server = await createServer({ listen: 'tcp://0.0.0.0:7070', sinks: [viewer, folder] });
 * console.log(viewer.url);
 * ```
 *
 * Stream arrivals, disconnections, receiver drops and metrics come from the diagnostics channels of the
 * servers that list the viewer among their sinks (or that were passed to {@link ViewerSink.attach}).
 */
export class ViewerSink implements Sink {
  readonly options: Required<Omit<ViewerOptions, 'host' | 'port' | 'tls' | 'allowedHosts' | 'token'>> & {
    host: string;
    port: number;
    allowedHosts: readonly string[];
  };
  /** Prometheus metrics of the servers this viewer serves; undefined with `metrics: false`. */
  readonly metrics: FramewireMetrics | undefined;
  readonly #streams = new Map<string, StreamState>();
  readonly #clients = new Set<Client>();
  readonly #attached = new Set<ReceiverInfo>();
  readonly #messages: PageMessage[] = [];
  readonly #unsubscribe: Array<() => void> = [];
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  #timers: NodeJS.Timeout[] = [];
  #nextId = 1;
  #port = 0;
  #listening = false;
  #closing: Promise<void> | undefined;
  #streamsDirty = false;
  #senders: UpgradeHook | undefined;
  #sync: SyncView | undefined;
  readonly #secure: boolean;
  readonly #guard: ViewerGuard;

  constructor(options: ViewerOptions = {}) {
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 8080,
      maxBufferedBytes: options.maxBufferedBytes ?? 256 * 1024,
      messageHistory: options.messageHistory ?? 50,
      maxMessageChars: options.maxMessageChars ?? 16_384,
      maxQueuedTextBytes: options.maxQueuedTextBytes ?? 1024 * 1024,
      maxViewers: options.maxViewers ?? 64,
      offlineMs: options.offlineMs ?? 30_000,
      statsIntervalMs: options.statsIntervalMs ?? 1000,
      heartbeatMs: options.heartbeatMs ?? 15_000,
      metrics: options.metrics ?? true,
      allowedHosts: [...(options.allowedHosts ?? [])],
    };
    this.#guard = new ViewerGuard(
      {
        bindHost: this.options.host,
        allowedHosts: this.options.allowedHosts,
        token: options.token,
        secure: !!options.tls,
      },
      () => this.#port,
    );
    const accept = (s: ReceiverInfo) => this.#accepts(s);
    if (this.options.metrics) {
      this.metrics = new FramewireMetrics({ accept });
      this.metrics.setViewerCounts(() => {
        let websocket = 0;
        let mjpeg = 0;
        for (const c of this.#clients) {
          if (c.protocol === 'websocket') websocket++;
          else mjpeg++;
        }
        return { websocket, mjpeg };
      });
    }
    this.#on<StreamEvent>(CHANNELS.stream, (e) => this.#onStream(e.stream));
    this.#on<DisconnectEvent>(CHANNELS.disconnect, (e) => this.#onDisconnect(e.connection.remote));
    this.#on<DropEvent>(CHANNELS.drop, (e) => {
      const s = this.#streams.get(e.stream.name);
      if (s) s.receiverDrops++;
    });

    const routes: ViewerRoutes = {
      metrics: this.metrics,
      streams: () => this.streams(),
      viewers: () => this.#clients.size,
      stream: (name) => this.#streams.get(name),
      mjpeg: (req, res, name) => this.#mjpeg(req, res, name),
      extra: (path, res) => this.#sync?.handle(path, res) === true,
    };
    this.#secure = !!options.tls;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (!this.#guard.refuseRequest(req, res)) handleRequest(routes, req, res);
    };
    this.#http = options.tls ? createHttpsServer(options.tls, onRequest) : createHttpServer(onRequest);
    // Required here, not at import: a process that never starts a viewer does not carry `ws`.
    const { WebSocketServer } = requireHere('ws') as typeof import('ws');
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024, perMessageDeflate: false });
    this.#http.on('upgrade', (req, socket, head) => this.#upgrade(req, socket as Socket, head));
  }

  /** Starts listening. Rejects with ERR_LISTEN_FAILED (e.g. the port is in use). */
  async start(): Promise<void> {
    if (this.#listening) return;
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        reject(
          new FramewireError(
            'ERR_LISTEN_FAILED',
            `viewer cannot listen on ${host}:${port}: ${err.code ?? err.message}`,
            {
              cause: err,
              hint:
                err.code === 'EADDRINUSE' ? 'choose another port with --view HOST:PORT' : 'check the address',
            },
          ),
        );
      };
      this.#http.once('error', onError);
      this.#http.listen(port, host, () => {
        this.#http.off('error', onError);
        resolve();
      });
    });
    const addr = this.#http.address();
    this.#port = typeof addr === 'object' && addr ? addr.port : port;
    this.#listening = true;
    this.#timers.push(setInterval(() => this.#tick(), this.options.statsIntervalMs));
    this.#timers.push(setInterval(() => heartbeat(this.#clients), this.options.heartbeatMs));
    for (const t of this.#timers) t.unref();
  }

  /** The bound port (useful with port 0). */
  get port(): number {
    return this.#port;
  }

  /** The page's address, e.g. http://127.0.0.1:8080/ (a wildcard host is shown as 127.0.0.1). */
  get url(): string {
    let h = this.options.host;
    if (h === '0.0.0.0' || h === '::' || h === '') h = '127.0.0.1';
    if (h.includes(':')) h = `[${h}]`;
    return `${this.#secure ? 'https' : 'http'}://${h}:${this.#port}/`;
  }

  /**
   * Lets framewire senders in at `/ws` (the capture page, `send --to ws://HOST:PORT/ws`): an upgrade
   * the hook takes (it asks for the framewire subprotocol) is the hook's; pages keep the rest.
   */
  takeSenders(hook: UpgradeHook | undefined): void {
    this.#senders = hook;
  }

  /** Shows the groups of a sync sink at /sync, and its unpaired counts in /api/streams and /metrics. */
  addSync(source: SyncSource): void {
    this.#sync = new SyncView(source);
    this.metrics?.addSync(source);
  }

  /** Also shows the streams of `server` (its stream, disconnect and drop events) even if not its sink. */
  attach(server: ReceiverInfo): void {
    this.#attached.add(server);
    this.metrics?.attach(server);
  }

  /** Connected viewers and what each holds: the bounded queues, for tests and troubleshooting. */
  debug(): ViewerDebug[] {
    return [...this.#clients].map((c) => c.debug());
  }

  /** Statistics of every stream, as served by GET /api/streams. */
  streams(): StreamStats[] {
    return [...this.#streams.values()].map((s) => streamStats(s, this.#sync?.unpaired(s.info.name)));
  }

  /** @internal The picture size last seen on stream `name`. */
  streamSize(name: string): { width: number; height: number } | undefined {
    return this.#streams.get(name);
  }

  /** @internal */
  countViewerDrop(stream: string): void {
    const s = this.#streams.get(stream);
    if (s) s.viewerDrops++;
    this.metrics?.viewerDropped(stream);
  }

  // ---- Sink ---------------------------------------------------------------------------------------------

  /** Takes the newest frame of a stream for every viewer and returns at once (never slows acks). */
  frame(f: ReceivedFrame): void {
    if (this.#closing) return;
    const name = f.stream.name;
    let s = this.#streams.get(name);
    if (!s) {
      s = newState(f.stream);
      this.#streams.set(name, s);
      this.#streamsDirty = true;
    } else if (s.info.epoch !== f.stream.epoch || s.info.kind !== f.stream.kind || !s.online) {
      s.info = f.stream;
      s.online = true;
      s.lastSeq = -1;
      this.#streamsDirty = true;
    }
    countFrame(s, f);
    if (!IMAGE_TYPES.has(f.contentType)) return;
    let { width, height } = f;
    if ((width === 0 || height === 0) && f.contentType === 'image/jpeg') {
      const size = jpegSize(f.data);
      if (size) ({ width, height } = size);
    }
    if (width !== s.width || height !== s.height) {
      s.width = width;
      s.height = height;
      this.#streamsDirty = true;
    }
    s.latest = f;
    for (const c of this.#clients) c.offer(f);
    if (this.#streamsDirty) this.#broadcastStreams();
  }

  /** Shows a JSON message in the page's panel (and its boxes over the frame it names); returns at once. */
  message(m: ReceivedMessage): void {
    if (this.#closing) return;
    const max = this.options.maxMessageChars;
    const found = extractBoxes(m.json);
    const pm: PageMessage = {
      seq: m.seq,
      sender: m.sender,
      receivedUs: m.receivedUs,
      ref: m.ref,
      text: m.text.length > max ? m.text.slice(0, max) : m.text,
      truncated: m.text.length > max,
      boxes: found?.boxes,
      normalized: found?.normalized ?? false,
    };
    this.#messages.push(pm);
    while (this.#messages.length > this.options.messageHistory) this.#messages.shift();
    this.#broadcast(JSON.stringify({ type: 'message', message: pm }));
  }

  /** Closes every viewer connection and the HTTP server. Safe to call more than once. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    for (const off of this.#unsubscribe.splice(0)) off();
    this.metrics?.close();
    for (const c of this.#clients) c.close();
    if (!this.#listening) return;
    await new Promise<void>((resolve) => {
      this.#http.close(() => resolve());
      // Keep-alive HTTP connections and MJPEG readers would hold close() open.
      setTimeout(() => this.#http.closeAllConnections(), 200).unref();
    });
    this.#wss.close();
  }

  // ---- server events ----------------------------------------------------------------------------------

  #accepts(server: ReceiverInfo): boolean {
    return this.#attached.has(server) || server.sinks.includes(this);
  }

  #on<E extends { server: ReceiverInfo }>(name: string, handle: (event: E) => void): void {
    const fn = (message: unknown) => {
      const e = message as E;
      if (!this.#closing && this.#accepts(e.server)) handle(e);
    };
    diagnostics_channel.subscribe(name, fn);
    this.#unsubscribe.push(() => diagnostics_channel.unsubscribe(name, fn));
  }

  #onStream(info: StreamInfo): void {
    const s = this.#streams.get(info.name);
    if (!s) this.#streams.set(info.name, newState(info));
    else {
      if (s.info.epoch !== info.epoch) s.lastSeq = -1;
      s.info = info;
      s.online = true;
    }
    this.#broadcastStreams();
  }

  #onDisconnect(remote: string): void {
    let changed = false;
    for (const s of this.#streams.values()) {
      if (s.online && s.info.sender === remote) {
        s.online = false;
        s.offlineSince = monoMs();
        changed = true;
      }
    }
    if (changed) this.#broadcastStreams();
  }

  #tick(): void {
    const now = monoMs();
    for (const [name, s] of this.#streams) {
      if (!s.online && now - s.offlineSince > this.options.offlineMs) {
        this.#streams.delete(name);
        this.#streamsDirty = true;
      }
    }
    if (this.#streamsDirty) this.#broadcastStreams();
    const pages = [...this.#clients].filter((c): c is WsClient => c instanceof WsClient);
    if (pages.length === 0) return;
    const streams = this.streams();
    for (const c of pages) {
      const d = c.debug();
      c.text(
        JSON.stringify({
          type: 'stats',
          streams,
          viewer: { ...d, drops: Object.fromEntries(c.dropsByStream), dropsTotal: d.drops },
          viewers: this.#clients.size,
        }),
      );
    }
  }

  #broadcastStreams(): void {
    this.#streamsDirty = false;
    this.#broadcast(JSON.stringify({ type: 'streams', streams: streamList(this.#streams.values()) }));
  }

  #broadcast(text: string): void {
    for (const c of this.#clients) if (c instanceof WsClient) c.text(text);
  }

  // ---- viewers --------------------------------------------------------------------------------------------

  #mjpeg(req: IncomingMessage, res: ServerResponse, name: string): void {
    if (this.#clients.size >= this.options.maxViewers) {
      send(req, res, 503, 'text/plain', `too many viewers (maxViewers ${this.options.maxViewers})\n`);
      return;
    }
    if (!startMjpeg(req, res)) return;
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const c = new MjpegClient(this, this.#nextId++, res, remote, name, this.options.maxBufferedBytes);
    this.#clients.add(c);
    const gone = () => this.#clients.delete(c);
    res.on('close', gone);
    req.on('close', gone);
    // Start with the picture there is, so a reader shows something at once.
    const latest = this.#streams.get(name)?.latest;
    if (latest) c.offer(latest);
  }

  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // Host and token first: for the pages and for the framewire senders the hook would take alike.
    if (this.#guard.refuseUpgrade(req, socket)) return;
    const full = () => this.#clients.size >= this.options.maxViewers;
    const take = () => this.#senders?.(req, socket, head) === true;
    if (refuseUpgrade(req, socket, this.#closing !== undefined, full, take)) return;
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#page(ws, req));
  }

  #page(ws: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    const c = new WsClient(
      this,
      this.#nextId++,
      ws,
      remote,
      this.options.maxBufferedBytes,
      this.options.maxQueuedTextBytes,
    );
    this.#clients.add(c);
    ws.on('close', () => this.#clients.delete(c));
    ws.on('error', () => ws.terminate());
    ws.on('pong', () => {
      c.alive = true;
    });
    // The page sends nothing that matters; any message proves it is alive.
    ws.on('message', () => {
      c.alive = true;
    });
    c.text(
      JSON.stringify({
        type: 'hello',
        viewer: c.id,
        streams: streamList(this.#streams.values()),
        messages: this.#messages,
      }),
    );
    for (const s of this.#streams.values()) if (s.latest) c.offer(s.latest);
  }
}

/** Creates a viewer and starts listening (default 127.0.0.1:8080). */
export async function createViewer(options: ViewerOptions = {}): Promise<ViewerSink> {
  const v = new ViewerSink(options);
  await v.start();
  return v;
}
