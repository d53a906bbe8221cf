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
 */
import diagnostics_channel from 'node:diagnostics_channel';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { CHANNELS, type DisconnectEvent, type DropEvent, type StreamEvent } from '../diagnostics.js';
import { FramewireError } from '../errors.js';
import { jpegSize } from '../jpeg.js';
import type { SyncUnpairedReason } from '../sync/frames.js';
import { monoMs } from '../time.js';
import type { ReceivedFrame, ReceivedMessage, ReceiverInfo, Sink, StreamInfo } from '../types.js';
import { FramewireMetrics } from './metrics.js';
import { type SyncSource, SyncView } from './sync-view.js';
import { VIEWER_PAGE } from './viewer-page.js';

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
}

/** A detection box in the frame's pixels (or in 0..1 when the message says `normalized`). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  label?: string;
  score?: number;
}

/** Statistics of one stream, as `GET /api/streams` and the page show them. */
export interface StreamStats {
  name: string;
  kind: StreamInfo['kind'];
  mode: StreamInfo['mode'];
  sender: string;
  epoch: string;
  /** False once its sender disconnected (the stream is removed after `offlineMs`). */
  online: boolean;
  frames: number;
  bytes: number;
  /** Frames per second over the last two seconds. */
  fps: number;
  /** Mean end-to-end latency (receive time minus capture time) over the last two seconds, ms. */
  latencyMs: number | undefined;
  /** Sequence numbers skipped between received frames (dropped anywhere before the viewer). */
  missing: number;
  /** Live frames the receiver dropped because storage was slower than the stream. */
  receiverDrops: number;
  /** Frames not sent to slow viewers (all viewers together). */
  viewerDrops: number;
  width: number;
  height: number;
  contentType: string | undefined;
  lastSeq: number;
  lastCaptureUs: number | undefined;
  lastReceivedUs: number | undefined;
  /** Paths of the stream's MJPEG and latest-frame endpoints. */
  mjpeg: string;
  jpeg: string;
  /** The sender's clock minus the receiver's and its error bound, ms, from the latest frame (docs/sync.md). */
  clockOffsetMs: number | undefined;
  clockErrorMs: number | undefined;
  /** With `serve --sync`: frames of this stream left without a group, by reason. */
  unpaired?: Partial<Record<SyncUnpairedReason, number>>;
}

/** What `viewer.debug()` reports about each connected viewer (for tests and troubleshooting). */
export interface ViewerDebug {
  id: number;
  protocol: 'websocket' | 'mjpeg';
  remote: string;
  /** Frames waiting in this viewer's slots (at most one per stream). */
  queuedFrames: number;
  queuedBytes: number;
  queuedTexts: number;
  queuedTextBytes: number;
  /** Bytes written to the socket and not yet sent. */
  bufferedAmount: number;
  sentFrames: number;
  drops: number;
}

const BOUNDARY = 'framewire-frame';
/** Frames shown to viewers: what a browser decodes. MJPEG carries JPEG only. */
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png']);
const WINDOW_MS = 2000;

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function quad(v: unknown): [number, number, number, number] | undefined {
  if (Array.isArray(v) && v.length >= 4 && v.slice(0, 4).every(finite)) {
    return [v[0], v[1], v[2], v[3]] as [number, number, number, number];
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const w = o.w ?? o.width;
    const h = o.h ?? o.height;
    if (finite(o.x) && finite(o.y) && finite(w) && finite(h)) return [o.x, o.y, w, h];
  }
  return undefined;
}

function boxOf(v: unknown): Box | undefined {
  const plain = quad(v);
  if (plain && Array.isArray(v)) return { x: plain[0], y: plain[1], w: plain[2], h: plain[3] };
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const q = quad(o.box ?? o.bbox ?? o.rect) ?? plain;
  if (!q) return undefined;
  const box: Box = { x: q[0], y: q[1], w: q[2], h: q[3] };
  const label = o.label ?? o.class ?? o.name;
  if (typeof label === 'string') box.label = label.slice(0, 64);
  else if (finite(label)) box.label = String(label);
  const score = o.score ?? o.confidence ?? o.conf;
  if (finite(score)) box.score = score;
  return box;
}

