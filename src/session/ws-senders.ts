/**
 * Framewire senders over WebSocket on someone else's HTTP server: the glue between a receiver and an
 * {@link UpgradeHook} host such as the viewer (`viewer.takeSenders(webSocketSenders(server))`). The host
 * decides which upgrades reach the hook (the viewer: `/ws`, same origin); the hook takes those that ask for
 * the `framewire.v1` subprotocol and hands each WebSocket to the server as a Connection.
 */
import { wsAcceptor } from '../transports/ws.js';
import type { UpgradeHook } from '../types.js';
import type { FramewireServer } from './server.js';

/** An upgrade hook that makes `server` accept framewire senders from another HTTP server's upgrades. */
export function webSocketSenders(server: FramewireServer): UpgradeHook {
  const acceptor = wsAcceptor(
    { limits: server.options.limits, verifyCrc: server.options.verifyCrc },
    (conn) => server.accept(conn),
  );
  return (req, socket, head) => acceptor.handleUpgrade(req, socket, head);
}
