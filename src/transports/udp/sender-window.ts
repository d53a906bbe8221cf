/**
 * The sending half of the UDP layer for one connection: messages are queued, numbered, cut into fragments
 * and sent under a window, paced, repaired from NACKs and timeouts, and acknowledged by cumulative and
 * selective ACKs. Pure logic with an injected clock: the connection calls `pump`, `onAck`, `onNack` and
 * `tick`, and passes `emit`, which puts one datagram on the wire.
 *
 * - Packets are numbered once, in order, across all messages; a retransmission keeps its packet number, so
 *   the receiver's cumulative ACK and duplicate test work on packet numbers alone.
 * - Window: packets in flight are bounded by the congestion window, by what the peer's socket receive buffer
 *   holds (so a burst is never cut by the kernel), and a new message waits for the peer's advertised free
 *   reassembly memory.
 * - Congestion: slow start, then growth of about 1/8 per round trip; on a loss (a NACK for a packet sent
 *   after the last reduction) the window shrinks to 0.8 of itself, at most once per round trip; on a
 *   timeout, to half. Pacing spreads sends at twice the window per round trip, capped by `rate`.
 * - Live messages carry a deadline: one that cannot be sent or completed in time is given up whole
 *   (`onDrop`), and the receiver is told with a DROP datagram.
 */
import type { SendOptions } from '../types.js';
import {
  type Ack,
  DATA_HEADER_BYTES,
  DataFlags,
  encodeData,
  encodeDrop,
  MAX_DROPPED_REPORTED,
  unwrap32,
} from './datagram.js';
import { fragmentBounds, fragmentPayload, planFragments, sliceParts } from './fragmenter.js';
import { RING_PACKETS } from './receive-window.js';

export type { SendOptions };

export interface SendWindowOptions {
  session: number;
  /** Negotiated datagram size. */
  mtu: number;
  /** Rate cap in bytes per second; 0 for none. */
  rateBytesPerSec: number;
  /** The peer's socket receive buffer, from the handshake. */
  peerRcvbuf: number;
  /** Default latency budget of a live message without deadlineMs (ms). */
  defaultLatencyMs: number;
  /** Puts one datagram (already sealed) on the wire. */
  emit: (parts: Buffer[]) => void;
  /** Initial round-trip time estimate (ms), e.g. from the handshake. */
  initialRttMs?: number;
  /**
   * Sealed connections (a token): bytes sealing adds to every datagram, taken from the fragment size so
   * that a sealed datagram still fits the mtu; and no CRC is computed (the tag replaces it).
   */
  sealOverhead?: number;
}

const ST_QUEUED = 0;
const ST_SENDING = 1;
const ST_SENT = 2;
const ST_DONE = 3;
const ST_ABANDONED = 4;

const F_SENT = 1;
const F_ACKED = 2;
const F_RETX = 4;
const F_QUEUED = 8;

interface OutMsg {
  live: boolean;
  seq: number;
  parts: Buffer[];
  length: number;
  count: number;
  stride: number;
  pktFirst: number;
  /** Next fragment to send for the first time. */
  next: number;
  state: number;
  acked: number;
  fl: Uint8Array;
  at: Float64Array;
  enqueuedAt: number;
  deadline: number;
  budgetMs: number;
  /** Bytes sent once and not yet acknowledged. */
  unacked: number;
  dropSentAt: number;
  onDrop: (() => void) | undefined;
}

const EMPTY: Buffer[] = [];
/** Datagrams sent by one pump() call before it yields to the event loop. */
const MAX_BURST = 64;
/** Packets in flight at most: half the receiver's ring. */
const MAX_FLIGHT_PACKETS = RING_PACKETS / 2 - 1;
const MIN_RTO_MS = 30;
const MAX_RTO_MS = 2000;
/** Unacknowledged packets at the front of the window examined per timeout check. */
const RTO_SCAN = 128;

/** Socket buffer bytes one datagram of `size` bytes takes in the kernel (measured on Linux, rounded up). */
export function kernelSlot(size: number): number {
  return size <= 32_768 ? 2 * size + 1024 : size + 4096;
}

export interface SendStats {
  datagramsSent: number;
  bytesSent: number;
  messagesSent: number;
  retransmits: number;
  dropNotices: number;
  /** Live messages given up at this side (too late), or reported dropped by the receiver. */
  liveAbandoned: number;
  /** Totals the receiver reported: live messages it dropped, fragments repaired. */
  peerDrops: number;
  peerRepairs: number;
  lossEvents: number;
  timeouts: number;
  srttMs: number;
  cwndBytes: number;
  inflightBytes: number;
}

