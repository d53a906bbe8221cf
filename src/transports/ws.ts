/**
 * ws:// and wss:// — protocol v1 over WebSocket binary messages (the `ws` package on both sides).
 *
 * Mapping: every WebSocket message holds whole framewire messages, exactly one as written (a client as one
 * masked frame, ws-frames.ts; a server as two fragments `[header+head, payload]`, so that the payload is
 * never concatenated; the receiving side accepts either); a message that ends inside
 * a framewire message, a text message, or one larger than the limits allow ends the connection with an
 * ERR_* code (also given as the WebSocket close code and reason). permessage-deflate is off: frames are
 * JPEG, PNG or raw pixels, and compressing them costs CPU for nothing.
 */
import { EventEmitter } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { type ErrorCode, FramewireError, isErrorCode, toFramewireError } from '../errors.js';
import { HEADER_BYTES, type Limits, MessageType } from '../protocol/constants.js';
import { Decoder, type DecoderIntake } from '../protocol/decoder.js';
import { type Encoded, encodeControl, type Message } from '../protocol/messages.js';
import { requestUrl } from '../urls.js';
import { describeSocketError, listenServer } from './tcp.js';
import { tlsClientOptions, tlsError } from './tls.js';
import type { Connection, Listener, Transport, TransportOptions } from './types.js';
import { hostOf } from './url.js';
import { MaskedFrameWriter } from './ws-frames.js';

// The `ws` package is required on first use, not when framewire is imported: a receiver without ws://
// does not carry it in its heap (docs/benchmarks.md, "The receiver's heap").
const requireHere = createRequire(import.meta.url);
let wsPackage: typeof import('ws') | undefined;
function wsPackageLoaded(): typeof import('ws') {
  wsPackage ??= requireHere('ws') as typeof import('ws');
  return wsPackage;
}
/** WebSocket.OPEN, without loading the package for a constant. */
const OPEN = 1;

/** The WebSocket subprotocol a framewire sender asks for (Sec-WebSocket-Protocol). */
export const WS_SUBPROTOCOL = 'framewire.v1';

/** WebSocket close codes used for framewire's errors (RFC 6455 §7.4.1). */
const CLOSE_CODE: Partial<Record<ErrorCode, number>> = {
  ERR_FRAME_TOO_LARGE: 1009,
  ERR_MESSAGE_TOO_LARGE: 1009,
  ERR_META_TOO_LARGE: 1009,
  ERR_WS_TEXT: 1003,
};

/**
 * Largest WebSocket message accepted: the largest framewire message the limits allow (header, the largest
 * head a u16 can announce, the largest body). Anything larger is refused by `ws` before it is buffered.
 */
export function wsMaxPayload(limits: Limits): number {
  return (
    HEADER_BYTES + 0xffff + Math.max(limits.maxFrameBytes, limits.maxMessageBytes, limits.maxControlBytes)
  );
}

/** The port of a ws:// or wss:// URL: as written, else 80 or 443 (the WHATWG URL drops those). */
export function wsPortOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'wss:' ? 443 : 80;
}

function closeReason(err: FramewireError): string {
  // A close reason is at most 123 bytes of UTF-8.
  const b = Buffer.from(err.message, 'utf8');
  return b.length <= 123
    ? err.message
    : `${b
        .subarray(0, 120)
        .toString('utf8')
        .replace(/\uFFFD$/, '')}…`;
}

/** What a close code from the peer means, when it means an error. */
function closeError(code: number, reason: string, remote: string): FramewireError | undefined {
  if (code === 1000 || code === 1001 || code === 1005) return undefined;
  const why = reason ? `: ${reason}` : '';
  const c = reason.slice(0, Math.max(0, reason.indexOf(': ')));
  if (isErrorCode(c)) {
    return new FramewireError(c, `WebSocket ${remote} closed (${code}) ${reason.slice(c.length + 2)}`);
  }
  if (code === 1009)
    return new FramewireError(
      'ERR_FRAME_TOO_LARGE',
      `WebSocket ${remote} closed (1009 message too big)${why}`,
      {
        hint: 'the receiver refused a WebSocket message larger than its limits (--max-frame-bytes)',
      },
    );
  if (code === 1006) return new FramewireError('ERR_CLOSED', `WebSocket ${remote} closed abnormally (1006)`);
  return new FramewireError('ERR_CLOSED', `WebSocket ${remote} closed (${code})${why}`);
}

