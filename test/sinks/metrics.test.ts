/**
 * Metrics from the receiver's diagnostics channels: per-server registries, frames, bytes, latency,
 * receiver drops and gaps, retransmits after a cut connection, senders and viewers connected.
 */
import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { once } from 'node:events';
import { test } from 'node:test';
import WebSocket from 'ws';
import { connect, createServer, DIAGNOSTICS_CHANNELS, type FrameEvent, type Sink } from '../../src/index.js';
import { FramewireMetrics } from '../../src/sinks/metrics.js';
import { createViewer } from '../../src/sinks/viewer.js';
import { startCutProxy } from '../helpers/proxy.js';
import { payload, waitFor } from '../helpers/tmp.js';

/** The value of one sample line, e.g. metric(text, 'framewire_frames_received_total{stream="cam"}'). */
function metric(text: string, sample: string): number | undefined {
  for (const l of text.split('\n')) {
    if (l.startsWith(`${sample} `)) return Number(l.slice(sample.length + 1));
  }
  return undefined;
}

test('the frame channel carries the server and the frame', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const seen: FrameEvent[] = [];
  const fn = (m: unknown) => seen.push(m as FrameEvent);
  diagnostics_channel.subscribe(DIAGNOSTICS_CHANNELS.frame, fn);
  try {
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    await client.stream('cam').send({ data: payload(0, 100), name: 'a.jpg' });
    await client.close();
    const mine = seen.filter((e) => e.server === server);
    assert.equal(mine.length, 1);
    assert.equal(mine[0]!.frame.stream.name, 'cam');
    assert.equal(mine[0]!.frame.data.length, 100);
  } finally {
    diagnostics_channel.unsubscribe(DIAGNOSTICS_CHANNELS.frame, fn);
    await server.close();
  }
});

test('two servers in one process: each metrics instance counts only its own', async () => {
  const a = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const b = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const ma = new FramewireMetrics({ accept: (s) => s === a });
  const mb = new FramewireMetrics({ accept: (s) => s === b });
  try {
    const ca = await connect(`tcp://127.0.0.1:${a.port}`);
    const cb = await connect(`tcp://127.0.0.1:${b.port}`);
    const now = Date.now() * 1000;
    for (let i = 0; i < 3; i++) {
      await ca.stream('cam').send({ data: payload(i, 1000), name: `${i}.jpg`, captureUs: now - 20_000 });
    }
    for (let i = 0; i < 2; i++) await cb.stream('cam').send({ data: payload(i, 500), name: `${i}.jpg` });
    await ca.message({ hello: 1 });
    await ca.flush();
    await cb.flush();
    const ta = await ma.metrics();
    const tb = await mb.metrics();
    assert.equal(metric(ta, 'framewire_frames_received_total{stream="cam"}'), 3);
    assert.equal(metric(ta, 'framewire_bytes_received_total{stream="cam"}'), 3000);
    assert.equal(metric(tb, 'framewire_frames_received_total{stream="cam"}'), 2);
    assert.equal(metric(tb, 'framewire_bytes_received_total{stream="cam"}'), 1000);
    assert.equal(metric(ta, 'framewire_messages_received_total'), 1);
    assert.equal(metric(tb, 'framewire_messages_received_total'), 0);
    assert.equal(metric(ta, 'framewire_latency_seconds_count{stream="cam"}'), 3);
    // Captured 20 ms before sending: none is under 10 ms, all are under 10 s.
    assert.equal(metric(ta, 'framewire_latency_seconds_bucket{le="0.01",stream="cam"}'), 0);
    assert.equal(metric(ta, 'framewire_latency_seconds_bucket{le="10",stream="cam"}'), 3);
    assert.equal(metric(ta, 'framewire_senders_connected'), 1);
    assert.equal(metric(ta, 'framewire_sender_connections_total'), 1);
    assert.match(ma.contentType, /^text\/plain/);
    await ca.close();
    await cb.close();
    await waitFor(() => a.connections === 0, 20_000);
    assert.equal(metric(await ma.metrics(), 'framewire_senders_connected'), 0);
  } finally {
    ma.close();
    mb.close();
    await a.close();
    await b.close();
  }
});

test('live frames dropped by a slow receiver are counted, and so are the gaps they leave', async () => {
  const slow: Sink = { frame: () => new Promise((r) => setTimeout(r, 40)) };
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [slow] });
  const m = new FramewireMetrics({ accept: (s) => s === server });
  try {
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    const st = client.stream('cam', { mode: 'live' });
    // Once the stream is open, frames leave at once (an unopened live stream keeps only the newest).
    await st.send({ data: payload(0, 2000), name: 'first.jpg' });
    await client.flush();
    for (let i = 0; i < 40; i++) await st.send({ data: payload(i, 2000), name: `${i}.jpg` });
    await client.close();
    await waitFor(() => server.connections === 0, 20_000);
    const text = await m.metrics();
    const dropped = metric(text, 'framewire_frames_dropped_total{stream="cam",stage="receiver"}') ?? 0;
    const missing = metric(text, 'framewire_frames_missing_total{stream="cam"}') ?? 0;
    const received = metric(text, 'framewire_frames_received_total{stream="cam"}') ?? 0;
    assert.ok(dropped > 0, `receiver drops ${dropped}\n${text}`);
    assert.ok(missing >= dropped, `gaps ${missing} include the ${dropped} receiver drops`);
    assert.ok(received + missing <= 41 && received > 1, `received ${received}, missing ${missing}`);
  } finally {
    m.close();
    await server.close();
  }
});

