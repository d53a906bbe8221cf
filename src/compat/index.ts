/**
 * The seed programs' wire formats (docs/compat.md). Importing this module registers the three server
 * endpoints, so that `createServer({ listen: ['legacy-udp://0.0.0.0:9999', …] })` and
 * `framewire serve --listen legacy-…://` speak them beside the native endpoints:
 * - `legacy-udp://` pictures over UDP, one datagram each or a length header and 1024-byte chunks (port 9999);
 * - `legacy-json://` JSON messages over UDP, one datagram each (port 6666);
 * - `legacy-tcp://` the TCP folder-of-frames protocol (port 8000).
 * The ports in brackets are the defaults when a URL names none (the seed programs' ports).
 * It also registers ImageZMQ's two hub endpoints (src/compat/imagezmq): `izmq://` (a REP hub, port 5555)
 * and `izmq+sub://` (a SUB hub connected to a PUB sender).
 */
import { registerEndpoint } from '../session/server.js';
import { startImageZmqHub, startImageZmqSub } from './imagezmq/endpoint.js';
import { startLegacyJson } from './legacy-json.js';
import { startLegacyTcp } from './legacy-tcp.js';
import { startLegacyUdp } from './legacy-udp.js';

registerEndpoint('legacy-udp', startLegacyUdp);
registerEndpoint('legacy-json', startLegacyJson);
registerEndpoint('legacy-tcp', startLegacyTcp);
registerEndpoint('izmq', startImageZmqHub);
registerEndpoint('izmq+sub', startImageZmqSub);

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
export {
  type ImageZmqListener,
  ImageZmqSender,
  type ImageZmqSenderOptions,
  type ImageZmqSenderStats,
  IZMQ_DEFAULT_PORT,
  imageZmqEndpoints,
  izmqStreamName,
} from './imagezmq/index.js';
