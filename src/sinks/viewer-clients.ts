/**
 * The viewers fed by the sink: the Client contract, and the WebSocket page with its bounded queues (the
 * newest frame per stream and a byte-capped text queue), round-robin sending and heartbeat.
 */
import type { WebSocket } from 'ws';
import type { ReceivedFrame } from '../types.js';

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

/** What a client asks of the viewer it belongs to. */
export interface ClientHost {
  /** Counts a frame a slow viewer did not get (stream statistics and metrics). */
  countViewerDrop(stream: string): void;
  /** The picture size last seen on stream `name`. */
  streamSize(name: string): { width: number; height: number } | undefined;
}

/** A viewer the sink feeds: a WebSocket page or an MJPEG reader. */
export interface Client {
  readonly id: number;
  readonly protocol: 'websocket' | 'mjpeg';
  readonly remote: string;
  /** Offers a frame; replaces (and counts) an unsent older one of the same stream. */
  offer(frame: ReceivedFrame): void;
  debug(): ViewerDebug;
  close(): void;
}

/** A web page on the WebSocket. */
export class WsClient implements Client {
  readonly protocol = 'websocket' as const;
  readonly id: number;
  readonly remote: string;
  readonly ws: WebSocket;
  readonly #viewer: ClientHost;
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
    viewer: ClientHost,
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

/** Pings every page; a page that answered none since the last ping is closed. */
export function heartbeat(clients: Iterable<Client>): void {
  for (const c of clients) {
    if (!(c instanceof WsClient) || c.ws.readyState !== c.ws.OPEN) continue;
    if (!c.alive) {
      c.ws.terminate();
      continue;
    }
    c.alive = false;
    c.ws.ping();
  }
}
