import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, FramewireError } from '../../src/index.js';

// A setting that no retry can fix ends connect() at once with its own code, not with ERR_UNREACHABLE after
// the whole retry budget.
test('a bad udp:// URL parameter fails connect() at once with ERR_BAD_OPTION, not after retrying', async () => {
  const started = performance.now();
  await assert.rejects(
    connect('udp://127.0.0.1:9?latency=abc', { retryForMs: 120_000 }),
    (err: unknown) => err instanceof FramewireError && err.code === 'ERR_BAD_OPTION',
  );
  // Far below the 120 s retry budget: the first attempt's answer is final.
  assert.ok(performance.now() - started < 60_000);
});