/**
 * The detection boxes a JSON message carries, for drawing over the frame it refers to: `{"detections":
 * [[x,y,w,h], ...]}`, `[{"box":[x,y,w,h],"label":"person","score":0.9}, ...]`, and the like (keys
 * detections, boxes, objects or predictions; a box as [x,y,w,h] or {x,y,w,h} under box, bbox or rect).
 * `normalized` is true when every coordinate lies in 0..1 (fractions of the frame). Undefined when the
 * message carries no boxes. At most 1000 boxes.
 */
export function extractBoxes(json: unknown): { boxes: Box[]; normalized: boolean } | undefined {
  let list: unknown = json;
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    const o = json as Record<string, unknown>;
    list = o.detections ?? o.boxes ?? o.objects ?? o.predictions;
  }
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const boxes: Box[] = [];
  for (const item of list.slice(0, 1000)) {
    const b = boxOf(item);
    if (b) boxes.push(b);
  }
  if (boxes.length === 0) return undefined;
  const normalized = boxes.every((b) => [b.x, b.y, b.w, b.h].every((n) => n >= 0 && n <= 1));
  return { boxes, normalized };
}

/** Parses "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" (host defaults to `defaultHost`). */
export function parseHostPort(s: string, defaultHost = '127.0.0.1'): { host: string; port: number } {
  const t = s.trim();
  const m = /^\d+$/.test(t) ? ['', undefined, '', t] : /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(t);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new FramewireError('ERR_BAD_OPTION', `"${s}" is not HOST:PORT`, {
      hint: 'e.g. 127.0.0.1:8080, 0.0.0.0:8080 or :8080',
    });
  }
  const host = m[1] ?? m[2] ?? '';
  return { host: host === '' ? defaultHost : host, port };
}

/** Per stream state. */
interface StreamState {
  info: StreamInfo;
  online: boolean;
  offlineSince: number;
  latest: ReceivedFrame | undefined;
  width: number;
  height: number;
  frames: number;
  bytes: number;
  lastSeq: number;
  missing: number;
  receiverDrops: number;
  viewerDrops: number;
  clockOffsetUs: number | undefined;
  clockErrorUs: number | undefined;
  /** Arrival times (ms) and latencies (µs) of recent frames, a ring. */
  times: Float64Array;
  lat: Float64Array;
  n: number;
}

const RING = 128;

function newState(info: StreamInfo): StreamState {
  return {
    info,
    online: true,
    offlineSince: 0,
    latest: undefined,
    clockOffsetUs: undefined,
    clockErrorUs: undefined,
    width: 0,
    height: 0,
    frames: 0,
    bytes: 0,
    lastSeq: -1,
    missing: 0,
    receiverDrops: 0,
    viewerDrops: 0,
    times: new Float64Array(RING),
    lat: new Float64Array(RING),
    n: 0,
  };
}

interface Client {
  readonly id: number;
  readonly protocol: 'websocket' | 'mjpeg';
  readonly remote: string;
  /** Offers a frame; replaces (and counts) an unsent older one of the same stream. */
  offer(frame: ReceivedFrame): void;
  debug(): ViewerDebug;
  close(): void;
}

/** A web page on the WebSocket. */
class WsClient implements Client {
  readonly protocol = 'websocket' as const;
  readonly id: number;
  readonly remote: string;
  readonly ws: WebSocket;
  readonly #viewer: ViewerSink;
  readonly #limit: number;
  readonly #maxTextBytes: number;
  /** Newest unsent frame per stream; Map order makes the sending round-robin. */
  readonly #slots = new Map<string, ReceivedFrame>();
  #texts: string[] = [];
  #textBytes = 0;
  #scheduled = false;
  #sent = 0;
  #drops = 0;
  readonly dropsByStream = new Map<string, number>();
  alive = true;

  constructor(
    viewer: ViewerSink,
    id: number,
    ws: WebSocket,
    remote: string,
    limit: number,
    maxTextBytes: number,
  ) {
    this.#viewer = viewer;
    this.id = id;
    this.ws = ws;
    this.remote = remote;
    this.#limit = limit;
    this.#maxTextBytes = maxTextBytes;
  }

