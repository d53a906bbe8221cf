/**
 * Groups frames of several streams by time, with the rules of ROS message_filters' ApproximateTime policy,
 * bounded by a tolerance. Pure and timer-free: the caller pushes frames with the current time and calls
 * `advance` now and then (the session does it on a timer); the pairer returns what it decided.
 *
 * The rules, stated on the timestamps alone (docs/sync.md):
 * - the **heads** are the earliest frames not yet used or dropped, one per stream; the **pivot** is the
 *   latest head (ties: the stream given last). Every later group must hold a frame of the pivot's stream at
 *   or after it, so a head more than `tolerance` before the pivot can never be grouped: it is dropped;
 * - otherwise the group is the one **containing the pivot with the smallest span** (ties: the earliest start,
 *   then the earliest frame of each stream) among frames within `tolerance` of it; with no such group the
 *   pivot is dropped;
 * - a group uses each frame at most once, and every frame of a stream before the one it took is dropped:
 *   groups never cross and come out in time order.
 *
 * Online, a decision is made only once every frame it depends on is known: a stream's frames up to its
 * **watermark** are. The watermark is `now − maxWait` (a frame is assumed to arrive within `maxWait` of its
 * time), or, for streams that deliver in time order (`ordered`, the default: one connection per stream), the
 * latest time seen when that is later. So the output depends on the timestamps only, not on the arrival
 * order, as long as each frame arrives within `maxWait`; one that arrives later is dropped as `late`.
 */
import { FramewireError } from '../errors.js';

/** Why a frame left the pairer without a group. */
export type UnpairedReason = 'tolerance' | 'skipped' | 'late';
export const UNPAIRED_REASONS: readonly UnpairedReason[] = ['tolerance', 'skipped', 'late'];

export interface PairedFrame<T> {
  stream: string;
  timeUs: number;
  item: T;
}

export interface PairGroup<T> {
  /** The earliest time of the group, µs. */
  timeUs: number;
  /** Latest minus earliest time of the group, µs (at most the tolerance). */
  spanUs: number;
  /** One frame per stream, in the order the streams were given. */
  frames: PairedFrame<T>[];
}

export type PairEvent<T> =
  | { type: 'group'; group: PairGroup<T> }
  | { type: 'unpaired'; frame: PairedFrame<T>; reason: UnpairedReason };

export interface PairerOptions {
  /** The streams to group, at least two, each once. */
  streams: string[];
  /** Largest span of a group, µs. */
  toleranceUs: number;
  /** How long after its time a frame may still arrive, µs. */
  maxWaitUs: number;
  /** Each stream delivers its frames in time order (default true). */
  ordered?: boolean;
}

interface Lane<T> {
  name: string;
  index: number;
  /** Frames not yet used nor dropped, by time. */
  frames: PairedFrame<T>[];
  /** Latest time pushed, -Infinity before the first. */
  lastUs: number;
}

export class Pairer<T = unknown> {
  readonly streams: readonly string[];
  readonly toleranceUs: number;
  readonly maxWaitUs: number;
  readonly ordered: boolean;
  readonly #lanes: Lane<T>[];
  readonly #byName = new Map<string, Lane<T>>();
  #nowUs = -Infinity;
  #flushed = false;

