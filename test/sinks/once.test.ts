/** OnceFolderSink taking several frames at once, as `consume` hands them (frameConcurrency). */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FramewireError } from '../../src/errors.js';
import { FolderSink } from '../../src/sinks/folder.js';
import { OnceFolderSink } from '../../src/sinks/once.js';
import type { ReceivedFrame } from '../../src/types.js';
import { receivedFrame, streamInfo } from '../helpers/frames.js';

function frame(seq: number): ReceivedFrame {
  return receivedFrame(seq, {
    stream: streamInfo('cam', { sender: 'bus' }),
    captureUs: 1_700_000_000_000_000 + seq,
    receivedUs: 1_700_000_000_500_000 + seq,
    data: Buffer.alloc(50_000, seq),
    crc: 0,
  });
}

test('frames handed over at once are written once each, in order, a second delivery in flight skipped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fw-once-'));
  try {
    const once = new OnceFolderSink(await FolderSink.open(dir, { writeConcurrency: 8 }));
    assert.equal(once.frameConcurrency, 8);
    // 40 frames without waiting, each of the first 10 delivered twice while the first copy is being written.
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      jobs.push(once.frame(frame(i)));
      if (i < 10) jobs.push(once.frame(frame(i)));
    }
    await Promise.all(jobs);
    await once.frame(frame(3)); // and once more after the fact
    await once.close();
    assert.deepEqual(once.stats, { written: 40, skipped: 11 });
    const lines = (await readFile(join(dir, 'cam', 'index.jsonl'), 'utf8')).trim().split('\n');
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { seq: number }).seq),
      Array.from({ length: 40 }, (_, i) => i),
    );
    const files = (await readdir(join(dir, 'cam'))).filter(
      (f) => f !== 'index.jsonl' && !f.startsWith('latest'),
    );
    assert.equal(files.length, 40);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a second delivery in flight fails with the first: it is not acknowledged when the frame was not saved', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'fw-once-'));
  try {
    const once = new OnceFolderSink(await FolderSink.open(dir, { onConflict: 'overwrite' }));
    // Renaming over a non-empty folder fails (even for root): the write of this frame fails.
    await mkdir(join(dir, 'cam', 'blocked.jpg', 'inside'), { recursive: true });
    const f = { ...frame(0), name: 'blocked.jpg' };
    const first = once.frame(f);
    const second = once.frame(f);
    await assert.rejects(first, (e: FramewireError) => e.code === 'ERR_WRITE_FAILED');
    await assert.rejects(second, (e: FramewireError) => e.code === 'ERR_WRITE_FAILED');
    assert.deepEqual(once.stats, { written: 0, skipped: 0 });
    await once.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