  offer(frame: ReceivedFrame): void {
    const name = frame.stream.name;
    if (this.#slots.has(name)) {
      this.#drops++;
      this.dropsByStream.set(name, (this.dropsByStream.get(name) ?? 0) + 1);
      this.#viewer.countViewerDrop(name);
    }
    this.#slots.set(name, frame);
    this.schedule();
  }

  /** Queues a text message; the oldest queued ones go when the queue passes its byte limit. */
  text(s: string): void {
    this.#texts.push(s);
    this.#textBytes += s.length;
    while (this.#textBytes > this.#maxTextBytes && this.#texts.length > 1) {
      this.#textBytes -= this.#texts.shift()!.length;
    }
    this.schedule();
  }

  /** Sends on the next turn of the event loop, so that frame() and message() return at once. */
  schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.pump();
    });
  }

  /** Sends what the socket has room for: texts first, then one frame per stream in turn. */
  pump(): void {
    const ws = this.ws;
    while (ws.readyState === ws.OPEN && ws.bufferedAmount < this.#limit) {
      const t = this.#texts.shift();
      if (t !== undefined) {
        this.#textBytes -= t.length;
        ws.send(t, (err) => this.#written(err));
        continue;
      }
      const next = this.#slots.entries().next();
      if (next.done) return;
      const [name, f] = next.value;
      this.#slots.delete(name);
      const s = this.#viewer.streamSize(name);
      const head = Buffer.from(
        JSON.stringify({
          stream: name,
          seq: f.seq,
          captureUs: f.captureUs,
          receivedUs: f.receivedUs,
          width: f.width || s?.width || 0,
          height: f.height || s?.height || 0,
          kind: f.stream.kind,
          contentType: f.contentType,
        }),
      );
      const prefix = Buffer.allocUnsafe(2);
      prefix.writeUInt16BE(head.length, 0);
      // Two fragments of one binary message: the payload is sent as it is, never copied into a new buffer.
      ws.send(Buffer.concat([prefix, head]), { binary: true, fin: false });
      ws.send(f.data, { binary: true, fin: true }, (err) => this.#written(err));
      this.#sent++;
    }
  }

  #written(err: Error | undefined | null): void {
    if (!err) this.pump();
  }

  debug(): ViewerDebug {
    let queuedBytes = 0;
    for (const f of this.#slots.values()) queuedBytes += f.data.length;
    return {
      id: this.id,
      protocol: this.protocol,
      remote: this.remote,
      queuedFrames: this.#slots.size,
      queuedBytes,
      queuedTexts: this.#texts.length,
      queuedTextBytes: this.#textBytes,
      bufferedAmount: this.ws.bufferedAmount,
      sentFrames: this.#sent,
      drops: this.#drops,
    };
  }

  close(): void {
    this.#slots.clear();
    this.#texts = [];
    this.#textBytes = 0;
    try {
      this.ws.close(1001, 'viewer closing');
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => this.ws.terminate(), 1000);
    t.unref();
  }
}

/** A reader of /streams/NAME.mjpg. */
class MjpegClient implements Client {
  readonly protocol = 'mjpeg' as const;
  readonly id: number;
  readonly remote: string;
  readonly stream: string;
  readonly #res: ServerResponse;
  readonly #viewer: ViewerSink;
  readonly #limit: number;
  #slot: ReceivedFrame | undefined;
  #waiting = false;
  #scheduled = false;
  #sent = 0;
  #drops = 0;

  constructor(
    viewer: ViewerSink,
    id: number,
    res: ServerResponse,
    remote: string,
    stream: string,
    limit: number,
  ) {
    this.#viewer = viewer;
    this.id = id;
    this.#res = res;
    this.remote = remote;
    this.stream = stream;
    this.#limit = limit;
    res.on('drain', () => {
      this.#waiting = false;
      this.pump();
    });
  }

  offer(frame: ReceivedFrame): void {
    if (frame.stream.name !== this.stream || frame.contentType !== 'image/jpeg') return;
    if (this.#slot) {
      this.#drops++;
      this.#viewer.countViewerDrop(this.stream);
    }
    this.#slot = frame;
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.pump();
    });
  }

  pump(): void {
    const res = this.#res;
    const f = this.#slot;
    if (!f || this.#waiting || res.destroyed || res.writableEnded) return;
    if (res.writableLength >= this.#limit) {
      this.#waiting = true;
      return;
    }
    this.#slot = undefined;
    const head =
      `--${BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: ${f.data.length}\r\n` +
      `X-Framewire-Seq: ${f.seq}\r\nX-Framewire-Capture-Us: ${f.captureUs}\r\n\r\n`;
    res.cork();
    res.write(head);
    res.write(f.data);
    const ok = res.write('\r\n');
    res.uncork();
    this.#sent++;
    if (!ok) this.#waiting = true;
  }

  debug(): ViewerDebug {
    return {
      id: this.id,
      protocol: this.protocol,
      remote: this.remote,
      queuedFrames: this.#slot ? 1 : 0,
      queuedBytes: this.#slot?.data.length ?? 0,
      queuedTexts: 0,
      queuedTextBytes: 0,
      bufferedAmount: this.#res.writableLength,
      sentFrames: this.#sent,
      drops: this.#drops,
    };
  }

  close(): void {
    this.#slot = undefined;
    this.#res.end();
    const t = setTimeout(() => this.#res.destroy(), 1000);
    t.unref();
  }
}

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
  readonly options: Required<Omit<ViewerOptions, 'host' | 'port'>> & { host: string; port: number };
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
  #sync: SyncView | undefined;

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
    };
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

    this.#http = createHttpServer((req, res) => this.#request(req, res));
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
    this.#timers.push(setInterval(() => this.#heartbeat(), this.options.heartbeatMs));
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
    return `http://${h}:${this.#port}/`;
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
    return [...this.#streams.values()].map((s) => this.#stats(s));
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
    if (s.lastSeq >= 0 && f.seq > s.lastSeq + 1) s.missing += f.seq - s.lastSeq - 1;
    s.lastSeq = f.seq;
    s.frames++;
    s.bytes += f.data.length;
    s.clockOffsetUs = f.clockOffsetUs;
    s.clockErrorUs = f.clockErrorUs;
    const k = s.n++ % RING;
    s.times[k] = performance.now();
    s.lat[k] = f.receivedUs - f.captureUs;
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

  #heartbeat(): void {
    for (const c of this.#clients) {
      if (!(c instanceof WsClient) || c.ws.readyState !== c.ws.OPEN) continue;
      if (!c.alive) {
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
    }
  }

  #stats(s: StreamState): StreamStats {
    const now = performance.now();
    const count = Math.min(s.n, RING);
    let inWindow = 0;
    let first = Number.POSITIVE_INFINITY;
    let last = 0;
    let latSum = 0;
    for (let i = 0; i < count; i++) {
      const t = s.times[i]!;
      if (now - t > WINDOW_MS) continue;
      inWindow++;
      first = Math.min(first, t);
      last = Math.max(last, t);
      latSum += s.lat[i]!;
    }
    const span = last - first;
    const fps = inWindow >= 2 && span > 0 ? ((inWindow - 1) * 1000) / span : 0;
    const enc = encodeURIComponent(s.info.name);
    return {
      name: s.info.name,
      kind: s.info.kind,
      mode: s.info.mode,
      sender: s.info.sender,
      epoch: s.info.epoch,
      online: s.online,
      frames: s.frames,
      bytes: s.bytes,
      fps: Math.round(fps * 10) / 10,
      latencyMs: inWindow > 0 ? Math.round(latSum / inWindow / 100) / 10 : undefined,
      missing: s.missing,
      receiverDrops: s.receiverDrops,
      viewerDrops: s.viewerDrops,
      width: s.width,
      height: s.height,
      contentType: s.latest?.contentType,
      lastSeq: s.lastSeq,
      lastCaptureUs: s.latest?.captureUs,
      lastReceivedUs: s.latest?.receivedUs,
      mjpeg: `/streams/${enc}.mjpg`,
      jpeg: `/streams/${enc}.jpg`,
      clockOffsetMs: s.clockOffsetUs === undefined ? undefined : s.clockOffsetUs / 1000,
      clockErrorMs: s.clockErrorUs === undefined ? undefined : s.clockErrorUs / 1000,
      ...(this.#sync?.unpaired(s.info.name) ? { unpaired: this.#sync.unpaired(s.info.name) } : {}),
    };
  }

  #streamList(): unknown[] {
    return [...this.#streams.values()].map((s) => ({
      name: s.info.name,
      kind: s.info.kind,
      mode: s.info.mode,
      sender: s.info.sender,
      online: s.online,
      width: s.width,
      height: s.height,
    }));
  }

  #broadcastStreams(): void {
    this.#streamsDirty = false;
    this.#broadcast(JSON.stringify({ type: 'streams', streams: this.#streamList() }));
  }

  #broadcast(text: string): void {
    for (const c of this.#clients) if (c instanceof WsClient) c.text(text);
  }

  // ---- HTTP --------------------------------------------------------------------------------------------

  #request(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://viewer');
    const path = url.pathname;
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/' || path === '/index.html') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Security-Policy':
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'",
      });
      res.end(req.method === 'HEAD' ? undefined : VIEWER_PAGE);
      return;
    }
    if (this.#sync?.handle(path, res)) return;
    if (path === '/api/streams') {
      const body = JSON.stringify({ streams: this.streams(), viewers: this.#clients.size }, null, 2);
      this.#send(req, res, 200, 'application/json; charset=utf-8', body);
      return;
    }
    if (path === '/metrics' && this.metrics) {
      const metrics = this.metrics;
      metrics.metrics().then(
        (text) => this.#send(req, res, 200, metrics.contentType, text),
        (err: Error) => this.#send(req, res, 500, 'text/plain', `${err.message}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      this.#send(req, res, 200, 'text/plain', 'ok\n');
      return;
    }
    const m = /^\/streams\/([^/]+)\.(mjpg|mjpeg|jpg|jpeg)$/.exec(path);
    if (m) {
      let name: string;
      try {
        name = decodeURIComponent(m[1]!);
      } catch {
        this.#send(req, res, 400, 'text/plain', 'bad stream name\n');
        return;
      }
      const s = this.#streams.get(name);
      if (!s) {
        this.#send(req, res, 404, 'text/plain', `no stream named ${JSON.stringify(name)}\n`);
        return;
      }
      if (m[2] === 'jpg' || m[2] === 'jpeg') this.#snapshot(req, res, s);
      else this.#mjpeg(req, res, name);
      return;
    }
    this.#send(req, res, 404, 'text/plain', 'not found\n');
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    type: string,
    body: string | Buffer,
  ): void {
    res.writeHead(status, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  #snapshot(req: IncomingMessage, res: ServerResponse, s: StreamState): void {
    const f = s.latest;
    if (!f) {
      this.#send(req, res, 404, 'text/plain', `stream ${JSON.stringify(s.info.name)} has no picture yet\n`);
      return;
    }
    res.setHeader('X-Framewire-Seq', String(f.seq));
    res.setHeader('X-Framewire-Capture-Us', String(f.captureUs));
    this.#send(req, res, 200, f.contentType, f.data);
  }

  #mjpeg(req: IncomingMessage, res: ServerResponse, name: string): void {
    if (this.#clients.size >= this.options.maxViewers) {
      this.#send(req, res, 503, 'text/plain', `too many viewers (maxViewers ${this.options.maxViewers})\n`);
      return;
    }
    res.writeHead(200, {
      'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
      'Cache-Control': 'no-store, no-cache, must-revalidate',
      Pragma: 'no-cache',
      Connection: 'close',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.socket?.setNoDelay(true);
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
    const url = new URL(req.url ?? '/', 'http://viewer');
    const refuse = (status: number, why: string): void => {
      socket.end(`HTTP/1.1 ${status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (url.pathname !== '/ws' || this.#closing) {
      refuse(404, 'Not Found');
      return;
    }
    // A page of another site must not read the cameras through the visitor's browser (no CORS for
    // WebSockets): browsers send Origin, and it must name this very host.
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let ok = false;
      try {
        ok = new URL(origin).host === req.headers.host;
      } catch {
        ok = false;
      }
      if (!ok) {
        refuse(403, 'Forbidden');
        return;
      }
    }
    if (this.#clients.size >= this.options.maxViewers) {
      refuse(503, 'Service Unavailable');
      return;
    }
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
        streams: this.#streamList(),
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
