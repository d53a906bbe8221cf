/**
 * Frame buffers used again (src/protocol/frame-buffers.ts) and the shared read buffer of accepted TCP
 * connections (src/transports/stream.ts), end to end: a buffer goes back to the pool only when nothing can
 * still hold it, and whatever a sink, a listener or the folder keeps stays intact.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, createServer, FolderSink, type ReceivedFrame, type Sink } from '../../src/index.js';
import { payload, tempDir } from '../helpers/tmp.js';

/** Servers of the running test, closed in its `finally` even when an assertion failed first. */
const open = new Set<{ close(): Promise<void> }>();
async function closeAll(): Promise<void> {
  for (const s of open) await s.close();
  open.clear();
}

const SIZE = 100_000;
const FRAMES = 120;

async function sendFrames(port: number, n = FRAMES, stream = 'cam'): Promise<void> {
  const client = await connect(`tcp://127.0.0.1:${port}`);
  const cam = client.stream(stream);
  for (let i = 0; i < n; i++) await cam.send({ data: payload(i, SIZE), name: `${i}.bin` });
  const stats = await client.close();
  assert.equal(stats.framesAcked, n);
}

async function assertSaved(dir: string, n = FRAMES, stream = 'cam'): Promise<void> {
  for (let i = 0; i < n; i++) {
    const got = await readFile(join(dir, stream, `${i}.bin`));
    assert.ok(got.equals(payload(i, SIZE)), `file ${i}.bin differs from what was sent`);
  }
}

test('with only sinks that borrow frame data, frame buffers are used again and every file is intact', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(dir)] });
    open.add(server);
    // Two senders one after the other: the second one's frames take the buffers the first one's gave back
    // (a fast sender can have all of its frames read before the first is stored).
    await sendFrames(server.port);
    await sendFrames(server.port, FRAMES, 'cam2');
    const stats = server.frameBuffers.stats;
    await server.close();
    assert.ok(stats.kept >= 2 * FRAMES - 2, `kept ${stats.kept}`);
    assert.ok(stats.reused >= FRAMES / 2, `reused ${stats.reused}`);
    await assertSaved(dir);
    await assertSaved(dir, FRAMES, 'cam2');
  } finally {
    await closeAll();
    await cleanup();
  }
});

test("a 'frame' listener may keep frames: their buffers are never used again", async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(dir)] });
    open.add(server);
    const seen: ReceivedFrame[] = [];
    server.on('frame', (f) => seen.push(f));
    await sendFrames(server.port);
    assert.equal(server.frameBuffers.stats.kept, 0);
    await server.close();
    assert.equal(seen.length, FRAMES);
    for (const f of seen) assert.ok(f.data.equals(payload(f.seq, SIZE)), `frame ${f.seq} changed`);
    await assertSaved(dir);
  } finally {
    await closeAll();
    await cleanup();
  }
});

test('a sink that does not say it borrows frame data keeps them intact: no buffer is used again', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const kept: ReceivedFrame[] = [];
    const keeper: Sink = {
      frameConcurrency: 64,
      frame: (f) => {
        kept.push(f);
      },
    };
    const server = await createServer({
      listen: 'tcp://127.0.0.1:0',
      sinks: [await FolderSink.open(dir), keeper],
    });
    open.add(server);
    await sendFrames(server.port);
    assert.equal(server.frameBuffers.stats.kept, 0);
    await server.close();
    assert.equal(kept.length, FRAMES);
    for (const f of kept) assert.ok(f.data.equals(payload(f.seq, SIZE)), `frame ${f.seq} changed`);
    await assertSaved(dir);
  } finally {
    await closeAll();
    await cleanup();
  }
});

test('closing the server ends connections read through the shared buffer; FRAMEWIRE_SHARED_READS=0 reads as Node does', async () => {
  for (const shared of ['1', '0']) {
    const before = process.env.FRAMEWIRE_SHARED_READS;
    process.env.FRAMEWIRE_SHARED_READS = shared;
    const { dir, cleanup } = await tempDir();
    try {
      const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(dir)] });
      open.add(server);
      await sendFrames(server.port, 10);
      await assertSaved(dir, 10);
      // A connection left open: close() must end it and resolve.
      const idle = net.connect(server.port, '127.0.0.1');
      await once(idle, 'connect');
      const closed = once(idle, 'close');
      idle.on('error', () => {});
      await server.close();
      await closed;
    } finally {
      await closeAll();
      if (before === undefined) delete process.env.FRAMEWIRE_SHARED_READS;
      else process.env.FRAMEWIRE_SHARED_READS = before;
      await cleanup();
    }
  }
});
