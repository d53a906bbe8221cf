/** The CLI through run(argv), in-process, against real sockets and folders. */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { createServer } from '../../src/index.js';
import { redact } from '../../src/urls.js';
import { capture } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir());
});
after(async () => cleanup());

/** Starts `framewire serve` in-process; returns a stop function that resolves to its exit code. */
async function serve(args: string[]) {
  const io = capture();
  const ac = new AbortController();
  const done = run(['serve', ...args], { ...io, signal: ac.signal });
  await waitFor(() => io.err().includes('receiving on'), 10_000, 'serve to start');
  return {
    io,
    stop: async () => {
      ac.abort();
      return done;
    },
  };
}

test('--help of each command exits 0 and lists the options', async () => {
  for (const cmd of [[], ['serve'], ['send'], ['msg']]) {
    const io = capture();
    assert.equal(await run([...cmd, '--help'], io), 0);
    assert.match(io.out(), /Usage: framewire/);
  }
  const io = capture();
  await run(['send', '--help'], io);
  for (const opt of ['--to', '--stream', '--kind', '--mode', '--fps', '--loop', '--retry-for']) {
    assert.ok(io.out().includes(opt), `send --help mentions ${opt}`);
  }
});

test('a bad URL is one line with a hint and exit code 2', async () => {
  const dir = join(root, 'badurl');
  await mkdir(dir);
  await writeFile(join(dir, '0.jpg'), payload(0, 10));
  const io = capture();
  assert.equal(await run(['send', dir, '--to', 'http://x:1'], io), 2);
  assert.match(io.err(), /^framewire: ERR_UNSUPPORTED_SCHEME: scheme "http"/);
  assert.match(io.err(), /hint: use one of: tcp:\/\//);
  const io2 = capture();
  assert.equal(await run(['send', dir, '--to', 'tcp://'], io2), 2);
  assert.match(io2.err(), /ERR_BAD_URL/);
});

test('an unknown option or a missing --to is a usage error (exit 2)', async () => {
  const io = capture();
  assert.equal(await run(['send', 'x', '--to', 'tcp://127.0.0.1:1', '--bogus'], io), 2);
  assert.match(io.err(), /^framewire: unknown option '--bogus'/);
  const io2 = capture();
  assert.equal(await run(['send', 'x'], io2), 2);
  assert.match(io2.err(), /--to/);
});

test('a missing folder fails before connecting: ERR_SOURCE_NOT_FOUND, exit 1', async () => {
  const io = capture();
  assert.equal(await run(['send', join(root, 'nope'), '--to', 'tcp://127.0.0.1:1'], io), 1);
  assert.match(io.err(), /^framewire: ERR_SOURCE_NOT_FOUND: .*nope/);
  assert.match(io.err(), /hint:/);
});

test('an unreachable receiver: retries, then ERR_UNREACHABLE and exit 1', async () => {
  const dir = join(root, 'unreach');
  await mkdir(dir);
  await writeFile(join(dir, '0.jpg'), payload(0, 10));
  const port = await freePort();
  const io = capture();
  const t0 = Date.now();
  assert.equal(await run(['send', dir, '--to', `tcp://127.0.0.1:${port}`, '--retry-for', '1'], io), 1);
  assert.ok(Date.now() - t0 >= 900);
  assert.match(io.err(), /ERR_UNREACHABLE: gave up on tcp:\/\/127\.0\.0\.1:\d+/);
  assert.match(io.err(), /hint: start the receiver first/);
});

test("a ?token= in --to (the viewer's) and a password never reach stderr", async () => {
  const dir = join(root, 'secret');
  await mkdir(dir);
  await writeFile(join(dir, '0.jpg'), payload(0, 10));
  const port = await freePort();
  const io = capture();
  const to = `ws://127.0.0.1:${port}/ws?token=s3cret-view&x=1`;
  assert.equal(await run(['send', dir, '--to', to, '--retry-for', '1'], io), 1);
  assert.match(io.err(), /ERR_UNREACHABLE: gave up on ws:\/\/127\.0\.0\.1:\d+\/ws\?token=\*\*\*&x=1/);
  assert.doesNotMatch(io.err(), /s3cret/);
  assert.equal(redact('nats://user:pw@host:4222/?token=t&a=b'), 'nats://user:***@host:4222/?token=***&a=b');
  assert.equal(redact('tls://tok@host:4222'), 'tls://***@host:4222');
});

test('serve, send and msg: a folder arrives byte-identical and a message is printed and saved', async () => {
  const src = join(root, 'frames');
  await mkdir(src);
  for (let i = 0; i < 25; i++) await writeFile(join(src, `${i}.png`), payload(i, 4000 + i));
  const out = join(root, 'received');
  const port = await freePort();
  const srv = await serve(['--listen', `tcp://127.0.0.1:${port}`, '--out', out]);
  const send = capture();
  assert.equal(
    await run(
      ['send', src, '--to', `tcp://127.0.0.1:${port}`, '--stream', 'cam0', '--kind', 'infrared'],
      send,
    ),
    0,
  );
  assert.match(send.err(), /sent 25 frames/);
  const msg = capture();
  assert.equal(
    await run(
      ['msg', '--to', `tcp://127.0.0.1:${port}`, '--ref', 'cam0:3', '{"detections":[[10,20,30,40]]}'],
      msg,
    ),
    0,
  );
  const stdin = Readable.from(['{"a":1}\n', 'not json\n', '[0,0,0,1]\n']);
  const msg2 = capture();
  assert.equal(await run(['msg', '--to', `tcp://127.0.0.1:${port}`], { ...msg2, stdin }), 0);
  assert.match(msg2.err(), /line 2: ERR_BAD_JSON/);
  assert.match(msg2.err(), /sent 2 messages/);
  await waitFor(() => srv.io.out().split('\n').length >= 4, 10_000, 'three message lines');
  assert.equal(await srv.stop(), 0);
  const printed = srv.io
    .out()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(printed[0].json, { detections: [[10, 20, 30, 40]] });
  assert.deepEqual(printed[0].ref, { stream: 'cam0', seq: 3 });
  assert.deepEqual(
    printed.slice(1).map((p) => p.json),
    [{ a: 1 }, [0, 0, 0, 1]],
  );
  const files = (await readdir(join(out, 'cam0'))).filter((n) => n !== 'index.jsonl' && n !== 'latest.jpg');
  assert.equal(files.length, 25);
  for (let i = 0; i < 25; i++)
    assert.ok((await readFile(join(out, 'cam0', `${i}.png`))).equals(payload(i, 4000 + i)));
  const saved = (await readFile(join(out, 'messages.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(saved.length, 3);
  assert.match(srv.io.err(), /stream cam0 \(infrared, reliable\)/);
});

test('a file name the receiver refuses: the sender prints the error and exits 1', async () => {
  const src = join(root, 'unsafe');
  await mkdir(src);
  await writeFile(join(src, '0.jpg'), payload(0, 100));
  await writeFile(join(src, 'bad|name.jpg'), payload(1, 100));
  const out = join(root, 'received-unsafe');
  const port = await freePort();
  const srv = await serve(['--listen', `tcp://127.0.0.1:${port}`, '--out', out]);
  const send = capture();
  assert.equal(await run(['send', src, '--to', `tcp://127.0.0.1:${port}`, '--stream', 'cam0'], send), 1);
  assert.match(send.err(), /ERR_UNSAFE_NAME: receiver: file name "bad\|name.jpg" is refused/);
  assert.match(send.err(), /1 frame\(s\) refused/);
  await srv.stop();
  assert.deepEqual((await readdir(join(out, 'cam0'))).sort(), ['0.jpg', 'index.jsonl', 'latest.jpg']);
});

test('serve on a port in use: ERR_LISTEN_FAILED with a hint, exit 1', async () => {
  const other = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const io = capture();
  assert.equal(await run(['serve', '--listen', `tcp://127.0.0.1:${other.port}`], io), 1);
  assert.match(io.err(), /ERR_LISTEN_FAILED: cannot listen on tcp:\/\/127\.0\.0\.1:\d+: EADDRINUSE/);
  assert.match(io.err(), /hint: another program uses this port/);
  await other.close();
});

test('msg with invalid JSON fails before connecting (exit 1, ERR_BAD_JSON)', async () => {
  const io = capture();
  assert.equal(await run(['msg', '--to', 'tcp://127.0.0.1:1', '{nope'], io), 1);
  assert.match(io.err(), /ERR_BAD_JSON/);
});

test('--token on both sides (or FRAMEWIRE_TOKEN); a wrong one is ERR_AUTH, exit 1', async () => {
  const src = join(root, 'tok');
  await mkdir(src);
  await writeFile(join(src, '0.jpg'), payload(0, 100));
  const port = await freePort();
  const srv = await serve(['--listen', `tcp://127.0.0.1:${port}`, '--token', 's3cret']);
  const bad = capture();
  assert.equal(await run(['send', src, '--to', `tcp://127.0.0.1:${port}`, '--token', 'nope'], bad), 1);
  assert.match(bad.err(), /^framewire: ERR_AUTH: wrong token/);
  assert.match(bad.err(), /hint: give both sides the same --token/);
  const saved = process.env.FRAMEWIRE_TOKEN;
  process.env.FRAMEWIRE_TOKEN = 's3cret';
  try {
    const good = capture();
    assert.equal(await run(['send', src, '--to', `tcp://127.0.0.1:${port}`, '--stream', 'tok'], good), 0);
  } finally {
    if (saved === undefined) delete process.env.FRAMEWIRE_TOKEN;
    else process.env.FRAMEWIRE_TOKEN = saved;
  }
  await srv.stop();
  assert.match(srv.io.err(), /ERR_AUTH/);
});
