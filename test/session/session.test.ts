/** Session behaviour over real TCP sockets: backpressure, modes, dedupe, refusals and bad peers. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import {
  connect,
  createServer,
  Decoder,
  type FramewireError,
  type ReceivedFrame,
  type Sink,
} from '../../src/index.js';
import { MessageType } from '../../src/protocol/constants.js';
import { encodeControl, encodeFrame, toBytes } from '../../src/protocol/messages.js';
import { rawPeer } from '../helpers/net.js';
import { payload, waitFor } from '../helpers/tmp.js';

function hello(streams: object[] = [], epoch = 'e1') {
  return toBytes(encodeControl(MessageType.HELLO, { protocol: 1, client: 'raw', epoch, streams }));
}

test('a slow sink slows the sender through the window, and memory stays bounded', async () => {
  let inSink = 0;
  let maxQueued = 0;
  const received: number[] = [];
  const slow: Sink = {
    async frame(f) {
      inSink++;
      await new Promise((r) => setTimeout(r, 5));
      received.push(f.seq);
    },
  };
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [slow] });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 8 });
  const st = client.stream('slow');
  for (let i = 0; i < 60; i++) {
    await st.send({ data: payload(i, 10_000) });
    maxQueued = Math.max(maxQueued, st.seq - client.stats().framesAcked);
  }
  await client.close();
  await server.close();
  assert.deepEqual(received, [...Array(60).keys()]);
  assert.equal(inSink, 60);
  assert.ok(maxQueued <= 8, `at most the window (8) in flight, saw ${maxQueued}`);
});

test('the receiver pauses reading when maxPendingBytes is exceeded and resumes after', async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const got: number[] = [];
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    maxPendingBytes: 100_000,
    sinks: [
      {
        async frame(f) {
          await gate;
          got.push(f.seq);
        },
      },
    ],
  });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, {
    windowFrames: 1000,
    windowBytes: 64 << 20,
  });
  const st = client.stream('big');
  // 5 MB handed to the socket: without the limit the receiver would read and hold all of it.
  for (let i = 0; i < 100; i++) await st.send({ data: payload(i, 50_000) });
  const held = () => (server as unknown as { pendingTotal: number }).pendingTotal;
  await settled(held);
  // Over the limit by at most what one read brought (a 64 KiB chunk: two frames, or one and a part).
  try {
    assert.ok(held() > 100_000, `the receiver holds ${held()} bytes: it read up to its limit`);
    assert.ok(held() <= 100_000 + 3 * 50_000, `the receiver holds ${held()} bytes, not up to 5 MB`);
    assert.equal(got.length, 0);
  } finally {
    release();
  }
  await client.close();
  await server.close();
  assert.deepEqual(got, [...Array(100).keys()], 'reading resumed: every frame arrived, in order');
});

/** Waits until `value()` has not changed for 300 ms (at most 10 s): what the receiver reads has settled. */
async function settled(value: () => number): Promise<void> {
  const end = Date.now() + 10_000;
  let last = value();
  let since = Date.now();
  while (Date.now() < end && Date.now() - since < 300) {
    await new Promise((r) => setTimeout(r, 20));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    }
  }
}

test('live mode: a slow sink makes the receiver drop the oldest waiting frames, never block', async () => {
  const stored: number[] = [];
  const dropped: FramewireError[] = [];
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [
      {
        async frame(f) {
          await new Promise((r) => setTimeout(r, 20));
          stored.push(f.seq);
        },
      },
    ],
  });
  server.on('frame-error', (e) => dropped.push(e));
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const st = client.stream('live', { mode: 'live' });
  for (let i = 0; i < 50; i++) {
    await st.send({ data: payload(i, 1000) });
    await new Promise((r) => setTimeout(r, 1));
  }
  await client.close();
  await server.close();
  const stats = client.stats();
  assert.ok(dropped.length + stats.framesDropped > 0, 'some frames were dropped');
  assert.ok(dropped.every((e) => e.code === 'ERR_FRAME_DROPPED'));
  assert.ok(stored.includes(49), 'the newest frame is stored');
  for (let i = 1; i < stored.length; i++) assert.ok(stored[i]! > stored[i - 1]!, 'in order');
});

