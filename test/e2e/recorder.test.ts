/**
 * The recording path under stress: a receiver killed with SIGKILL while many frame writes are in flight, and
 * several sender runs into one stream folder. Whatever happens, the folder holds whole files only, every
 * index line names a distinct file whose bytes match the line's CRC, and no run overwrites another's file.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { crc32 } from 'node:zlib';
import { run } from '../../src/cli/run.js';
import { connect, createServer, FolderSink, type FramewireError } from '../../src/index.js';
import { folderSource } from '../../src/sources/folder.js';
import { capture } from '../helpers/cli.js';
import { freePort } from '../helpers/net.js';
import { sendAll } from '../helpers/sending.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const TEMP_PREFIX = '.fw-tmp-';
let root: string;
let cleanup: () => Promise<void>;
const children = new Set<ChildProcess>();
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-recorder-'));
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  await cleanup();
});

function serve(port: number, out: string, extra: string[] = []): Promise<ChildProcess> {
  const args = [CLI, 'serve', '--listen', `tcp://127.0.0.1:${port}`, '--out', out, ...extra];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let text = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no "receiving on" from framewire serve: ${text}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('receiving on')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`framewire serve exited with ${code}: ${text}`)));
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

interface Line {
  seq: number;
  name: string;
  bytes: number;
  crc: number;
  epoch: string;
}

async function indexLines(dir: string): Promise<Line[]> {
  let text: string;
  try {
    text = await readFile(join(dir, 'index.jsonl'), 'utf8');
  } catch {
    return [];
  }
  const lines: Line[] = [];
  for (const l of text.split('\n')) {
    if (l.trim() === '') continue;
    try {
      lines.push(JSON.parse(l) as Line);
    } catch {
      // A torn last line (the receiver was killed mid-append) records nothing; readers skip it.
    }
  }
  return lines;
}

/**
 * What must hold at any moment, even right after a SIGKILL: every index line names a distinct file that is
 * there and whose bytes match the line's size and CRC; every other file under a final name is whole.
 */
async function assertConsistent(
  dir: string,
  whole: (name: string, data: Buffer) => boolean,
): Promise<Line[]> {
  const lines = await indexLines(dir);
  const names = new Set<string>();
  for (const l of lines) {
    assert.ok(!names.has(l.name), `${l.name} is named by one index line only`);
    names.add(l.name);
    const data = await readFile(join(dir, l.name));
    assert.equal(data.length, l.bytes, `${l.name}: size of its index line`);
    assert.equal(crc32(data), l.crc, `${l.name}: CRC of its index line`);
  }
  for (const n of await readdir(dir)) {
    if (n === 'index.jsonl' || n === 'latest.jpg' || n.startsWith(TEMP_PREFIX)) continue;
    assert.ok(whole(n, await readFile(join(dir, n))), `${n} is whole`);
  }
  return lines;
}

test('receiver SIGKILLed with many writes in flight: no half file, no line without its file, all frames once', async (t) => {
  const count = 1500;
  const src = join(root, 'src');
  await mkdir(src);
  const original = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) {
    const data = payload(i, 8000 + ((i * 7919) % 40_000));
    original.set(`${i}.jpg`, data);
    await writeFile(join(src, `${i}.jpg`), data);
  }
  const out = join(root, 'killed');
  const dir = join(out, 'cam0');
  const whole = (n: string, data: Buffer) => original.get(n)?.equals(data) === true;
  const port = await freePort();
  // Every frame on the thread pool, many at once (the synchronous path has one write in flight at a time).
  const args = ['--write-concurrency', '64', '--sync-write-max', '0'];
  let receiver = await serve(port, out, args);
  const client = await connect(`tcp://127.0.0.1:${port}`, {
    windowFrames: 256,
    maxBackoffMs: 100,
    retryForMs: 60_000,
  });
  const { acked, done: sending } = sendAll(
    client,
    client.stream('cam0', { kind: 'visible' }),
    await folderSource(src).open(),
  );
  try {
    for (const at of [150, 600, 1000]) {
      await waitFor(() => acked() >= at, 60_000, `${at} frames acked`);
      receiver.kill('SIGKILL');
      await exited(receiver);
      // The folder as the crash left it.
      const lines = await assertConsistent(dir, whole);
      assert.ok(lines.length >= at, `${lines.length} lines for ${at} acknowledged frames`);
      const entries = await readdir(dir);
      const temps = entries.filter((n) => n.startsWith(TEMP_PREFIX)).length;
      const unrecorded = entries.length - lines.length - temps - 2;
      t.diagnostic(
        `killed at ${acked()} acked: ${lines.length} lines, ${unrecorded} files without a line, ${temps} temp files`,
      );
      receiver = await serve(port, out, args);
    }
    const stats = await sending;
    assert.equal(stats.framesAcked, count);
  } finally {
    receiver.kill('SIGTERM');
    await exited(receiver);
  }
  const lines = await assertConsistent(dir, whole);
  assert.deepEqual(
    lines.map((l) => l.seq).sort((a, b) => a - b),
    [...Array(count).keys()],
    'every frame recorded exactly once',
  );
  const files = (await readdir(dir)).filter((n) => n !== 'index.jsonl' && n !== 'latest.jpg').sort();
  assert.deepEqual(files, [...original.keys()].sort(), 'every file once, under its own name, no leftovers');
});