export class SendWindow {
  private readonly o: SendWindowOptions;
  private readonly fragBytes: number;
  /** Bytes of a DATA datagram besides its fragment. */
  private readonly dataOverhead: number;
  private readonly crc: boolean;
  private readonly queue: OutMsg[] = [];
  private qHead = 0;
  private readonly flight: OutMsg[] = [];
  private fHead = 0;
  private cur: OutMsg | undefined;
  private readonly liveBySeq = new Map<number, OutMsg>();
  private retx: number[] = [];
  private retxHead = 0;
  private nextPkt = 0;
  /** One past the highest packet sent. */
  private sentHigh = 0;
  private cumAcked = 0;
  private nextReliable = 0;
  private nextLive = 0;
  /** Bytes not yet sent once. */
  queuedBytes = 0;
  private inflight = 0;
  /** Messages neither acknowledged whole nor given up. */
  outstanding = 0;
  // congestion and flow
  private cwnd: number;
  private ssthresh = Number.POSITIVE_INFINITY;
  private recoveryPoint = 0;
  private readonly minCwnd: number;
  private readonly rcvbufCap: number;
  private peerWindow = Number.POSITIVE_INFINITY;
  private startedSinceAck = 0;
  /** Set when sending waits for the peer's free memory; the connection probes with a KEEPALIVE. */
  windowBlocked = false;
  // round trip
  private srtt: number | undefined;
  private rttvar = 0;
  private backoff = 1;
  // pacing
  private liveRate = 0;
  private liveAt = Number.NEGATIVE_INFINITY;
  private tokens = 0;
  private lastRefill = 0;
  private readonly s = {
    datagramsSent: 0,
    bytesSent: 0,
    messagesSent: 0,
    retransmits: 0,
    dropNotices: 0,
    liveAbandoned: 0,
    peerDrops: 0,
    peerRepairs: 0,
    lossEvents: 0,
    timeouts: 0,
  };

  constructor(options: SendWindowOptions) {
    this.o = options;
    const seal = options.sealOverhead ?? 0;
    this.fragBytes = fragmentPayload(options.mtu) - seal;
    this.dataOverhead = DATA_HEADER_BYTES + seal;
    this.crc = seal === 0;
    this.minCwnd = 4 * this.fragBytes;
    const slots = Math.max(4, Math.floor((options.peerRcvbuf * 0.8) / kernelSlot(options.mtu)));
    this.rcvbufCap = slots * this.fragBytes;
    this.cwnd = Math.min(this.rcvbufCap, Math.max(64 * 1024, 16 * this.fragBytes));
    if (options.initialRttMs !== undefined && options.initialRttMs > 0) {
      this.srtt = options.initialRttMs;
      this.rttvar = options.initialRttMs / 2;
    }
  }

  stats(): SendStats {
    return {
      ...this.s,
      srttMs: this.srtt ?? 0,
      cwndBytes: Math.round(this.cwnd),
      inflightBytes: this.inflight,
    };
  }

  /** Retransmission timeout (ms), before backoff. */
  rto(): number {
    if (this.srtt === undefined) return 200;
    return Math.min(MAX_RTO_MS, Math.max(MIN_RTO_MS, this.srtt + 4 * this.rttvar + 5));
  }

  /** True when nothing is queued or in flight. */
  get idle(): boolean {
    return this.outstanding === 0;
  }

  /** Queues one message (the parts are kept, not copied). */
  enqueue(parts: Buffer[], opts: SendOptions | undefined, now: number): void {
    let length = 0;
    for (const p of parts) length += p.length;
    if (length === 0) return;
    const live = opts?.live === true;
    const budgetMs = live ? Math.max(1, opts?.deadlineMs ?? this.o.defaultLatencyMs) : 0;
    const plan = planFragments(length, this.fragBytes);
    this.queue.push({
      live,
      seq: -1,
      parts,
      length,
      count: plan.count,
      stride: plan.stride,
      pktFirst: -1,
      next: 0,
      state: ST_QUEUED,
      acked: 0,
      fl: EMPTY_FLAGS,
      at: EMPTY_TIMES,
      enqueuedAt: now,
      deadline: live ? now + budgetMs : Number.POSITIVE_INFINITY,
      budgetMs,
      unacked: 0,
      dropSentAt: 0,
      onDrop: live ? opts?.onDrop : undefined,
    });
    this.queuedBytes += length;
    this.outstanding++;
    if (live) {
      // Input rate of live data (bytes per ms), smoothed over about ten messages.
      const inst = length / Math.max(1, now - this.liveAt);
      this.liveRate = now - this.liveAt > 1000 ? inst : 0.9 * this.liveRate + 0.1 * inst;
      this.liveAt = now;
    }
  }

