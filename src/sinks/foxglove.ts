/**
 * The Foxglove bridge: received streams as live channels of the Foxglove WebSocket protocol
 * (subprotocol `foxglove.websocket.v1`), for Foxglove and its open-source fork Lichtblick. The protocol is
 * spoken by `FoxgloveServer` of `@foxglove/ws-protocol`; this sink only maps frames and messages onto it:
 *
 * - each stream is a channel, topic `/<stream>`: `foxglove.CompressedImage` for JPEG and PNG,
 *   `foxglove.RawImage` for raw frames of a pixel format Foxglove knows; JSON encoding (bytes in base64);
 * - JSON messages are one channel, topic `/messages` (the message as sent, with its sender and frame ref);
 * - a stream's channel is advertised when its first frame arrives;
 * - a frame is encoded only when someone subscribed to its channel, and a client whose socket holds more
 *   than `maxBufferedBytes` unsent gets no frames until it has room again: a slow client is dropped to the
 *   newest frame and never queues.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type foxglove from '@foxglove/ws-protocol';
import type { WebSocket, WebSocketServer } from 'ws';
import { FramewireError } from '../errors.js';
import type { PixelFormat } from '../protocol/constants.js';
import type { ReceivedFrame, ReceivedMessage, Sink } from '../types.js';

type IWebSocket = foxglove.IWebSocket;
type FoxServer = InstanceType<typeof foxglove.FoxgloveServer>;

/** Options of {@link FoxgloveSink}. */
export interface FoxgloveOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 8765, Foxglove's usual one; 0 picks a free one). */
  port?: number;
  /** Bytes a client's socket may hold unsent before it gets no more frames until it has room. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Server name shown in Foxglove (default "framewire"). */
  name?: string;
}

const TIME_SCHEMA = {
  type: 'object',
  properties: { sec: { type: 'integer', minimum: 0 }, nsec: { type: 'integer', minimum: 0 } },
};

const COMPRESSED_IMAGE_SCHEMA = JSON.stringify({
  title: 'foxglove.CompressedImage',
  description: 'A compressed image',
  type: 'object',
  properties: {
    timestamp: TIME_SCHEMA,
    frame_id: { type: 'string' },
    data: { type: 'string', contentEncoding: 'base64' },
    format: { type: 'string' },
  },
});

const RAW_IMAGE_SCHEMA = JSON.stringify({
  title: 'foxglove.RawImage',
  description: 'A raw image',
  type: 'object',
  properties: {
    timestamp: TIME_SCHEMA,
    frame_id: { type: 'string' },
    width: { type: 'integer', minimum: 0 },
    height: { type: 'integer', minimum: 0 },
    encoding: { type: 'string' },
    step: { type: 'integer', minimum: 0 },
    data: { type: 'string', contentEncoding: 'base64' },
  },
});

/** framewire pixel formats that foxglove.RawImage shows, with bytes per pixel. */
const RAW_ENCODINGS: Partial<Record<PixelFormat, [string, number]>> = {
  gray8: ['mono8', 1],
  gray16le: ['mono16', 2],
  rgb24: ['rgb8', 3],
  bgr24: ['bgr8', 3],
  rgba32: ['rgba8', 4],
  bgra32: ['bgra8', 4],
};

type Part = string | ArrayBuffer | ArrayBufferView;

/**
 * The IWebSocket FoxgloveServer writes to, over a `ws` WebSocket: message data (sent as a header fragment,
 * then the payload fragment) is held back whole while the socket holds more than the limit; only the newest
 * held message of each subscription is kept, and it goes once the socket has room ({@link flush}).
 */
