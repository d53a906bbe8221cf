/**
 * What the three legacy endpoints and clients share: the seed programs' reply texts and ports, endpoint
 * URL parsing, per-endpoint statistics, and the per-stream delivery chain that keeps a stream's frames in
 * order across connections.
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { channels } from '../diagnostics.js';
import { FramewireError } from '../errors.js';
import type { ConnectionInfo, FramewireServer } from '../session/server.js';
import type { Listener } from '../transports/types.js';
import { hostOf, parseEndpoint } from '../transports/url.js';
import type { StreamInfo } from '../types.js';

export const LEGACY_SCHEMES = ['legacy-udp', 'legacy-json', 'legacy-tcp'] as const;
export type LegacyScheme = (typeof LEGACY_SCHEMES)[number];

/** The ports the seed programs use; a legacy URL without a port gets its scheme's. */
export const LEGACY_DEFAULT_PORTS: Record<LegacyScheme, number> = {
  'legacy-udp': 9999,
  'legacy-json': 6666,
  'legacy-tcp': 8000,
};

/** The seed picture server's answer to each complete picture (its clients block on it). */
export const PICTURE_REPLY = 'get message!!!';
/**
 * framewire's answer to a picture it had to drop while the sender waits for an answer. The seed clients
 * only print what they receive, so it unblocks them; framewire's client resends on it. Off with `?nak=0`.
 */
export const PICTURE_NAK = 'lost message!!!';
/** The seed JSON server's answer to each message. */
export const MESSAGE_REPLY = 'get the msg';
/** framewire's answer to a datagram that is not JSON (the seed server crashed instead). */
export const MESSAGE_BAD = 'bad msg';
/** framewire's answer to a message it could not store. */
export const MESSAGE_LOST = 'lost msg';
/** The seed TCP server's answer to every header and payload piece. */
export const TCP_OK = 'ok';
export const TCP_CONTINUE = 'continue';
export const TCP_OVER = 'over';

/** Payload bytes per datagram in the seed's chunked UDP form. */
export const UDP_CHUNK = 1024;
/** The largest UDP payload over IPv4: 65535 - 8 (UDP header) - 20 (IP header). */
export const MAX_DATAGRAM = 65_507;
/** What the seed JSON server reads per datagram (`recvfrom(1024)`); longer messages arrive cut. */
export const SEED_JSON_MAX = 1024;

/** True when `to` names one of the legacy schemes. */
export function legacySchemeOf(to: string): LegacyScheme | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to.trim());
  const scheme = m?.[1]?.toLowerCase();
  return (LEGACY_SCHEMES as readonly string[]).includes(scheme ?? '') ? (scheme as LegacyScheme) : undefined;
}

/** A parsed legacy endpoint: host, port (the scheme's seed port when omitted) and query options. */
export interface LegacyAddress {
  scheme: LegacyScheme;
  host: string;
  port: number;
  params: URLSearchParams;
  /** `scheme://host:port`, for messages. */
  text: string;
}

/**
 * An endpoint URL of one of `allowed` schemes: host, port (`defaultPort(scheme)` when omitted), query
 * options, and the `scheme://host:port` text for messages. ERR_UNSUPPORTED_SCHEME for another scheme.
 */
export function endpointAddress<S extends string>(
  url: string | URL,
  allowed: readonly S[],
  defaultPort: (scheme: S) => number,
): { scheme: S; host: string; port: number; params: URLSearchParams; shownHost: string; text: string } {
  const u = typeof url === 'string' ? parseEndpoint(url, allowed) : url;
  const scheme = u.protocol.slice(0, -1) as S;
  if (!allowed.includes(scheme)) {
    throw new FramewireError(
      'ERR_UNSUPPORTED_SCHEME',
      `scheme "${scheme}" is not one of ${allowed.join(', ')}`,
    );
  }
  const host = hostOf(u);
  const port = u.port === '' ? defaultPort(scheme) : Number(u.port);
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    scheme,
    host,
    port,
    params: u.searchParams,
    shownHost,
    text: `${scheme}://${hostPort(host, port)}`,
  };
}

export function legacyAddress(url: string | URL, allowed: readonly LegacyScheme[]): LegacyAddress {
  const { scheme, host, port, params, text } = endpointAddress(url, allowed, (s) => LEGACY_DEFAULT_PORTS[s]);
  return { scheme, host, port, params, text };
}

/** Reads a numeric query option (`?timeout=500`); throws ERR_BAD_OPTION when it is not a number in range. */
export function numberParam(
  a: LegacyAddress,
  name: string,
  fallback: number,
  range: { min: number; max: number; integer?: boolean },
): number {
  const raw = a.params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (
    raw === '' ||
    !Number.isFinite(n) ||
    n < range.min ||
    n > range.max ||
    (range.integer && !Number.isInteger(n))
  ) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `${a.text}: ?${name}=${raw} must be a ${range.integer ? 'whole ' : ''}number from ${range.min} to ${range.max}`,
    );
  }
  return n;
}

