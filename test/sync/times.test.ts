/** Capture times from the source: a folder's --times file, and send(frame, { captureUs }). */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import {
  connect,
  createServer,
  FolderSink,
  folderSource,
  parseTimes,
  type ReceivedFrame,
  readTimesFile,
} from '../../src/index.js';
import { capture } from '../helpers/cli.js';
import { payload, tempDir } from '../helpers/tmp.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-times-'));
});
after(async () => cleanup());

test('a times file gives capture times by name, as µs or ISO dates; bad lines are ERR_BAD_OPTION', () => {
  const t = parseTimes(
    '{"name":"a.jpg","captureUs":1700000000000001}\n\n{"name":"b.jpg","time":"2023-11-14T22:13:20.5Z"}\n',
  );
  assert.equal(t.get('a.jpg'), 1_700_000_000_000_001);
  assert.equal(t.get('b.jpg'), 1_700_000_000_500_000);
  for (const bad of [
    'nope',
    '[1]',
    '{"captureUs":1}',
    '{"name":"a","captureUs":-1}',
    '{"name":"a","time":"x"}',
  ]) {
    assert.throws(() => parseTimes(bad), { code: 'ERR_BAD_OPTION' }, bad);
  }
});

test('send --times: listed files carry their times, the others their modification time', async () => {
  const dir = join(root, 'cam');
  await mkdir(dir);
  for (const n of ['0.jpg', '1.jpg', '2.jpg']) await writeFile(join(dir, n), payload(n.length, 20));
  const times = join(root, 'times.jsonl');
  await writeFile(times, '{"name":"0.jpg","captureUs":1000}\n{"name":"1.jpg","captureUs":2000}\n');
  const frames = [];
  for await (const f of await folderSource(dir, { times: await readTimesFile(times) }).open()) frames.push(f);
  assert.deepEqual(
    frames.slice(0, 2).map((f) => f.captureUs),
    [1000, 2000],
  );
  assert.ok(Math.abs(frames[2]!.captureUs! - Date.now() * 1000) < 600_000_000, 'mtime for the unlisted file');

  const out = join(root, 'out');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
  try {
    const io = capture();
    const code = await run(
      [
        'send',
        dir,
        '--to',
        `tcp://127.0.0.1:${server.port}`,
        '--stream',
        'cam',
        '--times',
        times,
        '--no-progress',
      ],
      io,
    );
    assert.equal(code, 0, io.err());
    const missing = capture();
    assert.notEqual(
      await run(
        ['send', dir, '--to', `tcp://127.0.0.1:${server.port}`, '--times', join(root, 'none')],
        missing,
      ),
      0,
    );
    assert.match(missing.err(), /ERR_SOURCE_NOT_FOUND/);
  } finally {
    await server.close();
  }
  const index = (await readFile(join(out, 'cam', 'index.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { name: string; captureUs: number });
  assert.deepEqual(
    index.slice(0, 2).map((e) => [e.name, e.captureUs]),
    [
      ['0.jpg', 1000],
      ['1.jpg', 2000],
    ],
  );
});

test('send(frame, { captureUs }) sets the capture time', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const got: ReceivedFrame[] = [];
  server.on('frame', (f) => got.push(f));
  try {
    const c = await connect(`tcp://127.0.0.1:${server.port}`);
    await c.stream('x').send({ data: payload(1, 5) }, { captureUs: 123_456 });
    await c.close();
    assert.equal(got[0]!.captureUs, 123_456);
  } finally {
    await server.close();
  }
});
