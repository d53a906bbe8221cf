/**
 * The Foxglove bridge against the protocol's own client (FoxgloveClient of @foxglove/ws-protocol over a
 * `ws` WebSocket): channels per stream, the frames' JPEG bytes in the messages, /messages, raw frames,
 * and a client that never reads costs a bounded amount (newest wins).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import foxglove from '@foxglove/ws-protocol';
import { WebSocket } from 'ws';
import { connect, createFoxglove, createServer } from '../../src/index.js';
import { noiseJpeg, solidJpeg } from '../helpers/images.js';
import { waitFor } from '../helpers/tmp.js';

const { FoxgloveClient } = foxglove;
type Channel = foxglove.Channel;

interface Got {
  channel: Channel;
  body: Record<string, unknown>;
  timestamp: bigint;
}

async function foxClient(url: string) {
  const ws = new WebSocket(url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  const client = new FoxgloveClient({ ws: ws as unknown as foxglove.IWebSocket });
  const channels = new Map<string, Channel>();
  const subs = new Map<number, Channel>();
  const got: Got[] = [];
  client.on('advertise', (list) => {
    for (const c of list) channels.set(c.topic, c);
  });
  client.on('message', ({ subscriptionId, timestamp, data }) => {
    const channel = subs.get(subscriptionId)!;
    const text = new TextDecoder().decode(data as DataView);
    got.push({ channel, body: JSON.parse(text), timestamp });
  });
  await once(ws, 'open');
  return {
    client,
    channels,
    got,
    subscribe(topic: string) {
      const c = channels.get(topic)!;
      subs.set(client.subscribe(c.id), c);
    },
    close: () => client.close(),
  };
}

test('a real Foxglove client: /<stream> channels carry the frames JPEG bytes, /messages the JSON', async () => {
  const fox = await createFoxglove({ port: 0 });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [fox] });
  const fc = await foxClient(fox.url);
  const sender = await connect(`tcp://127.0.0.1:${server.port}`);
  try {
    await waitFor(() => fc.channels.has('/messages'), 5000, 'the /messages channel');
    const cam = sender.stream('cam0');
    const first = await solidJpeg(64, 48, [255, 0, 0]);
    await cam.send({ data: first, captureUs: 1_700_000_000_123_456 });
    await waitFor(() => fc.channels.has('/cam0'), 5000, 'the /cam0 channel, advertised as it appeared');
    const ch = fc.channels.get('/cam0')!;
    assert.equal(ch.schemaName, 'foxglove.CompressedImage');
    assert.equal(ch.encoding, 'json');
    fc.subscribe('/cam0');
    fc.subscribe('/messages');
    await new Promise((r) => setTimeout(r, 200)); // the subscription reaches the server
    const frames = await Promise.all([0, 1, 2, 3, 4].map((i) => solidJpeg(64, 48, [i * 50, 100, 0])));
    for (const [i, f] of frames.entries()) await cam.send({ data: f, captureUs: 1_700_000_001_000_000 + i });
    await sender.message({ label: 'person', box: [1, 2, 3, 4] }, { ref: { stream: 'cam0', seq: 3 } });
    await waitFor(() => fc.got.length >= 6, 10_000, 'five frames and a message');
    const images = fc.got.filter((g) => g.channel.topic === '/cam0');
    assert.equal(images.length, 5);
    images.forEach((g, i) => {
      assert.equal(g.body.format, 'jpeg');
      assert.equal(g.body.frame_id, 'cam0');
      assert.ok(
        Buffer.from(g.body.data as string, 'base64').equals(frames[i]!),
        `frame ${i}: the JPEG bytes`,
      );
      assert.equal(g.timestamp, BigInt(1_700_000_001_000_000 + i) * 1000n);
      assert.deepEqual(g.body.timestamp, { sec: 1_700_000_001, nsec: i * 1000 });
    });
    const msg = fc.got.find((g) => g.channel.topic === '/messages');
    assert.deepEqual(msg?.body.json, { label: 'person', box: [1, 2, 3, 4] });
    assert.deepEqual(msg?.body.ref, { stream: 'cam0', seq: 3 });
    // Raw frames: a RawImage channel.
    const raw = sender.stream('depth0', { kind: 'depth' });
    const pixels = Buffer.alloc(8 * 4 * 2, 7);
    await raw.send({ data: pixels, contentType: 'raw', pixelFormat: 'gray16le', width: 8, height: 4 });
    await waitFor(() => fc.channels.has('/depth0'), 5000, 'the /depth0 channel');
    assert.equal(fc.channels.get('/depth0')!.schemaName, 'foxglove.RawImage');
  } finally {
    fc.close();
    await sender.close();
    await server.close();
  }
});

test('a Foxglove client that stops reading is dropped to the newest frame: nothing queues', async () => {
  const fox = await createFoxglove({ port: 0, maxBufferedBytes: 256 * 1024 });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [fox] });
  const sender = await connect(`tcp://127.0.0.1:${server.port}`);
  // A raw client speaking the protocol's JSON ops, so that it can stop reading its socket.
  const ws = new WebSocket(fox.url, [FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  const channels = new Map<string, number>();
  const got: number[] = [];
  ws.on('message', (d: Buffer, binary: boolean) => {
    if (!binary) {
      const m = JSON.parse(d.toString());
      if (m.op === 'advertise') for (const c of m.channels) channels.set(c.topic, c.id);
    } else if (d[0] === 1) {
      got.push(Number(d.readBigUInt64LE(5) / 1000n));
    }
  });
  await once(ws, 'open');
  try {
    const cam = sender.stream('big');
    const jpeg = await noiseJpeg(320, 240, 1);
    await cam.send({ data: jpeg, captureUs: 1 });
    await waitFor(() => channels.has('/big'), 5000, 'the channel');
    ws.send(JSON.stringify({ op: 'subscribe', subscriptions: [{ id: 7, channelId: channels.get('/big') }] }));
    await new Promise((r) => setTimeout(r, 200));
    ws.pause();
    const count = 300;
    for (let i = 2; i < count + 2; i++) await cam.send({ data: jpeg, captureUs: i });
    await waitFor(() => fox.dropped > 0, 20_000, 'drops at the stalled client');
    ws.resume();
    await waitFor(() => got.length + fox.dropped >= count, 20_000, 'every frame delivered or dropped').catch(
      (e) => {
        throw new Error(`${e.message}: got ${got.length}, dropped ${fox.dropped}, last ${got.at(-1)}`);
      },
    );
    assert.equal(got.length + fox.dropped, count, 'each frame either went or was dropped, once');
    assert.ok(fox.dropped >= count / 2, `most frames were dropped at the stalled client (${fox.dropped})`);
    assert.equal(got.at(-1), count + 1, 'the newest frame went last, once the client read again');
  } finally {
    ws.terminate();
    await sender.close();
    await server.close();
  }
});
