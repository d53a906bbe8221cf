/**
 * Options of the UDP transport, read from the endpoint URL: `udp://host:7070?mtu=1200&rate=50MB&latency=120`.
 * Parameters this transport does not know are left alone (other layers may use them).
 */
import { FramewireError } from '../../errors.js';
import { HEADER_BYTES, type Limits } from '../../protocol/constants.js';
import { parseByteSize } from '../../sizes.js';
import { DEFAULT_MTU, MAX_MTU, MIN_MTU } from './datagram.js';

export interface UdpOptions {
  /**
   * Largest datagram sent or accepted, UDP payload bytes. A sender's default is 1200; a listener's default
   * is 65507, so that the sender chooses; both sides use the smaller of their two values.
   */
  mtu: number;
  /** Rate cap in bytes per second, 0 for none (default: none; congestion control decides). */
  rateBytesPerSec: number;
  /** Latency budget of live messages that do not give their own (ms, default 120). */
  latencyMs: number;
  /** A side that sent nothing for this long sends a KEEPALIVE (ms, default 1000). */
  keepaliveMs: number;
  /** A peer heard from for this long is gone (ms, default 10000). */
  peerTimeoutMs: number;
  /** Socket receive buffer asked of the OS (bytes, default 8 MiB; the OS may give less). */
  rcvbufBytes: number;
  /** Socket send buffer asked of the OS (bytes, default 4 MiB). */
  sndbufBytes: number;
  /** Reassembly memory one peer may hold (bytes; default: the largest message the limits allow + 8 MiB). */
  maxReassemblyBytes: number;
  /** Reassembly memory all peers of a listener may hold together (bytes, default 256 MiB or more). */
  maxTotalReassemblyBytes: number;
  /** Peers one listener accepts at once (default 1024). */
  maxPeers: number;
}

export const UDP_URL_PARAMS = [
  'mtu',
  'rate',
  'latency',
  'keepalive',
  'timeout',
  'rcvbuf',
  'sndbuf',
  'reassembly',
  'total-reassembly',
  'max-peers',
] as const;

/** The largest message (protocol v1 header, head and body) the limits allow. */
export function maxMessageBytes(limits: Limits): number {
  return (
    HEADER_BYTES + 0xffff + Math.max(limits.maxFrameBytes, limits.maxMessageBytes, limits.maxControlBytes)
  );
}

function intParam(url: URL, name: string, dflt: number, min: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new FramewireError('ERR_BAD_OPTION', `udp option ${name}=${raw} must be an integer ${min}..${max}`);
  }
  return n;
}

function sizeParam(url: URL, name: string, dflt: number, min: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return dflt;
  const n = parseByteSize(raw, `udp option ${name}`);
  if (n < min)
    throw new FramewireError('ERR_BAD_OPTION', `udp option ${name}=${raw} must be at least ${min} bytes`);
  return n;
}

/** Checks an MTU value (from the URL, the CLI or the API). */
export function checkMtu(mtu: number): number {
  if (!Number.isInteger(mtu) || mtu > MAX_MTU) {
    throw new FramewireError(
      'ERR_DATAGRAM_TOO_LARGE',
      `udp: mtu ${mtu} is not a datagram size this transport can send (at most ${MAX_MTU} bytes)`,
      { hint: `use 1200 for internet paths, up to ${MAX_MTU} on loopback or jumbo-frame links` },
    );
  }
  if (mtu < MIN_MTU) throw new FramewireError('ERR_BAD_OPTION', `udp: mtu ${mtu} is below ${MIN_MTU} bytes`);
  return mtu;
}

export function parseUdpOptions(
  url: URL,
  limits: Limits,
  role: 'connect' | 'listen' = 'connect',
): UdpOptions {
  const rawMtu = url.searchParams.get('mtu');
  let mtu = role === 'listen' ? MAX_MTU : DEFAULT_MTU;
  if (rawMtu !== null && rawMtu !== '') {
    const n = Number(rawMtu);
    if (!Number.isInteger(n))
      throw new FramewireError('ERR_BAD_OPTION', `udp option mtu=${rawMtu} is not an integer`);
    mtu = checkMtu(n);
  }
  const largest = maxMessageBytes(limits);
  const perPeer = sizeParam(url, 'reassembly', largest + 8 * 1024 * 1024, 64 * 1024);
  return {
    mtu,
    rateBytesPerSec: sizeParam(url, 'rate', 0, 0),
    latencyMs: intParam(url, 'latency', 120, 1, 60_000),
    keepaliveMs: intParam(url, 'keepalive', 1000, 10, 600_000),
    peerTimeoutMs: intParam(url, 'timeout', 10_000, 50, 3_600_000),
    rcvbufBytes: sizeParam(url, 'rcvbuf', 8 * 1024 * 1024, 0),
    sndbufBytes: sizeParam(url, 'sndbuf', 4 * 1024 * 1024, 0),
    maxReassemblyBytes: perPeer,
    maxTotalReassemblyBytes: sizeParam(
      url,
      'total-reassembly',
      Math.max(256 * 1024 * 1024, perPeer),
      64 * 1024,
    ),
    maxPeers: intParam(url, 'max-peers', 1024, 1, 1_000_000),
  };
}