/** A Connection over one WebSocket: a Decoder per message on the read side, fragmented writes. */
export class WsConnection extends EventEmitter implements Connection {
  readonly remote: string;
  private readonly ws: WebSocket;
  private readonly socket: Socket;
  private readonly decoder: Decoder;
  private closeErr: FramewireError | undefined;
  private done = false;
  private readonly limits: Limits;
  /** While the receiver restricts this connection (before its handshake): why, for the error. */
  private restrictedWhy: string | undefined;
  /** A client's data messages, masked into reused buffers (ws-frames.ts); a server's go through `ws`. */
  private readonly frames: MaskedFrameWriter | undefined;

  constructor(
    ws: WebSocket,
    socket: Socket,
    limits: Limits,
    options: { verifyCrc?: boolean; client?: boolean } = {},
  ) {
    super();
    const verifyCrc = options.verifyCrc ?? true;
    this.frames = options.client ? new MaskedFrameWriter(socket) : undefined;
    this.ws = ws;
    this.limits = limits;
    this.socket = socket;
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    // The fragments of a message as they came (a sender writes [header + head, payload]): the decoder takes
    // them in turn and slices the payload out of its fragment, where 'nodebuffer' would concatenate first.
    ws.binaryType = 'fragments';
    this.decoder = new Decoder((msg: Message) => this.emit('message', msg), limits, { verifyCrc });
    ws.on('message', (fragments: Buffer[], isBinary: boolean) => {
      if (this.done) return;
      const data = fragments.length === 1 ? fragments[0]! : undefined;
      const size = fragments.reduce((n, f) => n + f.length, 0);
      if (!isBinary) {
        this.failWith(
          new FramewireError(
            'ERR_WS_TEXT',
            `WebSocket ${this.remote} sent a text message (${size} bytes); framewire messages are binary`,
          ),
        );
        return;
      }
      try {
        if (data) this.decoder.write(data);
        else for (const f of fragments) this.decoder.write(f);
        if (this.decoder.pendingBytes !== 0) {
          throw new FramewireError(
            'ERR_TRUNCATED',
            `WebSocket message of ${size} bytes from ${this.remote} ends inside a framewire message (${this.decoder.pendingBytes} bytes left over)`,
          );
        }
      } catch (err) {
        this.failWith(toFramewireError(err, 'ERR_PROTOCOL', 'decoder'));
      }
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' && this.restrictedWhy !== undefined) {
        this.closeErr ??= new FramewireError(
          'ERR_EARLY_DATA',
          `WebSocket ${this.remote} announced a message larger than a control message before ${this.restrictedWhy}; refused unread`,
          { cause: err },
        );
      } else if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
        this.closeErr ??= new FramewireError(
          'ERR_FRAME_TOO_LARGE',
          `WebSocket message from ${this.remote} exceeds ${wsMaxPayload(limits)} bytes (the limits: maxFrameBytes ${limits.maxFrameBytes})`,
          { cause: err },
        );
      } else if (err.code?.startsWith('WS_ERR_')) {
        this.closeErr ??= new FramewireError('ERR_PROTOCOL', `WebSocket ${this.remote}: ${err.message}`, {
          cause: err,
        });
      } else {
        this.closeErr ??= new FramewireError('ERR_CLOSED', `connection to ${this.remote}: ${err.message}`, {
          cause: err,
        });
      }
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.done = true;
      this.decoder.dispose();
      this.emit('close', this.closeErr ?? closeError(code, reason.toString('utf8'), this.remote));
    });
    socket.on('drain', () => this.emit('drain'));
  }

  /**
   * The decoder's intake, and `ws`'s own message limit with it: `ws` gathers a whole message before the
   * decoder sees it, so while the receiver accepts only control messages (before the handshake), a message
   * announcing more than one control message is refused from its WebSocket header, before `ws` holds any of
   * it. (`_receiver._maxPayload` is internal to `ws` 8; test/transports/ws-session.test.ts checks it.)
   */
  get intake(): DecoderIntake {
    const receiver = (this.ws as unknown as { _receiver?: { _maxPayload: number } })._receiver;
    return {
      restrict: (maxControlBytes, why) => {
        this.decoder.restrict(maxControlBytes, why);
        this.restrictedWhy = why;
        if (receiver) receiver._maxPayload = HEADER_BYTES + Math.max(0, maxControlBytes) + 64;
      },
      admitAll: () => {
        this.decoder.admitAll();
        this.restrictedWhy = undefined;
        if (receiver) receiver._maxPayload = wsMaxPayload(this.limits);
      },
      useBudget: (budget) => this.decoder.useBudget(budget),
    };
  }

  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  get closed(): boolean {
    return this.done || this.ws.readyState !== OPEN;
  }

  send(parts: Encoded): boolean {
    if (this.closed) return false;
    if (this.frames) {
      // A client: one masked frame per framewire message, its parts masked straight into one reused buffer.
      this.frames.write(parts);
      return !this.socket.writableNeedDrain;
    }
    const last = parts.length - 1;
    // A server: one WebSocket message per framewire message, its parts as fragments, so the payload is not
    // copied into one buffer (a server does not mask).
    for (let i = 0; i <= last; i++) this.ws.send(parts[i]!, { binary: true, fin: i === last });
    return !this.socket.writableNeedDrain;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  close(): void {
    if (this.ws.readyState === OPEN) this.ws.close(1000);
  }

  destroy(err?: FramewireError): void {
    if (err) this.closeErr ??= err;
    this.ws.terminate();
  }

  /** Tells the peer why (an ERROR message and the close code), then closes. */
  private failWith(err: FramewireError): void {
    this.closeErr ??= err;
    this.done = true;
    try {
      this.ws.send(
        Buffer.concat(
          encodeControl(MessageType.ERROR, { code: err.code, message: err.message, fatal: true }),
        ),
      );
      this.ws.close(CLOSE_CODE[err.code] ?? 1002, closeReason(err));
    } catch {
      this.ws.terminate();
    }
    // A peer that never answers the close must not keep the socket.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }
}

/** Takes HTTP upgrades and turns them into framewire Connections. */
export interface WsAcceptor {
  /**
   * Takes the upgrade when it asks for framewire (subprotocol `framewire.v1`), or always with
   * `anySubprotocol`; returns false (and leaves the socket alone) otherwise.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
}

/** True when the upgrade request offers the `framewire.v1` subprotocol. */
export function asksForFramewire(req: IncomingMessage): boolean {
  const h = req.headers['sec-websocket-protocol'];
  return typeof h === 'string' && h.split(',').some((p) => p.trim() === WS_SUBPROTOCOL);
}

/**
 * An acceptor of framewire senders over WebSocket, for any HTTP server (the ws:// listener, the viewer's
 * `/ws`). Each accepted WebSocket becomes a Connection handed to `onConnection`.
 */
export function wsAcceptor(
  options: Pick<TransportOptions, 'limits' | 'verifyCrc'>,
  onConnection: (conn: Connection) => void,
  anySubprotocol = false,
): WsAcceptor {
  const wss = new (wsPackageLoaded().WebSocketServer)({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: wsMaxPayload(options.limits),
    clientTracking: false,
    handleProtocols: (offered) => (offered.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
  });
  return {
    handleUpgrade(req, socket, head) {
      if (!anySubprotocol && !asksForFramewire(req)) return false;
      wss.handleUpgrade(req, socket, head, (ws) =>
        onConnection(
          new WsConnection(ws, socket as Socket, options.limits, { verifyCrc: options.verifyCrc ?? true }),
        ),
      );
      return true;
    },
  };
}

/** Refuses an upgrade with a plain HTTP answer. */
export function refuseUpgrade(socket: Duplex, status: number, why: string): void {
  socket.end(`HTTP/1.1 ${status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/** A browser's Origin, when it sends one, must name the host it connects to (no cross-site senders). */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

function withoutAddress<T extends { host?: unknown; port?: unknown }>(o: T): Omit<T, 'host' | 'port'> {
  const { host: _host, port: _port, ...rest } = o;
  return rest;
}

function connectWs(url: URL, options: TransportOptions): Promise<Connection> {
  const host = hostOf(url);
  const port = wsPortOf(url);
  const secure = url.protocol === 'wss:';
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const target = `${url.protocol}//${shownHost}:${port}${url.pathname}`;
  const t = options.tlsClient ?? {};
  return new Promise<Connection>((resolve, reject) => {
    let socket: Socket | undefined;
    const ws = new (wsPackageLoaded().WebSocket)(`${target}${url.search}`, [WS_SUBPROTOCOL], {
      perMessageDeflate: false,
      maxPayload: wsMaxPayload(options.limits),
      handshakeTimeout: options.connectTimeoutMs > 0 ? options.connectTimeoutMs : undefined,
      followRedirects: false,
      // The same TLS settings as tls:// (the URL gives the host and port).
      ...(secure ? withoutAddress(tlsClientOptions(host, port, t)) : {}),
    });
    const fail = (err: FramewireError) => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(err);
    };
    ws.once('upgrade', (res: IncomingMessage) => {
      socket = res.socket as Socket;
    });
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      res.resume();
      fail(
        new FramewireError(
          res.statusCode === 401 || res.statusCode === 403 ? 'ERR_AUTH' : 'ERR_UNREACHABLE',
          `${target} answered HTTP ${res.statusCode} ${res.statusMessage ?? ''} instead of a WebSocket`.trim(),
          { hint: 'check the path of the URL (the viewer takes senders at /ws)' },
        ),
      );
    });
    ws.once('error', (err: NodeJS.ErrnoException) => {
      if (/handshake has timed out/i.test(err.message)) {
        fail(
          new FramewireError(
            'ERR_UNREACHABLE',
            `no answer from ${target} within ${options.connectTimeoutMs} ms`,
          ),
        );
        return;
      }
      fail((secure ? tlsError(err, target) : undefined) ?? describeSocketError(err, target));
    });
    ws.once('open', () => {
      ws.removeAllListeners('error');
      ws.removeAllListeners('unexpected-response');
      if (ws.protocol !== WS_SUBPROTOCOL || !socket) {
        fail(
          new FramewireError(
            'ERR_PROTOCOL',
            `${target} opened a WebSocket without the ${WS_SUBPROTOCOL} subprotocol: not a framewire receiver`,
          ),
        );
        return;
      }
      resolve(new WsConnection(ws, socket, options.limits, { client: true }));
    });
  });
}

async function listenWs(
  url: URL,
  options: TransportOptions,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  const secure = url.protocol === 'wss:';
  const scheme = secure ? 'wss' : 'ws';
  let server: http.Server;
  if (secure) {
    const t = options.tlsServer;
    if (!t?.cert || !t.key) {
      throw new FramewireError('ERR_BAD_OPTION', `${url.href} needs a certificate and a key`, {
        hint: 'give --cert FILE and --key FILE (PEM)',
      });
    }
    server = https.createServer({
      cert: t.cert,
      key: t.key,
      ...(t.ca ? { ca: t.ca } : {}),
      requestCert: !!t.requestCert,
      rejectUnauthorized: !!t.requestCert,
      minVersion: 'TLSv1.2',
    });
    server.on('tlsClientError', () => {});
  } else {
    server = http.createServer();
  }
  // Only the path of the URL takes senders ("/" when none is given: then any path does).
  const path = url.pathname === '' ? '/' : url.pathname;
  const acceptor = wsAcceptor(options, onConnection, true);
  server.on('request', (_req, res) => {
    res
      .writeHead(426, { Upgrade: 'websocket', Connection: 'Upgrade', 'Content-Type': 'text/plain' })
      .end('framewire: this endpoint takes WebSocket senders only\n');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const target = requestUrl(req.url);
    if (!target) return refuseUpgrade(socket, 400, 'Bad Request');
    if (path !== '/' && target.pathname !== path) return refuseUpgrade(socket, 404, 'Not Found');
    if (!sameOrigin(req)) return refuseUpgrade(socket, 403, 'Forbidden');
    acceptor.handleUpgrade(req, socket, head);
  });
  const l = await listenServer(server, new URL(`tcp://${url.hostname}:${wsPortOf(url)}`), scheme);
  return {
    url: path === '/' ? l.url : `${l.url}${path}`,
    host: l.host,
    port: l.port,
    close: l.close,
  };
}

export const wsTransport: Transport = {
  schemes: ['ws', 'wss'],
  connect: connectWs,
  listen: listenWs,
};
