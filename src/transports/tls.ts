/** tls:// — protocol v1 over TLS (node:tls). The sender always verifies the receiver's certificate. */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { FramewireError } from '../errors.js';
import { StreamConnection } from './stream.js';
import { connectSocket, listenServer } from './tcp.js';
import type { Connection, Listener, TlsClientOptions, Transport, TransportOptions } from './types.js';
import { hostOf, portOf } from './url.js';

export function tlsError(err: NodeJS.ErrnoException, target: string): FramewireError | undefined {
  const code = err.code ?? '';
  if (
    code.startsWith('ERR_TLS') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    /certificate|SSL|TLS/i.test(err.message)
  ) {
    return new FramewireError(
      'ERR_TLS',
      `TLS with ${target} failed: ${err.message.trim()} (${code || 'no code'})`,
      {
        hint: /certificate required|unknown ca|bad certificate|certificate unknown/i.test(err.message)
          ? 'the receiver asks for a client certificate signed by its --ca: give --cert FILE and --key FILE'
          : 'give the receiver certificate or its CA with --ca, and connect by the name in the certificate',
        cause: err,
      },
    );
  }
  return undefined;
}

/**
 * The CAs a sender trusts: Node's bundled root CAs, those of NODE_EXTRA_CA_CERTS, plus `ca`. Node's own `ca`
 * option *replaces* both (https://nodejs.org/api/tls.html#tlscreatesecurecontextoptions), so they are
 * listed here too: `ca` adds to them, as docs/security.md says. Without `ca`, Node's default applies.
 */
export function trustedCas(ca: TlsClientOptions['ca']): (string | Buffer)[] | undefined {
  if (ca === undefined) return undefined;
  const extra = process.env.NODE_EXTRA_CA_CERTS;
  let extraPem: string | undefined;
  if (extra) {
    try {
      extraPem = readFileSync(extra, 'utf8');
    } catch {
      // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; so does nothing here.
    }
  }
  return [...tls.rootCertificates, ...(extraPem ? [extraPem] : []), ca];
}

/** The node:tls options of a sender's connection to `host:port` (also used by wss://). */
export function tlsClientOptions(host: string, port: number, t: TlsClientOptions): tls.ConnectionOptions {
  const ca = trustedCas(t.ca);
  return {
    host,
    port,
    ...(ca ? { ca } : {}),
    ...(t.cert ? { cert: t.cert } : {}),
    ...(t.key ? { key: t.key } : {}),
    servername: t.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host),
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  };
}

export const tlsTransport: Transport = {
  schemes: ['tls'],
  async connect(url: URL, options: TransportOptions): Promise<Connection> {
    const host = hostOf(url);
    const port = portOf(url);
    const target = `tls://${host}:${port}`;
    const t = options.tlsClient ?? {};
    try {
      const socket = await connectSocket(
        () => tls.connect(tlsClientOptions(host, port, t)),
        target,
        options,
        'secureConnect',
      );
      // TLS 1.3 sends a refusal (no or a wrong client certificate) after the handshake: ERR_TLS, not a drop.
      return new StreamConnection(socket, options.limits, {}, (e) => tlsError(e, target));
    } catch (err) {
      const cause = (err as FramewireError).cause as NodeJS.ErrnoException | undefined;
      throw (cause && tlsError(cause, target)) ?? err;
    }
  },
  listen(url: URL, options: TransportOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    const t = options.tlsServer;
    if (!t?.cert || !t.key) {
      return Promise.reject(
        new FramewireError('ERR_BAD_OPTION', `${url.href} needs a certificate and a key`, {
          hint: 'give --cert FILE and --key FILE (PEM)',
        }),
      );
    }
    const server = tls.createServer(
      {
        cert: t.cert,
        key: t.key,
        ...(t.ca ? { ca: t.ca } : {}),
        requestCert: !!t.requestCert,
        rejectUnauthorized: !!t.requestCert,
        minVersion: 'TLSv1.2',
      },
      (socket) =>
        onConnection(
          new StreamConnection(socket, options.limits, {
            verifyCrc: options.verifyCrc ?? true,
            frameBuffers: options.frameBuffers,
          }),
        ),
    );
    // A failed TLS handshake (wrong CA, plain TCP client) must not reach the process: log-free drop.
    server.on('tlsClientError', () => {});
    return listenServer(server, url, 'tls');
  },
};
