/**
 * Worker processes (`framewire consume`, built CLI) against a real nats-server: a worker killed with SIGKILL
 * mid-stream leaves its frames to the other worker of its group; SIGTERM ends a worker cleanly.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, createServer, JetStreamSink } from '../../src/index.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';
import { payload, tempDir } from '../helpers/tmp.js';

const skip = HAVE_NATS ? false : 'nats-server is not installed (apt-get install nats-server)';
const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

let root: string;
let cleanup: () => Promise<void>;
let nats: NatsServer | undefined;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-busw-'));
  if (HAVE_NATS) nats = await NatsServer.start();
});
after(async () => {
  await nats?.close();
  await cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function seqsIn(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'index.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
}

function worker(args: string[]): { proc: ChildProcess; err: () => string; exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [CLI, 'consume', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, err: () => err, exited };
}

async function publish(url: string, n: number, size: number): Promise<void> {
  const bus = await JetStreamSink.open({ url });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 16 });
  const cam = client.stream('cam0');
  for (let i = 0; i < n; i++) await cam.send({ data: payload(i, size) });
  await client.close();
  await server.close();
}

test('a worker killed mid-stream: its frames go to the other worker of the group', {
  skip,
  timeout: 60_000,
}, async () => {
  const url = `${nats!.url}?stream=W1&prefix=w1`;
  const N = 600;
  await publish(url, N, 30_000);
  const outA = join(root, 'a');
  const outB = join(root, 'b');
  const common = [url, '--group', 'w', '--ack-wait', '2s'];
  const a = worker([...common, '--out', outA, '--fsync']);
  // A starts alone and is killed once it has written some frames; B then takes the rest, including the
  // frames A had taken but not acknowledged (after --ack-wait).
  for (let t = 0; t < 200 && (await seqsIn(join(outA, 'cam0'))).length < 40; t++) await sleep(50);
  const b = worker([...common, '--out', outB]);
  await sleep(300);
  a.proc.kill('SIGKILL');
  await a.exited;
  const wroteA = await seqsIn(join(outA, 'cam0'));
  assert.ok(wroteA.length > 0 && wroteA.length < N, `A wrote ${wroteA.length} frames before it died`);
  let seqsB: number[] = [];
  for (let t = 0; t < 300; t++) {
    seqsB = await seqsIn(join(outB, 'cam0'));
    if (new Set([...wroteA, ...seqsB]).size >= N) break;
    await sleep(100);
  }
  b.proc.kill('SIGTERM');
  assert.equal(await b.exited, 0, b.err());
  assert.match(b.err(), /consumed \d+ frames/);
  assert.equal(new Set([...wroteA, ...seqsB]).size, N, 'every frame is in one of the folders');
  assert.equal(new Set(seqsB).size, seqsB.length, "B's folder holds each frame once");
  // Frames A wrote but had not acknowledged when it died are written again by B: at most the one in hand
  // and the acknowledgements not yet flushed.
  const both = wroteA.filter((s) => seqsB.includes(s));
  assert.ok(both.length <= 20, `${both.length} frames in both folders`);
});

test('SIGTERM ends a worker cleanly and a new worker of the group goes on where it stopped', {
  skip,
  timeout: 60_000,
}, async () => {
  const url = `${nats!.url}?stream=W2&prefix=w2`;
  const N = 300;
  await publish(url, N, 20_000);
  const out = join(root, 'shared');
  const args = [url, '--group', 'w2', '--out', out, '--fsync'];
  const first = worker(args);
  for (let t = 0; t < 200 && (await seqsIn(join(out, 'cam0'))).length < 30; t++) await sleep(50);
  first.proc.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.err());
  const firstCount = (await seqsIn(join(out, 'cam0'))).length;
  const second = worker(args);
  for (let t = 0; t < 300 && (await seqsIn(join(out, 'cam0'))).length < N; t++) await sleep(100);
  second.proc.kill('SIGTERM');
  assert.equal(await second.exited, 0, second.err());
  const seqs = await seqsIn(join(out, 'cam0'));
  assert.ok(firstCount < N, `the first worker stopped after ${firstCount} frames`);
  assert.deepEqual(
    [...seqs].sort((x, y) => x - y),
    [...Array(N).keys()],
    'every frame once in the shared folder',
  );
});