class NewestOnly implements IWebSocket {
  dropped = 0;
  #skipping: Part | undefined;
  readonly #held = new Map<number, [Part, Part]>();
  constructor(
    readonly ws: WebSocket,
    private readonly maxBuffered: number,
  ) {}
  get binaryType(): string {
    return this.ws.binaryType;
  }
  set binaryType(v: string) {
    this.ws.binaryType = v as 'arraybuffer';
  }
  get protocol(): string {
    return this.ws.protocol;
  }
  get onerror() {
    return this.ws.onerror as IWebSocket['onerror'];
  }
  set onerror(f) {
    this.ws.onerror = f ?? null;
  }
  get onopen() {
    return this.ws.onopen as IWebSocket['onopen'];
  }
  set onopen(f) {
    this.ws.onopen = f ?? null;
  }
  get onclose() {
    return this.ws.onclose as IWebSocket['onclose'];
  }
  set onclose(f) {
    this.ws.onclose = f ?? null;
  }
  get onmessage() {
    return this.ws.onmessage as IWebSocket['onmessage'];
  }
  set onmessage(f) {
    this.ws.onmessage = f ?? null;
  }
  close(): void {
    this.ws.close();
  }
  send(data: Part, options?: { fin?: boolean }): void {
    if (options?.fin === false) {
      // The start of a binary message (opcode, subscription id, time): all of it goes, or it is held.
      if (this.#held.size > 0 || this.ws.bufferedAmount > this.maxBuffered) {
        this.#skipping = data;
        return;
      }
    } else if (this.#skipping !== undefined) {
      const head = this.#skipping;
      this.#skipping = undefined;
      const view = head instanceof ArrayBuffer ? new DataView(head) : undefined;
      const sub = view && view.byteLength >= 5 ? view.getUint32(1, true) : -1;
      if (this.#held.has(sub)) this.dropped++;
      this.#held.set(sub, [head, data]);
      return;
    }
    this.ws.send(data, options ?? {});
  }

  /** Sends the held newest messages once the socket has room again. */
  flush(): void {
    if (this.#held.size === 0 || this.ws.bufferedAmount > this.maxBuffered) return;
    if (this.ws.readyState !== this.ws.OPEN) return;
    for (const [head, payload] of this.#held.values()) {
      this.ws.send(head, { fin: false });
      this.ws.send(payload, { fin: true });
    }
    this.#held.clear();
  }
}

interface Channel {
  id: number;
  subscribed: boolean;
}

/**
 * A sink that serves what the receiver gets to Foxglove (or Lichtblick): open a Foxglove WebSocket
 * connection to `ws://HOST:PORT`. See the module comment for the mapping.
 */
export class FoxgloveSink implements Sink {
  readonly options: Required<FoxgloveOptions>;
  // Made by start(), which loads the Foxglove and WebSocket packages.
  #fox: FoxServer | undefined;
  #http: Server | undefined;
  #wss: WebSocketServer | undefined;
  readonly #clients = new Set<NewestOnly>();
  readonly #channels = new Map<string, Channel>();
  readonly #byId = new Map<number, Channel>();
  #messages: Channel | undefined;
  #port = 0;
  #skipped = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: FoxgloveOptions = {}) {
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: options.port ?? 8765,
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
      name: options.name ?? 'framewire',
    };
  }