  constructor(options: PairerOptions) {
    const { streams, toleranceUs, maxWaitUs } = options;
    if (!Array.isArray(streams) || streams.length < 2 || new Set(streams).size !== streams.length) {
      throw new FramewireError('ERR_BAD_OPTION', 'a sync group needs at least two different streams');
    }
    if (!(Number.isFinite(toleranceUs) && toleranceUs >= 0)) {
      throw new FramewireError('ERR_BAD_OPTION', `tolerance must be a non-negative time, got ${toleranceUs}`);
    }
    if (!(Number.isFinite(maxWaitUs) && maxWaitUs >= 0)) {
      throw new FramewireError('ERR_BAD_OPTION', `max-wait must be a non-negative time, got ${maxWaitUs}`);
    }
    this.streams = [...streams];
    this.toleranceUs = toleranceUs;
    this.maxWaitUs = maxWaitUs;
    this.ordered = options.ordered ?? true;
    this.#lanes = streams.map((name, index) => ({ name, index, frames: [], lastUs: -Infinity }));
    for (const l of this.#lanes) this.#byName.set(l.name, l);
  }

  /** Frames waiting for a decision. */
  get pending(): number {
    let n = 0;
    for (const l of this.#lanes) n += l.frames.length;
    return n;
  }

  /** Adds a frame of `stream` taken at `timeUs`, at time `nowUs`; returns what that decided. */
  push(stream: string, timeUs: number, item: T, nowUs: number): PairEvent<T>[] {
    const lane = this.#byName.get(stream);
    if (!lane) throw new FramewireError('ERR_BAD_OPTION', `stream "${stream}" is not in this sync group`);
    const out: PairEvent<T>[] = [];
    const frame: PairedFrame<T> = { stream, timeUs, item };
    // Late: its stream's frames up to its time were taken as all known before it came.
    if (this.#flushed || timeUs <= this.#watermark(lane)) {
      out.push({ type: 'unpaired', frame, reason: 'late' });
    } else {
      const fs = lane.frames;
      if (fs.length === 0 || fs[fs.length - 1]!.timeUs <= timeUs) fs.push(frame);
      else fs.splice(upperBound(fs, timeUs), 0, frame);
      lane.lastUs = Math.max(lane.lastUs, timeUs);
    }
    this.#nowUs = Math.max(this.#nowUs, nowUs);
    this.#run(out);
    return out;
  }

  /** Moves time on to `nowUs`: decides what waited for `maxWait`. */
  advance(nowUs: number): PairEvent<T>[] {
    this.#nowUs = Math.max(this.#nowUs, nowUs);
    const out: PairEvent<T>[] = [];
    this.#run(out);
    return out;
  }

  /** No frame will come any more: decides everything (the pairer takes no more frames). */
  flush(): PairEvent<T>[] {
    this.#flushed = true;
    const out: PairEvent<T>[] = [];
    this.#run(out);
    return out;
  }

  #watermark(lane: Lane<T>): number {
    if (this.#flushed) return Infinity;
    const byTime = this.#nowUs - this.maxWaitUs;
    return this.ordered ? Math.max(byTime, lane.lastUs) : byTime;
  }

  #run(out: PairEvent<T>[]): void {
    const tol = this.toleranceUs;
    const lanes = this.#lanes;
    for (;;) {
      const marks = lanes.map((l) => this.#watermark(l));
      // A known frame with no possible partner in some stream whose frames around it are all known.
      let dropped = false;
      for (const r of lanes) {
        const f = r.frames[0];
        if (!f || f.timeUs > marks[r.index]!) continue;
        for (const s of lanes) {
          if (s === r || marks[s.index]! < f.timeUs + tol) continue;
          if (!s.frames.some((g) => Math.abs(g.timeUs - f.timeUs) <= tol)) {
            r.frames.shift();
            out.push({ type: 'unpaired', frame: f, reason: 'tolerance' });
            dropped = true;
            break;
          }
        }
      }
      if (dropped) continue;
      // The pivot step needs every head, known to be the head.
      let pivot: Lane<T> | undefined;
      let ready = true;
      for (const l of lanes) {
        const h = l.frames[0];
        if (!h || h.timeUs > marks[l.index]!) {
          ready = false;
          break;
        }
        if (!pivot || h.timeUs >= pivot.frames[0]!.timeUs) pivot = l;
      }
      if (!ready || !pivot) return;
      const p = pivot.frames[0]!;
      for (const l of lanes) {
        const h = l.frames[0]!;
        if (h.timeUs < p.timeUs - tol) {
          l.frames.shift();
          out.push({ type: 'unpaired', frame: h, reason: 'tolerance' });
          dropped = true;
        }
      }
      if (dropped) continue;
      for (const l of lanes) if (marks[l.index]! < p.timeUs + tol) return;
      const chosen = this.#bestGroup(pivot, p);
      if (!chosen) {
        pivot.frames.shift();
        out.push({ type: 'unpaired', frame: p, reason: 'tolerance' });
        continue;
      }
      const frames: PairedFrame<T>[] = [];
      let lo = Infinity;
      let hi = -Infinity;
      for (const l of lanes) {
        const k = chosen[l.index]!;
        for (let i = 0; i < k; i++) out.push({ type: 'unpaired', frame: l.frames[i]!, reason: 'skipped' });
        const f = l.frames[k]!;
        l.frames.splice(0, k + 1);
        frames.push(f);
        lo = Math.min(lo, f.timeUs);
        hi = Math.max(hi, f.timeUs);
      }
      out.push({ type: 'group', group: { timeUs: lo, spanUs: hi - lo, frames } });
    }
  }

  /** Indexes (into each lane's frames) of the smallest-span group holding pivot `p`, or undefined. */
  #bestGroup(pivot: Lane<T>, p: PairedFrame<T>): number[] | undefined {
    const tol = this.toleranceUs;
    const starts = new Set<number>([p.timeUs]);
    for (const l of this.#lanes) {
      if (l === pivot) continue;
      for (const f of l.frames) {
        if (f.timeUs > p.timeUs) break;
        if (f.timeUs >= p.timeUs - tol) starts.add(f.timeUs);
      }
    }
    let best: { span: number; start: number; idx: number[] } | undefined;
    for (const start of [...starts].sort((a, b) => a - b)) {
      const idx: number[] = [];
      let lo = p.timeUs;
      let hi = p.timeUs;
      let ok = true;
      for (const l of this.#lanes) {
        if (l === pivot) {
          idx.push(0);
          continue;
        }
        const k = lowerBound(l.frames, start);
        const f = l.frames[k];
        if (!f || f.timeUs > p.timeUs + tol) {
          ok = false;
          break;
        }
        idx.push(k);
        lo = Math.min(lo, f.timeUs);
        hi = Math.max(hi, f.timeUs);
      }
      if (!ok || hi - lo > tol) continue;
      const span = hi - lo;
      if (!best || span < best.span || (span === best.span && lo < best.start))
        best = { span, start: lo, idx };
    }
    return best?.idx;
  }
}

/** First index whose time is >= t. */
function lowerBound<T>(fs: PairedFrame<T>[], t: number): number {
  let a = 0;
  let b = fs.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (fs[m]!.timeUs < t) a = m + 1;
    else b = m;
  }
  return a;
}

/** First index whose time is > t. */
function upperBound<T>(fs: PairedFrame<T>[], t: number): number {
  let a = 0;
  let b = fs.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (fs[m]!.timeUs <= t) a = m + 1;
    else b = m;
  }
  return a;
}
