/**
 * A TCP relay for tests: forwards 127.0.0.1:port to a target and can cut every connection on demand,
 * as a flaky network or a restarted router would.
 */
import net from 'node:net';

export interface CutProxy {
  port: number;
  /** Destroys every open connection through the proxy (both sides). */
  cut(): void;
  /** Changes where new connections go (e.g. to a restarted receiver on another port). */
  retarget(port: number): void;
  /** Bytes forwarded client → target so far. */
  forwarded(): number;
  /** Stops forwarding the target's bytes back to clients (a receiver that hangs), until thaw(). */
  freeze(): void;
  thaw(): void;
  close(): Promise<void>;
}

export async function startCutProxy(targetPort: number): Promise<CutProxy> {
  let target = targetPort;
  let bytes = 0;
  let frozen = false;
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('data', (d) => {
      bytes += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d) => {
      if (frozen) return;
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    cut() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    retarget(p: number) {
      target = p;
    },
    forwarded: () => bytes,
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const [a, b] of pairs) {
          a.destroy();
          b.destroy();
        }
        server.close(() => r());
      }),
  };
}