test('frames sent again after a cut connection count as retransmits', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let stored = 0;
  const held: Sink = {
    frame: async () => {
      await gate;
      stored++;
    },
  };
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [held] });
  const m = new FramewireMetrics({ accept: (s) => s === server });
  const proxy = await startCutProxy(server.port);
  try {
    const client = await connect(`tcp://127.0.0.1:${proxy.port}`, { maxBackoffMs: 200 });
    const st = client.stream('cam');
    for (let i = 0; i < 5; i++) await st.send({ data: payload(i, 1000), name: `${i}.jpg` });
    // The receiver holds them all unacknowledged; cut, and once it has noticed, let storage go on: the
    // frame being stored completes, the queued ones are forgotten and come again, flagged as resent.
    await waitFor(() => proxy.forwarded() > 5000, 20_000, 'frames through the proxy');
    await new Promise((r) => setTimeout(r, 100));
    const gone = once(server, 'disconnect');
    proxy.cut();
    await gone;
    release();
    await client.close();
    assert.equal(stored, 5);
    const text = await m.metrics();
    assert.ok((metric(text, 'framewire_retransmits_total{stream="cam"}') ?? 0) > 0, text);
    assert.equal(metric(text, 'framewire_sender_connections_total'), 2);
    assert.equal(metric(text, 'framewire_frames_received_total{stream="cam"}'), 5);
  } finally {
    release();
    m.close();
    await proxy.close();
    await server.close();
  }
});

test("the viewer's /metrics: its own registry, viewers connected by protocol", async () => {
  const viewer = await createViewer({ port: 0 });
  const other = await createViewer({ port: 0 });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [viewer] });
  try {
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    const st = client.stream('cam', { mode: 'live' });
    await st.send({ data: payload(0, 300), contentType: 'image/jpeg' });
    await client.flush();
    const ws = new WebSocket(`${viewer.url.replace(/^http/, 'ws')}ws`);
    await new Promise((r) => ws.once('open', r));
    const ac = new AbortController();
    const mjpeg = await fetch(`${viewer.url}streams/cam.mjpg`, { signal: ac.signal });
    assert.equal(mjpeg.status, 200);
    const r = await fetch(`${viewer.url}metrics`);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    assert.equal(metric(text, 'framewire_frames_received_total{stream="cam"}'), 1);
    assert.equal(metric(text, 'framewire_viewers_connected{protocol="websocket"}'), 1);
    assert.equal(metric(text, 'framewire_viewers_connected{protocol="mjpeg"}'), 1);
    assert.equal(metric(text, 'framewire_senders_connected'), 1);
    // A viewer that is not a sink of this server counts nothing of it.
    const otherText = await (await fetch(`${other.url}metrics`)).text();
    assert.equal(metric(otherText, 'framewire_frames_received_total{stream="cam"}'), undefined);
    assert.equal(metric(otherText, 'framewire_senders_connected'), 0);
    ac.abort();
    ws.close();
    await client.close();
  } finally {
    await server.close();
    await other.close();
  }
});

test("an idle stream's series all go, its clock gauges too", async () => {
  const server = {};
  const metrics = new FramewireMetrics({ accept: (s) => s === server, idleSeriesMs: 100 });
  const stream = { name: 'idle', kind: 'visible', mode: 'reliable', epoch: 'e1', sender: 'test' } as const;
  const perStream = async () =>
    ((await metrics.metrics()).match(/^framewire_\w+\{[^}]*stream="idle"/gm) ?? []).length;
  try {
    // As the receiver publishes a stored frame (with the clock correction of serve --sync).
    diagnostics_channel.channel(DIAGNOSTICS_CHANNELS.frame).publish({
      server,
      frame: {
        ...{ stream, seq: 0, captureUs: 1, receivedUs: 2, data: payload(0, 10) },
        clockOffsetUs: 5,
        clockErrorUs: 1,
      },
    });
    const text = await metrics.metrics();
    assert.equal(metric(text, 'framewire_clock_offset_seconds{stream="idle"}'), 5e-6);
    assert.ok((await perStream()) > 2);
    for (const until = Date.now() + 10_000; (await perStream()) > 0; ) {
      assert.ok(Date.now() < until, 'the idle series removed within 10 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    metrics.close();
  }
});
