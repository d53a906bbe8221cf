/**
 * A Connection over the UDP layer: whole protocol v1 messages in and out, like the TCP transport, carried
 * by numbered datagrams with repair (SendWindow), reassembly (Reassembler) and loss tracking
 * (ReceiveWindow). The socket belongs to the caller: a client connection owns one connected socket, the
 * peers of a listener share its socket (`link.send`).
 */
import { EventEmitter } from 'node:events';
import { FramewireError, toFramewireError } from '../../errors.js';
import type { Limits } from '../../protocol/constants.js';
import { MessageType } from '../../protocol/constants.js';
import { Decoder } from '../../protocol/decoder.js';
import { type Encoded, encodeControl, type Message } from '../../protocol/messages.js';
import type { Connection } from '../types.js';
import { type DatagramCrypto, REPLAYED, SEAL_OVERHEAD, UNAUTHENTIC } from './aead.js';
import {
  CloseKind,
  DataFlags,
  DatagramType,
  decodeAck,
  decodeClose,
  decodeData,
  decodeDrop,
  decodeKeepalive,
  decodeNack,
  encodeAck,
  encodeClose,
  encodeKeepalive,
  encodeNack,
  KEEPALIVE_PROBE,
  MAX_DROPPED_REPORTED,
  MAX_SACK_RANGES,
  nackCapacity,
  SEALED,
  unwrap32,
} from './datagram.js';
import { maxMessageBytes, type UdpOptions } from './options.js';
import { type MemoryBudget, Reassembler } from './reassembler.js';
import { ReceiveWindow } from './receive-window.js';
import { type SendOptions, type SendStats, SendWindow } from './sender-window.js';

/** How a connection reaches its socket. */
export interface DatagramLink {
  /** Sends one datagram. */
  send(parts: Buffer[]): void;
  /** The connection ended: forget it (listener) or close the socket (client). */
  end(): void;
}

export interface UdpConnectionParams {
  session: number;
  mtu: number;
  peerRcvbuf: number;
  remote: string;
  limits: Limits;
  options: UdpOptions;
  budget: MemoryBudget;
  link: DatagramLink;
  initialRttMs?: number;
  /** With a token: seals what is sent, opens what arrives (aead.ts). */
  crypto?: DatagramCrypto | undefined;
}

export interface UdpConnectionStats extends SendStats {
  mtu: number;
  session: number;
  /** True when every datagram is sealed (the connection has a token). */
  sealed: boolean;
  /** Sealed connections: datagrams refused because their counter was seen already, or is too old. */
  replayed: number;
  /** Sealed connections: datagrams whose tag did not match (forged, changed, another key), or unsealed. */
  unauthentic: number;
  datagramsReceived: number;
  duplicates: number;
  /** Retransmitted fragments that arrived and were used. */
  repaired: number;
  /** Live messages this side gave up receiving (deadline passed, or the sender dropped them). */
  liveDropped: number;
  /** Fragments refused because reassembly memory was full (the sender sends them again). */
  refused: number;
  malformed: number;
  messagesDelivered: number;
  reassemblyBytes: number;
}

/** Bytes queued for a first send beyond which send() returns false. */
const HIGH_WATER = 1024 * 1024;
const ACTIVE_TICK_MS = 10;
const NACK_INTERVAL_MS = 10;
/** A gap younger than this may be reordering, not loss. */
const REORDER_MS = 5;
const PROBE_INTERVAL_MS = 100;
const CLOSE_RETRIES = 5;
const CLOSE_RETRY_MS = 200;
/** A graceful close waits this long for what was sent to be acknowledged. */
const CLOSE_LINGER_MS = 10_000;
const DROP_REPORT_MS = 2000;

export class UdpConnection extends EventEmitter implements Connection {
  readonly remote: string;
  readonly session: number;
  readonly mtu: number;
  readonly sealed: boolean;
  private readonly crypto: DatagramCrypto | undefined;
  private readonly o: UdpOptions;
  private readonly link: DatagramLink;
  private readonly sw: SendWindow;
  private readonly rw = new ReceiveWindow();
  private readonly ra: Reassembler;
  private readonly decoder: Decoder;
  private inbox: Buffer[] = [];
  private paused = false;
  private delivering = false;
  private decodeFailed = false;
  private done = false;
  private closing = false;
  private closingSince = 0;
  private closeSent = 0;
  private closeSentAt = 0;
  private remoteClosed = false;
  private closeError: FramewireError | undefined;
  private wantDrain = false;
  private lastHeard: number;
  private lastSent: number;
  private lastNackAt = 0;
  private lastProbeAt = 0;
  private newest = -1;
  private newestAt = 0;
  /** Gaps in the packet sequence as they appeared: NACKed once older than REORDER_MS. */
  private gaps: Array<{ end: number; at: number }> = [];
  /** Missing packets below this are old enough to be reported. */
  private nackBelow = 0;
  private nackedBelow = 0;
  private tailNacked = 0;
  private recentDrops: Array<{ seq: number; at: number }> = [];
  private ackScheduled = false;
  private pumpScheduled = false;
  private paceTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickDue = 0;
  private unreachable = 0;
  private readonly r = {
    datagramsReceived: 0,
    duplicates: 0,
    repaired: 0,
    refused: 0,
    malformed: 0,
    messagesDelivered: 0,
    replayed: 0,
    unauthentic: 0,
  };

