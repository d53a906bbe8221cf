/**
 * MJPEG readers of /streams/NAME.mjpg: one multipart/x-mixed-replace response per reader, fed from a
 * one-frame slot (newest wins) while the socket has room.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReceivedFrame } from '../types.js';
import type { Client, ClientHost, ViewerDebug } from './viewer-clients.js';

const BOUNDARY = 'framewire-frame';

/** A reader of /streams/NAME.mjpg. */
export class MjpegClient implements Client {
  readonly protocol = 'mjpeg' as const;
  readonly id: number;
  readonly remote: string;
  readonly stream: string;
  readonly #res: ServerResponse;
  readonly #viewer: ClientHost;
  readonly #limit: number;
  #slot: ReceivedFrame | undefined;
  #waiting = false;
  #scheduled = false;
  #sent = 0;
  #drops = 0;

  constructor(
    viewer: ClientHost,
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

/** Writes the head of a multipart MJPEG response; false for HEAD, which the head answers in full. */
export function startMjpeg(req: IncomingMessage, res: ServerResponse): boolean {
  res.writeHead(200, {
    'Content-Type': `multipart/x-mixed-replace; boundary=${BOUNDARY}`,
    'Cache-Control': 'no-store, no-cache, must-revalidate',
    Pragma: 'no-cache',
    Connection: 'close',
  });
  if (req.method === 'HEAD') {
    res.end();
    return false;
  }
  res.socket?.setNoDelay(true);
  return true;
}
