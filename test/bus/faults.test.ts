/**
 * Faults on the bus, with real nats-server processes: the server stopped and restarted mid-stream, a node
 * of a 3-node cluster killed with SIGKILL mid-stream. Frames are counted at the sender (acknowledged), on
 * the bus (stored) and in the consumers' folder (written once).
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import {
  connect,
  createServer,
  FolderSink,
  JetStreamSink,
  type JetStreamSinkOptions,
  JetStreamSource,
  OnceFolderSink,
} from '../../src/index.js';
import { HAVE_NATS, NatsServer, startCluster } from '../helpers/nats.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

const skip = HAVE_NATS ? false : 'nats-server is not installed (apt-get install nats-server)';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-busf-'));
});
after(async () => cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Opens the sink, retrying while a fresh cluster elects its JetStream leader. */
async function openSink(opts: JetStreamSinkOptions, forMs = 20_000): Promise<JetStreamSink> {
  const deadline = Date.now() + forMs;
  for (;;) {
    try {
      return await JetStreamSink.open(opts);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(250);
    }
  }
}

async function streamMessages(url: string, stream: string): Promise<number> {
  const nc = await natsConnect({
    servers: url
      .replace(/^nats:\/\//, '')
      .split('?')[0]!
      .split(','),
  });
  try {
    const jsm = await jetstreamManager(nc);
    return (await jsm.streams.info(stream)).state.messages;
  } finally {
    await nc.close();
  }
}

async function seqsIn(dir: string): Promise<number[]> {
  const text = await readFile(join(dir, 'index.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
}

/** Consumes the group into one folder with `workers` sources until `count` frames are in it. */
async function consumeAll(
  url: string,
  group: string,
  out: string,
  count: number,
  workers = 1,
): Promise<number[]> {
  const opened = await Promise.allSettled(
    Array.from({ length: workers }, () =>
      JetStreamSource.open({ url, group, ackWaitMs: 2000, expiresMs: 2000 }),
    ),
  );
  const sources = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = opened.find((r) => r.status === 'rejected');
  if (failed) {
    // Close what did open, so that no connection keeps the test process alive.
    await Promise.all(sources.map((s) => s.close()));
    throw failed.reason;
  }
  const sinks = await Promise.all(sources.map(async () => new OnceFolderSink(await FolderSink.open(out))));
  const ac = new AbortController();
  const runs = sources.map((s, i) => s.deliverTo([sinks[i]!], { signal: ac.signal }));
  try {
    const dir = join(out, 'cam0');
    for (let t = 0; t < 300; t++) {
      if ((await seqsIn(dir)).length >= count) break;
      await sleep(100);
    }
    // A moment more: anything delivered again now would show as a second line.
    await sleep(500);
  } finally {
    ac.abort();
    await Promise.all(runs);
    await Promise.all(sources.map((s) => s.close()));
    await Promise.all(sinks.map((s) => s.close()));
  }
  return seqsIn(join(out, 'cam0'));
}

test('nats-server stopped and restarted mid-stream: the sender is held back, everything arrives once', {
  skip,
  timeout: 90_000,
}, async () => {
  const nats = await NatsServer.start();
  try {
    const url = `${nats.url}?stream=R1`;
    const bus = await JetStreamSink.open({ url, retryForMs: 30_000, ackTimeoutMs: 1000 });
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
    const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 8 });
    const cam = client.stream('cam0');
    const N = 300;
    const sending = (async () => {
      for (let i = 0; i < N; i++) await cam.send({ data: payload(i, 20_000) });
    })();
    await waitFor(() => client.stats().framesAcked >= 80, 20_000, '80 frames acknowledged');
    await nats.stop('SIGTERM');
    await sleep(300);
    const ackedWhileDown = client.stats().framesAcked;
    await sleep(1500);
    assert.equal(client.stats().framesAcked, ackedWhileDown, 'nothing is acknowledged while the bus is down');
    assert.ok(ackedWhileDown < N, 'the sender was held back');
    await nats.startAgain();
    await sending;
    const stats = await client.close();
    await server.close();
    assert.equal(stats.framesAcked, N);
    assert.ok(bus.stats.retries > 0, 'publishes were retried');
    assert.equal(await streamMessages(nats.url, 'R1'), N, 'JetStream holds each frame once');
    const seqs = await consumeAll(url, 'r1', join(root, 'restart'), N);
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      [...Array(N).keys()],
      'every frame in the folder once',
    );
  } finally {
    await nats.close();
  }
});

test('a 3-node cluster loses a node (SIGKILL) mid-stream: nothing lost, nothing written twice', {
  skip,
  timeout: 60_000,
}, async () => {
  const nodes = await startCluster(3);
  let stopOnFailure: (() => Promise<void>) | undefined;
  try {
    const url = `nats://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}?stream=C1&replicas=3`;
    const bus = await openSink({ url, retryForMs: 30_000, ackTimeoutMs: 2000 });
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
    const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 8 });
    stopOnFailure = async () => {
      client.destroy();
      await server.close();
    };
    const cam = client.stream('cam0');
    const N = 300;
    const out = join(root, 'cluster');
    // Two workers of one group write one folder while the node dies.
    const consuming = consumeAll(url, 'c1', out, N, 2);
    consuming.catch(() => {});
    const sending = (async () => {
      for (let i = 0; i < N; i++) await cam.send({ data: payload(i, 10_000) });
    })();
    await waitFor(() => client.stats().framesAcked >= 100, 30_000, '100 frames acknowledged');
    // Kill the stream's leader: the worst case (a new leader must be elected).
    const nc = await natsConnect({ servers: nodes.map((n) => `127.0.0.1:${n.port}`) });
    const leader = (await (await jetstreamManager(nc)).streams.info('C1')).cluster?.leader;
    await nc.close();
    const victim = nodes.find((_n, i) => `n${i}` === leader) ?? nodes[0]!;
    await victim.stop('SIGKILL');
    await sending;
    const stats = await client.close();
    await server.close();
    stopOnFailure = undefined;
    assert.equal(stats.framesAcked, N);
    const seqs = await consuming;
    assert.equal(seqs.length, new Set(seqs).size, 'no frame written twice');
    assert.deepEqual(
      [...seqs].sort((a, b) => a - b),
      [...Array(N).keys()],
      'every frame in the folder',
    );
  } finally {
    await stopOnFailure?.();
    await Promise.all(nodes.map((n) => n.close()));
  }
});

test('a bus down for longer than retryForMs: ERR_BUS_UNREACHABLE, the frame stays unacknowledged', {
  skip,
  timeout: 60_000,
}, async () => {
  const nats = await NatsServer.start();
  try {
    const bus = await JetStreamSink.open({
      url: `${nats.url}?stream=U1`,
      retryForMs: 1500,
      ackTimeoutMs: 500,
    });
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
    const warnings: string[] = [];
    server.on('warning', (e) => warnings.push(e.code));
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    client.on('error', () => {});
    const cam = client.stream('cam0');
    await cam.send({ data: payload(0, 1000) });
    await client.flush();
    assert.equal(client.stats().framesAcked, 1);
    await nats.stop('SIGKILL');
    void cam.send({ data: payload(1, 1000) }).catch(() => {});
    await waitFor(() => warnings.includes('ERR_BUS_UNREACHABLE'), 20_000, 'ERR_BUS_UNREACHABLE');
    assert.equal(client.stats().framesAcked, 1, 'the frame the bus did not store is not acknowledged');
    client.destroy();
    await server.close();
  } finally {
    await nats.close();
  }
});
