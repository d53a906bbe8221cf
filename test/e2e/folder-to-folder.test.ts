/**
 * End to end: folders of frames sent over real TCP sockets on 127.0.0.1 into a receiver's folder sink,
 * including cut connections and a receiver process killed and restarted mid-transfer.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { connect, createServer, type FramewireError } from '../../src/index.js';
import { FolderSink } from '../../src/sinks/folder.js';
import { folderSource } from '../../src/sources/folder.js';
import { capture } from '../helpers/cli.js';
import { indexSeqs, makeFolder } from '../helpers/folders.js';
import { freePort } from '../helpers/net.js';
import { startCutProxy } from '../helpers/proxy.js';
import { sendAll } from '../helpers/sending.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir());
});
after(async () => cleanup());

async function assertSameFolder(src: string, dst: string): Promise<void> {
  const want = (await readdir(src)).sort();
  const got = (await readdir(dst)).filter((n) => n !== 'index.jsonl' && n !== 'latest.jpg').sort();
  assert.deepEqual(got, want, 'the received folder holds exactly the sent files');
  for (const n of want) {
    const [a, b] = await Promise.all([readFile(join(src, n)), readFile(join(dst, n))]);
    assert.ok(a.equals(b), `${n} is byte-identical`);
  }
}

test('500 frames folder to folder arrive byte-identical, once each, in order', async () => {
  const src = await makeFolder(root, 'f500', 500, (i) => 2000 + ((i * 7919) % 30000), 4000);
  const out = join(root, 'out500');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 32 });
  const st = client.stream('cam0', { kind: 'visible' });
  for await (const f of await folderSource(src).open()) await st.send(f);
  const stats = await client.close();
  assert.equal(stats.framesAcked, 500);
  await server.close();
  await assertSameFolder(src, join(out, 'cam0'));
  assert.deepEqual(await indexSeqs(join(out, 'cam0')), [...Array(500).keys()]);
});

test('a visible and an infrared stream share one connection', async () => {
  const vis = await makeFolder(root, 'vis', 60, () => 5000, 3000);
  const ir = await makeFolder(root, 'ir', 40, () => 3000, 2000);
  const out = join(root, 'out2');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
  const kinds = new Map<string, string>();
  server.on('stream', (s) => kinds.set(s.name, s.kind));
  let connections = 0;
  server.on('connection', () => connections++);
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const a = client.stream('front', { kind: 'visible' });
  const b = client.stream('front-ir', { kind: 'infrared' });
  const visFrames = await folderSource(vis).open();
  const irFrames = await folderSource(ir).open();
  await Promise.all([
    (async () => {
      for await (const f of visFrames) await a.send(f);
    })(),
    (async () => {
      for await (const f of irFrames) await b.send(f);
    })(),
  ]);
  await client.close();
  await server.close();
  assert.equal(connections, 1);
  assert.equal(kinds.get('front'), 'visible');
  assert.equal(kinds.get('front-ir'), 'infrared');
  await assertSameFolder(vis, join(out, 'front'));
  await assertSameFolder(ir, join(out, 'front-ir'));
  const line = JSON.parse((await readFile(join(out, 'front-ir', 'index.jsonl'), 'utf8')).split('\n')[0]!);
  assert.equal(line.name, '0.jpg');
});

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

function startReceiver(port: number, out: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--listen', `tcp://127.0.0.1:${port}`, '--out', out], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let err = '';
    const t = setTimeout(() => reject(new Error(`receiver did not start: ${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('receiving on')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`receiver exited with ${code}: ${err}`)));
  });
}

test('cut connections and a receiver killed (SIGKILL) and restarted: every frame exactly once', async () => {
  const count = 400;
  const src = await makeFolder(root, 'cut', count, (i) => 20_000 + (i % 13) * 1000, 3000);
  const out = join(root, 'outcut');
  const port = await freePort();
  let receiver = await startReceiver(port, out);
  const proxy = await startCutProxy(port);
  const client = await connect(`tcp://127.0.0.1:${proxy.port}`, {
    windowFrames: 16,
    maxBackoffMs: 200,
    retryForMs: 60_000,
  });
  let reconnects = 0;
  client.on('connected', ({ reconnect }) => {
    if (reconnect) reconnects++;
  });
  const { acked, done: sending } = sendAll(
    client,
    client.stream('cam0', { kind: 'infrared' }),
    await folderSource(src).open(),
  );
  try {
    await waitFor(() => acked() >= 80, 30_000, '80 frames acked');
    proxy.cut();
    await waitFor(() => acked() >= 160, 30_000, '160 frames acked');
    receiver.kill('SIGKILL');
    await new Promise((r) => receiver.once('exit', r));
    proxy.cut();
    await new Promise((r) => setTimeout(r, 300));
    receiver = await startReceiver(port, out);
    await waitFor(() => acked() >= 260, 30_000, '260 frames acked');
    proxy.cut();
    const stats = await sending;
    assert.equal(stats.framesAcked, count);
    assert.ok(reconnects >= 2, `reconnected ${reconnects} times`);
  } finally {
    // Stopped before looking at the folder: latest.jpg is refreshed beside the writes, through a temp file.
    const stopped = new Promise((r) => (receiver.exitCode === null ? receiver.once('exit', r) : r(null)));
    receiver.kill('SIGTERM');
    await stopped;
    await proxy.close();
  }
  await assertSameFolder(src, join(out, 'cam0'));
  const seqs = await indexSeqs(join(out, 'cam0'));
  assert.deepEqual(
    [...seqs].sort((a, b) => a - b),
    [...Array(count).keys()],
    'index.jsonl names every frame exactly once',
  );
});

test('framewire send through cut connections and a receiver killed and restarted: every file byte-identical (read buffers used again only once acknowledged)', async () => {
  // `send` reads files into buffers that go back to a pool when the receiver acknowledges their frame: a
  // buffer given back too early would show up here as a file with another file's bytes, resent after a cut.
  const count = 600;
  const src = await makeFolder(root, 'clicut', count, (i) => 20_000 + ((i * 7919) % 40_000), 5000);
  const out = join(root, 'outclicut');
  const port = await freePort();
  let receiver = await startReceiver(port, out);
  const proxy = await startCutProxy(port);
  const io = capture();
  const args = ['--stream', 'cam0', '--window-frames', '16', '--no-progress', '--retry-for', '60'];
  const sending = run(['send', src, '--to', `tcp://127.0.0.1:${proxy.port}`, ...args], io);
  const saved = async () => (await indexSeqs(join(out, 'cam0')).catch(() => [])).length;
  const until = async (n: number) => {
    const t0 = Date.now();
    while ((await saved()) < n) {
      if (Date.now() - t0 > 30_000) throw new Error(`fewer than ${n} frames saved: ${io.err()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await until(150);
    proxy.cut();
    await until(300);
    receiver.kill('SIGKILL');
    await new Promise((r) => receiver.once('exit', r));
    proxy.cut();
    receiver = await startReceiver(port, out);
    await until(450);
    proxy.cut();
    assert.equal(await sending, 0, io.err());
  } finally {
    const stopped = new Promise((r) => (receiver.exitCode === null ? receiver.once('exit', r) : r(null)));
    receiver.kill('SIGTERM');
    await stopped;
    await proxy.close();
  }
  await assertSameFolder(src, join(out, 'cam0'));
  const seqs = await indexSeqs(join(out, 'cam0'));
  assert.deepEqual(
    [...seqs].sort((a, b) => a - b),
    [...Array(count).keys()],
  );
});

test('a frame with an unsafe name is refused with ERR_UNSAFE_NAME; nothing is written for it, the rest arrive', async () => {
  const out = join(root, 'outunsafe');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
  const serverRefusals: FramewireError[] = [];
  server.on('frame-error', (e) => serverRefusals.push(e));
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const refused: FramewireError[] = [];
  client.on('frame-error', (e) => refused.push(e));
  const st = client.stream('cam0');
  await st.send({ data: payload(1, 100), name: 'ok-0.jpg' });
  await st.send({ data: payload(2, 100), name: '../escape.jpg' });
  await st.send({ data: payload(3, 100), name: '/etc/passwd' });
  await st.send({ data: payload(4, 100), name: 'ok-1.jpg' });
  const stats = await client.close();
  await server.close();
  assert.equal(stats.framesAcked, 2);
  assert.equal(stats.framesRefused, 2);
  assert.deepEqual(
    refused.map((e) => [e.code, e.seq]),
    [
      ['ERR_UNSAFE_NAME', 1],
      ['ERR_UNSAFE_NAME', 2],
    ],
  );
  assert.equal(serverRefusals.length, 2);
  assert.deepEqual((await readdir(join(out, 'cam0'))).sort(), [
    'index.jsonl',
    'latest.jpg',
    'ok-0.jpg',
    'ok-1.jpg',
  ]);
  assert.deepEqual((await readdir(root)).includes('escape.jpg'), false);
  assert.deepEqual(await indexSeqs(join(out, 'cam0')), [0, 3]);
});

test('an unsafe stream name is refused before anything is sent', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  assert.throws(() => client.stream('../etc'), { code: 'ERR_UNSAFE_NAME' });
  await client.close();
  await server.close();
});

test('a receiver that is not running: retries, then ERR_UNREACHABLE after retryForMs', async () => {
  const port = await freePort();
  const started = Date.now();
  const attempts: number[] = [];
  const { FramewireClient } = await import('../../src/session/client.js');
  const client = new FramewireClient(`tcp://127.0.0.1:${port}`, { retryForMs: 1200, maxBackoffMs: 200 });
  client.on('reconnecting', (r) => attempts.push(r.attempt));
  await assert.rejects(
    client.connectLoop().then(() => client.close()),
    (err: FramewireError) => {
      assert.equal(err.code, 'ERR_UNREACHABLE');
      assert.match(err.message, /gave up on tcp:\/\/127\.0\.0\.1:\d+\/? after \d+ attempts/);
      assert.match(err.message, /connection refused/);
      return true;
    },
  );
  const elapsed = Date.now() - started;
  assert.ok(attempts.length >= 2, `retried ${attempts.length} times`);
  assert.ok(elapsed >= 1000 && elapsed < 15_000, `gave up after ${elapsed} ms`);
});

test('a receiver that appears while the sender retries gets every frame', async () => {
  const port = await freePort();
  const out = join(root, 'outlate');
  const pending = connect(`tcp://127.0.0.1:${port}`, { retryForMs: 30_000, maxBackoffMs: 200 });
  await new Promise((r) => setTimeout(r, 500));
  const server = await createServer({
    listen: `tcp://127.0.0.1:${port}`,
    sinks: [await FolderSink.open(out)],
  });
  const client = await pending;
  const st = client.stream('late');
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 1000), name: `${i}.jpg` });
  assert.equal((await client.close()).framesAcked, 20);
  await server.close();
  assert.equal((await readdir(join(out, 'late'))).length, 22); // 20 frames, index.jsonl, latest.jpg
});