  /** Pacing rate in bytes per ms: twice the window per round trip, at least 1.5 times the live input rate, capped. */
  private rate(now: number): number {
    const cap = this.o.rateBytesPerSec > 0 ? this.o.rateBytesPerSec / 1000 : Number.POSITIVE_INFINITY;
    let cc = this.srtt === undefined ? Number.POSITIVE_INFINITY : (2 * this.cwnd) / Math.max(1, this.srtt);
    if (now - this.liveAt < 1000) cc = Math.max(cc, 1.5 * this.liveRate);
    return Math.min(cap, cc);
  }

  /**
   * Sends what the window, the pacing and MAX_BURST allow. Returns 0 when there is more to send at once
   * (call again after yielding), a delay in ms when pacing holds the rest, undefined when it waits for an
   * ACK or has nothing to send.
   */
  pump(now: number): number | undefined {
    const rate = this.rate(now);
    if (Number.isFinite(rate)) {
      // A burst of 5 ms of sending (at least two datagrams): timers wake late, not early.
      const burst = Math.max(2 * this.o.mtu, rate * 5);
      this.tokens = Math.min(burst, this.tokens + (now - this.lastRefill) * rate);
    }
    this.lastRefill = now;
    this.windowBlocked = false;
    let n = 0;
    while (n < MAX_BURST) {
      if (Number.isFinite(rate) && this.tokens <= 0) return Math.max(1, Math.ceil(-this.tokens / rate) + 1);
      if (this.retxHead < this.retx.length) {
        const pkt = this.retx[this.retxHead++]!;
        if (this.retxHead > 1024 && this.retxHead * 2 > this.retx.length) {
          this.retx = this.retx.slice(this.retxHead);
          this.retxHead = 0;
        }
        if (this.resend(pkt, now, rate)) n++;
        continue;
      }
      const m = this.current(now);
      if (!m) break;
      if (m.live && now > m.deadline) {
        this.abandon(m, false);
        continue;
      }
      const size = Math.min(m.stride, m.length - m.next * m.stride);
      // Live data goes at its source's pace (as SRT's live mode does): only the peer's socket buffer bounds
      // it; the congestion window governs reliable data.
      const window = m.live ? this.rcvbufCap : Math.min(this.cwnd, this.rcvbufCap);
      if (this.inflight > 0 && this.inflight + size > window) break;
      if (m.pktFirst + m.next - this.cumAcked >= MAX_FLIGHT_PACKETS) break;
      this.sendFragment(m, m.next, now, false, rate);
      m.next++;
      if (m.next === m.count) {
        m.state = ST_SENT;
        this.cur = undefined;
      }
      n++;
    }
    return n >= MAX_BURST ? 0 : undefined;
  }

  /** The message being sent, or the next queued one, started (numbered) if the peer has room for it. */
  private current(now: number): OutMsg | undefined {
    if (this.cur) return this.cur;
    while (this.qHead < this.queue.length) {
      const m = this.queue[this.qHead]!;
      if (m.state === ST_ABANDONED) {
        this.shiftQueue();
        continue;
      }
      if (m.live && now > m.deadline) {
        // Too late before it even started: no packet number was spent on it.
        this.shiftQueue();
        this.abandon(m, true);
        continue;
      }
      if (this.inflight > 0 && m.length > this.peerWindow - this.startedSinceAck) {
        this.windowBlocked = true;
        return undefined;
      }
      this.shiftQueue();
      m.state = ST_SENDING;
      m.seq = m.live ? this.nextLive++ : this.nextReliable++;
      m.pktFirst = this.nextPkt;
      this.nextPkt += m.count;
      m.fl = new Uint8Array(m.count);
      m.at = new Float64Array(m.count);
      this.flight.push(m);
      if (m.live) this.liveBySeq.set(m.seq, m);
      this.startedSinceAck += m.length;
      this.s.messagesSent++;
      this.cur = m;
      return m;
    }
    return undefined;
  }

  private shiftQueue(): void {
    this.qHead++;
    if (this.qHead > 256 && this.qHead * 2 > this.queue.length) {
      this.queue.splice(0, this.qHead);
      this.qHead = 0;
    }
  }

