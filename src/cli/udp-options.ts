/**
 * The udp:// options of `framewire send` and `serve` (--mtu, --rate, --latency), carried to the transport in
 * the URL: the udp transport and the client read them there, so `--latency 80` and `?latency=80` are one
 * setting. Whether an option applies to a scheme at all is checked by the table in applicability.ts.
 */
import { FramewireError } from '../errors.js';
import { schemeOf } from './applicability.js';

const PARAMS = ['mtu', 'rate', 'latency'] as const;

/**
 * Adds --mtu, --rate and --latency to a udp:// endpoint as URL parameters. The same setting given both as
 * an option and in the URL is a usage error (ERR_BAD_OPTION) rather than a silent choice.
 */
export function withUdpOptions(
  endpoint: string,
  opts: { mtu?: number | undefined; rate?: number | undefined; latency?: number | undefined },
): string {
  const given = PARAMS.filter((k) => opts[k] !== undefined);
  if (given.length === 0) return endpoint;
  if (!URL.canParse(endpoint.trim())) {
    throw new FramewireError('ERR_BAD_URL', `${JSON.stringify(endpoint)} is not a URL`, {
      hint: 'write it like udp://127.0.0.1:7070',
    });
  }
  if (schemeOf(endpoint) !== 'udp') {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `${given.map((k) => `--${k}`).join(', ')} apply to udp:// endpoints only, not ${endpoint}`,
    );
  }
  const url = new URL(endpoint.trim());
  for (const k of given) {
    if (url.searchParams.has(k)) {
      throw new FramewireError(
        'ERR_BAD_OPTION',
        `--${k} and ?${k}= in ${endpoint} set the same thing: give one of them`,
      );
    }
    url.searchParams.set(k, String(opts[k]));
  }
  return url.href;
}

/** Adds --mtu to every udp:// endpoint of `serve --listen` (the table checks that there is one). */
export function udpListenOptions(endpoints: string[], mtu: number | undefined): string[] {
  if (mtu === undefined) return endpoints;
  return endpoints.map((e) => (schemeOf(e) === 'udp' ? withUdpOptions(e, { mtu }) : e));
}

/** The latency budget a send over udp:// uses: --latency, else the URL's `?latency=`, else 120 ms. */
export function udpLatencyMs(endpoint: string): number {
  try {
    const v = new URL(endpoint.trim()).searchParams.get('latency');
    return v === null || v === '' ? 120 : Number(v);
  } catch {
    return 120;
  }
}
