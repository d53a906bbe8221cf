/** Capture times from ffmpeg's pts lines (pure part of the ffmpeg source). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PtsClock } from '../../src/sources/ffmpeg-pts.js';

test('pts lines give frames spaced as stamped, anchored on the fastest arrival; missing lines fall back', () => {
  const c = new PtsClock(true);
  c.write('frame:0    pts:0       pts_time:0\nfw=1\nframe:1    pts:1       pts_time:0.1111');
  c.write('11\nfw=1\nframe:2    pts:2       pts_time:0.222222\n');
  const base = Date.now() * 1000;
  const t0 = c.next(base + 5000); // the first frame came through slowly
  const t1 = c.next(base + 111_111 + 1000); // the second fast: the anchor moves earlier
  const t2 = c.next(base + 222_222 + 3000);
  assert.ok(Math.abs(t1 - (base + 112_111)) <= 2, `t1 ${t1 - base}`);
  // Up to 3 ms (here and below): the wall clock's own re-anchoring on the system clock (src/time.ts, a step
  // of more than 2 ms) between two frames moves the times computed after it.
  assert.ok(Math.abs(t2 - t1 - 111_111) <= 3002, `t2 − t1 ${t2 - t1}`);
  assert.ok(t0 < t1);
  // Frame 3 has no pts line (yet): its arrival time, never before the previous frame.
  const t3 = c.next(t2 - 10);
  assert.equal(t3, t2 + 1);
  // A line for a frame already given out is ignored.
  c.write('frame:3    pts:3       pts_time:0.333333\n');
  c.write('frame:4    pts:4       pts_time:0.444444\n');
  const t4 = c.next(base + 444_444 + 9000);
  assert.ok(Math.abs(t4 - (base + 445_444)) <= 3002, `t4 ${t4 - base}`);
});

test('a file read as fast as it decodes keeps the first anchor', () => {
  const c = new PtsClock(false);
  c.write('frame:0 pts:0 pts_time:0\nframe:1 pts:1 pts_time:1\n');
  const base = Date.now() * 1000;
  const t0 = c.next(base);
  const t1 = c.next(base + 10_000); // decoded 10 ms later, but stamped 1 s later
  assert.ok(Math.abs(t1 - t0 - 1_000_000) <= 3002);
});
