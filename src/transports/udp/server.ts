/**
 * The listening side of udp://: one bound socket, its peers told apart by session id. The handshake is
 * stateless until the client proves it can receive at its address (the session id is a keyed hash of the
 * client's address, port and nonce, the "cookie"), so that spoofed requests create nothing. A datagram is
 * checked in order of cost — magic and version, session lookup, source address, CRC32 — and dropped at the
 * first test it fails; junk costs the read and a few comparisons.
 *
 * With a token, the client's HS_CONFIRM must also carry a proof of the token: without one, or with a wrong
 * one, nothing is created and the client is told (HS_REFUSED). Every datagram of such a session is sealed
 * (aead.ts): its counter is checked against the replay window, then its tag, before anything else.
 */
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { FramewireError } from '../../errors.js';
import { monoMs } from '../../time.js';
import type { Listener, TransportOptions } from '../types.js';
import { hostOf, portOf } from '../url.js';
import {
  DatagramCrypto,
  deriveKeys,
  handshakeProof,
  NONCE16_BYTES,
  proofOk,
  SEALED_HEADER_BYTES,
  TAG_BYTES,
} from './aead.js';
import { UdpConnection } from './connection.js';
import {
  crcOk,
  DatagramType,
  decodeHandshake,
  decodeHandshakeExtra,
  encodeHandshake,
  encodeReset,
  type HandshakeExtra,
  HandshakeFlags,
  handshakeCovered,
  peekCommon,
  RefuseReason,
  SEALED,
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
  /**
   * HS_CONFIRMs refused for their token (none when the listener has one, one when it has none, or a
   * wrong proof): nothing was created for them.
   */
  refused: number;
  reassemblyBytes: number;
  rcvbuf: number;
}

interface Peer {
  conn: UdpConnection;
  address: string;
  port: number;
  /** Sealed sessions: the HS_DONE sent, sent again for a repeated HS_CONFIRM. */
  done?: Buffer;
}

const COOKIE_SLOT_MS = 30_000;
/**
 * Sealed sessions that ended are remembered while their cookie is valid (at most this many), so that a
 * replayed HS_CONFIRM creates nothing.
 */
