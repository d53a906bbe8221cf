// One end of a UDP benchmark row, in its own process. Started by bench/udp.mjs; the role is in the config.
//
//   dgram-rx / dgram-tx: the baseline. A plain node:dgram socket blasting datagrams of one size as fast as
//     its loop goes (yielding to the event loop every 32 sends), and a plain socket counting what arrives.
//     No numbering, no repair, no flow control: what the sender's loop and the kernel allow.
//   fw-rx / fw-tx: createServer({ listen: 'udp://127.0.0.1:0' }) counting 'frame' events (frame latency =
//     receivedUs - captureUs, one clock), and connect('udp://…?mtu=…') sending one stream, reliable or live;
//     with cfg.token, both sides have that token (every datagram sealed, AES-256-GCM).
//   proxy: a UDP relay dropping each datagram with a seeded probability, both directions.
//
// Messages from the parent: 'go' starts sending, 'start'/'stop' bracket the measured window, 'finish' ends.
import dgram from 'node:dgram';
import { guard, makePool, mark, readConfig, since, tell, whenParentSays } from './lib.mjs';

const cfg = readConfig();
guard(cfg.role, cfg.deadlineMs);

function percentile(sorted, q) {
  return sorted.length === 0 ? undefined : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function windowCounter() {
  let started;
  let base = { count: 0, bytes: 0 };
  const total = { count: 0, bytes: 0 };
  let latencies = [];
  process.on('message', (msg) => {
    if (msg?.type === 'start') {
      started = mark();
      base = { ...total };
      latencies = [];
    } else if (msg?.type === 'stop') {
      const sorted = latencies.sort((a, b) => a - b);
      void tell({
        type: 'window',
        count: total.count - base.count,
        bytes: total.bytes - base.bytes,
        p50: percentile(sorted, 0.5),
        p99: percentile(sorted, 0.99),
        ...since(started),
      });
      started = undefined;
    }
  });
  return {
    total,
    add(bytes, latencyMs) {
      total.count++;
      total.bytes += bytes;
      if (started && latencyMs !== undefined && latencies.length < 1_000_000) latencies.push(latencyMs);
    },
  };
}

async function dgramRx() {
  const socket = dgram.createSocket('udp4');
  const c = windowCounter();
  socket.on('message', (b) => c.add(b.length));
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  socket.setRecvBufferSize(8 * 1024 * 1024);
  await tell({ type: 'ready', port: socket.address().port });
  await whenParentSays('finish');
  // Let what is still in the socket buffer arrive.
  await new Promise((r) => setTimeout(r, 200));
  socket.close();
  return { received: c.total.count };
}

async function dgramTx() {
  const socket = dgram.createSocket('udp4');
  await new Promise((r) => socket.connect(cfg.port, '127.0.0.1', r));
  socket.setSendBufferSize(4 * 1024 * 1024);
  const pool = makePool(cfg.datagram, 8);
  let stopping = false;
  void whenParentSays('stop').then(() => {
    stopping = true;
  });
  await tell({ type: 'ready' });
  await whenParentSays('go');
  let sent = 0;
  let inFlight = 0;
  const done = () => {
    inFlight--;
  };
  while (!stopping) {
    for (let i = 0; i < 32; i++) {
      inFlight++;
      socket.send(pool[sent++ % pool.length], done);
    }
    // Never more than a few thousand sends queued in libuv: memory stays bounded.
    while (inFlight > 2048) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }
  socket.close();
  return { sent };
}

async function fwRx() {
  const fw = await import('../dist/index.js');
  const c = windowCounter();
  const server = await fw.createServer({ listen: 'udp://127.0.0.1:0', token: cfg.token });
  server.on('frame', (f) => c.add(f.data.length, (f.receivedUs - f.captureUs) / 1000));
  let gone;
  const senderGone = new Promise((r) => {
    gone = r;
  });
  server.on('disconnect', () => gone());
  await tell({ type: 'ready', port: server.port });
  await whenParentSays('finish');
  await Promise.race([senderGone, new Promise((r) => setTimeout(r, 15_000))]);
  await server.close();
  return { received: c.total.count };
}

async function fwTx() {
  const fw = await import('../dist/index.js');
  const { udpTransport } = await import('../dist/transports/udp/index.js');
  // Keep the connection to read its transport counters (retransmits, drops) at the end.
  let conn;
  const connectOrig = udpTransport.connect.bind(udpTransport);
  udpTransport.connect = async (url, options) => {
    conn = await connectOrig(url, options);
    return conn;
  };
  const pool = makePool(cfg.size, 8);
  const client = await fw.connect(`udp://127.0.0.1:${cfg.port}?mtu=${cfg.mtu}`, {
    retryForMs: 5000,
    token: cfg.token,
  });
  const stream = client.stream('bench', { mode: cfg.mode });
  let stopping = false;
  void whenParentSays('stop').then(() => {
    stopping = true;
  });
  await tell({ type: 'ready' });
  await whenParentSays('go');
  let sent = 0;
  while (!stopping) {
    await stream.send({ data: pool[sent++ % pool.length] });
    // A live stream never waits in send(): yield so that the transport gets to send.
    if (cfg.mode === 'live') await new Promise((r) => setImmediate(r));
  }
  const stats = await client.close();
  const t = conn.stats();
  return {
    sent,
    framesAcked: stats.framesAcked,
    framesDropped: stats.framesDropped,
    reconnects: stats.reconnects,
    retransmits: t.retransmits,
    datagramsSent: t.datagramsSent,
    liveAbandoned: t.liveAbandoned,
    peerDrops: t.peerDrops,
    peerRepairs: t.peerRepairs,
    srttMs: t.srttMs,
  };
}

/** mulberry32, as test/helpers/udp-proxy.ts. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function proxy() {
  const random = prng(cfg.seed);
  const front = dgram.createSocket('udp4');
  const up = new Map();
  const stats = { forwarded: 0, dropped: 0 };
  const pass = () => {
    if (random() < cfg.loss) {
      stats.dropped++;
      return false;
    }
    stats.forwarded++;
    return true;
  };
  front.on('message', (b, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let s = up.get(key);
    if (!s) {
      s = dgram.createSocket('udp4');
      s.on('message', (reply) => {
        if (pass()) front.send(reply, rinfo.port, rinfo.address);
      });
      s.bind(0, '127.0.0.1', () => s.setRecvBufferSize(8 * 1024 * 1024));
      up.set(key, s);
    }
    if (pass()) s.send(b, cfg.target, '127.0.0.1');
  });
  await new Promise((r) => front.bind(0, '127.0.0.1', r));
  front.setRecvBufferSize(8 * 1024 * 1024);
  await tell({ type: 'ready', port: front.address().port });
  await whenParentSays('finish');
  return stats;
}

const roles = { 'dgram-rx': dgramRx, 'dgram-tx': dgramTx, 'fw-rx': fwRx, 'fw-tx': fwTx, proxy };
globalThis.gc?.();
const result = await roles[cfg.role]();
await tell({ type: 'done', ...result });
process.exit(0);