/** Reads a boolean query option: `?single`, `?single=1`, `?nak=0`. */
export function flagParam(a: LegacyAddress, name: string, fallback: boolean): boolean {
  const raw = a.params.get(name);
  if (raw === null) return fallback;
  if (raw === '' || raw === '1' || raw === 'true' || raw === 'yes') return true;
  if (raw === '0' || raw === 'false' || raw === 'no') return false;
  throw new FramewireError('ERR_BAD_OPTION', `${a.text}: ?${name}=${raw} must be 1 or 0`);
}

/** "host:port", IPv6 hosts in brackets. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** A stream name for a UDP sender that passes the stream-name checks, e.g. `udp-127.0.0.1-53422`. */
export function udpStreamName(address: string, port: number): string {
  return `udp-${address.replace(/[^A-Za-z0-9.]/g, '_')}-${port}`;
}

export function legacyEpoch(): string {
  return `legacy-${randomBytes(6).toString('hex')}`;
}

/** Counters of one legacy endpoint. Every dropped picture, message or frame is counted once. */
export interface LegacyStats {
  /** Pictures, messages or frames handed to the sinks. */
  delivered: number;
  /** Their bytes. */
  bytes: number;
  /** Pictures, messages or frames not delivered, whatever the reason. */
  dropped: number;
  /** `dropped` by reason (e.g. `timeout`, `chunk-mismatch`, `bad-picture`, `bad-json`, `unsafe-name`). */
  drops: Record<string, number>;
  /** Other things worth counting that lost nothing (e.g. `empty-datagram`, `duplicate-header`, `naks`). */
  notes: Record<string, number>;
}

export function newStats(): LegacyStats {
  return { delivered: 0, bytes: 0, dropped: 0, drops: {}, notes: {} };
}

export function countDrop(stats: LegacyStats, reason: string): void {
  stats.dropped++;
  stats.drops[reason] = (stats.drops[reason] ?? 0) + 1;
}

export function countNote(stats: LegacyStats, what: string): void {
  stats.notes[what] = (stats.notes[what] ?? 0) + 1;
}

/** A bound legacy endpoint: a Listener with its counters. */
export interface LegacyListener extends Listener {
  readonly scheme: LegacyScheme;
  readonly stats: LegacyStats;
}

const endpointsOf = new WeakMap<FramewireServer, LegacyListener[]>();

export function rememberEndpoint(server: FramewireServer, l: LegacyListener): void {
  const list = endpointsOf.get(server) ?? [];
  list.push(l);
  endpointsOf.set(server, list);
}

export function forgetEndpoint(server: FramewireServer, l: LegacyListener): void {
  const list = endpointsOf.get(server);
  if (list)
    endpointsOf.set(
      server,
      list.filter((x) => x !== l),
    );
}

/** The legacy endpoints a server listens on, with their counters (what was delivered and dropped, and why). */
export function legacyEndpoints(server: FramewireServer): readonly LegacyListener[] {
  return endpointsOf.get(server) ?? [];
}

/**
 * Runs deliveries of one stream name one at a time, in call order, across every legacy connection and
 * sender of a server (sinks take a stream's frames one at a time).
 */
const chains = new WeakMap<FramewireServer, Map<string, Promise<unknown>>>();

export function inStreamOrder<T>(server: FramewireServer, stream: string, fn: () => Promise<T>): Promise<T> {
  let m = chains.get(server);
  if (!m) {
    m = new Map();
    chains.set(server, m);
  }
  const prev = m.get(stream) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => {});
  m.set(stream, tail);
  const map = m;
  void tail.then(() => {
    if (map.get(stream) === tail) map.delete(stream);
  });
  return run;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export function abortedError(what: string): FramewireError {
  return new FramewireError('ERR_CLOSED', `${what}: stopped`);
}

// Legacy streams and connections are announced like native ones: 'stream', 'connection' and 'disconnect'
// events, and the same diagnostics channels (src/session/diagnostics.ts), so logs and metrics see them.

export function announceStream(server: FramewireServer, stream: StreamInfo, next: number): void {
  if (channels.stream.hasSubscribers) channels.stream.publish({ server, stream, next });
  server.emit('stream', stream, { next });
}

export function announceConnection(server: FramewireServer, connection: ConnectionInfo): void {
  if (channels.connection.hasSubscribers) channels.connection.publish({ server, connection });
  server.emit('connection', connection);
}

export function announceDisconnect(
  server: FramewireServer,
  connection: ConnectionInfo,
  error: FramewireError | undefined,
): void {
  if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ server, connection, error });
  server.emit('disconnect', connection, error);
}

/** Binds a UDP socket for a legacy endpoint; a failure is ERR_LISTEN_FAILED with a hint. */
export function bindUdp(addr: { host: string; port: number; text: string }): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: net.isIPv6(addr.host) ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new FramewireError('ERR_LISTEN_FAILED', `cannot listen on ${addr.text}: ${err.code ?? err.message}`, {
          hint:
            err.code === 'EADDRINUSE'
              ? 'another program uses this port; pick another with --listen'
              : undefined,
          cause: err,
        }),
      );
    });
    socket.bind(addr.port, addr.host, () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}