  private sendFragment(m: OutMsg, i: number, now: number, again: boolean, rate: number): void {
    const [start, end] = fragmentBounds(m.length, m.stride, i);
    const parts = encodeData(
      this.o.session,
      {
        pkt: m.pktFirst + i,
        msg: m.seq,
        index: i,
        count: m.count,
        length: m.length,
        flags: (m.live ? DataFlags.LIVE : 0) | (again ? DataFlags.RETRANSMIT : 0),
        budgetMs: m.budgetMs,
      },
      sliceParts(m.parts, start, end),
      this.crc,
    );
    this.o.emit(parts);
    const size = end - start;
    if (again) {
      m.fl[i]! |= F_RETX;
      this.s.retransmits++;
    } else {
      m.fl[i]! |= F_SENT;
      this.inflight += size;
      m.unacked += size;
      this.queuedBytes -= size;
      const pkt = m.pktFirst + i + 1;
      if (pkt > this.sentHigh) this.sentHigh = pkt;
    }
    m.at[i] = now;
    this.s.datagramsSent++;
    this.s.bytesSent += size + this.dataOverhead;
    if (Number.isFinite(rate)) this.tokens -= size + this.dataOverhead;
  }

  private resend(pkt: number, now: number, rate: number): boolean {
    const m = this.find(pkt);
    if (!m) return false;
    const i = pkt - m.pktFirst;
    if (m.state === ST_ABANDONED) {
      this.sendDrop(m, now);
      return true;
    }
    if (m.state === ST_DONE) return false;
    m.fl[i]! &= ~F_QUEUED;
    const f = m.fl[i]!;
    if ((f & F_ACKED) !== 0 || (f & F_SENT) === 0) return false;
    if (m.live && now > m.deadline) {
      this.abandon(m, false);
      return true;
    }
    this.sendFragment(m, i, now, true, rate);
    // A live fragment has one chance or two before its deadline: send the repair twice, so that it fails
    // only if both copies are lost.
    if (m.live) this.sendFragment(m, i, now, true, rate);
    return true;
  }

  private sendDrop(m: OutMsg, now: number): void {
    if (now - m.dropSentAt < Math.min(20, this.rto()) && m.dropSentAt > 0) return;
    m.dropSentAt = now;
    this.s.dropNotices++;
    this.o.emit([encodeDrop(this.o.session, { first: m.pktFirst, end: m.pktFirst + m.count, msg: m.seq })]);
  }

  /** Gives up a message (live only). `silent`: the receiver knows already, or it never started. */
  private abandon(m: OutMsg, silent: boolean): void {
    if (m.state === ST_DONE || m.state === ST_ABANDONED) return;
    const started = m.state !== ST_QUEUED;
    if (started) {
      this.inflight -= m.unacked;
      m.unacked = 0;
      // Bytes never sent once no longer wait to be sent.
      let unsent = 0;
      for (let i = m.next; i < m.count; i++) {
        const [s, e] = fragmentBounds(m.length, m.stride, i);
        unsent += e - s;
      }
      this.queuedBytes -= unsent;
      // Its packets count as sent: the receiver's cumulative ACK may pass them once it has the DROP.
      if (m.pktFirst + m.count > this.sentHigh) this.sentHigh = m.pktFirst + m.count;
    } else this.queuedBytes -= m.length;
    m.state = ST_ABANDONED;
    m.parts = EMPTY;
    this.liveBySeq.delete(m.seq);
    if (this.cur === m) this.cur = undefined;
    this.outstanding--;
    this.s.liveAbandoned++;
    if (started && !silent) this.sendDrop(m, performance.now());
    const cb = m.onDrop;
    m.onDrop = undefined;
    if (cb) queueMicrotask(cb);
  }