test('live mode at the sender: a newer frame replaces an unsent older one', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const seqs: number[] = [];
  server.on('frame', (f) => seqs.push(f.seq));
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 1 });
  const st = client.stream('cam', { mode: 'live' });
  const drops: number[] = [];
  client.on('drop', (d) => drops.push(d.seq));
  // Twenty frames at once with a window of one: most never leave.
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 100_000) });
  await client.close();
  await server.close();
  assert.ok(drops.length > 0);
  assert.ok(seqs.includes(19), 'the newest frame arrives');
  assert.equal(seqs.length + drops.length, 20);
});

test('two senders may not share a stream name; the second gets ERR_STREAM_BUSY', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const a = await connect(`tcp://127.0.0.1:${server.port}`);
  const b = await connect(`tcp://127.0.0.1:${server.port}`);
  await a.stream('shared').send({ data: payload(0, 10) });
  await a.flush();
  const errs: FramewireError[] = [];
  b.on('stream-error', (e) => errs.push(e));
  const sb = b.stream('shared');
  await sb.send({ data: payload(1, 10) });
  await waitFor(() => errs.length === 1, 10_000, 'stream-error');
  assert.equal(errs[0]!.code, 'ERR_STREAM_BUSY');
  await assert.rejects(sb.send({ data: payload(2, 10) }), { code: 'ERR_STREAM_BUSY' });
  await a.close();
  await b.close();
  await server.close();
});

test('a frame over the receiver limit is refused by the sender before sending', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', limits: { maxFrameBytes: 1000 } });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  await assert.rejects(client.stream('x').send({ data: Buffer.alloc(1001) }), {
    code: 'ERR_FRAME_TOO_LARGE',
  });
  await client.close();
  await server.close();
});

