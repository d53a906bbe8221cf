/**
 * The ApproximateTime pairer against a brute-force reference on small inputs (fast-check, fixed seeds):
 * every group within tolerance, no frame twice, groups in time order and never crossing, the smallest span
 * around each pivot, and the same output whatever the arrival order (given max-wait).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type PairEvent, Pairer } from '../../src/sync/pairer.js';

interface F {
  stream: number;
  t: number;
}

/**
 * The reference: the rules of src/sync/pairer.ts applied offline to the whole input, with the group found
 * by trying every combination of remaining frames.
 */
function bruteForce(lanes: number[][], tol: number): number[][] {
  const rem = lanes.map((l) => [...l].sort((a, b) => a - b));
  const groups: number[][] = [];
  for (;;) {
    if (rem.some((l) => l.length === 0)) return groups;
    let pi = 0;
    for (let i = 0; i < rem.length; i++) if (rem[i]![0]! >= rem[pi]![0]!) pi = i;
    const p = rem[pi]![0]!;
    let dropped = false;
    for (const l of rem) {
      if (l[0]! < p - tol) {
        l.shift();
        dropped = true;
      }
    }
    if (dropped) continue;
    // Every combination holding the pivot.
    let best: { span: number; start: number; idx: number[] } | undefined;
    const idx = rem.map(() => 0);
    const walk = (i: number): void => {
      if (i === rem.length) {
        const ts = idx.map((k, j) => rem[j]![k]!);
        const lo = Math.min(...ts);
        const hi = Math.max(...ts);
        if (hi - lo > tol) return;
        const better =
          !best ||
          hi - lo < best.span ||
          (hi - lo === best.span && (lo < best.start || (lo === best.start && lexLess(ts, best))));
        if (better) best = { span: hi - lo, start: lo, idx: [...idx] };
        return;
      }
      if (i === pi) {
        idx[i] = 0;
        walk(i + 1);
        return;
      }
      for (let k = 0; k < rem[i]!.length; k++) {
        idx[i] = k;
        walk(i + 1);
      }
    };
    const lexLess = (ts: number[], b: { idx: number[] }): boolean => {
      const bt = b.idx.map((k, j) => rem[j]![k]!);
      for (let j = 0; j < ts.length; j++) if (ts[j] !== bt[j]) return ts[j]! < bt[j]!;
      return false;
    };
    walk(0);
    if (!best) {
      rem[pi]!.shift();
      continue;
    }
    const chosen: { idx: number[] } = best;
    groups.push(chosen.idx.map((k, j) => rem[j]![k]!));
    rem.forEach((l, j) => {
      l.splice(0, chosen.idx[j]! + 1);
    });
  }
}

/** Runs the online pairer on frames in arrival order (arrival time each), then flushes. */
function online(
  order: Array<F & { at: number }>,
  streams: number,
  tol: number,
  maxWait: number,
  ordered: boolean,
): { groups: number[][]; late: number; unpaired: number } {
  const names = Array.from({ length: streams }, (_, i) => `s${i}`);
  const pairer = new Pairer<number>({ streams: names, toleranceUs: tol, maxWaitUs: maxWait, ordered });
  const events: PairEvent<number>[] = [];
  for (const f of order) events.push(...pairer.push(`s${f.stream}`, f.t, f.t, f.at));
  events.push(...pairer.flush());
  const groups: number[][] = [];
  let late = 0;
  let unpaired = 0;
  for (const e of events) {
    if (e.type === 'group') {
      assert.equal(e.group.frames.length, streams);
      assert.deepEqual(
        e.group.frames.map((f) => f.stream),
        names,
      );
      groups.push(e.group.frames.map((f) => f.timeUs));
    } else {
      unpaired++;
      if (e.reason === 'late') late++;
    }
  }
  assert.equal(pairer.pending, 0);
  return { groups, late, unpaired };
}

/** Small inputs: 2 or 3 streams of distinct integer times, with arrival delays below max-wait. */
const inputs = fc
  .record({
    streams: fc.integer({ min: 2, max: 3 }),
    tol: fc.integer({ min: 0, max: 12 }),
    maxWait: fc.integer({ min: 1, max: 40 }),
  })
  .chain(({ streams, tol, maxWait }) =>
    fc.record({
      streams: fc.constant(streams),
      tol: fc.constant(tol),
      maxWait: fc.constant(maxWait),
      lanes: fc.array(fc.uniqueArray(fc.integer({ min: 0, max: 60 }), { maxLength: 7 }), {
        minLength: streams,
        maxLength: streams,
      }),
      delays: fc.array(fc.integer({ min: 0, max: maxWait - 1 }), { minLength: 21, maxLength: 21 }),
      shuffle: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 21, maxLength: 21 }),
    }),
  );

function framesOf(lanes: number[][]): F[] {
  return lanes.flatMap((l, stream) => [...l].sort((a, b) => a - b).map((t) => ({ stream, t })));
}

function checkInvariants(groups: number[][], lanes: number[][], tol: number): void {
  const used = lanes.map(() => new Set<number>());
  let prev: number[] | undefined;
  for (const g of groups) {
    assert.ok(Math.max(...g) - Math.min(...g) <= tol, `group ${g} wider than ${tol}`);
    g.forEach((t, i) => {
      assert.ok(lanes[i]!.includes(t), `group uses a frame that does not exist: ${t}`);
      assert.ok(!used[i]!.has(t), `frame ${t} of stream ${i} used twice`);
      used[i]!.add(t);
      if (prev) assert.ok(t > prev[i]!, `groups cross: ${prev} then ${g}`);
    });
    if (prev) assert.ok(Math.min(...g) >= Math.min(...prev), 'groups out of time order');
    prev = g;
  }
}

