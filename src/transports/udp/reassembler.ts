/**
 * Reassembly of messages from fragments, delivery order and memory bounds, for one peer. Pure logic: no
 * sockets, no timers (the caller passes the time).
 *
 * - A message's buffer is allocated once, at its first fragment, from the announced length, and only after
 *   that length passed the limits; fragments are copied into place; a one-fragment message is not copied.
 * - Reliable messages are handed out exactly once and in order of their message numbers; a complete one
 *   that arrived early waits for the ones before it.
 * - Live messages are handed out as soon as they are complete, never behind another message, or given up
 *   whole once their latency budget is spent.
 * - Memory (partial buffers, complete messages waiting for their turn or for a paused reader) is counted per
 *   peer and against a budget shared by every peer of a listener. Past the cap, fragments of new messages are
 *   refused (not acknowledged, so the sender sends them again later), except those of the next reliable
 *   message, which is always admitted so that delivery cannot deadlock.
 */
import { FramewireError } from '../../errors.js';
import { type DataDatagram, DataFlags, unwrap32 } from './datagram.js';
import { fragmentBounds, strideOf } from './fragmenter.js';

/** Memory shared by every peer of one listener (or owned by one client connection). */
export interface MemoryBudget {
  used: number;
  readonly cap: number;
}

interface Partial {
  live: boolean;
  seq: number;
  length: number;
  count: number;
  stride: number;
  pktFirst: number;
  buf: Buffer;
  have: Uint8Array;
  got: number;
  deadline: number;
}

export type AddResult =
  /** The fragment was new and is stored (or completed its message). */
  | 'ok'
  /** The message is already delivered or given up: the packet counts as received. */
  | 'duplicate'
  /** Memory is full: the fragment is not stored and its packet must not be acknowledged. */
  | 'refused'
  /** The fragment contradicts what is known of its message: ignored. */
  | 'bad';

export interface Dropped {
  seq: number;
  pktFirst: number;
  count: number;
}

export interface ReassemblerOptions {
  /** Memory this peer may hold (bytes). */
  maxBytes: number;
  /** Largest message accepted (bytes), from the protocol limits. */
  maxMessageBytes: number;
  budget: MemoryBudget;
  /** Called with every message ready for the reader, in delivery order. */
  deliver: (msg: Buffer) => void;
}

export class Reassembler {
  private readonly o: ReassemblerOptions;
  private readonly reliable = new Map<number, Partial>();
  private readonly live = new Map<number, Partial>();
  /** Complete reliable messages waiting for an earlier one. */
  private readonly ready = new Map<number, Buffer>();
  /** Next reliable message number to hand out. */
  nextReliable = 0;
  /** Every live message number below this is delivered or given up; `liveDone` holds those above. */
  private liveBase = 0;
  private readonly liveDone = new Set<number>();
  /** Bytes this peer holds. */
  used = 0;
  /** Of those, bytes handed to the reader and not yet released by it (a paused reader holds them). */
  private handedOut = 0;
  completed = 0;
  liveDropped = 0;

  constructor(options: ReassemblerOptions) {
    this.o = options;
  }

  /** Bytes this peer could still take before refusing new messages. */
  get free(): number {
    return Math.max(0, Math.min(this.o.maxBytes - this.used, this.o.budget.cap - this.o.budget.used));
  }

  /** Live messages being reassembled (the caller runs the deadline timer while there are any). */
  get livePartials(): number {
    return this.live.size;
  }

  /** One past the last packet of the messages being reassembled (their tails may be lost). */
  expectedEnd(): number {
    let end = 0;
    for (const p of this.reliable.values()) end = Math.max(end, p.pktFirst + p.count);
    for (const p of this.live.values()) end = Math.max(end, p.pktFirst + p.count);
    return end;
  }

  /** Messages being reassembled. */
  get partials(): number {
    return this.reliable.size + this.live.size;
  }

