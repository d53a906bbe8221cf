/**
 * The two clocks framewire reads, and nothing else reads a clock:
 * - the **wall clock** (`wallUs`, `wallMs`): times that mean something outside this process (capture and
 *   receive times on the wire, in index.jsonl, in metrics). It follows the system clock, including a step made
 *   after start (an edge board without a battery-backed clock that syncs NTP late), with microsecond
 *   resolution between steps;
 * - the **monotonic clock** (`monoMs`): durations, deadlines, timeouts, pacing. It never jumps, so a clock
 *   step cannot fire or starve a timeout.
 */

/** Milliseconds on the monotonic clock (arbitrary origin); for durations only. */
export function monoMs(): number {
  return performance.now();
}

// The wall clock is `performance.now()` plus an anchor taken from `Date.now()`. `Date.now()` has millisecond
// resolution, so the anchor is kept while the two agree within STEP_MS and taken again when they do not: a
// system clock step shows up at the next reading, and readings between steps keep microsecond resolution.
const STEP_MS = 2;
let anchorMs = Date.now() - performance.now();

/** Readings of the two clocks further apart than this were interrupted (the process was preempted). */
const READ_GAP_MS = 0.25;

/** Milliseconds since the Unix epoch on the system clock, with sub-millisecond resolution. */
export function wallMs(): number {
  let mono = performance.now();
  let now = Date.now();
  // A process preempted between the two readings (a busy machine) would see a clock step that is not one,
  // and move the anchor by the time it was away: such a pair is read again (a few times at most).
  for (let tries = 0; tries < 3; tries++) {
    const after = performance.now();
    if (after - mono <= READ_GAP_MS) break;
    mono = after;
    now = Date.now();
  }
  const t = anchorMs + mono;
  // Date.now() truncates, so t may run up to 1 ms ahead of it without any step.
  if (t < now - STEP_MS || t > now + 1 + STEP_MS) {
    anchorMs = now - mono;
    return now;
  }
  return t;
}

/** Microseconds since the Unix epoch on the system clock (an integer). */
export function wallUs(): number {
  return Math.round(wallMs() * 1000);
}

/**
 * The wait before reconnect attempt `attempt` (1, 2, …): exponential from `firstMs`, capped at `maxMs`, with
 * jitter (50–100 % of the step) so that many senders cut off together do not come back together.
 */
export function backoffMs(attempt: number, maxMs: number, firstMs = 100): number {
  const base = Math.min(maxMs, firstMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 20));
  return Math.round(base * (0.5 + Math.random() / 2));
}

/**
 * The wall clock minus the monotonic clock, ms: what maps a monotonic reading to the wall clock. It changes
 * only when the system clock steps, so two readings of it agree exactly between steps.
 */
export function wallMinusMonoMs(): number {
  wallMs();
  return anchorMs;
}
