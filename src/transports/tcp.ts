/** tcp:// — protocol v1 over a plain TCP connection. */
import net from 'node:net';
import { FramewireError } from '../errors.js';
import { StreamConnection } from './stream.js';
import type { Connection, Listener, Transport, TransportOptions } from './types.js';
import { hostOf, portOf } from './url.js';

export function describeSocketError(err: NodeJS.ErrnoException, target: string): FramewireError {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') {
    return new FramewireError('ERR_UNREACHABLE', `nothing is listening at ${target} (connection refused)`, {
      hint: 'start the receiver first (framewire serve) or check the host and port',
      cause: err,
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new FramewireError('ERR_UNREACHABLE', `cannot resolve host of ${target} (${code})`, {
      hint: 'check the host name in the URL',
      cause: err,
    });
  }
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new FramewireError('ERR_UNREACHABLE', `cannot reach ${target} (${code})`, { cause: err });
  }
  return new FramewireError('ERR_UNREACHABLE', `cannot connect to ${target}: ${err.message}`, { cause: err });
}

export function connectSocket(
  create: () => net.Socket,
  target: string,
  options: TransportOptions,
  readyEvent: 'connect' | 'secureConnect' = 'connect',
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = create();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new FramewireError(
          'ERR_UNREACHABLE',
          `no answer from ${target} within ${options.connectTimeoutMs} ms`,
        ),
      );
    }, options.connectTimeoutMs);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err instanceof FramewireError ? err : describeSocketError(err, target));
    });
    socket.once(readyEvent, () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

export function listenServer(server: net.Server, url: URL, scheme: string): Promise<Listener> {
  const host = hostOf(url);
  const port = portOf(url);
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new FramewireError(
          'ERR_LISTEN_FAILED',
          `cannot listen on ${scheme}://${host}:${port}: ${err.code ?? err.message}`,
          {
            hint:
              err.code === 'EADDRINUSE'
                ? 'another program uses this port; pick another with --listen'
                : undefined,
            cause: err,
          },
        ),
      );
    });
    server.listen(port, host, () => {
      const addr = server.address() as net.AddressInfo;
      const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      const sockets = new Set<net.Socket>();
      server.on('connection', (s) => {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
      });
      resolve({
        url: `${scheme}://${shownHost}:${addr.port}`,
        host: addr.address,
        port: addr.port,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}

export const tcpTransport: Transport = {
  schemes: ['tcp'],
  async connect(url: URL, options: TransportOptions): Promise<Connection> {
    const host = hostOf(url);
    const port = portOf(url);
    const socket = await connectSocket(() => net.connect({ host, port }), `tcp://${host}:${port}`, options);
    return new StreamConnection(socket, options.limits);
  },
  listen(url: URL, options: TransportOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    // Paused until StreamConnection.accept() gave the socket its reading (one buffer shared by all).
    const server = net.createServer({ pauseOnConnect: true }, (socket) =>
      onConnection(
        StreamConnection.accept(socket, options.limits, {
          verifyCrc: options.verifyCrc ?? true,
          frameBuffers: options.frameBuffers,
        }),
      ),
    );
    return listenServer(server, url, 'tcp');
  },
};