  /** The in-flight message that holds packet `pkt`. */
  private find(pkt: number): OutMsg | undefined {
    let lo = this.fHead;
    let hi = this.flight.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = this.flight[mid]!;
      if (pkt < m.pktFirst) hi = mid - 1;
      else if (pkt >= m.pktFirst + m.count) lo = mid + 1;
      else return m;
    }
    return undefined;
  }

  /** Marks packets [start, end) acknowledged; returns the bytes newly acknowledged. */
  private ackRange(start: number, end: number): number {
    let bytes = 0;
    let p = start;
    while (p < end) {
      const m = this.find(p);
      if (!m) {
        p++;
        continue;
      }
      const mEnd = m.pktFirst + m.count;
      const stop = Math.min(end, mEnd);
      if (m.state === ST_DONE || m.state === ST_ABANDONED) {
        p = stop;
        continue;
      }
      for (let i = p - m.pktFirst, last = stop - m.pktFirst; i < last; i++) {
        const f = m.fl[i]!;
        if ((f & F_ACKED) !== 0 || (f & F_SENT) === 0) continue;
        m.fl[i] = f | F_ACKED;
        m.acked++;
        const [s, e] = fragmentBounds(m.length, m.stride, i);
        m.unacked -= e - s;
        this.inflight -= e - s;
        bytes += e - s;
      }
      if (m.acked === m.count) {
        m.state = ST_DONE;
        m.parts = EMPTY;
        this.outstanding--;
        if (m.live) this.liveBySeq.delete(m.seq);
        if (this.cur === m) this.cur = undefined;
      }
      p = stop;
    }
    return bytes;
  }

  private trimFlight(): void {
    while (this.fHead < this.flight.length) {
      const m = this.flight[this.fHead]!;
      if (m.state === ST_DONE || (m.state === ST_ABANDONED && this.cumAcked >= m.pktFirst + m.count)) {
        this.fHead++;
      } else break;
    }
    if (this.fHead > 256 && this.fHead * 2 > this.flight.length) {
      this.flight.splice(0, this.fHead);
      this.fHead = 0;
    }
  }

  onAck(a: Ack, now: number): void {
    // Drops first: the receiver counts a message it gave up as received, so that its cumulative ACK can
    // pass it; read after the ranges, such a message would look delivered.
    for (const d of a.dropped) {
      const dm = this.liveBySeq.get(unwrap32(d, Math.max(0, this.nextLive - MAX_DROPPED_REPORTED)));
      if (dm) this.abandon(dm, true);
    }
    let cum = unwrap32(a.cumulative, this.cumAcked);
    if (cum > this.sentHigh) cum = this.sentHigh;
    let newly = 0;
    if (cum > this.cumAcked) {
      newly += this.ackRange(this.cumAcked, cum);
      this.cumAcked = cum;
    }
    for (const [s32, e32] of a.sack) {
      const s = Math.max(this.cumAcked, unwrap32(s32, this.cumAcked));
      const e = Math.min(this.sentHigh, unwrap32(e32, s));
      if (e > s) newly += this.ackRange(s, e);
    }
    // Round trip, from the newest packet if it was sent only once (Karn).
    const newest = unwrap32(a.newest, this.cumAcked);
    const m = this.find(newest);
    if (m && m.fl.length > 0) {
      const i = newest - m.pktFirst;
      const f = m.fl[i]!;
      if ((f & F_SENT) !== 0 && (f & F_RETX) === 0) {
        const sample = now - m.at[i]! - a.delayUs / 1000;
        if (sample > 0) this.rttSample(sample);
      }
    }
    this.s.peerDrops = a.drops;
    this.s.peerRepairs = a.repairs;
    this.peerWindow = a.window;
    this.startedSinceAck = 0;
    this.trimFlight();
    if (newly > 0) {
      this.backoff = 1;
      this.grow(newly);
    }
  }

  private rttSample(ms: number): void {
    if (this.srtt === undefined) {
      this.srtt = ms;
      this.rttvar = ms / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
      this.srtt = 0.875 * this.srtt + 0.125 * ms;
    }
  }

  private grow(bytes: number): void {
    // Only when the window was in use: an idle sender does not earn a larger window.
    if (this.inflight + bytes < this.cwnd / 2) return;
    if (this.cwnd < this.ssthresh) this.cwnd += bytes;
    else this.cwnd += Math.max((this.fragBytes * bytes) / this.cwnd, bytes / 8);
    this.cwnd = Math.min(this.cwnd, 4 * this.rcvbufCap);
  }

  private lossAt(pkt: number): void {
    if (pkt < this.recoveryPoint) return;
    this.s.lossEvents++;
    this.cwnd = Math.max(this.minCwnd, this.cwnd * 0.8);
    this.ssthresh = this.cwnd;
    this.recoveryPoint = this.nextPkt;
  }

  onNack(ranges: ReadonlyArray<readonly [number, number]>, now: number): void {
    const guard = Math.max(2, (this.srtt ?? 10) + 2 * this.rttvar);
    let budget = 8192;
    let dropsFor: OutMsg | undefined;
    for (const [s32, e32] of ranges) {
      const s = Math.max(this.cumAcked, unwrap32(s32, this.cumAcked));
      const e = Math.min(this.sentHigh, unwrap32(e32, s));
      let p = s;
      while (p < e && budget > 0) {
        const m = this.find(p);
        if (!m) {
          p++;
          budget--;
          continue;
        }
        const stop = Math.min(e, m.pktFirst + m.count);
        if (m.state === ST_ABANDONED) {
          if (dropsFor !== m) this.sendDrop(m, now);
          dropsFor = m;
          p = stop;
          continue;
        }
        if (m.state === ST_DONE) {
          p = stop;
          continue;
        }
        if (m.live && now > m.deadline) {
          this.abandon(m, false);
          p = stop;
          continue;
        }
        for (; p < stop && budget > 0; p++, budget--) {
          const i = p - m.pktFirst;
          const f = m.fl[i]!;
          if ((f & F_SENT) === 0 || (f & (F_ACKED | F_QUEUED)) !== 0) continue;
          // The first NACK of a packet is believed at once; a packet already resent is resent again only
          // once the first resend had time to arrive (the receiver repeats its NACKs every 10 ms).
          if ((f & F_RETX) !== 0 && now - m.at[i]! < guard) continue;
          this.lossAt(p);
          m.fl[i] = f | F_QUEUED;
          this.retx.push(p);
        }
      }
    }
  }

  /**
   * Timers: resends the oldest unacknowledged packets once the retransmission timeout passed (the tail of a
   * burst has no later packet to reveal its loss), gives up live messages well past their deadline, and
   * drops queued live messages that are too late. Returns true when something needs sending.
   */
  tick(now: number): boolean {
    let work = false;
    // Queued live messages that became too late.
    for (let i = this.qHead; i < this.queue.length; i++) {
      const m = this.queue[i]!;
      if (m.live && m.state === ST_QUEUED && now > m.deadline) this.abandon(m, true);
    }
    if (this.liveBySeq.size > 0) {
      const grace = Math.max(100, 4 * (this.srtt ?? 25));
      for (const m of this.liveBySeq.values()) {
        if (now > m.deadline + grace) {
          this.abandon(m, false);
          work = true;
        }
      }
    }
    const rto = this.rto() * this.backoff;
    let fired = false;
    let scanned = 0;
    for (let k = this.fHead; k < this.flight.length && scanned < RTO_SCAN; k++) {
      const m = this.flight[k]!;
      if (m.state === ST_DONE) continue;
      if (m.state === ST_ABANDONED) {
        if (now - m.dropSentAt > rto) {
          this.sendDrop(m, now);
          work = true;
        }
        continue;
      }
      for (let i = Math.max(0, this.cumAcked - m.pktFirst); i < m.next && scanned < RTO_SCAN; i++) {
        const f = m.fl[i]!;
        if ((f & (F_ACKED | F_QUEUED)) !== 0) continue;
        scanned++;
        if (now - m.at[i]! > rto) {
          m.fl[i] = f | F_QUEUED;
          this.retx.push(m.pktFirst + i);
          fired = true;
        }
      }
    }
    if (fired) {
      this.s.timeouts++;
      this.backoff = Math.min(this.backoff * 2, 16);
      if (this.cumAcked >= this.recoveryPoint) {
        this.ssthresh = Math.max(this.minCwnd, this.cwnd * 0.7);
        this.cwnd = this.ssthresh;
        this.recoveryPoint = this.nextPkt;
      }
      work = true;
    }
    this.trimFlight();
    return work;
  }

  /** True while a packet is in flight or queued (the connection keeps its timers running). */
  get busy(): boolean {
    return this.outstanding > 0 || this.fHead < this.flight.length;
  }

  /** The connection ended: forget everything (nothing is called back). */
  clear(): void {
    for (let i = this.qHead; i < this.queue.length; i++) this.queue[i]!.parts = EMPTY;
    for (let i = this.fHead; i < this.flight.length; i++) this.flight[i]!.parts = EMPTY;
    this.queue.length = 0;
    this.flight.length = 0;
    this.qHead = 0;
    this.fHead = 0;
    this.cur = undefined;
    this.liveBySeq.clear();
    this.retx = [];
    this.retxHead = 0;
    this.queuedBytes = 0;
    this.inflight = 0;
    this.outstanding = 0;
  }
}

const EMPTY_FLAGS = new Uint8Array(0);
const EMPTY_TIMES = new Float64Array(0);
