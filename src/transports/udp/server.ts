/**
 * The listening side of udp://: one bound socket, its peers told apart by session id. The handshake is
 * stateless until the client proves it can receive at its address (the session id is a keyed hash of the
 * client's address, port and nonce, the "cookie"), so that spoofed requests create nothing. A datagram is
 * checked in order of cost — magic and version, session lookup, source address, CRC32 — and dropped at the
 * first test it fails; junk costs the read and a few comparisons.
 */
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { FramewireError } from '../../errors.js';
import type { Listener, TransportOptions } from '../types.js';
import { hostOf, portOf } from '../url.js';
import { UdpConnection } from './connection.js';
import {
  crcOk,
  DatagramType,
  decodeHandshake,
  encodeHandshake,
  encodeReset,
  peekCommon,
} from './datagram.js';
import { parseUdpOptions, type UdpOptions } from './options.js';
import type { MemoryBudget } from './reassembler.js';
import { sendErrorOf, setSocketBuffers } from './socket.js';

export interface UdpListenerStats {
  peers: number;
  handshakes: number;
  /** Datagrams that are not framewire UDP (magic, version, length). */
  junk: number;
  /** Datagrams naming a session this listener does not know, or from another address than the session's. */
  unknownSession: number;
  /** Datagrams whose CRC32 does not match. */
  corrupt: number;
  resetsSent: number;
  reassemblyBytes: number;
  rcvbuf: number;
}

interface Peer {
  conn: UdpConnection;
  address: string;
  port: number;
}

const COOKIE_SLOT_MS = 30_000;

class TokenBucket {
  private tokens: number;
  private last = performance.now();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }
}

export class UdpListener implements Listener {
  readonly url: string;
  readonly port: number;
  readonly host: string;
  private readonly socket: dgram.Socket;
  private readonly o: UdpOptions;
  private readonly opts: TransportOptions;
  private readonly onConnection: (conn: UdpConnection) => void;
  private readonly peers = new Map<number, Peer>();
  private readonly secret = randomBytes(32);
  private readonly budget: MemoryBudget;
  private readonly rcvbuf: number;
  private readonly resets = new TokenBucket(50, 50);
  private readonly cookies = new TokenBucket(2000, 500);
  private closed = false;
  /** Sends handed to the socket and not yet done: close() lets them go out first. */
  private pendingSends = 0;
  private readonly s = { handshakes: 0, junk: 0, unknownSession: 0, corrupt: 0, resetsSent: 0 };