  constructor(p: UdpConnectionParams) {
    super();
    this.remote = p.remote;
    this.session = p.session;
    this.mtu = p.mtu;
    this.o = p.options;
    this.link = p.link;
    this.crypto = p.crypto;
    this.sealed = p.crypto !== undefined;
    const now = performance.now();
    this.lastHeard = now;
    this.lastSent = now;
    this.sw = new SendWindow({
      session: p.session,
      mtu: p.mtu,
      rateBytesPerSec: p.options.rateBytesPerSec,
      peerRcvbuf: p.peerRcvbuf,
      defaultLatencyMs: p.options.latencyMs,
      emit: (parts) => this.emitDatagram(parts),
      initialRttMs: p.initialRttMs,
      sealOverhead: this.sealed ? SEAL_OVERHEAD : 0,
    });
    this.ra = new Reassembler({
      maxBytes: p.options.maxReassemblyBytes,
      maxMessageBytes: maxMessageBytes(p.limits),
      budget: p.budget,
      deliver: (buf) => this.deliver(buf),
    });
    this.decoder = new Decoder((msg: Message) => this.emit('message', msg), p.limits);
    this.armTick(0);
  }

  // ---- Connection --------------------------------------------------------------------------------------

  get congested(): boolean {
    return this.sw.queuedBytes >= HIGH_WATER;
  }

  get closed(): boolean {
    return this.done;
  }

  send(parts: Encoded, opts?: SendOptions): boolean {
    if (this.done || this.closing || this.remoteClosed) return false;
    this.sw.enqueue(parts, opts, performance.now());
    this.schedulePump();
    const ok = this.sw.queuedBytes < HIGH_WATER;
    if (!ok) this.wantDrain = true;
    return ok;
  }

  /** Stops handing out messages; datagrams are still read (ACKs must flow) and held, up to the memory cap. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.drainInbox();
    // The window opened: tell the sender at once.
    if (!this.done) this.scheduleAck();
  }

  close(): void {
    if (this.done || this.closing) return;
    this.closing = true;
    this.closingSince = performance.now();
    this.maybeFinishClose();
    this.armTick(0);
  }

  destroy(err?: FramewireError): void {
    if (this.done) return;
    if (!this.remoteClosed) this.sendRaw(encodeClose(this.session, CloseKind.ABORT));
    this.finish(err);
  }

  stats(): UdpConnectionStats {
    return {
      ...this.sw.stats(),
      ...this.r,
      mtu: this.mtu,
      session: this.session,
      sealed: this.sealed,
      liveDropped: this.ra.liveDropped,
      reassemblyBytes: this.ra.used,
    };
  }

  // ---- from the socket ---------------------------------------------------------------------------------

  /**
   * One datagram of a sealed session, from the peer's address (magic, version and session id checked):
   * refused before anything else if its counter was seen, then opened (tag checked) and handled. An
   * unsealed one is refused too (counted), except what the caller handles itself (RESET, handshake).
   */
  handleSealed(buf: Buffer): void {
    if (this.done || !this.crypto) return;
    if ((buf[3]! & SEALED) === 0) {
      this.r.unauthentic++;
      return;
    }
    const opened = this.crypto.open(buf);
    if (opened === REPLAYED) this.r.replayed++;
    else if (opened === UNAUTHENTIC) this.r.unauthentic++;
    else this.handle(opened, opened[3]!);
  }

