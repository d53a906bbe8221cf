/**
 * The viewer's gate, checked before every HTTP route and every WebSocket upgrade (the pages', and the
 * framewire senders' at /ws):
 *
 * - the `Host` header must name this viewer: a loopback name (any port), the bound address with its port,
 *   the machine's own interface addresses with the port when bound to a wildcard, or a name given in
 *   `allowedHosts` (`--view-host`, any port). Anything else is a 421: a page of another site that points
 *   its own name at 127.0.0.1 (DNS rebinding) reaches the server, but never with an allowed `Host`.
 * - with a `token` (`--view-token`), the request must carry it: `Authorization: Bearer TOKEN`, `?token=`
 *   (which then sets an HttpOnly SameSite=Strict cookie, so the page's own requests and WebSocket work),
 *   or that cookie; otherwise 401. Compared in constant time.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { networkInterfaces } from 'node:os';
import { FramewireError } from '../errors.js';
import { monoMs } from '../time.js';
import { requestUrl } from '../urls.js';

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]', '']);

/** The options of the gate, as given in ViewerOptions. */
export interface GuardOptions {
  /** The address the viewer binds. */
  bindHost: string;
  /** More names the viewer answers to (`--view-host`). */
  allowedHosts: readonly string[];
  /** The viewer token (`--view-token`), if any. */
  token: string | undefined;
  /** Served over https (the cookie is then Secure). */
  secure: boolean;
}

/** Why a request is refused: the status and a one-line reason. */
export interface Refusal {
  status: 401 | 421;
  reason: string;
}

/** Splits a Host header value into a lower-case name (IPv6 in brackets) and a port; undefined if malformed. */
export function splitHost(value: string): { name: string; port: string | undefined } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9._-]+)(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return undefined;
  return { name: m[1]!.toLowerCase(), port: m[2] };
}

/** A host name as compared with the Host header: lower case, an IPv6 literal in brackets. */
function hostKey(name: string): string {
  const n = name.trim().toLowerCase();
  return n.includes(':') && !n.startsWith('[') ? `[${n}]` : n;
}

/** Checks an `allowedHosts` entry: a DNS name or an IP address, without scheme, port or path. */
export function checkAllowedHost(name: string): string {
  const key = hostKey(name);
  const parts = splitHost(key);
  if (!parts || parts.port !== undefined || key.length > 253) {
    throw new FramewireError('ERR_BAD_OPTION', `--view-host "${name}" is not a host name`, {
      hint: 'give a name or an address without scheme or port, e.g. --view-host cams.example.com',
    });
  }
  return parts.name;
}

/** How long the machine's addresses are taken as known (a wildcard bind checks Host against them). */
const ADDRESSES_MS = 2000;

/** Compares two secrets in constant time (whatever their lengths). */
function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The gate of one viewer. */
export class ViewerGuard {
  readonly #bind: string;
  readonly #wildcard: boolean;
  readonly #allowed: Set<string>;
  readonly #token: string | undefined;
  readonly #cookieValue: string;
  readonly #secure: boolean;
  readonly #port: () => number;

  constructor(options: GuardOptions, port: () => number) {
    this.#bind = hostKey(options.bindHost);
    this.#wildcard = WILDCARDS.has(this.#bind);
    this.#allowed = new Set(options.allowedHosts.map(checkAllowedHost));
    if (options.token !== undefined && options.token.length === 0) {
      throw new FramewireError('ERR_BAD_OPTION', 'the viewer token is empty', {
        hint: 'give a secret with --view-token, or none for no viewer token',
      });
    }
    this.#token = options.token;
    // The cookie holds a value derived from the token, not the token itself.
    this.#cookieValue = options.token
      ? createHmac('sha256', options.token).update('framewire viewer cookie v1').digest('base64url')
      : '';
    this.#secure = options.secure;
    this.#port = port;
  }

