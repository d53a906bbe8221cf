/**
 * The receiver's view of the packet sequence: what arrived, what is missing. A bit per packet in a ring
 * above the cumulative point (every packet below it is received or given up), so duplicates are found in
 * O(1) and the ACK's SACK ranges and the NACK's missing ranges come from one scan of the bits. Pure logic:
 * no sockets, no timers.
 */

/** Packets the ring tracks above the cumulative point; a sender keeps fewer than half of this in flight. */
export const RING_PACKETS = 1 << 17;

export type Range = [number, number];

export class ReceiveWindow {
  /** Every packet below this is received or given up. */
  cumulative = 0;
  /** One past the highest packet seen. */
  highest = 0;
  /** Packets received above the cumulative point. */
  private above = 0;
  private bits: Uint8Array | undefined;

  /** True when `pkt` was seen (or given up) already. */
  has(pkt: number): boolean {
    if (pkt < this.cumulative) return true;
    if (pkt >= this.highest || !this.bits) return false;
    const i = pkt % RING_PACKETS;
    return (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  /** True when `pkt` is too far ahead to be tracked (a sender that ignores the window, or junk). */
  tooFar(pkt: number): boolean {
    return pkt >= this.cumulative + RING_PACKETS;
  }

  /** Missing packets between the cumulative point and the highest seen. */
  get missing(): number {
    return this.highest - this.cumulative - this.above;
  }

  /** Marks `pkt` received. Returns false when it was already marked or is out of range. */
  mark(pkt: number): boolean {
    if (pkt < this.cumulative || this.tooFar(pkt) || this.has(pkt)) return false;
    if (pkt === this.cumulative && this.above === 0) {
      // In order, nothing pending above: no bit needed.
      this.cumulative++;
      if (this.highest < this.cumulative) this.highest = this.cumulative;
      return true;
    }
    this.bits ??= new Uint8Array(RING_PACKETS >> 3);
    const i = pkt % RING_PACKETS;
    this.bits[i >> 3]! |= 1 << (i & 7);
    this.above++;
    if (pkt >= this.highest) this.highest = pkt + 1;
    this.advance();
    return true;
  }

  /** Marks every packet of [first, end) received (a message given up), as far as the ring reaches. */
  markRange(first: number, end: number): void {
    const stop = Math.min(end, this.cumulative + RING_PACKETS);
    for (let p = Math.max(first, this.cumulative); p < stop; p++) this.mark(p);
  }

  private advance(): void {
    const bits = this.bits!;
    while (this.above > 0) {
      const i = this.cumulative % RING_PACKETS;
      const byte = i >> 3;
      const mask = 1 << (i & 7);
      if ((bits[byte]! & mask) === 0) break;
      bits[byte]! &= ~mask;
      this.above--;
      this.cumulative++;
    }
  }

  /**
   * Scans [cumulative, highest) once: received ranges (for SACK) and missing ranges (for NACK), each list
   * cut at its own maximum length.
   */
  ranges(maxReceived: number, maxMissing: number): { received: Range[]; missing: Range[] } {
    const received: Range[] = [];
    const missing: Range[] = [];
    if (this.highest <= this.cumulative) return { received, missing };
    if (!this.bits || this.above === 0) {
      if (maxMissing > 0) missing.push([this.cumulative, this.highest]);
      return { received, missing };
    }
    const bits = this.bits;
    let p = this.cumulative;
    const end = this.highest;
    let runStart = p;
    let runHave = false;
    let first = true;
    while (p < end) {
      const i = p % RING_PACKETS;
      // Whole bytes of the same value at once.
      if ((i & 7) === 0 && p + 8 <= end) {
        const b = bits[i >> 3]!;
        if (b === 0 || b === 0xff) {
          const have = b === 0xff;
          if (first) {
            runHave = have;
            first = false;
          } else if (have !== runHave) {
            this.push(runHave ? received : missing, runStart, p, runHave ? maxReceived : maxMissing);
            runStart = p;
            runHave = have;
          }
          p += 8;
          continue;
        }
      }
      const have = (bits[i >> 3]! & (1 << (i & 7))) !== 0;
      if (first) {
        runHave = have;
        first = false;
      } else if (have !== runHave) {
        this.push(runHave ? received : missing, runStart, p, runHave ? maxReceived : maxMissing);
        runStart = p;
        runHave = have;
      }
      p++;
      if (received.length >= maxReceived && missing.length >= maxMissing) break;
    }
    if (p >= end) this.push(runHave ? received : missing, runStart, end, runHave ? maxReceived : maxMissing);
    return { received, missing };
  }

  private push(list: Range[], start: number, end: number, max: number): void {
    if (list.length < max && end > start) list.push([start, end]);
  }
}