  /** One datagram of this session (magic, version, session id and CRC already checked, or opened). */
  handle(buf: Buffer, type: number): void {
    if (this.done) return;
    const now = performance.now();
    this.lastHeard = now;
    this.unreachable = 0;
    this.r.datagramsReceived++;
    switch (type) {
      case DatagramType.DATA:
        this.onData(buf, now);
        break;
      case DatagramType.ACK: {
        const a = decodeAck(buf);
        if (!a) break;
        this.sw.onAck(a, now);
        this.schedulePump();
        this.maybeDrain();
        this.maybeFinishClose();
        break;
      }
      case DatagramType.NACK: {
        const ranges = decodeNack(buf);
        if (!ranges) break;
        this.sw.onNack(ranges, now);
        this.schedulePump();
        break;
      }
      case DatagramType.DROP: {
        const d = decodeDrop(buf);
        if (!d) break;
        const dropped = this.ra.dropLive(d.msg);
        const first = unwrap32(d.first, this.rw.cumulative);
        const end = unwrap32(d.end, first);
        if (end > first) this.rw.markRange(first, end);
        if (dropped) this.noteDrop(d.msg, now);
        this.scheduleAck();
        break;
      }
      case DatagramType.KEEPALIVE: {
        const k = decodeKeepalive(buf);
        if (k && (k.flags & KEEPALIVE_PROBE) !== 0) this.sendAck(now);
        break;
      }
      case DatagramType.CLOSE: {
        const c = decodeClose(buf);
        if (c) this.onClose(c.kind);
        break;
      }
      case DatagramType.RESET:
        if (this.closing && this.sw.idle) this.finish(undefined);
        else {
          this.finish(
            new FramewireError(
              'ERR_CLOSED',
              `udp: ${this.remote} does not know this session (it restarted or timed out)`,
            ),
          );
        }
        break;
      default:
        // Handshake repeats and unknown types.
        break;
    }
  }

  /** The socket reported the peer's port unreachable (ICMP). Three in a row, with nothing heard between, end it. */
  unreachableReported(): void {
    if (this.done) return;
    if (++this.unreachable >= 3) {
      this.finish(
        new FramewireError(
          'ERR_CLOSED',
          `udp: ${this.remote} is unreachable (nothing listens there any more)`,
        ),
      );
    }
  }

  /** Sending failed for good (e.g. EMSGSIZE). */
  fail(err: FramewireError): void {
    this.destroy(err);
  }

  private onData(buf: Buffer, now: number): void {
    const d = decodeData(buf);
    if (!d) {
      this.r.malformed++;
      return;
    }
    const pkt = unwrap32(d.pkt, this.rw.cumulative);
    if (this.rw.has(pkt)) {
      this.r.duplicates++;
      this.scheduleAck();
      return;
    }
    if (this.rw.tooFar(pkt)) {
      this.r.malformed++;
      return;
    }
    let result: ReturnType<Reassembler['add']>;
    try {
      result = this.ra.add(d, pkt, now);
    } catch (err) {
      this.protocolError(toFramewireError(err, 'ERR_REASSEMBLY_LIMIT', 'udp'));
      return;
    }
    if (this.done) return;
    if (result === 'refused') {
      this.r.refused++;
      this.scheduleAck();
      return;
    }
    if (result === 'bad') {
      this.r.malformed++;
      return;
    }
    if (pkt > this.rw.highest) {
      this.gaps.push({ end: pkt, at: now });
      this.armTick(REORDER_MS);
    }
    this.rw.mark(pkt);
    if (result === 'ok' && (d.flags & DataFlags.RETRANSMIT) !== 0) this.r.repaired++;
    this.newest = pkt;
    this.newestAt = now;
    // A message still missing fragments: its tail may be lost, with no later packet to show the gap.
    if (this.ra.partials > 0) this.armTick(REORDER_MS + 1);
    this.scheduleAck();
  }

  private deliver(buf: Buffer): void {
    if (this.done || this.decodeFailed) {
      this.ra.release(buf.length);
      return;
    }
    if (this.paused || this.inbox.length > 0 || this.delivering) {
      this.inbox.push(buf);
      return;
    }
    this.hand(buf);
  }

  private hand(buf: Buffer): void {
    this.ra.release(buf.length);
    this.r.messagesDelivered++;
    this.delivering = true;
    try {
      this.decoder.write(buf);
    } catch (err) {
      this.protocolError(toFramewireError(err, 'ERR_PROTOCOL', 'decoder'));
    } finally {
      this.delivering = false;
    }
    if (this.inbox.length > 0 && !this.paused) this.drainInbox();
  }

  private drainInbox(): void {
    if (this.delivering) return;
    while (this.inbox.length > 0 && !this.paused && !this.done && !this.decodeFailed) {
      this.hand(this.inbox.shift()!);
    }
    if (this.remoteClosed && this.inbox.length === 0 && !this.done) this.finish(undefined);
  }