  /** Starts listening. Rejects with ERR_LISTEN_FAILED. */
  async start(): Promise<void> {
    // Loaded here, not when framewire is imported: a receiver without --foxglove does not carry them.
    const [fg, { WebSocketServer }] = await Promise.all([import('@foxglove/ws-protocol'), import('ws')]);
    // A CommonJS package: Node gives its exports as the default export, TypeScript's loaders as named ones.
    const FoxgloveServer = fg.FoxgloveServer ?? fg.default.FoxgloveServer;
    const fox = new FoxgloveServer({ name: this.options.name });
    this.#fox = fox;
    fox.on('subscribe', (id) => this.#subscribed(id, true));
    fox.on('unsubscribe', (id) => this.#subscribed(id, false));
    fox.on('error', () => {});
    this.#messages = this.#addChannel('/messages', 'framewire.Message', {
      type: 'object',
      properties: {
        sender: { type: 'string' },
        epoch: { type: 'string' },
        seq: { type: 'integer' },
        ref: { type: 'object' },
        json: {},
      },
    });
    const http = createHttpServer((_req, res) => {
      res
        .writeHead(426, { 'Content-Type': 'text/plain' })
        .end('framewire: open this address in Foxglove or Lichtblick (Foxglove WebSocket)\n');
    });
    this.#http = http;
    const wss = new WebSocketServer({
      server: http,
      perMessageDeflate: false,
      maxPayload: 64 * 1024,
      handleProtocols: (protocols) => fox.handleProtocols(protocols),
    });
    this.#wss = wss;
    wss.on('connection', (ws, req) => {
      const c = new NewestOnly(ws, this.options.maxBufferedBytes);
      this.#clients.add(c);
      ws.on('close', () => this.#clients.delete(c));
      ws.on('error', () => ws.terminate());
      fox.handleConnection(c, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
    });
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(
          new FramewireError('ERR_LISTEN_FAILED', `foxglove cannot listen on ${host}:${port}: ${err.code}`, {
            cause: err,
            hint: err.code === 'EADDRINUSE' ? 'choose another port with --foxglove HOST:PORT' : undefined,
          }),
        );
      http.once('error', onError);
      http.listen(port, host, () => {
        http.off('error', onError);
        resolve();
      });
    });
    this.#port = (http.address() as AddressInfo).port;
    // A client that caught up gets the newest held frame of each of its channels.
    this.#timer = setInterval(() => {
      for (const c of this.#clients) c.flush();
    }, 20);
    this.#timer.unref();
  }

  get port(): number {
    return this.#port;
  }

  /** The address to give Foxglove, e.g. ws://127.0.0.1:8765 (a wildcard host shown as 127.0.0.1). */
  get url(): string {
    let h = this.options.host;
    if (h === '0.0.0.0' || h === '::' || h === '') h = '127.0.0.1';
    if (h.includes(':')) h = `[${h}]`;
    return `ws://${h}:${this.#port}`;
  }

  /** Frames not sent to a client because its socket was full (newest wins), all clients together. */
  get dropped(): number {
    let n = 0;
    for (const c of this.#clients) n += c.dropped;
    return n;
  }

  /** Frames of a pixel format Foxglove cannot show, not published. */
  get skipped(): number {
    return this.#skipped;
  }

  frame(f: ReceivedFrame): void {
    if (!this.#fox) return;
    let encoding: [string, number] | undefined;
    const raw = f.contentType === 'raw';
    if (raw) {
      encoding = RAW_ENCODINGS[f.pixelFormat];
      if (!encoding) {
        this.#skipped++;
        return;
      }
    } else if (f.contentType !== 'image/jpeg' && f.contentType !== 'image/png') {
      this.#skipped++;
      return;
    }
    const topic = `/${f.stream.name}`;
    let ch = this.#channels.get(topic);
    if (!ch) {
      ch = raw
        ? this.#addChannel(topic, 'foxglove.RawImage', RAW_IMAGE_SCHEMA)
        : this.#addChannel(topic, 'foxglove.CompressedImage', COMPRESSED_IMAGE_SCHEMA);
      this.#channels.set(topic, ch);
    }
    if (!ch.subscribed) return;
    const timestamp = {
      sec: Math.floor(f.captureUs / 1e6),
      nsec: (f.captureUs % 1e6) * 1000,
    };
    const body =
      raw && encoding
        ? {
            timestamp,
            frame_id: f.stream.name,
            width: f.width,
            height: f.height,
            encoding: encoding[0],
            step: f.width * encoding[1],
            data: f.data.toString('base64'),
          }
        : {
            timestamp,
            frame_id: f.stream.name,
            data: f.data.toString('base64'),
            format: f.contentType === 'image/png' ? 'png' : 'jpeg',
          };
    this.#fox.sendMessage(ch.id, BigInt(f.captureUs) * 1000n, Buffer.from(JSON.stringify(body)));
  }

  message(m: ReceivedMessage): void {
    if (!this.#fox || !this.#messages?.subscribed) return;
    const body = { sender: m.sender, epoch: m.epoch, seq: m.seq, ref: m.ref, json: m.json };
    this.#fox.sendMessage(this.#messages.id, BigInt(m.receivedUs) * 1000n, Buffer.from(JSON.stringify(body)));
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const c of this.#clients) c.ws.terminate();
    const { wss, http } = { wss: this.#wss, http: this.#http };
    if (wss) await new Promise<void>((resolve) => wss.close(() => resolve()));
    if (http) await new Promise<void>((resolve) => http.close(() => resolve()));
  }

  #addChannel(topic: string, schemaName: string, schema: string | object): Channel {
    const id = this.#fox!.addChannel({
      topic,
      encoding: 'json',
      schemaName,
      schema: typeof schema === 'string' ? schema : JSON.stringify(schema),
      schemaEncoding: 'jsonschema',
    });
    const ch = { id, subscribed: false };
    this.#byId.set(id, ch);
    return ch;
  }

  #subscribed(id: number, on: boolean): void {
    const ch = this.#byId.get(id);
    if (ch) ch.subscribed = on;
  }
}

/** Creates a Foxglove bridge and starts listening (default 127.0.0.1:8765). */
export async function createFoxglove(options: FoxgloveOptions = {}): Promise<FoxgloveSink> {
  const s = new FoxgloveSink(options);
  await s.start();
  return s;
}
