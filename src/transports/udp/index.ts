/**
 * udp:// — protocol v1 messages over framewire's own datagram layer (docs/protocol.md, "UDP"): fragments
 * numbered per packet and per message, CRC32 per datagram, selective repair, pacing and congestion
 * control, and per-message delivery classes (reliable, or live with a deadline). Listed with the other
 * transports in src/transports/index.ts.
 */
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { authError, FramewireError } from '../../errors.js';
import type { Connection, Listener, Transport, TransportOptions } from '../types.js';
import { hostOf, portOf } from '../url.js';
import { DatagramCrypto, deriveKeys, handshakeProof, NONCE16_BYTES, proofOk } from './aead.js';
import { UdpConnection } from './connection.js';
import {
  crcOk,
  DatagramType,
  decodeHandshake,
  decodeHandshakeExtra,
  encodeHandshake,
  HandshakeFlags,
  handshakeCovered,
  peekCommon,
  RefuseReason,
  SEALED,
} from './datagram.js';
import { parseUdpOptions } from './options.js';
import { UdpListener } from './server.js';
import { sendErrorOf, setSocketBuffers } from './socket.js';

const HANDSHAKE_RETRY_MS = 250;

function unreachable(target: string, why: string, cause?: unknown): FramewireError {
  return new FramewireError('ERR_UNREACHABLE', `${why} ${target}`, {
    hint: why.startsWith('nothing')
      ? 'start the receiver first (framewire serve --listen udp://…) or check the host and port'
      : undefined,
    cause,
  });
}

