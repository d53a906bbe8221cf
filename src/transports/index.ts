/**
 * The transports: one Transport per URL scheme, all listed here and nowhere else. A new transport
 * (docs/architecture.md) implements the Transport interface in its own module and is added to TRANSPORTS.
 */
import { FramewireError } from '../errors.js';
import { tcpTransport } from './tcp.js';
import { tlsTransport } from './tls.js';
import type { Transport } from './types.js';
import { udpTransport } from './udp/index.js';

/** Every built-in transport. */
export const TRANSPORTS: readonly Transport[] = [tcpTransport, tlsTransport, udpTransport];

const registry = new Map<string, Transport>(TRANSPORTS.flatMap((t) => t.schemes.map((s) => [s, t] as const)));

export function knownSchemes(): string[] {
  return [...registry.keys()];
}

export function transportFor(url: URL): Transport {
  const scheme = url.protocol.slice(0, -1);
  const t = registry.get(scheme);
  if (!t) {
    throw new FramewireError('ERR_UNSUPPORTED_SCHEME', `no transport for scheme "${scheme}"`, {
      hint: `use one of: ${knownSchemes()
        .map((s) => `${s}://`)
        .join(', ')}`,
    });
  }
  return t;
}

export type {
  Connection,
  Listener,
  TlsClientOptions,
  TlsServerOptions,
  Transport,
  TransportOptions,
} from './types.js';
export { DEFAULT_PORT, hostOf, parseEndpoint, portOf } from './url.js';
