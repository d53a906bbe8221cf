/**
 * FolderSink's syncWriteMaxBytes: frames up to the limit are written with synchronous calls, larger ones as
 * usual; both end in the same place (file, index line, resume point), and a taken name is never replaced.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { FolderSink } from '../../src/sinks/folder.js';
import type { ReceivedFrame, StreamInfo } from '../../src/types.js';
import { receivedFrame } from '../helpers/frames.js';
import { payload, tempDir } from '../helpers/tmp.js';

const stream: StreamInfo = { name: 'cam0', kind: 'visible', mode: 'reliable', epoch: 'e1', sender: 'test' };

function frame(seq: number, size: number): ReceivedFrame {
  return receivedFrame(seq, { stream, name: `${seq}.jpg`, data: payload(seq, size) });
}

test('frames under syncWriteMaxBytes are saved synchronously, larger ones asynchronously, the same way', async () => {
  const { dir, cleanup } = await tempDir('fw-folder-sync-');
  try {
    const sink = await FolderSink.open(dir, { syncWriteMaxBytes: 1000, latest: false });
    const sizes = [10, 1000, 1001, 50_000, 0];
    for (const [seq, size] of sizes.entries()) await sink.frame(frame(seq, size));
    for (const [seq, size] of sizes.entries()) {
      assert.deepEqual(await readFile(join(dir, 'cam0', `${seq}.jpg`)), payload(seq, size));
    }
    const index = (await readFile(join(dir, 'cam0', 'index.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(index.length, sizes.length);
    assert.equal(await sink.resumePoint(stream), sizes.length);
    assert.deepEqual(
      (await readdir(join(dir, 'cam0'))).filter((n) => n.startsWith('.')),
      [],
      'no temp file left',
    );
    // A name taken by something else: the synchronous path hands over to the one that finds another name.
    await mkdir(join(dir, 'cam0', '9.jpg'));
    await writeFile(join(dir, 'cam0', 'keep'), 'x');
    await sink.frame(frame(9, 10));
    assert.deepEqual(await readFile(join(dir, 'cam0', '9~e1.jpg')), payload(9, 10));
    assert.deepEqual(
      (await readdir(join(dir, 'cam0'))).filter((n) => n.startsWith('.')),
      [],
    );
    await sink.close();
    // With onConflict: 'overwrite' a directory in the way makes the synchronous rename fail like the
    // asynchronous one would, leaving no temp file.
    const over = await FolderSink.open(dir, {
      syncWriteMaxBytes: 1000,
      latest: false,
      onConflict: 'overwrite',
    });
    await assert.rejects(
      over.frame(frame(9, 10)),
      (e: Error & { code?: string }) => e.code === 'ERR_WRITE_FAILED',
    );
    assert.deepEqual(
      (await readdir(join(dir, 'cam0'))).filter((n) => n.startsWith('.')),
      [],
    );
    await over.close();
  } finally {
    await cleanup();
  }
});

test('frames go to the thread pool for a while after a slow synchronous write, and always with fsync or 0', async () => {
  const { dir, cleanup } = await tempDir('fw-folder-sync-');
  try {
    const counts: Record<string, unknown> = {};
    for (const [label, options] of [
      // A busy machine can stall any write for milliseconds: no write counts as slow here.
      ['fast', { syncWriteSlowMs: 60_000 }],
      // Every synchronous write counts as slow: the first frame is written synchronously, the rest on the
      // thread pool until the back-off ends.
      ['slow', { syncWriteSlowMs: 0, syncBackoffMs: 60_000 }],
      ['off', { syncWriteMaxBytes: 0 }],
      ['fsync', { fsync: true }],
    ] as const) {
      const sink = await FolderSink.open(join(dir, label), { latest: false, ...options });
      // Five frames of 2,000 bytes and an empty one (0 bytes is no reason for the synchronous path).
      const size = (seq: number) => (seq === 5 ? 0 : 2000);
      for (let seq = 0; seq < 6; seq++) await sink.frame(frame(seq, size(seq)));
      for (let seq = 0; seq < 6; seq++) {
        assert.deepEqual(await readFile(join(dir, label, 'cam0', `${seq}.jpg`)), payload(seq, size(seq)));
      }
      counts[label] = sink.writes;
      await sink.close();
    }
    assert.deepEqual(counts, {
      fast: { sync: 6, pool: 0, slowSync: 0 },
      slow: { sync: 1, pool: 5, slowSync: 1 },
      off: { sync: 0, pool: 6, slowSync: 0 },
      fsync: { sync: 0, pool: 6, slowSync: 0 },
    });
  } finally {
    await cleanup();
  }
});

test('the synchronous index append is timed too: a slow one sends the index to the thread pool', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    // Frames above syncWriteMaxBytes go to the thread pool; their index lines are appended synchronously
    // until an append counts as slow (here every one does).
    const sink = await FolderSink.open(dir, {
      syncWriteMaxBytes: 1000,
      syncWriteSlowMs: 0,
      syncBackoffMs: 60_000,
      latest: false,
    });
    for (let seq = 0; seq < 4; seq++) await sink.frame(frame(seq, 5000));
    assert.deepEqual(sink.writes, { sync: 0, pool: 4, slowSync: 1 });
    await sink.close();
  } finally {
    await cleanup();
  }
});
