/** `framewire demo`, in-process through run(argv): starts, prints the viewer URL, frames arrive, stops. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { demoDetections } from '../../src/cli/demo.js';
import { run } from '../../src/cli/run.js';
import { extractBoxes } from '../../src/sinks/viewer.js';
import { capture } from '../helpers/cli.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-demo-'));
});
after(async () => cleanup());

interface ApiStream {
  name: string;
  kind: string;
  frames: number;
  width: number;
  height: number;
}

test('the detection boxes stay inside the picture and are read by the viewer', () => {
  for (let t = 0; t < 60; t += 0.37) {
    const found = extractBoxes(demoDetections(t, 320, 240));
    assert.ok(found);
    assert.equal(found.boxes.length, 2);
    for (const b of found.boxes) {
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= 320 && b.y + b.h <= 240, JSON.stringify(b));
    }
  }
});

test('demo: two cameras reach the viewer and the folder, detections arrive, abort stops it', async () => {
  const out = join(root, 'out');
  const io = capture();
  const ac = new AbortController();
  const done = run(
    [
      'demo',
      '--view',
      '127.0.0.1:0',
      '--listen',
      'tcp://127.0.0.1:0',
      '--out',
      out,
      '--size',
      '320x240',
      '--fps',
      '10',
    ],
    { ...io, signal: ac.signal },
  );
  let exited = false;
  void done.finally(() => {
    exited = true;
  });
  try {
    await waitFor(
      () => /viewer: http:\/\/127\.0\.0\.1:\d+\//.test(io.out()) || exited,
      60_000,
      'the viewer URL',
    );
    assert.ok(!exited, `the demo exited early: ${io.err()}`);
    const url = /viewer: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(io.out())![1]!;
    assert.match(io.err(), /two test cameras/);

    let streams: ApiStream[] = [];
    const deadline = Date.now() + 90_000;
    while (Date.now() < deadline) {
      streams = ((await (await fetch(`${url}api/streams`)).json()) as { streams: ApiStream[] }).streams;
      if (streams.length === 2 && streams.every((s) => s.frames >= 3)) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const byName = new Map(streams.map((s) => [s.name, s]));
    assert.equal(byName.get('visible')?.kind, 'visible', JSON.stringify(streams));
    assert.equal(byName.get('thermal')?.kind, 'infrared');
    for (const s of streams) {
      assert.ok(s.frames >= 3, `${s.name}: ${s.frames} frames`);
      assert.equal(s.width, 320);
      assert.equal(s.height, 240);
    }
    assert.equal((await fetch(`${url}streams/visible.jpg`)).headers.get('content-type'), 'image/jpeg');

    // The file appears before its first line is whole: wait for a full line, not for the file.
    const messages = join(out, 'messages.jsonl');
    await waitFor(
      () => existsSync(messages) && readFileSync(messages, 'utf8').includes('\n'),
      30_000,
      'a detection message',
    );
    await waitFor(() => existsSync(join(out, 'thermal', 'latest.jpg')), 30_000, 'latest.jpg');
    const first = JSON.parse((await readFile(messages, 'utf8')).split('\n')[0]!) as {
      ref: { stream: string; seq: number };
      json: unknown;
    };
    assert.equal(first.ref.stream, 'visible');
    assert.ok(extractBoxes(first.json));
  } finally {
    ac.abort();
  }
  assert.equal(await done, 0, io.err());
  assert.match(io.err(), /stopping/);
  // Given with --out, the folder is kept.
  assert.ok(existsSync(join(out, 'visible', 'index.jsonl')));
});
