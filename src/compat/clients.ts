/**
 * framewire as a client of servers written like the seed programs: pictures to a UDP picture server
 * (`legacy-udp://`), frames of a folder to a TCP folder server (`legacy-tcp://`), JSON messages to a UDP
 * message port (`legacy-json://`). Each waits for the server's answer as the seed clients do, but with a
 * deadline, and (where the format allows it) sends again instead of hanging. See docs/compat.md.
 */
export type { LegacyClientStats } from './client-common.js';
export { LegacyJsonClient, type LegacyJsonClientOptions, sendLegacyJson } from './client-json.js';
export { LegacyTcpClient, type LegacyTcpClientOptions } from './client-tcp.js';
export { LegacyUdpClient, type LegacyUdpClientOptions } from './client-udp.js';