test('malformed bytes get a fatal ERROR with the code; the server goes on serving others', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const warnings: FramewireError[] = [];
  server.on('warning', (w) => warnings.push(w));
  const cases: Array<[Buffer, string]> = [
    [Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'ERR_BAD_MAGIC'],
    [Buffer.from([0x46, 0x57, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0]), 'ERR_UNSUPPORTED_VERSION'],
    [Buffer.from([0x46, 0x57, 1, 0x77, 0, 0, 0, 0, 0, 0, 0, 0]), 'ERR_UNKNOWN_TYPE'],
  ];
  for (const [bytes, code] of cases) {
    const p = await rawPeer(server.port);
    p.sock.write(bytes);
    await waitFor(() => p.got.length > 0 && p.isClosed(), 10_000, `${code} answer and close`);
    const m = p.got[0]!;
    assert.equal(m.type, MessageType.ERROR);
    if (m.type === MessageType.ERROR) {
      assert.equal(m.body.code, code);
      assert.equal(m.body.fatal, true);
    }
  }
  // An oversized frame is refused from its header alone.
  const big = await rawPeer(server.port);
  big.sock.write(hello([{ id: 0, name: 'x', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
  const header = toBytes(
    encodeFrame({ streamId: 0, seq: 0, captureUs: 0, contentType: 'image/jpeg', payload: Buffer.alloc(0) }),
  );
  header.writeUInt32BE(80_000_000, 8);
  big.sock.write(header);
  await waitFor(
    () => big.got.some((m) => m.type === MessageType.ERROR) && big.isClosed(),
    10_000,
    'too-large',
  );
  const err = big.got.find((m) => m.type === MessageType.ERROR);
  assert.ok(err && err.type === MessageType.ERROR && err.body.code === 'ERR_FRAME_TOO_LARGE');
  assert.match(err.body.message, /frame of 80000000 bytes exceeds maxFrameBytes 67108864/);
  // A frame before HELLO is refused from its header.
  const early = await rawPeer(server.port);
  early.sock.write(
    toBytes(
      encodeFrame({
        streamId: 0,
        seq: 0,
        captureUs: 0,
        contentType: 'image/jpeg',
        payload: Buffer.from('x'),
      }),
    ),
  );
  await waitFor(() => early.isClosed(), 10_000, 'early close');
  assert.ok(early.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_EARLY_DATA'));
  // And a well-behaved client is served as usual.
  const frames: ReceivedFrame[] = [];
  server.on('frame', (f) => frames.push(f));
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  await client.stream('ok').send({ data: payload(0, 100) });
  await client.close();
  assert.equal(frames.length, 1);
  assert.deepEqual(
    warnings.map((w) => w.code),
    ['ERR_BAD_MAGIC', 'ERR_UNSUPPORTED_VERSION', 'ERR_UNKNOWN_TYPE', 'ERR_EARLY_DATA'],
  );
  await server.close();
});

test('a peer that never says HELLO is closed with ERR_HANDSHAKE_TIMEOUT', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', handshakeTimeoutMs: 200 });
  const p = await rawPeer(server.port);
  await waitFor(() => p.isClosed(), 10_000, 'close');
  assert.ok(p.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_HANDSHAKE_TIMEOUT'));
  await server.close();
});

test('a reliable stream that skips a sequence number gets ERR_SEQUENCE_GAP', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const p = await rawPeer(server.port);
  p.sock.write(hello([{ id: 3, name: 'gap', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
  await waitFor(() => p.got.some((m) => m.type === MessageType.WELCOME), 10_000, 'welcome');
  const f = (seq: number) =>
    toBytes(
      encodeFrame({ streamId: 3, seq, captureUs: 1, contentType: 'image/jpeg', payload: Buffer.from('ab') }),
    );
  p.sock.write(f(0));
  p.sock.write(f(2));
  await waitFor(() => p.isClosed(), 10_000, 'close');
  assert.ok(p.got.some((m) => m.type === MessageType.ACK && m.seq === 0));
  assert.ok(p.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_SEQUENCE_GAP'));
  await server.close();
});

test('a resent frame the receiver holds is acknowledged again, not stored twice', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  let stored = 0;
  server.on('frame', () => stored++);
  const p = await rawPeer(server.port);
  p.sock.write(hello([{ id: 0, name: 'dup', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
  await waitFor(() => p.got.some((m) => m.type === MessageType.WELCOME), 10_000, 'welcome');
  const f0 = toBytes(
    encodeFrame({ streamId: 0, seq: 0, captureUs: 1, contentType: 'image/jpeg', payload: Buffer.from('a') }),
  );
  p.sock.write(f0);
  await waitFor(() => p.got.filter((m) => m.type === MessageType.ACK).length === 1, 10_000, 'first ack');
  p.sock.write(f0);
  await waitFor(() => p.got.filter((m) => m.type === MessageType.ACK).length === 2, 10_000, 'second ack');
  assert.equal(stored, 1);
  p.sock.destroy();
  await server.close();
});

test('a sink failure leaves the frame unacknowledged; the sender resends and nothing is lost', async () => {
  let failures = 1;
  const stored: number[] = [];
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [
      {
        async frame(f) {
          if (f.seq === 5 && failures-- > 0) {
            const { FramewireError } = await import('../../src/errors.js');
            throw new FramewireError('ERR_WRITE_FAILED', 'disk full (simulated by this test sink)');
          }
          stored.push(f.seq);
        },
      },
    ],
  });
  const warnings: string[] = [];
  server.on('warning', (w) => warnings.push(w.code));
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { maxBackoffMs: 100 });
  const st = client.stream('retry');
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 100) });
  const stats = await client.close();
  await server.close();
  assert.deepEqual(stored, [...Array(20).keys()]);
  assert.equal(stats.framesAcked, 20);
  assert.ok(stats.reconnects >= 1);
  assert.ok(warnings.includes('ERR_WRITE_FAILED'));
});

test('messages are acknowledged, deduplicated and keep their frame reference across a reconnect', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const got: Array<{ seq: number; json: unknown; ref: unknown }> = [];
  server.on('message', (m) => got.push({ seq: m.seq, json: m.json, ref: m.ref }));
  // A relay that decodes what the sender sends (MESSAGE seqs per connection), can hold back the
  // receiver's answers (its ACKs) and can cut the connection.
  const sentOn: number[][] = [];
  let hold = false;
  const links = new Set<net.Socket>();
  const relay = net.createServer((c) => {
    const seqs: number[] = [];
    sentOn.push(seqs);
    const up = net.connect(server.port, '127.0.0.1');
    const dec = new Decoder((m) => {
      if (m.type === MessageType.MESSAGE) seqs.push(m.message.seq);
    });
    c.on('data', (d) => {
      dec.write(d);
      up.write(d);
    });
    up.on('data', (d) => {
      if (!hold) c.write(d);
    });
    for (const x of [c, up]) {
      links.add(x);
      x.on('error', () => {});
      x.on('close', () => {
        c.destroy();
        up.destroy();
      });
    }
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  const client = await connect(`tcp://127.0.0.1:${(relay.address() as net.AddressInfo).port}`, {
    retryForMs: 20_000,
  });
  const st = client.stream('cam');
  const refs = [];
  for (let i = 0; i < 20; i++) refs.push({ stream: 'cam', seq: await st.send({ data: payload(i, 100) }) });
  for (let i = 0; i < 10; i++) await client.message({ i }, { ref: refs[i]! });
  await client.flush();
  assert.equal(client.stats().messagesAcked, 10);
  // Ten more reach the receiver, which stores them, but their ACKs are held back; then the link is cut.
  hold = true;
  for (let i = 10; i < 20; i++) await client.message({ i }, { ref: refs[i]! });
  await waitFor(() => got.length === 20, 10_000, 'the receiver storing 20 messages');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(client.stats().messagesAcked, 10, 'ten messages the receiver holds are unacknowledged');
  for (const x of links) x.destroy();
  hold = false;
  await client.flush();
  const stats = await client.close();
  relay.close();
  await server.close();
  assert.ok(stats.reconnects >= 1, 'the client reconnected');
  assert.equal(stats.messagesAcked, 20);
  assert.ok(sentOn.length >= 2, 'a second connection');
  // The client sends again only what the receiver does not hold (its resume point says where); whatever it
  // sends again, the receiver stores each message once.
  const again = sentOn.slice(1).flat();
  assert.ok(
    again.every((seq) => seq >= 20),
    `resent after the reconnect: ${again.join(',')}`,
  );
  // Each stored once, in order, with its frame reference.
  assert.deepEqual(
    got.map((m) => m.json),
    [...Array(20).keys()].map((i) => ({ i })),
  );
  assert.deepEqual(
    got.map((m) => m.ref),
    refs,
  );
  assert.deepEqual(
    got.map((m) => m.seq),
    [...Array(20).keys()],
  );
});

test('verifyCrc: false — senders skip the CRC; a verifying receiver refuses frames without one', async () => {
  const lax = await createServer({ listen: 'tcp://127.0.0.1:0', verifyCrc: false });
  const got: ReceivedFrame[] = [];
  lax.on('frame', (f) => got.push(f));
  const client = await connect(`tcp://127.0.0.1:${lax.port}`);
  const st = client.stream('nocrc');
  for (let i = 0; i < 5; i++) await st.send({ data: payload(i, 5000) });
  await client.close();
  await lax.close();
  assert.equal(got.length, 5);
  assert.ok(got.every((f, i) => f.crc === 0 && f.data.equals(payload(i, 5000))));

  const strict = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const p = await rawPeer(strict.port);
  p.sock.write(hello([{ id: 0, name: 'x', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
  await waitFor(() => p.got.some((m) => m.type === MessageType.WELCOME), 10_000, 'welcome');
  const { Flags } = await import('../../src/protocol/constants.js');
  p.sock.write(
    toBytes(
      encodeFrame({
        streamId: 0,
        seq: 0,
        captureUs: 1,
        contentType: 'image/jpeg',
        payload: Buffer.from('x'),
        flags: Flags.NO_CRC,
      }),
    ),
  );
  await waitFor(() => p.isClosed(), 10_000, 'close');
  assert.ok(p.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_BAD_HEADER'));
  await strict.close();
});

test('more streams than maxStreamsPerConnection: the extra one gets ERR_TOO_MANY_STREAMS, the rest go on', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', maxStreamsPerConnection: 2 });
  let frames = 0;
  server.on('frame', () => frames++);
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const errs: FramewireError[] = [];
  client.on('stream-error', (e) => errs.push(e));
  const a = client.stream('a');
  const b = client.stream('b');
  const c = client.stream('c');
  await a.send({ data: payload(0, 10) });
  await b.send({ data: payload(1, 10) });
  await c.send({ data: payload(2, 10) }).catch(() => {});
  await waitFor(() => errs.length === 1, 10_000, 'stream-error');
  assert.equal(errs[0]!.code, 'ERR_TOO_MANY_STREAMS');
  assert.equal(errs[0]!.stream, 'c');
  await assert.rejects(c.ready(), { code: 'ERR_TOO_MANY_STREAMS' });
  await client.close();
  await server.close();
  assert.equal(frames, 2);
});

test('a connection silent for idleTimeoutMs is closed with ERR_PEER_TIMEOUT', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', idleTimeoutMs: 300 });
  const p = await rawPeer(server.port);
  p.sock.write(hello([]));
  await waitFor(() => p.isClosed(), 10_000, 'idle close');
  assert.ok(p.got.some((m) => m.type === MessageType.WELCOME));
  assert.ok(p.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_PEER_TIMEOUT'));
  await server.close();
});

test('a receiver that goes silent is left after peerTimeoutMs and the client reconnects', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const { startCutProxy } = await import('../helpers/proxy.js');
  const proxy = await startCutProxy(server.port);
  // A short handshake timeout: the first reconnect may go out while the relay is still frozen.
  const client = await connect(`tcp://127.0.0.1:${proxy.port}`, {
    keepaliveMs: 50,
    peerTimeoutMs: 300,
    handshakeTimeoutMs: 1000,
  });
  const lost: Array<FramewireError | undefined> = [];
  client.on('disconnected', (e) => lost.push(e));
  // Freeze the receiver's side of the relay: bytes stop flowing back, the socket stays open.
  proxy.freeze();
  await waitFor(() => lost.length > 0, 10_000, 'disconnect');
  assert.equal(lost[0]?.code, 'ERR_PEER_TIMEOUT');
  proxy.thaw();
  await client.stream('after').send({ data: payload(0, 10) });
  await client.close();
  await proxy.close();
  await server.close();
});

test('frame metadata over the receiver limit is refused by the sender (ERR_META_TOO_LARGE), and by the receiver', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', limits: { maxMetaBytes: 100 } });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  await assert.rejects(client.stream('m').send({ data: Buffer.alloc(10), meta: { note: 'x'.repeat(200) } }), {
    code: 'ERR_META_TOO_LARGE',
  });
  await client.close();
  // A peer that ignores the limit it was told loses the connection, with the code.
  const p = await rawPeer(server.port);
  p.sock.write(hello([{ id: 0, name: 'm', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
  await waitFor(() => p.got.some((m) => m.type === MessageType.WELCOME), 10_000, 'welcome');
  p.sock.write(
    toBytes(
      encodeFrame({
        streamId: 0,
        seq: 0,
        captureUs: 1,
        contentType: 'image/jpeg',
        payload: Buffer.from('x'),
        metaJson: JSON.stringify({ note: 'x'.repeat(200) }),
      }),
    ),
  );
  await waitFor(() => p.isClosed(), 10_000, 'close');
  assert.ok(p.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_META_TOO_LARGE'));
  await server.close();
});

test('a stream made while the handshake is under way is opened once the receiver welcomes the client', async () => {
  // A receiver whose resume points take a while keeps the handshake open long enough to make a stream in it.
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [{ resumePoint: () => new Promise((r) => setTimeout(() => r(0), 300)) }],
  });
  const got: string[] = [];
  server.on('frame', (f) => got.push(f.stream.name));
  const { FramewireClient } = await import('../../src/session/client.js');
  const client = new FramewireClient(`tcp://127.0.0.1:${server.port}`);
  const a = client.stream('first');
  const connecting = client.connectLoop();
  await new Promise((r) => setTimeout(r, 100));
  const b = client.stream('made-during-handshake');
  await connecting;
  await a.send({ data: payload(0, 10) });
  await b.send({ data: payload(1, 10) });
  assert.equal(await b.ready(), 0);
  await client.close();
  await server.close();
  assert.deepEqual(got.sort(), ['first', 'made-during-handshake']);
});
