/**
 * The seed programs' clients themselves (Python with OpenCV and numpy, test/fixtures/seeds/: the articles'
 * code with argv for the address and a bounded loop) against one `framewire serve` with the seed's three
 * legacy endpoints: the single-datagram picture client, the chunked one, the camera client (a synthetic
 * image source instead of a webcam), the JSON-list client, and the TCP folder client. Every picture must
 * arrive byte-identical to what the client encoded, every answer must reach the client.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { tempDir, waitFor } from '../helpers/tmp.js';
import { cv2Jpeg, NO_CV2, pythonWithCv2, runSeed, sceneJpeg } from './seed-python.js';

const skip = pythonWithCv2() ? false : NO_CV2;

// Deadlines: a Python start with OpenCV takes 0.2-2 s on a busy 2-core machine; each program here sends a
// handful of pictures and waits for an answer to each.
const PROGRAM_MS = 60_000;

let root: string;
let cleanup: () => Promise<void>;
let out: string;
let stop: () => Promise<number>;
let io: ReturnType<typeof capture>;
let port: (scheme: string) => number;

before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-seed-clients-'));
  if (skip) return;
  out = join(root, 'received');
  io = capture();
  const ac = new AbortController();
  const done = run(
    [
      'serve',
      '--out',
      out,
      '--listen',
      'legacy-udp://127.0.0.1:0',
      '--listen',
      'legacy-json://127.0.0.1:0',
      '--listen',
      'legacy-tcp://127.0.0.1:0',
    ],
    { ...io, signal: ac.signal },
  );
  await waitFor(() => io.err().includes('receiving on'), 30_000, 'serve to start');
  const urls = /receiving on (.*?)(, saving to .*)?$/m.exec(io.err())![1]!.split(', ');
  port = (scheme) => Number(new URL(urls.find((u) => u.startsWith(`${scheme}://`))!).port);
  stop = async () => {
    ac.abort();
    return done;
  };
});
after(async () => {
  if (stop) assert.equal(await stop(), 0, io.err());
  await cleanup();
});

/** The UDP streams (one per sender address) in the output folder. */
async function udpStreams(): Promise<Set<string>> {
  return new Set((await readdir(out).catch(() => [])).filter((n) => n.startsWith('udp-127.0.0.1-')));
}

/** Polls `check` until it returns a value; fails after `timeoutMs`. */
async function eventually<T>(
  check: () => Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function pictures(stream: string): Promise<Buffer[]> {
  const names = (await readdir(join(out, stream))).filter((n) => /^legacy-udp-\d+\.jpg$/.test(n)).sort();
  return Promise.all(names.map((n) => readFile(join(out, stream, n))));
}

/**
 * Runs one UDP picture client and returns its output and the pictures of the stream it made (one per
 * sender address), once `count` of them are stored.
 */
async function udpClient(
  script: string,
  args: string[],
  count: number,
): Promise<{ got: Buffer[]; stdout: string[] }> {
  const before = await udpStreams();
  const s = await runSeed(script, ['127.0.0.1', String(port('legacy-udp')), ...args], PROGRAM_MS);
  const stream = await eventually(
    async () => [...(await udpStreams())].find((n) => !before.has(n)),
    10_000,
    `the stream of ${script}`,
  );
  const got = await eventually(
    async () => {
      const p = await pictures(stream);
      return p.length >= count ? p : undefined;
    },
    10_000,
    `${count} pictures of ${script}`,
  );
  assert.equal((await udpStreams()).size, before.size + 1, `one new stream for ${script}`);
  return { got, stdout: s.lines };
}

describe('the seed clients (Python) → framewire serve', { skip }, () => {
  test('udp_client_single.py: one picture per datagram, byte-identical, answered', async () => {
    for (const i of [0, 1]) {
      const file = join(root, `single-${i}.jpg`);
      await writeFile(file, await sceneJpeg(320, 240, i));
      const { got, stdout } = await udpClient('udp_client_single.py', [file], 1);
      assert.deepEqual(stdout, ['get message!!!']);
      assert.equal(got.length, 1);
      assert.ok(got[0]!.equals(cv2Jpeg(file)), 'the stored picture is what cv2.imencode sent');
    }
  });

  test('udp_client_chunked.py: header + 1024-byte chunks, byte-identical, answered', async () => {
    const file = join(root, 'chunked.jpg');
    await writeFile(file, await sceneJpeg(640, 480, 3));
    const sent = cv2Jpeg(file);
    assert.ok(sent.length > 20 * 1024, `a picture of many chunks (${sent.length} bytes)`);
    const { got, stdout } = await udpClient('udp_client_chunked.py', [file], 1);
    assert.deepEqual(stdout, ['get message!!!']);
    assert.equal(got.length, 1);
    assert.ok(got[0]!.equals(sent));
  });

  test('udp_client_1.py (synthetic camera instead of a webcam): 8 frames, each stored and answered', async () => {
    const { got, stdout } = await udpClient('udp_client_1.py', ['8'], 8);
    assert.deepEqual(stdout, Array(8).fill('get message!!!'));
    assert.equal(got.length, 8);
    assert.equal(new Set(got.map((b) => b.toString('base64'))).size, 8, 'eight different frames');
    for (const jpg of got) {
      const meta = await sharp(jpg).metadata();
      assert.equal(meta.format, 'jpeg');
      assert.deepEqual([meta.width, meta.height], [320, 240]);
    }
  });

  test('udp_client_2.py: 20 JSON lists on the message port, each delivered and answered', async () => {
    const s = await runSeed('udp_client_2.py', ['127.0.0.1', String(port('legacy-json')), '20'], PROGRAM_MS);
    assert.deepEqual(s.lines, Array(20).fill('get the msg'));
    await waitFor(() => io.out().split('\n').filter(Boolean).length >= 20, 20_000, '20 messages on stdout');
    const lines = io
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { json: unknown });
    assert.equal(lines.length, 20);
    for (const m of lines) assert.deepEqual(m.json, [0, 0, 0, 1]);
    const stored = (await readFile(join(out, 'messages.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(stored.length, 20);
  });

  test('clien.py: a folder of frames over TCP into FOLDER/NAME, byte-identical', async () => {
    const dir = join(root, 'frames');
    await mkdir(dir);
    const files: Record<string, Buffer> = {};
    // clien.py sorts by int(name[:-4]): 0.png … 10.png, in number order.
    for (let i = 0; i <= 10; i++) {
      files[`${i}.jpg`] = await sceneJpeg(160 + 16 * i, 120, i);
      await writeFile(join(dir, `${i}.jpg`), files[`${i}.jpg`]!);
    }
    const s = await runSeed(
      'clien.py',
      ['127.0.0.1', String(port('legacy-tcp')), dir, 'infrared', 'seedrun'],
      PROGRAM_MS,
    );
    assert.deepEqual(s.lines, ['11']);
    // Each "ok" comes once the piece is stored, so every file is there when the client ends.
    for (const [name, data] of Object.entries(files)) {
      assert.ok((await readFile(join(out, 'seedrun', name))).equals(data), `seedrun/${name}`);
    }
    assert.match(io.err(), /stream seedrun \(infrared, reliable\) from 127\.0\.0\.1:\d+/);
  });
});