const SPENT_MAX = 4096;

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
  private readonly token: string | undefined;
  /** Session id → time (ms) until which a sealed session that ended stays refused. */
  private readonly spent = new Map<number, number>();
  private closed = false;
  /** Sends handed to the socket and not yet done: close() lets them go out first. */
  private pendingSends = 0;
  private readonly s = {
    handshakes: 0,
    junk: 0,
    unknownSession: 0,
    corrupt: 0,
    resetsSent: 0,
    refused: 0,
  };

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
    this.token = opts.token;
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
      if (peer.done) {
        // Sealed: only a repeated HS_CONFIRM (our HS_DONE was lost) may come unsealed.
        if (c.type === DatagramType.HS_CONFIRM && crcOk(buf)) {
          this.socket.send(peer.done, rinfo.port, rinfo.address, () => {});
        } else peer.conn.handleSealed(buf);
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
    const slot = Math.floor(monoMs() / COOKIE_SLOT_MS);
    const cookie = this.cookie(rinfo.address, rinfo.port, h.nonce, slot);
    this.reply(
      DatagramType.HS_COOKIE,
      cookie,
      { nonce: h.nonce, mtu: this.o.mtu, rcvbuf: this.rcvbuf },
      rinfo,
      this.token === undefined ? undefined : { flags: HandshakeFlags.TOKEN },
    );
  }

  private unknown(buf: Buffer, rinfo: dgram.RemoteInfo, session: number, type: number): void {
    this.s.unknownSession++;
    // A valid datagram of a session we do not know: the sender thinks it is connected (we restarted, or
    // timed it out). Tell it, so that it reconnects now rather than after its own timeout. Never for a
    // RESET or CLOSE (no loops), and rate-limited. A sealed datagram cannot be checked without its keys:
    // its size has to do (it is at least as large as the RESET, so this amplifies nothing).
    const sealed = (type & SEALED) !== 0;
    const base = type & ~SEALED;
    if (base === DatagramType.RESET || base === DatagramType.CLOSE) return;
    if (sealed ? buf.length < SEALED_HEADER_BYTES + TAG_BYTES : !crcOk(buf)) return;
    if (!this.resets.take()) return;
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
    const slot = Math.floor(monoMs() / COOKIE_SLOT_MS);
    if (
      session !== this.cookie(rinfo.address, rinfo.port, h.nonce, slot) &&
      session !== this.cookie(rinfo.address, rinfo.port, h.nonce, slot - 1)
    ) {
      this.s.unknownSession++;
      return;
    }
    // The client answered at its address. Now its token, before anything is created.
    const x = decodeHandshakeExtra(buf);
    const theirs = (x.flags & HandshakeFlags.TOKEN) !== 0;
    const token = this.token;
    if (token === undefined ? theirs : !theirs || !x.nonce16) {
      this.refuse(
        session,
        h.nonce,
        token === undefined ? RefuseReason.NO_TOKEN : RefuseReason.TOKEN_REQUIRED,
        rinfo,
      );
      return;
    }
    let crypto: DatagramCrypto | undefined;
    let done: Buffer | undefined;
    const mtu = Math.min(this.o.mtu, h.mtu);
    if (token !== undefined) {
      const until = this.spent.get(session);
      if (until !== undefined && until > monoMs()) {
        this.s.unknownSession++;
        return;
      }
      const clientNonce = Buffer.from(x.nonce16!);
      if (!proofOk(handshakeProof(token, 'confirm', handshakeCovered(buf)), x.proof)) {
        this.refuse(session, h.nonce, RefuseReason.BAD_PROOF, rinfo);
        return;
      }
      if (this.peers.size >= this.o.maxPeers) return;
      const serverNonce = randomBytes(NONCE16_BYTES);
      crypto = DatagramCrypto.forSide(deriveKeys(token, clientNonce, serverNonce), 'server');
      done = encodeHandshake(
        DatagramType.HS_DONE,
        session,
        { nonce: h.nonce, mtu, rcvbuf: this.rcvbuf },
        {
          flags: HandshakeFlags.TOKEN,
          nonce16: serverNonce,
          prove: (covered) => handshakeProof(token, 'done', covered, clientNonce),
        },
      );
    }
    if (this.peers.size >= this.o.maxPeers) return;
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
          if (this.peers.get(session)?.conn !== conn) return;
          this.peers.delete(session);
          if (done) this.spend(session);
        },
      },
      crypto,
    });
    this.peers.set(session, { conn, address, port, ...(done ? { done } : {}) });
    this.s.handshakes++;
    if (done) this.socket.send(done, rinfo.port, rinfo.address, () => {});
    else this.reply(DatagramType.HS_DONE, session, { nonce: h.nonce, mtu, rcvbuf: this.rcvbuf }, rinfo);
    this.onConnection(conn);
  }

  /** Tells a client why its HS_CONFIRM creates nothing (rate-limited; never larger than what it answers). */
  private refuse(session: number, nonce: number, reason: number, rinfo: dgram.RemoteInfo): void {
    this.s.refused++;
    if (!this.cookies.take()) return;
    this.reply(DatagramType.HS_REFUSED, session, { nonce, mtu: this.o.mtu, rcvbuf: 0 }, rinfo, {
      flags: this.token === undefined ? 0 : HandshakeFlags.TOKEN,
      reason,
    });
  }

  /** A sealed session ended: its cookie, still valid for a while, must not open another one. */
  private spend(session: number): void {
    const now = monoMs();
    for (const [s, until] of this.spent) {
      if (until > now && this.spent.size < SPENT_MAX) break;
      this.spent.delete(s);
    }
    this.spent.set(session, now + 2 * COOKIE_SLOT_MS);
  }

  private reply(
    type: typeof DatagramType.HS_COOKIE | typeof DatagramType.HS_DONE | typeof DatagramType.HS_REFUSED,
    session: number,
    h: { nonce: number; mtu: number; rcvbuf: number },
    rinfo: dgram.RemoteInfo,
    x?: HandshakeExtra,
  ): void {
    this.socket.send(encodeHandshake(type, session, h, x), rinfo.port, rinfo.address, () => {});
  }
}
