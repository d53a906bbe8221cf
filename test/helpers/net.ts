/** Network helpers for tests: everything on 127.0.0.1. */
import net from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a process that
 * must be told its port on the command line. Prefer port 0 where the code under test can report its port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