test('runs of several senders into one stream never overwrite a saved file; --on-conflict refuse', async () => {
  const out = join(root, 'runs');
  const dir = join(out, 'cam');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
  const url = `tcp://127.0.0.1:${server.port}`;
  const same = payload(1, 3000);
  const run = async (epoch: string, a: Buffer) => {
    const client = await connect(url, { epoch });
    const st = client.stream('cam', { kind: 'visible' });
    await st.send({ data: a, name: 'a.jpg' });
    await st.send({ data: same, name: 'b.jpg' });
    // Unnamed frames, as from a camera or a video file: numbered per run from 0.
    for (let i = 0; i < 3; i++) await st.send({ data: payload(100 + i, 2000 + epoch.length) });
    await client.close();
  };
  const a1 = payload(10, 4000);
  const a2 = payload(20, 4000);
  try {
    await run('run1', a1);
    await run('run2', a2);
  } finally {
    await server.close();
  }
  const lines = await assertConsistent(dir, () => true);
  assert.equal(lines.length, 10);
  assert.deepEqual((await readdir(dir)).sort(), [
    'a.jpg',
    'a~run2.jpg',
    'b.jpg',
    'b~run2.jpg',
    'index.jsonl',
    'latest.jpg',
    'run1-000000002.jpg',
    'run1-000000003.jpg',
    'run1-000000004.jpg',
    'run2-000000002.jpg',
    'run2-000000003.jpg',
    'run2-000000004.jpg',
  ]);
  assert.ok((await readFile(join(dir, 'a.jpg'))).equals(a1), "the first run's a.jpg is untouched");
  assert.ok((await readFile(join(dir, 'a~run2.jpg'))).equals(a2));

  // refuse: the sender is told ERR_NAME_TAKEN for that frame; the frames after it are saved.
  const strict = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [await FolderSink.open(out, { onConflict: 'refuse' })],
  });
  try {
    const client = await connect(`tcp://127.0.0.1:${strict.port}`, { epoch: 'run3' });
    const errors: FramewireError[] = [];
    client.on('frame-error', (e) => errors.push(e));
    const st = client.stream('cam', { kind: 'visible' });
    await st.send({ data: payload(30, 4000), name: 'a.jpg' });
    await st.send({ data: payload(31, 4000), name: 'c.jpg' });
    const stats = await client.close();
    assert.equal(stats.framesAcked, 1);
    assert.equal(stats.framesRefused, 1);
    assert.deepEqual(
      errors.map((e) => [e.code, e.seq]),
      [['ERR_NAME_TAKEN', 0]],
    );
  } finally {
    await strict.close();
  }
  assert.ok((await readFile(join(dir, 'a.jpg'))).equals(a1));
  assert.ok((await readFile(join(dir, 'c.jpg'))).equals(payload(31, 4000)));
  assert.equal((await assertConsistent(dir, () => true)).length, 11);
});

test('serve refuses a bad --write-concurrency, --on-conflict or --sync-write-max as a usage error (exit 2)', async () => {
  const out = join(root, 'bad-options');
  for (const [opt, value, says] of [
    ['--write-concurrency', '0', /--write-concurrency must be an integer 1\.\.1024, got "0"/],
    ['--write-concurrency', '2.5', /--write-concurrency must be an integer 1\.\.1024, got "2\.5"/],
    ['--on-conflict', 'replace', /--on-conflict.*replace.*keep-both, refuse, overwrite/],
    ['--sync-write-max', 'lots', /--sync-write-max: "lots" is not a size/],
  ] as const) {
    const io = capture();
    assert.equal(
      await run(['serve', '--listen', 'tcp://127.0.0.1:0', '--out', out, opt, value], io),
      2,
      value,
    );
    assert.match(io.err(), says);
  }
});