async function connectUdp(url: URL, options: TransportOptions): Promise<UdpConnection> {
  const o = parseUdpOptions(url, options.limits);
  const host = hostOf(url);
  const port = portOf(url);
  const target = `udp://${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
  let address = host;
  let family = net.isIPv6(host) ? 6 : 4;
  if (net.isIP(host) === 0) {
    try {
      ({ address, family } = await lookup(host));
    } catch (err) {
      throw unreachable(target, `cannot resolve host of`, err);
    }
  }
  const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  let pendingSends = 0;
  let closing = false;
  const closeSocket = () => {
    try {
      socket.close();
    } catch {
      /* already closed */
    }
  };
  /** Closes once the datagrams handed to the socket went out (a last CLOSE must not be lost), within 500 ms. */
  const closeWhenSent = () => {
    if (closing) return;
    closing = true;
    const t0 = performance.now();
    const check = () => {
      if (pendingSends > 0 && performance.now() - t0 < 500) setTimeout(check, 5);
      else closeSocket();
    };
    check();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(port, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    closeSocket();
    throw unreachable(target, 'cannot connect to', err);
  }
  const rcvbuf = setSocketBuffers(socket, o.rcvbufBytes, o.sndbufBytes);
  const remote = `${address}:${port}`;

  return new Promise<UdpConnection>((resolve, reject) => {
    const nonce = randomInt(1, 0xffffffff);
    const token = options.token;
    const tokenFlags = token === undefined ? undefined : { flags: HandshakeFlags.TOKEN };
    const clientNonce = token === undefined ? undefined : randomBytes(NONCE16_BYTES);
    let session = 0;
    let mtu = o.mtu;
    let peerRcvbuf = 0;
    let requests = 0;
    let requestAt = performance.now();
    let rttMs: number | undefined;
    let settled = false;
    const sendRequest = () => {
      requests++;
      requestAt = performance.now();
      socket.send(
        encodeHandshake(DatagramType.HS_REQUEST, 0, { nonce, mtu: o.mtu, rcvbuf }, tokenFlags),
        () => {},
      );
    };
    const sendConfirm = () => {
      const x =
        token === undefined
          ? undefined
          : {
              flags: HandshakeFlags.TOKEN,
              nonce16: clientNonce,
              prove: (covered: readonly Buffer[]) => handshakeProof(token, 'confirm', covered),
            };
      socket.send(encodeHandshake(DatagramType.HS_CONFIRM, session, { nonce, mtu, rcvbuf }, x), () => {});
    };
    const retry = setInterval(() => (session === 0 ? sendRequest() : sendConfirm()), HANDSHAKE_RETRY_MS);
    const timeout = setTimeout(() => {
      fail(unreachable(target, `no answer within ${options.connectTimeoutMs} ms from`));
    }, options.connectTimeoutMs);
    const cleanup = () => {
      clearInterval(retry);
      clearTimeout(timeout);
      socket.off('message', onHandshake);
      socket.off('error', onHandshakeError);
    };
    const fail = (err: FramewireError) => {
      if (settled) return;
      settled = true;
      cleanup();
      closeSocket();
      reject(err);
    };
    const onHandshakeError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') fail(unreachable(target, 'nothing is listening at', err));
      else
        fail(
          sendErrorOf(err, o.mtu) ?? unreachable(target, `cannot reach (${err.code ?? err.message})`, err),
        );
    };
    const onHandshake = (buf: Buffer) => {
      const c = peekCommon(buf);
      if (!c || !crcOk(buf)) return;
      const h = decodeHandshake(buf);
      if (!h || h.nonce !== nonce) return;
      const x = decodeHandshakeExtra(buf);
      const theirs = (x.flags & HandshakeFlags.TOKEN) !== 0;
      if (c.type === DatagramType.HS_COOKIE && session === 0 && c.session !== 0) {
        // Both sides have a token, or neither: the listener says which in its cookie.
        if (token !== undefined && !theirs) {
          fail(authError(`${target} does not check tokens; refusing to send to it with a token`));
          return;
        }
        if (token === undefined && theirs) {
          fail(authError(`${target} requires a token and none was given`));
          return;
        }
        session = c.session;
        mtu = Math.min(o.mtu, h.mtu);
        peerRcvbuf = h.rcvbuf;
        if (requests === 1) rttMs = performance.now() - requestAt;
        sendConfirm();
      } else if (c.type === DatagramType.HS_DONE && session !== 0 && c.session === session) {
        if (settled) return;
        let crypto: DatagramCrypto | undefined;
        if (token !== undefined) {
          // The listener proves the token over its nonce and ours: an impostor cannot.
          const want = handshakeProof(token, 'done', handshakeCovered(buf), clientNonce);
          if (!theirs || !x.nonce16 || !proofOk(want, x.proof)) {
            fail(authError(`wrong token: ${target} does not prove the same token`));
            return;
          }
          crypto = DatagramCrypto.forSide(deriveKeys(token, clientNonce!, Buffer.from(x.nonce16)), 'client');
        }
        settled = true;
        cleanup();
        resolve(established(Math.min(mtu, h.mtu), h.rcvbuf || peerRcvbuf, crypto));
      } else if (c.type === DatagramType.HS_REFUSED && session !== 0 && c.session === session) {
        fail(
          authError(
            x.reason === RefuseReason.BAD_PROOF
              ? `wrong token: ${target} refused the proof of ours`
              : x.reason === RefuseReason.NO_TOKEN
                ? `${target} does not check tokens; refusing to send to it with a token`
                : `${target} requires a token and none was given`,
          ),
        );
      }
    };
    const established = (
      negotiated: number,
      peerBuf: number,
      crypto: DatagramCrypto | undefined,
    ): UdpConnection => {
      let conn: UdpConnection | undefined;
      const onSent = (err: Error | null) => {
        pendingSends--;
        if (!err || !conn) return;
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ECONNREFUSED') conn.unreachableReported();
        else {
          const f = sendErrorOf(e, negotiated);
          if (f) conn.fail(f);
        }
      };
      conn = new UdpConnection({
        session,
        mtu: negotiated,
        peerRcvbuf: peerBuf,
        remote,
        limits: options.limits,
        options: o,
        budget: { used: 0, cap: o.maxReassemblyBytes },
        link: {
          send: (parts) => {
            if (closing) return;
            pendingSends++;
            try {
              socket.send(parts, onSent);
            } catch {
              pendingSends--;
            }
          },
          end: closeWhenSent,
        },
        initialRttMs: rttMs,
        crypto,
      });
      const c = conn;
      socket.on('message', (buf: Buffer) => {
        const h = peekCommon(buf);
        if (!h || h.session !== session) return;
        if (crypto) {
          // Sealed: a RESET comes unsealed (the listener that sends it has no keys for this session), and
          // repeated HS_DONEs are ignored; everything else must open.
          if ((h.type & SEALED) !== 0) c.handleSealed(buf);
          else if (h.type === DatagramType.RESET) {
            if (crcOk(buf)) c.handle(buf, h.type);
          } else if (h.type !== DatagramType.HS_DONE) c.handleSealed(buf);
          return;
        }
        if (!crcOk(buf)) return;
        c.handle(buf, h.type);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') c.unreachableReported();
        else {
          const f = sendErrorOf(err, negotiated);
          if (f) c.fail(f);
        }
      });
      return c;
    };
    socket.on('message', onHandshake);
    socket.on('error', onHandshakeError);
    sendRequest();
  });
}

export const udpTransport: Transport = {
  schemes: ['udp'],
  connect(url: URL, options: TransportOptions): Promise<Connection> {
    return connectUdp(url, options);
  },
  listen(url: URL, options: TransportOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    return UdpListener.start(url, options, onConnection);
  },
};

export { UdpConnection, type UdpConnectionStats } from './connection.js';
export { MAX_MTU, MIN_MTU } from './datagram.js';
export { UDP_URL_PARAMS, type UdpOptions } from './options.js';
export { UdpListener, type UdpListenerStats } from './server.js';
