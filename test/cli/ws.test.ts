/** The CLI over WebSocket: serve --listen ws://, --view's /ws taking senders, send and msg --to ws://. */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir());
});
after(async () => cleanup());

test('serve --listen ws:// --view: send and msg --to ws://, and to the viewer at ws://VIEW/ws', async () => {
  const src = join(root, 'frames');
  await mkdir(src);
  for (let i = 0; i < 12; i++) await writeFile(join(src, `${i}.png`), payload(i, 3000 + i));
  const out = join(root, 'out');
  const io = capture();
  const ac = new AbortController();
  const done = run(['serve', '--listen', 'ws://127.0.0.1:0/fw', '--out', out, '--view', '127.0.0.1:0'], {
    ...io,
    signal: ac.signal,
  });
  await waitFor(() => /camera page on/.test(io.err()), 10_000, 'serve to start');
  const wsUrl = /receiving on (ws:\/\/\S+?)[,\s]/.exec(io.err())?.[1] ?? '';
  const viewUrl = /senders at (ws:\/\/\S+)/.exec(io.err())?.[1] ?? '';
  assert.ok(wsUrl.endsWith('/fw'), io.err());
  assert.ok(viewUrl.endsWith('/ws'), io.err());
  try {
    const a = capture();
    assert.equal(await run(['send', src, '--to', wsUrl, '--stream', 'direct'], a), 0, a.err());
    const b = capture();
    assert.equal(await run(['send', src, '--to', viewUrl, '--stream', 'viaview'], b), 0, b.err());
    const m = capture();
    assert.equal(await run(['msg', '--to', viewUrl, '{"hello":"ws"}'], m), 0, m.err());
    await waitFor(() => io.out().includes('"hello":"ws"'), 10_000, 'the message line');
  } finally {
    ac.abort();
  }
  assert.equal(await done, 0);
  for (const stream of ['direct', 'viaview']) {
    const files = (await readdir(join(out, stream))).filter((f) => f.endsWith('.png')).sort();
    assert.equal(files.length, 12, stream);
    for (let i = 0; i < 12; i++) {
      assert.ok((await readFile(join(out, stream, `${i}.png`))).equals(payload(i, 3000 + i)));
    }
  }
});

test('--view-cert without --view-key is a usage error (ERR_BAD_OPTION)', async () => {
  const io = capture();
  const pem = join(root, 'c.pem');
  await writeFile(pem, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
  const code = await run(
    ['serve', '--listen', 'ws://127.0.0.1:0', '--view', '127.0.0.1:0', '--view-cert', pem],
    io,
  );
  assert.notEqual(code, 0);
  assert.match(io.err(), /ERR_BAD_OPTION: --view-cert and --view-key go together/);
});

test('serve --foxglove HOST:PORT: a Foxglove client connects and sees the /messages channel', async () => {
  const io = capture();
  const ac = new AbortController();
  const done = run(['serve', '--listen', 'tcp://127.0.0.1:0', '--foxglove', '127.0.0.1:0'], {
    ...io,
    signal: ac.signal,
  });
  try {
    await waitFor(() => /foxglove on ws:/.test(io.err()), 10_000, 'serve to start');
    const url = /foxglove on (ws:\/\/\S+)/.exec(io.err())?.[1] ?? '';
    const ws = new WebSocket(url, ['foxglove.websocket.v1']);
    const ops: string[] = [];
    ws.on('message', (d: Buffer) => ops.push(JSON.parse(d.toString()).op));
    await waitFor(() => ops.includes('advertise'), 10_000, 'serverInfo and advertise');
    assert.deepEqual(ops.slice(0, 2), ['serverInfo', 'advertise']);
    ws.close();
  } finally {
    ac.abort();
  }
  assert.equal(await done, 0);
});
