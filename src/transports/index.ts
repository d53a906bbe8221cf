/** The transport registry: one Transport per URL scheme. */
import { FramewireError } from '../errors.js';
import { tcpTransport } from './tcp.js';
import { tlsTransport } from './tls.js';
import type { Transport } from './types.js';
import { wsTransport } from './ws.js';

const registry = new Map<string, Transport>();

export function registerTransport(t: Transport): void {
  for (const s of t.schemes) registry.set(s, t);
}

registerTransport(tcpTransport);
registerTransport(tlsTransport);
registerTransport(wsTransport);

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
