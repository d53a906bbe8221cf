/** The udp:// options of `framewire send` and `serve` (--mtu, --rate), carried to the transport in the URL. */
import { InvalidArgumentError } from 'commander';
import { FramewireError } from '../errors.js';
import { parseByteSize } from '../sizes.js';
import { MAX_MTU, MIN_MTU } from '../transports/udp/datagram.js';
import { UsageError } from './common.js';

/** --mtu: a datagram size in bytes. */
export function parseMtu(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < MIN_MTU || n > MAX_MTU) {
    throw new InvalidArgumentError(`--mtu must be a datagram size of ${MIN_MTU}..${MAX_MTU} bytes`);
  }
  return n;
}

/** --rate: bytes per second, e.g. 50MB/s, 400KB, 1000000. */
export function parseRate(v: string): number {
  try {
    const n = parseByteSize(v, '--rate');
    if (n <= 0) throw new InvalidArgumentError('--rate must be above 0');
    return n;
  } catch (err) {
    if (err instanceof FramewireError) throw new InvalidArgumentError(`--rate: ${err.detail}`);
    throw err;
  }
}

/**
 * Adds --mtu and --rate to a udp:// endpoint as URL parameters (the transport reads them there). For other
 * schemes they mean nothing: a usage error when given.
 */
export function withUdpOptions(endpoint: string, opts: { mtu?: number; rate?: number }): string {
  if (opts.mtu === undefined && opts.rate === undefined) return endpoint;
  if (!/^udp:\/\//i.test(endpoint.trim())) {
    throw new UsageError(`--mtu and --rate apply to udp:// endpoints only, not ${endpoint}`);
  }
  const url = new URL(endpoint.trim());
  if (opts.mtu !== undefined) url.searchParams.set('mtu', String(opts.mtu));
  if (opts.rate !== undefined) url.searchParams.set('rate', String(opts.rate));
  return url.href;
}

/** Adds --mtu to every udp:// endpoint of `serve --listen`; a usage error when there is none. */
export function udpListenOptions(endpoints: string[], mtu: number | undefined): string[] {
  if (mtu === undefined) return endpoints;
  const udp = endpoints.filter((e) => /^udp:\/\//i.test(e.trim()));
  if (udp.length === 0)
    throw new UsageError('--mtu applies to udp:// endpoints; add one with --listen udp://…');
  return endpoints.map((e) => (udp.includes(e) ? withUdpOptions(e, { mtu }) : e));
}
