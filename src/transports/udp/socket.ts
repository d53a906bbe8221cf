/** Socket helpers of the UDP transport. */
import type dgram from 'node:dgram';
import { FramewireError } from '../../errors.js';

/**
 * Asks the OS for larger socket buffers, halving a request it refuses (macOS fails rather than trims; Linux
 * trims to net.core.rmem_max silently). Returns the receive buffer the OS reports, which the handshake tells
 * the peer so that it never has more in flight than this socket can hold.
 */
export function setSocketBuffers(socket: dgram.Socket, rcvbuf: number, sndbuf: number): number {
  for (let want = rcvbuf; want >= 65_536; want = Math.floor(want / 2)) {
    try {
      socket.setRecvBufferSize(want);
      break;
    } catch {
      /* try a smaller one */
    }
  }
  for (let want = sndbuf; want >= 65_536; want = Math.floor(want / 2)) {
    try {
      socket.setSendBufferSize(want);
      break;
    } catch {
      /* try a smaller one */
    }
  }
  try {
    return socket.getRecvBufferSize();
  } catch {
    return 212_992;
  }
}

/** The error a failed send means for the connection, or undefined when it only counts as a lost datagram. */
export function sendErrorOf(err: NodeJS.ErrnoException, mtu: number): FramewireError | undefined {
  if (err.code === 'EMSGSIZE') {
    return new FramewireError(
      'ERR_DATAGRAM_TOO_LARGE',
      `udp: the OS refused a datagram of up to ${mtu} bytes (EMSGSIZE)`,
      {
        hint: 'lower the datagram size with --mtu (1200 fits ordinary paths; macOS sends at most 9216 unless sysctl net.inet.udp.maxdgram is raised)',
        cause: err,
      },
    );
  }
  return undefined;
}
