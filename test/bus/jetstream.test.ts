/**
 * The JetStream sink and source against a real nats-server: frames and messages through the bus, large
 * frames through the object store, publish deduplication, the folder written once, and the bus errors.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import foxglove from '@foxglove/ws-protocol';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { WebSocket } from 'ws';
import { run } from '../../src/cli/run.js';
import {
  connect,
  createServer,
  FolderSink,
  FramewireError,
  JetStreamSink,
  JetStreamSource,
  OnceFolderSink,
  parseBusUrl,
  parseStartFrom,
  type Sink,
} from '../../src/index.js';
import { selfSignedCert } from '../helpers/certs.js';
import { capture } from '../helpers/cli.js';
import { noiseJpeg } from '../helpers/images.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';

const { FoxgloveClient } = foxglove;

import { receivedFrame, streamInfo } from '../helpers/frames.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

const skip = HAVE_NATS ? false : 'nats-server is not installed (apt-get install nats-server)';

let root: string;
let cleanup: () => Promise<void>;
let nats: NatsServer | undefined;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-bus-'));
  if (HAVE_NATS) nats = await NatsServer.start();
});
after(async () => {
  await nats?.close();
  await cleanup();
});

async function indexEntries(dir: string): Promise<{ seq: number; epoch: string; name: string }[]> {
  const text = await readFile(join(dir, 'index.jsonl'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

test('the bus URL: servers, credentials, limits; bad ones are refused with a code', () => {
  const c = parseBusUrl('nats://u:p%40ss@a:4222,b?replicas=3&max-age=24h&max-bytes=10GiB&stream=S1');
  assert.deepEqual(c.servers, ['a:4222', 'b:4222']);
  assert.equal(c.user, 'u');
  assert.equal(c.pass, 'p@ss');
  assert.equal(c.replicas, 3);
  assert.equal(c.maxAgeMs, 24 * 3600_000);
  assert.equal(c.maxBytes, 10 * 1024 ** 3);
  assert.equal(c.stream, 'S1');
  assert.equal(c.bucket, 'S1_frames');
  assert.equal(c.display, 'nats://a:4222,b:4222');
  assert.equal(parseBusUrl('tls://tok@h').token, 'tok');
  assert.equal(parseBusUrl('tls://tok@h').tls, true);
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return (err as FramewireError).code;
    }
    return 'no error';
  };
  assert.equal(
    code(() => parseBusUrl('nats://h?colour=red')),
    'ERR_BAD_URL',
  );
  assert.equal(
    code(() => parseBusUrl('nats://h?replicas=9')),
    'ERR_BAD_URL',
  );
  assert.equal(
    code(() => parseBusUrl('nats://h:99999')),
    'ERR_BAD_URL',
  );
  assert.equal(
    code(() => parseBusUrl('http://h')),
    'ERR_UNSUPPORTED_SCHEME',
  );
  assert.equal(
    code(() => parseBusUrl('nats://h?max-age=soon')),
    'ERR_BAD_OPTION',
  );
  assert.equal(
    code(() => parseBusUrl('nats://h?max-bytes=lots')),
    'ERR_BAD_OPTION',
  );
  assert.equal(
    code(() => parseStartFrom('yesterday-ish')),
    'ERR_BAD_OPTION',
  );
  assert.equal(parseStartFrom('new'), 'new');
  assert.equal((parseStartFrom('2026-01-31T12:00:00Z') as Date).toISOString(), '2026-01-31T12:00:00.000Z');
  const tenMinAgo = (parseStartFrom('10m') as Date).getTime();
  assert.ok(Math.abs(Date.now() - 600_000 - tenMinAgo) < 5000);
});

test('frames and messages go through the bus: small, large (object store), once each in the folder', {
  skip,
}, async () => {
  const url = `${nats!.url}?stream=T1&prefix=t1&max-age=1h`;
  const bus = await JetStreamSink.open({ url });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const cam = client.stream('cam0', { kind: 'infrared' });
  const sizes = [1000, 50_000, 2_500_000, 300, 1_200_000];
  for (let i = 0; i < sizes.length; i++) {
    await cam.send({
      data: payload(i, sizes[i]!),
      name: `${i}.jpg`,
      meta: { i, label: 'größe' },
      captureUs: 1000 + i,
    });
  }
  await client.message({ detections: [[1, 2, 3, 4]] }, { ref: { stream: 'cam0', seq: 2 } });
  const stats = await client.close();
  assert.equal(stats.framesAcked, sizes.length);
  await server.close();
  assert.equal(bus.stats.frames, sizes.length);
  assert.equal(bus.stats.objects, 2, 'the two frames above max_payload went to the object store');
  assert.equal(bus.stats.messages, 1);

  // Consume with the CLI into a folder; a second run of the same group finds nothing new.
  const out = join(root, 'out1');
  const io = capture();
  const ac = new AbortController();
  const done = run(['consume', url, '--out', out, '--group', 'g1'], { ...io, signal: ac.signal });
  await waitFor(() => io.out().includes('detections'), 15_000, 'the message on stdout');
  await waitFor(() => io.err().length > 0, 5000);
  const dir = join(out, 'cam0');
  for (let t = 0; t < 150; t++) {
    if ((await indexEntries(dir)).length === sizes.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  ac.abort();
  assert.equal(await done, 0, io.err());
  assert.match(io.err(), /consumed 5 frames, 1 messages/);
  for (let i = 0; i < sizes.length; i++) {
    assert.ok(
      (await readFile(join(dir, `${i}.jpg`))).equals(payload(i, sizes[i]!)),
      `${i}.jpg is byte-identical`,
    );
  }
  const idx = await indexEntries(dir);
  // The receiver hands the sink several frames at once (publishConcurrency), and a large frame goes through
  // the object store first; still the bus holds them in sequence order, and so does the worker's folder.
  assert.deepEqual(
    idx.map((e) => e.seq),
    [0, 1, 2, 3, 4],
  );
  const line = (await readFile(join(dir, 'index.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((e) => e.seq === 0);
  assert.deepEqual(line.meta, { i: 0, label: 'größe' });
  assert.equal(line.captureUs, 1000);
  const msgs = (await readFile(join(out, 'messages.jsonl'), 'utf8')).trim().split('\n');
  assert.equal(msgs.length, 1);
  assert.deepEqual(JSON.parse(msgs[0]!).ref, { stream: 'cam0', seq: 2 });
});

test('a frame published twice is stored once (Nats-Msg-Id), and a folder writes a redelivered frame once', {
  skip,
}, async () => {
  const url = `${nats!.url}?stream=T2&prefix=t2`;
  const bus = await JetStreamSink.open({ url });
  const frame = receivedFrame(7, {
    stream: streamInfo('cam1', { sender: '127.0.0.1:1' }),
    data: payload(7, 5000),
    crc: 0,
  });
  await bus.frame(frame);
  await bus.frame(frame);
  assert.equal(bus.stats.duplicates, 1);
  await bus.close();

  // A worker that takes the frame, writes it, and does not acknowledge it: the next one gets it again.
  const out = join(root, 'out2');
  const src = await JetStreamSource.open({ url, group: 'g2', ackWaitMs: 1000 });
  const folder = new OnceFolderSink(await FolderSink.open(out));
  for await (const d of src) {
    assert.equal(d.type, 'frame');
    if (d.type === 'frame') await folder.frame(d.frame);
    break; // no ack: as if the worker died
  }
  await src.close();
  const src2 = await JetStreamSource.open({ url, group: 'g2', ackWaitMs: 1000 });
  const folder2 = new OnceFolderSink(await FolderSink.open(out));
  let redelivered = 0;
  const ac = new AbortController();
  const done = src2.deliverTo([folder2], {
    signal: ac.signal,
    onFrame: (_f, d) => {
      redelivered = d.deliveryCount;
      ac.abort();
    },
  });
  const stats = await done;
  await src2.close();
  await folder.close();
  await folder2.close();
  assert.equal(stats.frames, 1);
  assert.ok(redelivered >= 2, `delivered again (count ${redelivered})`);
  assert.equal(folder2.stats.skipped, 1, 'the folder already held it');
  assert.equal((await indexEntries(join(out, 'cam1'))).length, 1);
  assert.deepEqual(
    (await readdir(join(out, 'cam1'))).filter((n) => n !== 'index.jsonl' && n !== 'latest.jpg'),
    ['e1-000000007.jpg'],
  );
});

test('a sink that refuses a delivered frame for good (ERR_NAME_TAKEN) ends it (term): it does not come back', {
  skip,
}, async () => {
  const url = `${nats!.url}?stream=T8&prefix=t8`;
  const bus = await JetStreamSink.open({ url });
  await bus.frame(receivedFrame(1, { stream: streamInfo('cam8') }));
  await bus.close();
  const refusing: Sink = {
    frame: async (f) => {
      throw new FramewireError('ERR_NAME_TAKEN', `frame ${f.seq} is refused`);
    },
  };
  const errors: string[] = [];
  const src = await JetStreamSource.open({ url, group: 'g8', ackWaitMs: 1000 });
  const ac = new AbortController();
  const done = src.deliverTo([refusing], { signal: ac.signal, onError: (e) => errors.push(e.code) });
  await waitFor(() => errors.length > 0, 20_000, 'the refusal');
  // A nak would bring it back within a second (nak delay and ack_wait are 1 s here); term does not.
  await new Promise((r) => setTimeout(r, 2500));
  ac.abort();
  const stats = await done;
  await src.close();
  assert.deepEqual(errors, ['ERR_NAME_TAKEN']);
  assert.equal(stats.failed, 1);
  assert.equal(stats.redelivered, 0);
});

test('consume --stream filters, and two workers of one group share the frames', { skip }, async () => {
  const url = `${nats!.url}?stream=T3&prefix=t3`;
  const bus = await JetStreamSink.open({ url });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const a = client.stream('a');
  const b = client.stream('b');
  for (let i = 0; i < 40; i++) {
    await a.send({ data: payload(i, 2000) });
    await b.send({ data: payload(i + 100, 2000) });
  }
  await client.close();
  await server.close();

  const seen: string[] = [];
  const workers = await Promise.all(
    [0, 1].map(() => JetStreamSource.open({ url, group: 'ga', streams: ['a'], batch: 4 })),
  );
  const acs = workers.map(() => new AbortController());
  const per = [0, 0];
  const runs = workers.map((w, k) =>
    w.deliverTo([], {
      signal: acs[k]!.signal,
      onFrame: (f) => {
        seen.push(`${f.stream.name}:${f.seq}`);
        per[k]!++;
      },
    }),
  );
  await waitFor(() => seen.length >= 40, 15_000, '40 frames of stream a');
  await new Promise((r) => setTimeout(r, 300));
  for (const ac of acs) ac.abort();
  await Promise.all(runs);
  await Promise.all(workers.map((w) => w.close()));
  assert.equal(seen.length, 40, 'each frame handled by one worker');
  assert.equal(new Set(seen).size, 40);
  assert.ok(seen.every((s) => s.startsWith('a:')));
  assert.ok(per[0]! > 0 && per[1]! > 0, `both workers took frames (${per.join(' / ')})`);
});

test('bus errors: unreachable, no JetStream, wrong password, and an unknown group filter', {
  skip,
}, async () => {
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      return (err as FramewireError).code;
    }
    return 'no error';
  };
  const down = await NatsServer.start();
  const downUrl = down.url;
  await down.close();
  assert.equal(
    await code(JetStreamSink.open({ url: downUrl, connectTimeoutMs: 1000 })),
    'ERR_BUS_UNREACHABLE',
  );
  const plain = await NatsServer.start({ jetstream: false });
  const auth = await NatsServer.start({ config: 'authorization { user: fw, password: s3cret }\n' });
  try {
    assert.equal(await code(JetStreamSink.open({ url: plain.url })), 'ERR_BUS_REFUSED');
    const bad = `nats://fw:wrong@127.0.0.1:${auth.port}`;
    assert.equal(await code(JetStreamSink.open({ url: bad })), 'ERR_BUS_REFUSED');
    const good = await JetStreamSink.open({ url: `nats://fw:s3cret@127.0.0.1:${auth.port}` });
    await good.close();
    // The CLI: one line with the code, exit 1.
    const io = capture();
    assert.equal(await run(['serve', '--listen', 'tcp://127.0.0.1:0', '--publish', bad], io), 1);
    assert.match(io.err(), /ERR_BUS_REFUSED/);
    const io2 = capture();
    assert.equal(await run(['consume', `${nats!.url}?colour=red`], io2), 2);
    assert.match(io2.err(), /ERR_BAD_URL/);
    const io4 = capture();
    assert.equal(await run(['consume', nats!.url, '--from', 'someday'], io4), 2);
    assert.match(io4.err(), /--from "someday" is not new, first/);
    const io5 = capture();
    assert.equal(await run(['consume', nats!.url, '--ack-wait', 'long'], io5), 2);
    assert.match(io5.err(), /--ack-wait "long" is not a duration/);
    const io3 = capture();
    assert.equal(await run(['consume', nats!.url, '--group', 'a.b'], io3), 2);
    assert.match(io3.err(), /ERR_BAD_OPTION/);
    // A group made with one filter cannot be joined with another.
    const url = `${nats!.url}?stream=T4&prefix=t4`;
    await (await JetStreamSink.open({ url })).close();
    await (await JetStreamSource.open({ url, group: 'gf', streams: ['x'] })).close();
    assert.equal(await code(JetStreamSource.open({ url, group: 'gf', streams: ['y'] })), 'ERR_BUS_REFUSED');
    assert.equal(
      await code(JetStreamSource.open({ url: `${nats!.url}?stream=NOPE`, group: 'g' })),
      'ERR_BUS_REFUSED',
    );
  } finally {
    await plain.close();
    await auth.close();
  }
});

test('a bus that refuses a frame (headers above max_payload): ERR_BUS_REFUSED, the frame stays unacknowledged', {
  skip,
}, async () => {
  const small = await NatsServer.start({ config: 'max_payload: 4096\n' });
  try {
    const url = `${small.url}?stream=T5`;
    const bus = await JetStreamSink.open({ url });
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
    const warnings: string[] = [];
    server.on('warning', (e) => warnings.push(e.code));
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    client.on('error', () => {});
    const cam = client.stream('cam0');
    await cam.send({ data: payload(1, 10_000) }); // above max_payload: through the object store
    void cam.send({ data: payload(2, 100), meta: { notes: 'x'.repeat(6000) } }).catch(() => {});
    await waitFor(() => warnings.includes('ERR_BUS_REFUSED'), 15_000, 'ERR_BUS_REFUSED');
    assert.equal(client.stats().framesAcked, 1, 'the refused frame is not acknowledged');
    client.destroy();
    await server.close();
    assert.equal(bus.stats.frames, 1, 'only the first frame is on the bus');
    const nc = await natsConnect({ servers: small.url });
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info('T5')).state.messages, 1);
    await nc.close();
  } finally {
    await small.close();
  }
});

test('consume --view shows the newest frame of each stream at once, to a viewer that joins late', {
  skip,
}, async () => {
  const url = `${nats!.url}?stream=T6&prefix=t6`;
  const bus = await JetStreamSink.open({ url });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const a = client.stream('front');
  const b = client.stream('rear');
  const jpegs = await Promise.all([1, 2, 3].map((i) => noiseJpeg(64, 48, i)));
  await a.send({ data: jpegs[0]!, contentType: 'image/jpeg' });
  await a.send({ data: jpegs[1]!, contentType: 'image/jpeg' });
  await b.send({ data: jpegs[2]!, contentType: 'image/jpeg' });
  await client.close();
  await server.close();
  // A group that starts at new frames gets none of these; the viewer shows them all the same.
  const io = capture();
  const ac = new AbortController();
  const done = run(['consume', url, '--view', '127.0.0.1:0', '--from', 'new', '--group', 'live'], {
    ...io,
    signal: ac.signal,
  });
  await waitFor(() => /viewer on http:\/\/[^\s]+/.test(io.err()), 15_000, 'the viewer');
  const base = /viewer on (http:\/\/[^\s]+)/.exec(io.err())![1]!.replace(/\/$/, '');
  const front = Buffer.from(await (await fetch(`${base}/streams/front.jpg`)).arrayBuffer());
  const rear = Buffer.from(await (await fetch(`${base}/streams/rear.jpg`)).arrayBuffer());
  ac.abort();
  assert.equal(await done, 0, io.err());
  assert.ok(front.equals(jpegs[1]!), 'the newest frame of front');
  assert.ok(rear.equals(jpegs[2]!), 'the newest frame of rear');
  assert.match(io.err(), /consumed 0 frames/);
});

test('serve --publish beside --out: each frame in the folder and on the bus', { skip }, async () => {
  const url = `${nats!.url}?stream=T7&prefix=t7`;
  const out = join(root, 'serve-out');
  const io = capture();
  const ac = new AbortController();
  const done = run(['serve', '--listen', 'tcp://127.0.0.1:0', '--out', out, '--publish', url], {
    ...io,
    signal: ac.signal,
  });
  await waitFor(() => /receiving on tcp:\/\/127\.0\.0\.1:\d+/.test(io.err()), 15_000, 'the receiver');
  assert.match(io.err(), /publishing to JetStream on nats:\/\/127\.0\.0\.1:\d+/);
  const port = Number(/receiving on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(io.err())![1]);
  const client = await connect(`tcp://127.0.0.1:${port}`);
  const cam = client.stream('cam9');
  for (let i = 0; i < 3; i++) await cam.send({ data: payload(i, 4000) });
  assert.equal((await client.close()).framesAcked, 3);
  ac.abort();
  assert.equal(await done, 0, io.err());
  assert.equal((await indexEntries(join(out, 'cam9'))).length, 3);
  const nc = await natsConnect({ servers: nats!.url });
  const info = await (await jetstreamManager(nc)).streams.info('T7', { subjects_filter: 't7.>' });
  await nc.close();
  assert.deepEqual(info.state.subjects, { 't7.cam9': 3 });
});

test('TLS to the bus with a token: tls://TOKEN@host and the CA; without the CA the bus is refused', {
  skip,
}, async () => {
  const dir = join(root, 'tls');
  await promisify(execFile)('mkdir', ['-p', dir]);
  await selfSignedCert(dir); // writes dir/cert.pem and dir/key.pem
  const secure = await NatsServer.start({
    config: `tls { cert_file: "${join(dir, 'cert.pem')}", key_file: "${join(dir, 'key.pem')}" }\nauthorization { token: "t0ken" }\n`,
  });
  try {
    const url = `tls://t0ken@127.0.0.1:${secure.port}?stream=S`;
    const ca = await readFile(join(dir, 'cert.pem'));
    const bus = await JetStreamSink.open({ url, tls: { ca } });
    assert.equal(bus.url, `tls://127.0.0.1:${secure.port}`, 'no token in the URL shown');
    const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    await client.stream('cam0').send({ data: payload(5, 3000) });
    await client.close();
    await server.close();
    const src = await JetStreamSource.open({ url, tls: { ca }, group: 'tls' });
    for await (const d of src) {
      assert.equal(d.type, 'frame');
      if (d.type === 'frame') assert.ok(d.frame.data.equals(payload(5, 3000)));
      d.ack();
      break;
    }
    await src.close();
    let code = 'no error';
    await JetStreamSink.open({ url, connectTimeoutMs: 2000 }).then(
      (s) => s.close(),
      (err: FramewireError) => {
        code = err.code;
      },
    );
    assert.equal(code, 'ERR_BUS_REFUSED', 'an untrusted certificate is a refusal, not a network fault');
  } finally {
    await secure.close();
  }
});

test('consume --foxglove: a real Foxglove client sees the bus streams as channels carrying the JPEG bytes', {
  skip,
}, async () => {
  const url = `${nats!.url}?stream=T9&prefix=t9`;
  const bus = await JetStreamSink.open({ url });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [bus] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const cam = client.stream('dock');
  const jpegs = await Promise.all([1, 2, 3, 4].map((i) => noiseJpeg(64, 48, i)));
  await cam.send({ data: jpegs[0]!, contentType: 'image/jpeg' });
  const io = capture();
  const ac = new AbortController();
  const done = run(['consume', url, '--foxglove', '127.0.0.1:0', '--from', 'new', '--group', 'fox'], {
    ...io,
    signal: ac.signal,
  });
  try {
    await waitFor(() => /foxglove on ws:\/\/[^\s]+/.test(io.err()), 15_000, 'the foxglove server');
    const foxUrl = /foxglove on (ws:\/\/[^\s]+)/.exec(io.err())![1]!;
    const ws = new WebSocket(foxUrl, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
    const fc = new FoxgloveClient({ ws: ws as unknown as foxglove.IWebSocket });
    const channels = new Map<string, foxglove.Channel>();
    const got: Buffer[] = [];
    fc.on('advertise', (list) => {
      for (const c of list) channels.set(c.topic, c);
    });
    fc.on('message', ({ data }) => {
      const body = JSON.parse(new TextDecoder().decode(data as DataView)) as { data: string };
      got.push(Buffer.from(body.data, 'base64'));
    });
    // The stream's channel is there at once: consume starts from the newest frame on the bus.
    await waitFor(() => channels.has('/dock'), 10_000, 'the /dock channel');
    fc.subscribe(channels.get('/dock')!.id);
    await new Promise((r) => setTimeout(r, 300)); // the subscription reaches the server
    for (const j of jpegs.slice(1)) await cam.send({ data: j, contentType: 'image/jpeg' });
    await waitFor(() => got.length >= 3, 15_000, 'three frames over Foxglove');
    assert.ok(got.at(-1)!.equals(jpegs[3]!), 'the newest frame, byte for byte');
    for (const g of got)
      assert.ok(
        jpegs.some((j) => j.equals(g)),
        'every image is one of the frames sent',
      );
    fc.close();
  } finally {
    await client.close();
    await server.close();
    ac.abort();
  }
  assert.equal(await done, 0, io.err());
});