  private constructor(
    socket: dgram.Socket,
    o: UdpOptions,
    opts: TransportOptions,
    rcvbuf: number,
    onConnection: (conn: UdpConnection) => void,
  ) {
    this.socket = socket;
    this.o = o;
    this.opts = opts;
    this.rcvbuf = rcvbuf;
    this.onConnection = onConnection;
    this.budget = { used: 0, cap: o.maxTotalReassemblyBytes };
    const addr = socket.address();
    this.host = addr.address;
    this.port = addr.port;
    this.url = `udp://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo));
    // Errors of a listening UDP socket are about single datagrams (e.g. ICMP for one peer): not fatal.
    socket.on('error', () => {});
  }

  static async start(
    url: URL,
    opts: TransportOptions,
    onConnection: (conn: UdpConnection) => void,
  ): Promise<UdpListener> {
    const o = parseUdpOptions(url, opts.limits, 'listen');
    const host = hostOf(url);
    const port = portOf(url);
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => {
        socket.close();
        reject(
          new FramewireError(
            'ERR_LISTEN_FAILED',
            `cannot listen on udp://${host}:${port}: ${err.code ?? err.message}`,
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
      socket.bind(port, host, () => {
        socket.removeAllListeners('error');
        resolve();
      });
    });
    const rcvbuf = setSocketBuffers(socket, o.rcvbufBytes, o.sndbufBytes);
    return new UdpListener(socket, o, opts, rcvbuf, onConnection);
  }

  stats(): UdpListenerStats {
    return { ...this.s, peers: this.peers.size, reassemblyBytes: this.budget.used, rcvbuf: this.rcvbuf };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Every peer is told (CLOSE, abort) before the socket goes, so that senders reconnect at once.
    for (const p of [...this.peers.values()]) p.conn.destroy();
    this.peers.clear();
    const t0 = performance.now();
    while (this.pendingSends > 0 && performance.now() - t0 < 500) await new Promise((r) => setTimeout(r, 5));
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private cookie(address: string, port: number, nonce: number, slot: number): number {
    const h = createHmac('sha256', this.secret).update(`${slot}|${address}|${port}|${nonce}`).digest();
    return h.readUInt32BE(0) || 1;
  }

  private onDatagram(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    const c = peekCommon(buf);
    if (!c) {
      this.s.junk++;
      return;
    }
    if (c.session !== 0) {
      const peer = this.peers.get(c.session);
      if (!peer) {
        if (c.type === DatagramType.HS_CONFIRM) this.onConfirm(buf, rinfo, c.session);
        else this.unknown(buf, rinfo, c.session, c.type);
        return;
      }
      if (peer.address !== rinfo.address || peer.port !== rinfo.port) {
        this.s.unknownSession++;
        return;
      }
      if (!crcOk(buf)) {
        this.s.corrupt++;
        return;
      }
      if (c.type === DatagramType.HS_CONFIRM) {
        // Our HS_DONE was lost: say it again.
        const h = decodeHandshake(buf);
        if (h)
          this.reply(
            DatagramType.HS_DONE,
            c.session,
            { ...h, mtu: peer.conn.mtu, rcvbuf: this.rcvbuf },
            rinfo,
          );
        return;
      }
      peer.conn.handle(buf, c.type);
      return;
    }
    if (c.type !== DatagramType.HS_REQUEST) {
      this.s.junk++;
      return;
    }
    if (!crcOk(buf)) {
      this.s.corrupt++;
      return;
    }
    const h = decodeHandshake(buf);
    if (!h || !this.cookies.take()) {
      this.s.junk++;
      return;
    }
    const slot = Math.floor(Date.now() / COOKIE_SLOT_MS);
    const cookie = this.cookie(rinfo.address, rinfo.port, h.nonce, slot);
    this.reply(
      DatagramType.HS_COOKIE,
      cookie,
      { nonce: h.nonce, mtu: this.o.mtu, rcvbuf: this.rcvbuf },
      rinfo,
    );
  }

  private unknown(buf: Buffer, rinfo: dgram.RemoteInfo, session: number, type: number): void {
    this.s.unknownSession++;
    // A valid datagram of a session we do not know: the sender thinks it is connected (we restarted, or
    // timed it out). Tell it, so that it reconnects now rather than after its own timeout. Never for a
    // RESET or CLOSE (no loops), and rate-limited.
    if (type === DatagramType.RESET || type === DatagramType.CLOSE) return;
    if (!crcOk(buf) || !this.resets.take()) return;
    this.s.resetsSent++;
    this.socket.send(encodeReset(session), rinfo.port, rinfo.address, () => {});
  }

  private onConfirm(buf: Buffer, rinfo: dgram.RemoteInfo, session: number): void {
    if (!crcOk(buf)) {
      this.s.corrupt++;
      return;
    }
    const h = decodeHandshake(buf);
    if (!h) {
      this.s.junk++;
      return;
    }
    const slot = Math.floor(Date.now() / COOKIE_SLOT_MS);
    if (
      session !== this.cookie(rinfo.address, rinfo.port, h.nonce, slot) &&
      session !== this.cookie(rinfo.address, rinfo.port, h.nonce, slot - 1)
    ) {
      this.s.unknownSession++;
      return;
    }
    if (this.peers.size >= this.o.maxPeers) return;
    const mtu = Math.min(this.o.mtu, h.mtu);
    const address = rinfo.address;
    const port = rinfo.port;
    const socket = this.socket;
    let conn: UdpConnection | undefined;
    const onSent = (err: Error | null) => {
      this.pendingSends--;
      if (err && conn) {
        const e = sendErrorOf(err as NodeJS.ErrnoException, mtu);
        if (e) conn.fail(e);
      }
    };
    conn = new UdpConnection({
      session,
      mtu,
      peerRcvbuf: h.rcvbuf,
      remote: `${address}:${port}`,
      limits: this.opts.limits,
      options: this.o,
      budget: this.budget,
      link: {
        send: (parts) => {
          this.pendingSends++;
          socket.send(parts, port, address, onSent);
        },
        end: () => {
          if (this.peers.get(session)?.conn === conn) this.peers.delete(session);
        },
      },
    });
    this.peers.set(session, { conn, address, port });
    this.s.handshakes++;
    this.reply(DatagramType.HS_DONE, session, { nonce: h.nonce, mtu, rcvbuf: this.rcvbuf }, rinfo);
    this.onConnection(conn);
  }

  private reply(
    type: typeof DatagramType.HS_COOKIE | typeof DatagramType.HS_DONE,
    session: number,
    h: { nonce: number; mtu: number; rcvbuf: number },
    rinfo: dgram.RemoteInfo,
  ): void {
    this.socket.send(encodeHandshake(type, session, h), rinfo.port, rinfo.address, () => {});
  }
}
