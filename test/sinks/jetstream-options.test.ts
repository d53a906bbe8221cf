import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FramewireError, JetStreamSink } from '../../src/index.js';

// Checked before connecting: no bus is needed (nothing listens on port 1).
test('a publishConcurrency outside 1..1024 is ERR_BAD_OPTION, before any connection', async () => {
  for (const bad of [0, -1, 1.5, 1025, Number.NaN]) {
    await assert.rejects(
      JetStreamSink.open({ url: 'nats://127.0.0.1:1', publishConcurrency: bad }),
      (e: unknown) => e instanceof FramewireError && e.code === 'ERR_BAD_OPTION',
      String(bad),
    );
  }
});
