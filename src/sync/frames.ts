/**
 * Received frames grouped by corrected capture time: the {@link Pairer} applied to `ReceivedFrame`s, with the
 * counts of frames left without a group, by stream and reason. Pure and timer-free like the pairer; the
 * sync sink (OUT/sync.jsonl) and `server.sync()` drive it.
 */
import { FramewireError } from '../errors.js';
import type { ReceivedFrame } from '../types.js';
import { type PairEvent, Pairer, type UnpairedReason } from './pairer.js';

/** Why a frame was left without a group: the pairer's reasons, or `clock` (no clock offset known yet). */
export type SyncUnpairedReason = UnpairedReason | 'clock';
export const SYNC_UNPAIRED_REASONS: readonly SyncUnpairedReason[] = ['tolerance', 'skipped', 'late', 'clock'];

export interface SyncOptions {
  /** Largest span of a group (µs, default 20000). */
  toleranceUs?: number;
  /** How long to wait for a frame after its capture time (µs, default 200000). */
  maxWaitUs?: number;
  /**
   * Group by the senders' capture times as they are, ignoring the clock offsets (default false: frames whose
   * sender's offset is not known yet are left out as `clock`).
   */
  trustClocks?: boolean;
  /** The name recorded for a frame (default: the name it was sent with). */
  nameOf?: (frame: ReceivedFrame) => string;
}

/** One frame of a group. */
export interface SyncMember {
  seq: number;
  /** The frame's (saved) file name. */
  name: string;
  /** Capture time on the sender's clock, µs. */
  captureUs: number;
  /** Capture time on the receiver's clock, µs (what the grouping used). */
  correctedUs: number;
  frame: ReceivedFrame;
}

/** Frames of several streams taken at the same moment. */
export interface SyncGroup {
  /** The earliest corrected capture time of the group, µs. */
  t: number;
  /** Latest minus earliest corrected capture time, µs. */
  spanUs: number;
  /** One frame per stream, keyed by stream name, in the order the streams were given. */
  frames: Record<string, SyncMember>;
}

export type SyncEvent =
  | { type: 'group'; group: SyncGroup }
  | { type: 'unpaired'; stream: string; seq: number; reason: SyncUnpairedReason };

/** Parses `A,B[,…]` into a list of at least two distinct stream names (ERR_BAD_OPTION otherwise). */
export function parseSyncStreams(text: string): string[] {
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length < 2 || new Set(names).size !== names.length) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `--sync needs at least two different stream names separated by commas, got ${JSON.stringify(text)}`,
    );
  }
  return names;
}

export class FrameSync {
  readonly streams: readonly string[];
  readonly #pairer: Pairer<SyncMember>;
  readonly #trust: boolean;
  readonly #nameOf: (f: ReceivedFrame) => string;
  readonly #unpaired = new Map<string, Map<SyncUnpairedReason, number>>();
  #groups = 0;

  constructor(streams: readonly string[], options: SyncOptions = {}) {
    this.#pairer = new Pairer<SyncMember>({
      streams: [...streams],
      toleranceUs: options.toleranceUs ?? 20_000,
      maxWaitUs: options.maxWaitUs ?? 200_000,
    });
    this.streams = this.#pairer.streams;
    this.#trust = options.trustClocks ?? false;
    this.#nameOf = options.nameOf ?? ((f) => f.name);
  }

  /** Whether `stream` is one of this group's streams. */
  has(stream: string): boolean {
    return this.streams.includes(stream);
  }

  /** Takes a received frame of one of the streams at receiver time `nowUs`; other streams are ignored. */
  push(frame: ReceivedFrame, nowUs: number): SyncEvent[] {
    const stream = frame.stream.name;
    if (!this.has(stream)) return [];
    const t = this.#trust ? frame.captureUs : frame.correctedUs;
    if (t === undefined) {
      this.#count(stream, 'clock');
      return [{ type: 'unpaired', stream, seq: frame.seq, reason: 'clock' }];
    }
    const member: SyncMember = {
      seq: frame.seq,
      name: this.#nameOf(frame),
      captureUs: frame.captureUs,
      correctedUs: t,
      frame,
    };
    return this.#map(this.#pairer.push(stream, t, member, nowUs));
  }

  /** Moves time on: decides what waited long enough. */
  advance(nowUs: number): SyncEvent[] {
    return this.#map(this.#pairer.advance(nowUs));
  }

  /** No more frames: decides everything left. */
  flush(): SyncEvent[] {
    return this.#map(this.#pairer.flush());
  }

  /** Groups made so far. */
  get groups(): number {
    return this.#groups;
  }

  /** Frames left without a group so far, by stream, then reason. */
  unpaired(): Record<string, Partial<Record<SyncUnpairedReason, number>>> {
    const out: Record<string, Partial<Record<SyncUnpairedReason, number>>> = {};
    for (const [stream, m] of this.#unpaired) out[stream] = Object.fromEntries(m);
    return out;
  }

  #count(stream: string, reason: SyncUnpairedReason): void {
    let m = this.#unpaired.get(stream);
    if (!m) {
      m = new Map();
      this.#unpaired.set(stream, m);
    }
    m.set(reason, (m.get(reason) ?? 0) + 1);
  }

  #map(events: PairEvent<SyncMember>[]): SyncEvent[] {
    const out: SyncEvent[] = [];
    for (const e of events) {
      if (e.type === 'unpaired') {
        this.#count(e.frame.stream, e.reason);
        out.push({ type: 'unpaired', stream: e.frame.stream, seq: e.frame.item.seq, reason: e.reason });
        continue;
      }
      this.#groups++;
      const frames: Record<string, SyncMember> = {};
      for (const f of e.group.frames) frames[f.stream] = f.item;
      out.push({ type: 'group', group: { t: e.group.timeUs, spanUs: e.group.spanUs, frames } });
    }
    return out;
  }
}

/** The line of OUT/sync.jsonl for a group. */
export function syncLine(g: SyncGroup): string {
  const frames: Record<string, { seq: number; name: string; captureUs: number; correctedUs: number }> = {};
  for (const [stream, m] of Object.entries(g.frames)) {
    frames[stream] = { seq: m.seq, name: m.name, captureUs: m.captureUs, correctedUs: m.correctedUs };
  }
  return JSON.stringify({ t: g.t, spanUs: g.spanUs, frames });
}
