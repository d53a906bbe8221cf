/** The two clocks of src/time.ts and the one backoff. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffMs, monoMs, wallMs, wallUs } from '../src/time.js';

test('wallUs is the system clock in microseconds, finer than Date.now() and never far from it', () => {
  for (let i = 0; i < 1000; i++) {
    const before = Date.now();
    const w = wallMs();
    const after = Date.now();
    // Date.now() truncates to the millisecond: the wall clock lies within [before, after + 1).
    assert.ok(w >= before - 2 && w < after + 3, `${w} within ${before}..${after}`);
  }
  const us = wallUs();
  assert.ok(Number.isInteger(us));
  assert.ok(Math.abs(us / 1000 - Date.now()) < 50);
  // Sub-millisecond resolution: many readings in a tight loop are not all whole milliseconds.
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) seen.add(wallUs() % 1000);
  assert.ok(seen.size > 1, 'microseconds move between milliseconds');
});

test('monoMs never goes back', () => {
  let last = monoMs();
  for (let i = 0; i < 10_000; i++) {
    const t = monoMs();
    assert.ok(t >= last);
    last = t;
  }
});

test('backoffMs doubles from the first step up to the cap, with 50-100 % jitter', () => {
  for (let i = 0; i < 200; i++) {
    const a1 = backoffMs(1, 5000);
    const a3 = backoffMs(3, 5000);
    const a30 = backoffMs(30, 5000);
    assert.ok(a1 >= 50 && a1 <= 100, `attempt 1: ${a1}`);
    assert.ok(a3 >= 200 && a3 <= 400, `attempt 3: ${a3}`);
    assert.ok(a30 >= 2500 && a30 <= 5000, `attempt 30: ${a30}`);
    assert.ok(backoffMs(0, 1000) <= 100, 'attempt 0 counts as the first');
  }
});