  /** The cookie's name: cookies are per host, not per port, so two viewers on one host keep theirs apart. */
  get cookieName(): string {
    return `framewire_view_${this.#port()}`;
  }

  /** True when `Host` names this viewer. */
  hostAllowed(host: string | undefined): boolean {
    if (host === undefined) return false;
    const h = splitHost(host);
    if (!h) return false;
    if (LOOPBACK.has(h.name) || this.#allowed.has(h.name)) return true;
    const port = String(this.#port());
    if (h.port !== undefined && h.port !== port) return false;
    if (h.port === undefined && port !== (this.#secure ? '443' : '80')) return false;
    if (!this.#wildcard) return h.name === this.#bind;
    // A wildcard is no name: the addresses this machine has are (they may change: looked up again after
    // ADDRESSES_MS).
    return this.#addresses().has(h.name);
  }

  #addressesAt = Number.NEGATIVE_INFINITY;
  #addressSet = new Set<string>();

  #addresses(): Set<string> {
    const now = monoMs();
    if (now - this.#addressesAt < ADDRESSES_MS) return this.#addressSet;
    const set = new Set<string>();
    for (const list of Object.values(networkInterfaces())) {
      for (const a of list ?? []) {
        if (a.scopeid) continue; // link-local IPv6 needs a zone, which Host cannot carry
        set.add(hostKey(a.address));
      }
    }
    this.#addressSet = set;
    this.#addressesAt = now;
    return set;
  }

  /**
   * Checks a request; undefined when it may go on. Sets the token cookie on `res` when the token came as
   * `?token=`.
   */
  check(req: IncomingMessage, res?: ServerResponse): Refusal | undefined {
    if (!this.hostAllowed(req.headers.host)) {
      return { status: 421, reason: 'this viewer does not answer to that Host' };
    }
    const token = this.#token;
    if (token === undefined) return undefined;
    // The browser asks for the icon of every page, the 401 page too; it holds nothing (204, no body).
    if (req.url === '/favicon.ico') return undefined;
    const auth = req.headers.authorization;
    const bearer = auth !== undefined ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
    if (bearer !== undefined && sameSecret(bearer, token)) return undefined;
    const cookie = this.#cookie(req.headers.cookie);
    if (cookie !== undefined && sameSecret(cookie, this.#cookieValue)) return undefined;
    const query = requestUrl(req.url)?.searchParams.get('token') ?? null;
    if (query !== null && sameSecret(query, token)) {
      res?.setHeader(
        'Set-Cookie',
        `${this.cookieName}=${this.#cookieValue}; Path=/; HttpOnly; SameSite=Strict${this.#secure ? '; Secure' : ''}`,
      );
      return undefined;
    }
    return { status: 401, reason: 'this viewer needs its token' };
  }

  /** Answers a refused HTTP request; true when it was refused. */
  refuseRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const r = this.check(req, res);
    if (!r) return false;
    const body =
      r.status === 401
        ? `${r.reason}: open the page once as /?token=TOKEN, or send Authorization: Bearer TOKEN\n`
        : `${r.reason} (allowed: loopback names, the bound address, --view-host names)\n`;
    res.writeHead(r.status, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      ...(r.status === 401 ? { 'WWW-Authenticate': 'Bearer realm="framewire viewer"' } : {}),
      ...(r.status === 421 ? { Connection: 'close' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }

  /** Answers a refused WebSocket upgrade on its raw socket; true when it was refused. */
  refuseUpgrade(req: IncomingMessage, socket: Socket): boolean {
    const r = this.check(req);
    if (!r) return false;
    const why = r.status === 401 ? 'Unauthorized' : 'Misdirected Request';
    socket.end(`HTTP/1.1 ${r.status} ${why}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    return true;
  }

  #cookie(header: string | undefined): string | undefined {
    if (!header) return undefined;
    const name = this.cookieName;
    for (const part of header.split(';')) {
      const i = part.indexOf('=');
      if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
    }
    return undefined;
  }
}
