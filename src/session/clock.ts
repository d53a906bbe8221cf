/**
 * The clock exchange of one connection (CLOCK / CLOCK_REPLY, docs/protocol.md): answers the peer's CLOCKs,
 * sends its own (a burst after the handshake, then one per period) and keeps the estimate of the peer's
 * clock minus this one. Both ends of a connection run one; the receiver uses its estimate to map capture
 * times onto its own clock (docs/sync.md).
 *
 * t1 and t4 of an exchange are both this side's wall clock, but t4 is computed as t1 plus the monotonic
 * time elapsed, so a step of this side's clock during the exchange cannot corrupt the delay; the step
 * shows in the next exchange instead, and the estimator notices it there.
 */
import { CLOCK_VERSION, MessageType } from '../protocol/constants.js';
import { type Encoded, encodeClock, encodeClockReply, type Message } from '../protocol/messages.js';
import { type ClockEstimate, clockSample, OffsetEstimator } from '../sync/offset.js';
import { monoMs, wallUs } from '../time.js';

export { CLOCK_VERSION };

export interface ClockSyncOptions {
  /** CLOCKs sent right after the handshake (default 5). */
  burst?: number;
  /** Gap between the CLOCKs of the burst (ms, default 50). */
  burstGapMs?: number;
  /** Period of the CLOCKs after the burst (ms, default 2000): a clock step is noticed within it. */
  intervalMs?: number;
}

export const DEFAULT_CLOCK_INTERVAL_MS = 2000;
/** How far framewire's wall clock may be from the system clock it follows (Date.now()'s resolution), µs. */
export const WALL_CLOCK_RESOLUTION_US = 1000;

export class ClockSync {
  readonly #send: (m: Encoded) => void;
  /**
   * Each side's wall clock (src/time.ts) is the monotonic clock plus an anchor read from Date.now(), which
   * counts whole milliseconds: two processes' wall clocks may differ by up to 1 ms on the same machine.
   */
  readonly #estimator = new OffsetEstimator({ resolutionUs: WALL_CLOCK_RESOLUTION_US });
  /** CLOCKs in flight: t1 → monotonic ms at sending. */
  readonly #inFlight = new Map<number, number>();
  readonly #burst: number;
  readonly #burstGapMs: number;
  readonly #intervalMs: number;
  #timer: NodeJS.Timeout | undefined;
  #lastT1 = 0;
  #stopped = false;

  constructor(send: (m: Encoded) => void, options: ClockSyncOptions = {}) {
    this.#send = send;
    this.#burst = options.burst ?? 5;
    this.#burstGapMs = options.burstGapMs ?? 50;
    this.#intervalMs = options.intervalMs ?? DEFAULT_CLOCK_INTERVAL_MS;
  }

  /** Starts the burst, then the periodic exchanges. */
  start(): void {
    let sent = 0;
    const tick = () => {
      if (this.#stopped) return;
      this.#request();
      sent++;
      this.#timer = setTimeout(tick, sent < this.#burst ? this.#burstGapMs : this.#intervalMs);
      this.#timer.unref();
    };
    tick();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Handles CLOCK and CLOCK_REPLY; returns false for any other message. */
  handle(m: Message): boolean {
    if (m.type === MessageType.CLOCK) {
      const t2 = wallUs();
      this.#send(encodeClockReply(m.t1, t2, Math.max(t2, wallUs())));
      return true;
    }
    if (m.type === MessageType.CLOCK_REPLY) {
      const sentMs = this.#inFlight.get(m.t1);
      if (sentMs === undefined) return true;
      this.#inFlight.delete(m.t1);
      const now = monoMs();
      const t4 = m.t1 + Math.round((now - sentMs) * 1000);
      this.#estimator.add(clockSample(m.t1, m.t2, m.t3, t4, now));
      return true;
    }
    return false;
  }

  /** The peer's clock minus this side's, with its error bound; undefined before the first reply. */
  estimate(): ClockEstimate | undefined {
    return this.#estimator.estimate(monoMs());
  }

  #request(): void {
    const now = monoMs();
    for (const [t1, at] of this.#inFlight) if (now - at > 30_000) this.#inFlight.delete(t1);
    // Distinct t1 per CLOCK: it is how the reply finds its request.
    const t1 = Math.max(wallUs(), this.#lastT1 + 1);
    this.#lastT1 = t1;
    this.#inFlight.set(t1, now);
    try {
      this.#send(encodeClock(t1));
    } catch {
      this.stop();
    }
  }
}

/** The clock fields of a received frame (see ReceivedFrame). */
export interface FrameClock {
  correctedUs?: number;
  clockOffsetUs?: number;
  clockErrorUs?: number;
}

/**
 * Maps a capture time on the sender's clock to the receiver's, with the receiver's estimate of the sender's
 * clock minus its own. `trust`: the clocks are kept together by other means (PTP, chrony): no correction.
 */
export function correctCapture(
  captureUs: number,
  estimate: ClockEstimate | undefined,
  trust: boolean,
): FrameClock {
  if (trust) return { correctedUs: captureUs, clockOffsetUs: 0 };
  if (!estimate) return {};
  const offsetUs = Math.round(estimate.offsetUs);
  return {
    correctedUs: captureUs - offsetUs,
    clockOffsetUs: offsetUs,
    clockErrorUs: Math.round(estimate.errorUs),
  };
}