  /** Malformed input from the peer: tell it why, close; never throws. */
  private protocolError(err: FramewireError): void {
    if (this.decodeFailed || this.done) return;
    this.decodeFailed = true;
    this.closeError ??= err;
    for (const b of this.inbox) this.ra.release(b.length);
    this.inbox = [];
    try {
      this.sw.enqueue(
        encodeControl(MessageType.ERROR, { code: err.code, message: err.message, fatal: true }),
        undefined,
        performance.now(),
      );
      this.schedulePump();
    } catch {
      /* nothing more to say */
    }
    this.close();
    setTimeout(() => this.destroy(), 2000).unref();
  }

  private onClose(kind: number): void {
    if (kind === CloseKind.CLOSE_ACK) {
      if (this.closing) this.finish(undefined);
      return;
    }
    this.sendRaw(encodeClose(this.session, CloseKind.CLOSE_ACK));
    if (kind === CloseKind.ABORT) {
      this.finish(
        this.closing
          ? undefined
          : new FramewireError('ERR_CLOSED', `udp: ${this.remote} aborted the connection`),
      );
      return;
    }
    if (this.closing) {
      this.finish(undefined);
      return;
    }
    // The peer is done: what it sent is all here; nothing more of ours can be delivered.
    this.remoteClosed = true;
    this.sw.clear();
    this.drainInbox();
  }

  // ---- to the socket -----------------------------------------------------------------------------------

  private emitDatagram(parts: Buffer[]): void {
    if (this.crypto) {
      const sealed = this.crypto.seal(parts);
      if (!sealed) {
        this.finish(new FramewireError('ERR_CLOSED', `udp: ${this.remote}: the packet counter ran out`));
        return;
      }
      parts = sealed;
    }
    this.lastSent = performance.now();
    this.link.send(parts);
  }

