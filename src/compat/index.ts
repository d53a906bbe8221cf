/**
 * The seed programs' wire formats (docs/compat.md). Three server endpoints, listed in src/endpoints.ts, so
 * that `createServer({ listen: ['legacy-udp://0.0.0.0:9999', …] })` and `framewire serve --listen
 * legacy-…://` speak them beside the native endpoints:
 * - `legacy-udp://` pictures over UDP, one datagram each or a length header and 1024-byte chunks (port 9999);
 * - `legacy-json://` JSON messages over UDP, one datagram each (port 6666);
 * - `legacy-tcp://` the TCP folder-of-frames protocol (port 8000).
 * The ports in brackets are the defaults when a URL names none (the seed programs' ports).
 */

export {
  type LegacyClientStats,
  LegacyJsonClient,
  type LegacyJsonClientOptions,
  LegacyTcpClient,
  type LegacyTcpClientOptions,
  LegacyUdpClient,
  type LegacyUdpClientOptions,
  sendLegacyJson,
} from './clients.js';
export {
  LEGACY_DEFAULT_PORTS,
  LEGACY_SCHEMES,
  type LegacyListener,
  type LegacyScheme,
  type LegacyStats,
  legacyEndpoints,
  MESSAGE_REPLY,
  PICTURE_NAK,
  PICTURE_REPLY,
} from './common.js';
export { startLegacyJson } from './legacy-json.js';
export { startLegacyTcp } from './legacy-tcp.js';
export { startLegacyUdp } from './legacy-udp.js';
