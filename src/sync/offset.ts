/**
 * The clock offset between two peers, from NTP's four-timestamp exchange (RFC 5905 §8). Pure: no timers, no
 * clock reads; the caller hands in the four timestamps and the monotonic time of each sample.
 *
 * One exchange: the requester sends at t1 (its clock), the responder receives at t2 and answers at t3 (its
 * clock), the requester receives at t4 (its clock). Then
 *   offset = ((t2 − t1) + (t3 − t4)) / 2     the responder's clock minus the requester's
 *   delay  = (t4 − t1) − (t3 − t2)           the round trip spent on the network
 * and, whatever the split of the delay between the two directions, the true offset lies within
 * offset ± delay / 2. The estimator keeps the recent samples and takes the one with the smallest delay: its
 * interval is the narrowest. A sample whose interval does not meet the current best one (beyond a slack for
 * drift) means that one of the clocks stepped: the older samples are then forgotten.
 */

/** One exchange, reduced. */
export interface ClockSample {
  /** Responder's clock minus requester's clock, µs. */
  offsetUs: number;
  /** Round-trip network delay, µs (never negative). */
  delayUs: number;
  /** Monotonic time of the sample on the requester, ms (for ageing). */
  atMs: number;
}

/** The estimator's answer. */
export interface ClockEstimate {
  /** Responder's clock minus requester's clock, µs, from the minimum-delay sample of the window. */
  offsetUs: number;
  /** Bound on the error of offsetUs: half the delay of that sample plus the resolution, µs (at least 1). */
  errorUs: number;
  /** Delay of that sample, µs. */
  delayUs: number;
  /** Samples in the window. */
  samples: number;
  /** Clock steps noticed so far. */
  steps: number;
}

/** Reduces the four timestamps (µs) of one exchange to offset and delay. */
export function clockSample(t1: number, t2: number, t3: number, t4: number, atMs = 0): ClockSample {
  const offsetUs = (t2 - t1 + (t3 - t4)) / 2;
  const delayUs = Math.max(0, t4 - t1 - (t3 - t2));
  return { offsetUs, delayUs, atMs };
}

export interface OffsetEstimatorOptions {
  /** Samples kept (default 8). */
  window?: number;
  /** Samples older than this are forgotten (ms, default 120000). */
  maxAgeMs?: number;
  /** Least disagreement taken for a clock step, µs (default 1000): covers timestamp resolution and jitter. */
  stepSlackUs?: number;
  /** Rate at which two free-running clocks may drift apart, parts per million (default 500, NTP's limit). */
  driftPpm?: number;
  /**
   * Added to every error bound, µs (default 0): how far the timestamps themselves may be from the clocks
   * they read (framewire's wall clock is anchored on Date.now(), a millisecond clock: 1000).
   */
  resolutionUs?: number;
}

export class OffsetEstimator {
  readonly #window: number;
  readonly #maxAgeMs: number;
  readonly #slackUs: number;
  readonly #driftPpm: number;
  readonly #resolutionUs: number;
  #samples: ClockSample[] = [];
  #steps = 0;

  constructor(options: OffsetEstimatorOptions = {}) {
    this.#window = Math.max(1, options.window ?? 8);
    this.#maxAgeMs = options.maxAgeMs ?? 120_000;
    this.#slackUs = options.stepSlackUs ?? 1000;
    this.#driftPpm = options.driftPpm ?? 500;
    this.#resolutionUs = options.resolutionUs ?? 0;
  }

  /** Adds a sample; returns true when it showed a clock step (the window then restarts from it). */
  add(sample: ClockSample): boolean {
    this.#expire(sample.atMs);
    const best = this.#best();
    let step = false;
    if (best) {
      const ageUs = Math.max(0, sample.atMs - best.atMs) * 1000;
      const allowed = (best.delayUs + sample.delayUs) / 2 + this.#slackUs + (ageUs * this.#driftPpm) / 1e6;
      if (Math.abs(sample.offsetUs - best.offsetUs) > allowed) {
        step = true;
        this.#steps++;
        this.#samples = [];
      }
    }
    this.#samples.push(sample);
    if (this.#samples.length > this.#window) this.#samples.shift();
    return step;
  }

  /** The current estimate, or undefined before the first sample. `nowMs` ages out old samples. */
  estimate(nowMs?: number): ClockEstimate | undefined {
    if (nowMs !== undefined) this.#expire(nowMs);
    const best = this.#best();
    if (!best) return undefined;
    return {
      offsetUs: best.offsetUs,
      errorUs: Math.max(1, best.delayUs / 2 + this.#resolutionUs),
      delayUs: best.delayUs,
      samples: this.#samples.length,
      steps: this.#steps,
    };
  }

  /** Clock steps noticed so far. */
  get steps(): number {
    return this.#steps;
  }

  #expire(nowMs: number): void {
    // Keep the newest sample whatever its age: an old estimate beats none.
    while (this.#samples.length > 1 && nowMs - this.#samples[0]!.atMs > this.#maxAgeMs) this.#samples.shift();
  }

  #best(): ClockSample | undefined {
    let best: ClockSample | undefined;
    for (const s of this.#samples) if (!best || s.delayUs < best.delayUs) best = s;
    return best;
  }
}