  private sendRaw(buf: Buffer): void {
    this.emitDatagram([buf]);
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.done) return;
    this.pumpScheduled = true;
    setImmediate(() => this.runPump());
  }

  private runPump(): void {
    this.pumpScheduled = false;
    if (this.done) return;
    const wait = this.sw.pump(performance.now());
    if (wait === 0) this.schedulePump();
    else if (wait !== undefined && !this.paceTimer) {
      this.paceTimer = setTimeout(() => {
        this.paceTimer = undefined;
        this.runPump();
      }, wait);
    }
    if (this.sw.busy) this.armTick(ACTIVE_TICK_MS);
    this.maybeDrain();
    this.maybeFinishClose();
  }

  private maybeDrain(): void {
    if (this.wantDrain && this.sw.queuedBytes <= HIGH_WATER / 2 && !this.done) {
      this.wantDrain = false;
      this.emit('drain');
    }
  }

  private scheduleAck(): void {
    if (this.ackScheduled || this.done) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      if (this.done) return;
      const now = performance.now();
      this.sendAck(now);
    });
  }

  private noteDrop(seq: number, now: number): void {
    this.recentDrops.push({ seq, at: now });
    if (this.recentDrops.length > MAX_DROPPED_REPORTED) this.recentDrops.shift();
  }

  private sendAck(now: number): void {
    const sack = this.rw.missing > 0 ? this.rw.ranges(MAX_SACK_RANGES, 0).received : [];
    while (this.recentDrops.length > 0 && now - this.recentDrops[0]!.at > DROP_REPORT_MS)
      this.recentDrops.shift();
    this.sendRaw(
      encodeAck(this.session, {
        cumulative: this.rw.cumulative,
        window: this.ra.free,
        newest: Math.max(0, this.newest),
        delayUs: this.newest >= 0 ? (now - this.newestAt) * 1000 : 0,
        drops: this.ra.liveDropped,
        repairs: this.r.repaired,
        sack,
        dropped: this.recentDrops.map((d) => d.seq),
      }),
    );
  }

  // ---- timers ------------------------------------------------------------------------------------------

  /** Makes sure the tick runs within `ms`. */
  private armTick(ms: number): void {
    if (this.done) return;
    const due = performance.now() + ms;
    if (this.tickTimer && this.tickDue <= due) return;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    this.tickDue = due;
    this.tickTimer = setTimeout(() => this.tick(), ms);
    this.tickTimer.unref();
  }

  private tick(): void {
    this.tickTimer = undefined;
    if (this.done) return;
    const now = performance.now();
    if (now - this.lastHeard > this.o.peerTimeoutMs) {
      this.finish(
        new FramewireError(
          'ERR_PEER_TIMEOUT',
          `udp: ${this.remote} sent nothing for ${this.o.peerTimeoutMs} ms`,
        ),
      );
      return;
    }
    // Sending side: timeouts, late live messages, probes of a closed receive window.
    if (this.sw.tick(now)) this.schedulePump();
    if (this.sw.windowBlocked && now - this.lastProbeAt >= PROBE_INTERVAL_MS) {
      this.lastProbeAt = now;
      this.sendRaw(encodeKeepalive(this.session, KEEPALIVE_PROBE));
    }
    // Receiving side: live messages past their budget, and missing packets reported again.
    for (const d of this.ra.expire(now)) {
      this.rw.markRange(d.pktFirst, d.pktFirst + d.count);
      this.noteDrop(d.seq, now);
      this.scheduleAck();
    }
    this.maybeNack(now);
    if (this.closing) this.closeTick(now);
    if (this.done) return;
    if (now - this.lastSent >= this.o.keepaliveMs) this.sendRaw(encodeKeepalive(this.session));
    const active = this.sw.busy || this.rw.missing > 0 || this.ra.partials > 0 || this.closing;
    if (this.rw.missing === 0) this.gaps = [];
    this.armTick(
      active
        ? ACTIVE_TICK_MS
        : Math.max(ACTIVE_TICK_MS, Math.min(this.o.keepaliveMs, this.o.peerTimeoutMs) / 2),
    );
  }

  /**
   * Reports missing packets: a gap is reported once it is REORDER_MS old (a datagram merely overtaken by
   * a later one arrives meanwhile), then again every NACK_INTERVAL_MS while it stays open.
   */
  private maybeNack(now: number): void {
    while (this.gaps.length > 0 && this.gaps[0]!.at <= now - REORDER_MS) {
      this.nackBelow = Math.max(this.nackBelow, this.gaps.shift()!.end);
    }
    // The tail of a message: packets it must still have that nothing has arrived after for a while.
    const tailEnd = this.ra.partials > 0 && now - this.newestAt >= REORDER_MS ? this.ra.expectedEnd() : 0;
    const tail = tailEnd > this.rw.highest;
    if (this.rw.missing === 0 && !tail) return;
    const fresh = this.nackBelow > this.nackedBelow || (tail && tailEnd > this.tailNacked);
    if (!fresh && now - this.lastNackAt < NACK_INTERVAL_MS) return;
    const cap = nackCapacity(this.sealed ? this.mtu - SEAL_OVERHEAD : this.mtu);
    const missing = this.rw
      .ranges(0, cap)
      .missing.filter(([s]) => s < this.nackBelow)
      .map(([s, e]): [number, number] => [s, Math.min(e, this.nackBelow)]);
    if (tail && missing.length < cap) missing.push([this.rw.highest, tailEnd]);
    if (missing.length === 0) return;
    this.lastNackAt = now;
    this.nackedBelow = this.nackBelow;
    if (tail) this.tailNacked = tailEnd;
    this.sendRaw(encodeNack(this.session, missing));
    this.sendAck(now);
  }

  private maybeFinishClose(): void {
    if (!this.closing || this.done || !this.sw.idle) return;
    if (this.closeSent === 0) {
      this.closeSent = 1;
      this.closeSentAt = performance.now();
      this.sendRaw(encodeClose(this.session, CloseKind.CLOSE));
    }
  }

  private closeTick(now: number): void {
    if (this.closeSent === 0) {
      if (now - this.closingSince > CLOSE_LINGER_MS) {
        this.finish(
          new FramewireError(
            'ERR_CLOSED',
            `udp: ${this.remote} did not acknowledge what was sent within ${CLOSE_LINGER_MS} ms`,
          ),
        );
      }
      return;
    }
    if (now - this.closeSentAt < CLOSE_RETRY_MS) return;
    if (this.closeSent >= CLOSE_RETRIES) {
      this.finish(undefined);
      return;
    }
    this.closeSent++;
    this.closeSentAt = now;
    this.sendRaw(encodeClose(this.session, CloseKind.CLOSE));
  }

  private finish(err: FramewireError | undefined): void {
    if (this.done) return;
    this.done = true;
    if (this.tickTimer) clearTimeout(this.tickTimer);
    if (this.paceTimer) clearTimeout(this.paceTimer);
    this.tickTimer = undefined;
    this.paceTimer = undefined;
    this.sw.clear();
    this.ra.clear();
    for (const b of this.inbox) this.ra.release(b.length);
    this.inbox = [];
    this.link.end();
    const e = err ?? this.closeError;
    // Asynchronously, as a socket's 'close' is: callers of destroy() finish their own bookkeeping first.
    setImmediate(() => this.emit('close', e));
  }
}
