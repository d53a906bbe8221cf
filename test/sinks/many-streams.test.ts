/**
 * Bounded resources with many streams: 5,000 distinct stream names through one receiver. The folder sink
 * closes the files of idle streams and the metrics drop their series, so the receiver's open descriptors
 * and its memory stay flat however many streams come and go.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { connect, createServer, FolderSink } from '../../src/index.js';
import { FramewireMetrics } from '../../src/sinks/metrics.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

test('5,000 stream names through one receiver: open descriptors and memory stay flat', {
  skip: process.platform !== 'linux' && 'reads /proc/self/fd',
}, async (t) => {
  const { dir, cleanup } = await tempDir('fw-streams-');
  const idleMs = 200;
  const sink = await FolderSink.open(dir, { idleCloseMs: idleMs, latest: false });
  const metrics = new FramewireMetrics({ idleSeriesMs: idleMs });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [sink] });
  const url = `tcp://127.0.0.1:${server.port}`;
  const data = payload(1, 2000);
  const perConnection = 50;
  // One connection sends one frame on each of 50 new streams, then closes (a receiver takes at most 64
  // streams per connection); four such senders run side by side.
  const batch = async (first: number) => {
    const client = await connect(url);
    const sends: Promise<unknown>[] = [];
    for (let i = first; i < first + perConnection; i++) {
      sends.push(client.stream(`s${i}`, { kind: 'visible' }).send({ data }));
    }
    await Promise.all(sends);
    await client.close();
  };
  const drive = async (from: number, to: number) => {
    for (let i = from; i < to; i += 4 * perConnection) {
      const jobs = [];
      for (let k = i; k < Math.min(to, i + 4 * perConnection); k += perConnection) jobs.push(batch(k));
      await Promise.all(jobs);
    }
  };
  const settle = async () => {
    await waitFor(() => sink.openStreams === 0, 10_000, 'idle streams closed');
    await new Promise((r) => setTimeout(r, 2 * idleMs));
  };
  const series = async () =>
    ((await metrics.metrics()).match(/^framewire_\w+\{[^}]*stream="/gm) ?? []).length;
  try {
    await drive(0, 1000);
    await settle();
    const fds1 = openFds();
    const heap1 = heapAfterGc();
    assert.equal(await series(), 0, 'series of idle streams removed');

    await drive(1000, 5000);
    // While streams are being written, descriptors are open; once they are idle, they are closed again.
    await settle();
    const fds2 = openFds();
    const heap2 = heapAfterGc();
    assert.equal(await series(), 0, 'series of idle streams removed');
    t.diagnostic(
      `fds ${fds1} -> ${fds2}; heap ${(heap1 / 1048576).toFixed(1)} -> ${(heap2 / 1048576).toFixed(1)} MiB`,
    );
    assert.ok(fds2 <= fds1 + 4, `open descriptors: ${fds1} after 1,000 streams, ${fds2} after 5,000`);
    // 4,000 more streams; what the receiver may keep per stream name (its exactly-once registry) is small.
    const growth = heap2 - heap1;
    assert.ok(
      growth < 16 * 1024 * 1024,
      `heap grew by ${(growth / 1048576).toFixed(1)} MiB over 4,000 streams`,
    );

    // The streams were all saved, and an idle stream comes back where it was.
    assert.equal((await readdir(dir)).length, 5000);
    const client = await connect(url);
    await client.stream('s7', { kind: 'visible' }).send({ data });
    await client.close();
    const files = await readdir(join(dir, 's7'));
    assert.equal(files.filter((n) => n.endsWith('.jpg')).length, 2);
  } finally {
    metrics.close();
    await server.close();
    await cleanup();
  }
});