test('pairer = brute force, for any arrival order within max-wait (unordered streams)', () => {
  fc.assert(
    fc.property(inputs, ({ streams, tol, maxWait, lanes, delays, shuffle }) => {
      const expected = bruteForce(lanes, tol);
      checkInvariants(expected, lanes, tol);
      // Arrival = time + a delay below max-wait; frames of one stream may overtake each other.
      const order = framesOf(lanes)
        .map((f, i) => ({ ...f, at: f.t + delays[i]!, k: shuffle[i]! }))
        .sort((a, b) => a.at - b.at || a.k - b.k);
      const got = online(order, streams, tol, maxWait, false);
      assert.deepEqual(got.groups, expected);
      assert.equal(got.late, 0);
      assert.equal(got.unpaired, framesOf(lanes).length - expected.length * streams);
    }),
    { seed: 1515, numRuns: 400 },
  );
});

test('pairer = brute force, for any interleaving of in-order streams (ordered, the default)', () => {
  fc.assert(
    fc.property(inputs, ({ streams, tol, maxWait, lanes, delays, shuffle }) => {
      const expected = bruteForce(lanes, tol);
      // Each stream in time order, arrival non-decreasing within a stream, below time + max-wait.
      const arrivals = framesOf(lanes).map((f, i) => ({ ...f, at: f.t + delays[i]!, k: shuffle[f.stream]! }));
      const last = new Map<number, number>();
      for (const f of arrivals) {
        f.at = Math.max(f.at, last.get(f.stream) ?? -Infinity);
        last.set(f.stream, f.at);
      }
      // Ties in arrival: streams in a random order, each stream's frames in its order.
      const order = arrivals.sort((a, b) => a.at - b.at || a.k - b.k || a.stream - b.stream || a.t - b.t);
      const got = online(order, streams, tol, maxWait, true);
      assert.deepEqual(got.groups, expected);
      assert.equal(got.late, 0);
    }),
    { seed: 2015, numRuns: 400 },
  );
});

test('every frame arriving at once, then flushed, gives the brute-force result too', () => {
  fc.assert(
    fc.property(inputs, ({ streams, tol, lanes, shuffle }) => {
      const order = framesOf(lanes)
        .map((f, i) => ({ ...f, at: 0, k: shuffle[i]! }))
        .sort((a, b) => a.k - b.k);
      const got = online(order, streams, tol, 1000, false);
      assert.deepEqual(got.groups, bruteForce(lanes, tol));
    }),
    { seed: 42, numRuns: 200 },
  );
});

test('a 9 fps stream pairs each frame with the nearest frame of a 30 fps stream', () => {
  const pairer = new Pairer<number>({ streams: ['visible', 'infrared'], toleranceUs: 20_000, maxWaitUs: 0 });
  const events: PairEvent<number>[] = [];
  const vis = Array.from({ length: 90 }, (_, i) => Math.round((i * 1e6) / 30) + 1000);
  const ir = Array.from({ length: 27 }, (_, i) => Math.round((i * 1e6) / 9) + 5000);
  const all = [...vis.map((t) => ['visible', t] as const), ...ir.map((t) => ['infrared', t] as const)];
  all.sort((a, b) => a[1] - b[1]);
  for (const [s, t] of all) events.push(...pairer.push(s, t, t, t));
  events.push(...pairer.flush());
  const groups = events.filter((e) => e.type === 'group');
  assert.equal(groups.length, 27);
  for (const g of groups) {
    if (g.type !== 'group') continue;
    const [v, r] = g.group.frames;
    const nearest = vis.reduce((a, b) => (Math.abs(b - r!.timeUs) < Math.abs(a - r!.timeUs) ? b : a));
    assert.equal(v!.timeUs, nearest);
    assert.ok(g.group.spanUs <= 20_000);
  }
});

test('a frame later than max-wait is dropped as late; a stream that stops does not hold the others', () => {
  const pairer = new Pairer<string>({ streams: ['a', 'b'], toleranceUs: 10, maxWaitUs: 100 });
  assert.deepEqual(pairer.push('a', 1000, 'a1', 1000), []);
  // Stream b never sends: once b's frames around a1 are known (now − max-wait), a1 is given up.
  const ev = pairer.advance(1111);
  assert.deepEqual(
    ev.map((e) => (e.type === 'unpaired' ? [e.frame.item, e.reason] : 'group')),
    [['a1', 'tolerance']],
  );
  const late = pairer.push('b', 1005, 'b1', 1200);
  assert.deepEqual(
    late.map((e) => (e.type === 'unpaired' ? [e.frame.item, e.reason] : 'group')),
    [['b1', 'late']],
  );
  assert.equal(pairer.pending, 0);
});

test('bad pairer options are ERR_BAD_OPTION', () => {
  const bad = [
    { streams: ['a'], toleranceUs: 1, maxWaitUs: 1 },
    { streams: ['a', 'a'], toleranceUs: 1, maxWaitUs: 1 },
    { streams: ['a', 'b'], toleranceUs: -1, maxWaitUs: 1 },
    { streams: ['a', 'b'], toleranceUs: 1, maxWaitUs: Number.NaN },
  ];
  for (const o of bad) assert.throws(() => new Pairer(o), { code: 'ERR_BAD_OPTION' });
  const p = new Pairer({ streams: ['a', 'b'], toleranceUs: 1, maxWaitUs: 1 });
  assert.throws(() => p.push('c', 1, 1, 1), { code: 'ERR_BAD_OPTION' });
});
