/**
 * The receiver's limits: its settings with their defaults filled in, and the checks against them that bound
 * its memory and its connections (refusing a connection at accept, pausing and resuming a connection's reading).
 */
import type { Limits } from '../protocol/constants.js';
import type { TlsServerOptions } from '../transports/types.js';

/** The server's options with their defaults filled in (see ServerOptions in server.ts for each). */
export interface ServerSettings {
  limits: Limits;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  maxPendingBytes: number;
  maxStreamsPerConnection: number;
  liveQueueFrames: number;
  maxPendingFrames: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  maxTotalPendingBytes: number;
  maxPartialBytes: number;
  token: string | undefined;
  tls: TlsServerOptions | undefined;
  verifyCrc: boolean;
  trustClocks: boolean;
  clockIntervalMs: number;
}

/** The host part of a remote address (`host:port`). */
export function hostOfRemote(remote: string): string {
  const i = remote.lastIndexOf(':');
  return i < 0 ? remote : remote.slice(0, i);
}

/**
 * Why a new connection from `remote` is refused (too many in total, or from its address), or undefined when
 * it may stay; `remotes` are those of the connections there already.
 */
export function connectionRefusal(
  o: ServerSettings,
  remote: string,
  remotes: readonly string[],
): string | undefined {
  const address = hostOfRemote(remote);
  let fromAddress = 0;
  for (const r of remotes) if (hostOfRemote(r) === address) fromAddress++;
  return remotes.length >= o.maxConnections
    ? `the receiver has ${o.maxConnections} connections already (maxConnections)`
    : fromAddress >= o.maxConnectionsPerAddress
      ? `${address} has ${o.maxConnectionsPerAddress} connections already (maxConnectionsPerAddress)`
      : undefined;
}

/**
 * Whether a connection must stop reading: what it holds unstored (bytes), the queue of the stream that just
 * grew (frames), or what all connections hold together is over its limit.
 */
export function mustPause(
  o: ServerSettings,
  bytes: number,
  queueFrames: number,
  totalBytes: number,
): boolean {
  return bytes > o.maxPendingBytes || queueFrames > o.maxPendingFrames || totalBytes > o.maxTotalPendingBytes;
}

/** Reading resumes once what waits for storage is down to half of every limit. */
export function mayResume(
  o: ServerSettings,
  bytes: number,
  totalBytes: number,
  queueFrames: Iterable<number>,
): boolean {
  if (bytes > o.maxPendingBytes / 2) return false;
  if (totalBytes > o.maxTotalPendingBytes / 2) return false;
  for (const n of queueFrames) if (n > o.maxPendingFrames / 2) return false;
  return true;
}
