/**
 * Every endpoint scheme a receiver can listen on beyond the protocol v1 transports (those are listed in
 * src/transports/index.ts), in one visible place. A new endpoint that speaks another program's wire format
 * (docs/architecture.md) lives in src/compat/ and is added to BUILTIN_ENDPOINTS.
 */
import { startLegacyJson, startLegacyTcp, startLegacyUdp } from './compat/index.js';
import { type EndpointStarter, FramewireServer, type ServerOptions } from './session/server.js';

/** The seed programs' formats (docs/compat.md). */
export const BUILTIN_ENDPOINTS: Readonly<Record<string, EndpointStarter>> = {
  'legacy-udp': startLegacyUdp,
  'legacy-json': startLegacyJson,
  'legacy-tcp': startLegacyTcp,
};

/**
 * Creates a receiver and binds every `listen` endpoint: the protocol v1 transports (tcp, tls, udp) and the
 * built-in endpoints above, plus any given in `options.endpoints`. Rejects with ERR_BAD_URL,
 * ERR_UNSUPPORTED_SCHEME or ERR_LISTEN_FAILED.
 */
export async function createServer(options: ServerOptions = {}): Promise<FramewireServer> {
  const server = new FramewireServer({
    ...options,
    endpoints: { ...BUILTIN_ENDPOINTS, ...options.endpoints },
  });
  await server.start();
  return server;
}
