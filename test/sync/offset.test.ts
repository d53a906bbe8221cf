/** The NTP offset estimator: minimum-delay sample, error bound, step detection (pure, simulated clocks). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { clockSample, OffsetEstimator } from '../../src/sync/offset.js';

/** One exchange between a requester and a responder whose clock is `offsetUs` ahead, with given legs. */
function exchange(t1: number, offsetUs: number, outUs: number, backUs: number, turnUs = 20) {
  const t2 = t1 + outUs + offsetUs;
  const t3 = t2 + turnUs;
  const t4 = t3 - offsetUs + backUs;
  return clockSample(t1, t2, t3, t4, t1 / 1000);
}

test('four timestamps give offset and delay; the true offset is within offset ± delay/2', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: -10_000_000, max: 10_000_000 }),
      fc.integer({ min: 0, max: 50_000 }),
      fc.integer({ min: 0, max: 50_000 }),
      (offset, out, back) => {
        const s = exchange(1_000_000_000, offset, out, back);
        assert.equal(s.delayUs, out + back);
        assert.ok(Math.abs(s.offsetUs - offset) <= s.delayUs / 2 + 1e-9);
      },
    ),
    { seed: 7, numRuns: 300 },
  );
});

test('the estimate is the minimum-delay sample of the window, its error half that delay', () => {
  const e = new OffsetEstimator({ window: 4 });
  const tick = () => {
    t += 1e6;
    return t;
  };
  assert.equal(e.estimate(), undefined);
  const legs = [
    [9000, 1000],
    [300, 200],
    [5000, 100],
    [2000, 2000],
  ];
  let t = 1e9;
  for (const [o, b] of legs) {
    assert.equal(e.add(exchange(t, 3_000_000, o!, b!)), false);
    t += 1e6;
  }
  const est = e.estimate()!;
  assert.equal(est.delayUs, 500);
  assert.equal(est.errorUs, 250);
  assert.equal(est.offsetUs, 3_000_000 + 50);
  assert.ok(Math.abs(est.offsetUs - 3_000_000) <= est.errorUs);
  // The window slides: after four worse samples the 500 µs one is gone.
  for (let i = 0; i < 4; i++) e.add(exchange(tick(), 3_000_000, 900, 900));
  assert.equal(e.estimate()!.delayUs, 1800);
});

test('a clock step on either side is noticed at the next sample and the window restarts', () => {
  const e = new OffsetEstimator();
  let t = 1e9;
  const tick = () => {
    t += 1e6;
    return t;
  };
  for (let i = 0; i < 5; i++) e.add(exchange(tick(), 0, 200, 200));
  assert.ok(Math.abs(e.estimate()!.offsetUs) <= 200);
  // The responder's clock steps forward by 2 s (NTP answered at last).
  assert.equal(e.add(exchange(tick(), 2_000_000, 5000, 5000)), true);
  let est = e.estimate()!;
  assert.equal(est.steps, 1);
  assert.equal(est.samples, 1);
  assert.ok(Math.abs(est.offsetUs - 2_000_000) <= est.errorUs);
  // The requester's clock steps back by 1 s: the offset seen grows by 1 s.
  assert.equal(e.add(exchange(tick(), 3_000_000, 100, 100)), true);
  est = e.estimate()!;
  assert.equal(est.steps, 2);
  assert.ok(Math.abs(est.offsetUs - 3_000_000) <= est.errorUs);
  // Jitter within the error bounds is not a step.
  assert.equal(e.add(exchange(tick(), 3_000_000, 20_000, 100)), false);
});
