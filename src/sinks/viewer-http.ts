/**
 * The viewer's HTTP side: the routes (page, /api/streams, /metrics, /healthz, /streams/NAME.jpg), their
 * security headers, the checks of a WebSocket upgrade (path, Origin), and the HOST:PORT syntax of --view.
 * The Host and token checks that come before all of it are viewer-guard.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { FramewireError } from '../errors.js';
import { requestUrl } from '../urls.js';
import { serveCapture } from './capture-page.js';
import type { FramewireMetrics } from './metrics.js';
import { CSS, JS, pageCsp } from './viewer-csp.js';
import { VIEWER_CSS, VIEWER_JS, VIEWER_PAGE } from './viewer-page.js';
import type { StreamState, StreamStats } from './viewer-stats.js';

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

/** What the routes read from the viewer. */
export interface ViewerRoutes {
  readonly metrics: FramewireMetrics | undefined;
  /** Statistics of every stream (GET /api/streams). */
  streams(): StreamStats[];
  /** Connected viewers (WebSocket and MJPEG). */
  viewers(): number;
  stream(name: string): StreamState | undefined;
  /** Serves /streams/NAME.mjpg to a new reader. */
  mjpeg(req: IncomingMessage, res: ServerResponse, name: string): void;
  /** Routes of an add-on (the /sync pages); true when it answered. */
  extra?(path: string, res: ServerResponse): boolean;
}

/** Answers one HTTP request (GET and HEAD only). */
export function handleRequest(routes: ViewerRoutes, req: IncomingMessage, res: ServerResponse): void {
  const url = requestUrl(req.url);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // A ?token= in the address must not leave in a Referer; nothing here is meant to be framed.
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Content-Security-Policy', "default-src 'none'; base-uri 'none'; frame-ancestors 'none'");
  if (!url) {
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('bad request target\n');
    return;
  }
  const path = url.pathname;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
    return;
  }
  if (serveCapture(path, req, res)) return;
  if (path === '/' || path === '/index.html') {
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      'Content-Security-Policy': pageCsp("img-src 'self' blob: data:"),
    });
    res.end(req.method === 'HEAD' ? undefined : VIEWER_PAGE);
    return;
  }
  if (path === '/viewer.js' || path === '/viewer.css') {
    send(req, res, 200, path === '/viewer.js' ? JS : CSS, path === '/viewer.js' ? VIEWER_JS : VIEWER_CSS);
    return;
  }
  if (routes.extra?.(path, res)) return;
  if (path === '/api/streams') {
    const body = JSON.stringify({ streams: routes.streams(), viewers: routes.viewers() }, null, 2);
    send(req, res, 200, 'application/json; charset=utf-8', body);
    return;
  }
  if (path === '/metrics' && routes.metrics) {
    const metrics = routes.metrics;
    metrics.metrics().then(
      (text) => send(req, res, 200, metrics.contentType, text),
      (err: Error) => send(req, res, 500, 'text/plain', `${err.message}\n`),
    );
    return;
  }
  if (path === '/favicon.ico') {
    // No icon: an empty answer rather than a 404 in the console of every page.
    res.writeHead(204, { 'Cache-Control': 'max-age=86400' }).end();
    return;
  }
  if (path === '/healthz') {
    send(req, res, 200, 'text/plain', 'ok\n');
    return;
  }
  const m = /^\/streams\/([^/]+)\.(mjpg|mjpeg|jpg|jpeg)$/.exec(path);
  if (m) {
    let name: string;
    try {
      name = decodeURIComponent(m[1]!);
    } catch {
      send(req, res, 400, 'text/plain', 'bad stream name\n');
      return;
    }
    const s = routes.stream(name);
    if (!s) {
      send(req, res, 404, 'text/plain', `no stream named ${JSON.stringify(name)}\n`);
      return;
    }
    if (m[2] === 'jpg' || m[2] === 'jpeg') snapshot(req, res, s);
    else routes.mjpeg(req, res, name);
    return;
  }
  send(req, res, 404, 'text/plain', 'not found\n');
}

/** A whole response with a body (none for HEAD), never cached. */
export function send(
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

function snapshot(req: IncomingMessage, res: ServerResponse, s: StreamState): void {
  const f = s.latest;
  if (!f) {
    send(req, res, 404, 'text/plain', `stream ${JSON.stringify(s.info.name)} has no picture yet\n`);
    return;
  }
  res.setHeader('X-Framewire-Seq', String(f.seq));
  res.setHeader('X-Framewire-Capture-Us', String(f.captureUs));
  send(req, res, 200, f.contentType, f.data);
}

/**
 * Refuses a WebSocket upgrade and returns true when it must not be taken: a path other than /ws or a
 * closing viewer (404), a foreign Origin (403), or as many viewers as allowed already (503). Also true when
 * `take` took the upgrade (a framewire sender at /ws).
 */
export function refuseUpgrade(
  req: IncomingMessage,
  socket: Socket,
  closing: boolean,
  full: () => boolean,
  take: () => boolean = () => false,
): boolean {
  const url = requestUrl(req.url);
  const refuse = (status: number, why: string): true => {
    socket.end(`HTTP/1.1 ${status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    return true;
  };
  if (!url) return refuse(400, 'Bad Request');
  if (url.pathname !== '/ws' || closing) return refuse(404, 'Not Found');
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
    if (!ok) return refuse(403, 'Forbidden');
  }
  // A framewire sender (the capture page, send --to ws://HOST:PORT/ws) is the receiver's, not a viewer.
  if (take()) return true;
  if (full()) return refuse(503, 'Service Unavailable');
  return false;
}