  /** Adds one fragment whose packet number is `pkt`. Throws ERR_REASSEMBLY_LIMIT for a message that can never fit. */
  add(d: DataDatagram, pkt: number, now: number): AddResult {
    const isLive = (d.flags & DataFlags.LIVE) !== 0;
    const seq = unwrap32(d.msg, isLive ? this.liveBase : this.nextReliable);
    if (isLive ? this.isLiveDone(seq) : seq < this.nextReliable || this.ready.has(seq)) return 'duplicate';
    const table = isLive ? this.live : this.reliable;
    let p = table.get(seq);
    if (p) {
      if (p.length !== d.length || p.count !== d.count || p.pktFirst !== pkt - d.index) return 'bad';
    } else {
      const stride = strideOf(d.length, d.count);
      if (stride === undefined) return 'bad';
      if (d.length > this.o.maxMessageBytes || d.length > this.o.maxBytes) {
        throw new FramewireError(
          'ERR_REASSEMBLY_LIMIT',
          `udp: a message of ${d.length} bytes exceeds ${d.length > this.o.maxMessageBytes ? `the largest message the limits allow (${this.o.maxMessageBytes})` : `maxReassemblyBytes ${this.o.maxBytes}`}`,
          { hint: 'raise the receiver limits (serve --max-frame-bytes) or send smaller frames' },
        );
      }
      const [start, end] = fragmentBounds(d.length, stride, d.index);
      if (d.fragment.length !== end - start) return 'bad';
      if (d.count === 1) {
        // One fragment: the datagram's own bytes are the message.
        if (!this.admit(d.length, isLive, seq)) return 'refused';
        this.charge(d.length);
        this.complete(isLive, seq, d.fragment);
        return 'ok';
      }
      if (!this.admit(d.length, isLive, seq)) return 'refused';
      this.charge(d.length);
      p = {
        live: isLive,
        seq,
        length: d.length,
        count: d.count,
        stride,
        pktFirst: pkt - d.index,
        buf: Buffer.allocUnsafe(d.length),
        have: new Uint8Array(d.count),
        got: 0,
        deadline: isLive ? now + Math.max(1, d.budgetMs) : Number.POSITIVE_INFINITY,
      };
      table.set(seq, p);
    }
    if (p.have[d.index]) return 'duplicate';
    const [start, end] = fragmentBounds(p.length, p.stride, d.index);
    if (d.fragment.length !== end - start) return 'bad';
    d.fragment.copy(p.buf, start);
    p.have[d.index] = 1;
    p.got++;
    if (p.got === p.count) {
      table.delete(seq);
      this.complete(isLive, seq, p.buf);
    }
    return 'ok';
  }

  private admit(length: number, isLive: boolean, seq: number): boolean {
    // The exemption breaks a deadlock (memory full of messages waiting for this one). While the reader
    // holds messages it has not taken, there is none: admitting would let a peer that ignores the
    // advertised window grow a paused reader's memory without bound.
    if (!isLive && seq === this.nextReliable && this.handedOut === 0) return true;
    return this.used + length <= this.o.maxBytes && this.o.budget.used + length <= this.o.budget.cap;
  }

  private charge(n: number): void {
    this.used += n;
    this.o.budget.used += n;
  }

  /** Gives back memory of a message handed to the reader, once it took it (or dropped it). */
  release(n: number): void {
    this.handedOut -= n;
    this.uncharge(n);
  }

  private uncharge(n: number): void {
    this.used -= n;
    this.o.budget.used -= n;
  }

  private handOut(buf: Buffer): void {
    this.handedOut += buf.length;
    this.o.deliver(buf);
  }

  private complete(isLive: boolean, seq: number, buf: Buffer): void {
    this.completed++;
    if (isLive) {
      this.markLiveDone(seq);
      this.handOut(buf);
      return;
    }
    if (seq !== this.nextReliable) {
      this.ready.set(seq, buf);
      return;
    }
    this.nextReliable++;
    this.handOut(buf);
    for (let next = this.ready.get(this.nextReliable); next; next = this.ready.get(this.nextReliable)) {
      this.ready.delete(this.nextReliable);
      this.nextReliable++;
      this.handOut(next);
    }
  }

  private isLiveDone(seq: number): boolean {
    return seq < this.liveBase || this.liveDone.has(seq);
  }

  private markLiveDone(seq: number): void {
    if (seq < this.liveBase) return;
    if (seq !== this.liveBase) {
      this.liveDone.add(seq);
      // Bounded: a number that never resolves must not make the set grow for ever.
      if (this.liveDone.size > 4096) {
        let min = Number.POSITIVE_INFINITY;
        for (const s of this.liveDone) if (s < min) min = s;
        this.liveBase = min;
      } else return;
    } else this.liveBase++;
    while (this.liveDone.delete(this.liveBase)) this.liveBase++;
  }

  /**
   * Gives up live message `seq` because its sender did. Returns false when it was delivered (or given up)
   * already: then there is nothing to count.
   */
  dropLive(seq32: number): boolean {
    const seq = unwrap32(seq32, this.liveBase);
    if (this.isLiveDone(seq)) return false;
    const p = this.live.get(seq);
    this.markLiveDone(seq);
    this.liveDropped++;
    if (p) {
      this.live.delete(seq);
      this.uncharge(p.length);
    }
    return true;
  }

  /** Gives up every live message whose budget is spent; returns them. */
  expire(now: number): Dropped[] {
    const out: Dropped[] = [];
    for (const p of this.live.values()) {
      if (p.deadline > now) continue;
      this.live.delete(p.seq);
      this.uncharge(p.length);
      this.markLiveDone(p.seq);
      this.liveDropped++;
      out.push({ seq: p.seq, pktFirst: p.pktFirst, count: p.count });
    }
    return out;
  }

  /** Frees everything (the connection ended). */
  clear(): void {
    for (const p of this.reliable.values()) this.uncharge(p.length);
    for (const p of this.live.values()) this.uncharge(p.length);
    for (const b of this.ready.values()) this.uncharge(b.length);
    this.reliable.clear();
    this.live.clear();
    this.ready.clear();
  }
}
