/** The folder sink's OUT/<stream>/latest.jpg: the newest JPEG frame, replaced atomically. */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FramewireError } from '../../src/errors.js';
import { FolderSink } from '../../src/sinks/folder.js';
import type { ReceivedFrame } from '../../src/types.js';
import { receivedFrame, streamInfo } from '../helpers/frames.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

/** latest.jpg is refreshed beside the writes (at most every 100 ms): wait until it shows `want`. */
async function latestIs(path: string, want: Buffer): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const got = await readFile(path).catch(() => undefined);
    if (got?.equals(want)) return;
    if (Date.now() > deadline) throw new Error(`latest.jpg holds ${got?.length} bytes, want ${want.length}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-latest-'));
});
after(async () => cleanup());

let n = 0;
function outDir(): string {
  n++;
  return join(root, `out${n}`);
}

function frame(seq: number, over: Partial<ReceivedFrame> = {}): ReceivedFrame {
  return receivedFrame(seq, {
    stream: streamInfo('cam', { mode: 'live', sender: '127.0.0.1:1' }),
    crc: 0,
    ...over,
  });
}

test('latest.jpg follows the newest JPEG frame; PNG and other frames leave it alone', async () => {
  const out = outDir();
  const sink = await FolderSink.open(out);
  for (let i = 0; i < 3; i++) await sink.frame(frame(i));
  await latestIs(join(out, 'cam', 'latest.jpg'), frame(2).data);
  await sink.frame(frame(3, { contentType: 'image/png' }));
  await sink.frame(frame(4, { contentType: 'raw', width: 2, height: 2, pixelFormat: 'gray8' }));
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(await readFile(join(out, 'cam', 'latest.jpg')), frame(2).data);
  await sink.frame(frame(5, { name: 'named.jpg' }));
  await latestIs(join(out, 'cam', 'latest.jpg'), frame(5).data);
  // The saved frame is untouched, and no temporary file is left behind.
  assert.deepEqual(await readFile(join(out, 'cam', 'e1-000000002.jpg')), frame(2).data);
  const names = await readdir(join(out, 'cam'));
  assert.deepEqual(
    names.filter((x) => x.startsWith('.')),
    [],
  );
  // The index does not list latest.jpg: it is not a frame.
  const index = (await readFile(join(out, 'cam', 'index.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(index.length, 6);
  assert.ok(!index.some((l) => l.includes('latest.jpg')));
  await sink.close();
});

test('a reader never sees a partial latest.jpg while frames keep coming', async () => {
  const out = outDir();
  const sink = await FolderSink.open(out);
  await sink.frame(frame(0));
  await latestIs(join(out, 'cam', 'latest.jpg'), frame(0).data);
  const sizes = new Set(Array.from({ length: 60 }, (_, i) => frame(i).data.length));
  let writing = true;
  let reads = 0;
  const reader = (async () => {
    while (writing) {
      const b = await readFile(join(out, 'cam', 'latest.jpg'));
      assert.ok(sizes.has(b.length), `latest.jpg of ${b.length} bytes is some whole frame`);
      const seq = b.length - 3000;
      assert.deepEqual(b, frame(seq).data);
      reads++;
    }
  })();
  for (let i = 1; i < 60; i++) await sink.frame(frame(i));
  writing = false;
  await reader;
  assert.ok(reads > 0);
  await sink.close();
  assert.deepEqual(
    await readFile(join(out, 'cam', 'latest.jpg')),
    frame(59).data,
    'close() brings it up to date',
  );
});

test('latest: false keeps no latest.jpg; a failed update is reported, not fatal', async () => {
  const off = outDir();
  const sink = await FolderSink.open(off, { latest: false });
  await sink.frame(frame(0));
  assert.deepEqual((await readdir(join(off, 'cam'))).sort(), ['e1-000000000.jpg', 'index.jsonl']);
  await sink.close();

  const out = outDir();
  const errors: FramewireError[] = [];
  const s2 = await FolderSink.open(out, { onError: (e) => errors.push(e) });
  // A non-empty folder where latest.jpg goes: rename cannot replace it, even as root.
  await mkdir(join(out, 'cam', 'latest.jpg', 'inside'), { recursive: true });
  await s2.frame(frame(0));
  assert.deepEqual(await readFile(join(out, 'cam', 'e1-000000000.jpg')), frame(0).data);
  await waitFor(() => errors.length === 1, 10_000, 'the latest.jpg error');
  assert.equal(errors[0]!.code, 'ERR_WRITE_FAILED');
  assert.match(errors[0]!.message, /latest\.jpg/);
  assert.equal(await s2.resumePoint(frame(0).stream), 1);
  const names = await readdir(join(out, 'cam'));
  assert.deepEqual(
    names.filter((x) => x.startsWith('.')),
    [],
    'the temporary link is removed',
  );
  await s2.close();
});
