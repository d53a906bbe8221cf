/**
 * ws:// and wss:// under the sessions: tokens, TLS, limits, reliable and live modes, reconnect and resume,
 * and the bad inputs a WebSocket can carry (garbage, text, a message cut short, one too large), each with
 * its error code. Real sockets on 127.0.0.1, raw `ws` clients for the bad peers.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { WebSocket } from 'ws';
import {
  connect,
  createServer,
  createViewer,
  Decoder,
  type FramewireError,
  type FramewireServer,
  type Message,
  webSocketSenders,
} from '../../src/index.js';
import { HEADER_BYTES, MessageType } from '../../src/protocol/constants.js';
import { encodeControl, encodeFrame, toBytes } from '../../src/protocol/messages.js';
import { selfSignedCert } from '../helpers/certs.js';
import { startCutProxy } from '../helpers/proxy.js';
import { sendAll } from '../helpers/sending.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

const TOKEN = 'correct horse battery staple';
let cert: string;
let key: string;
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  ({ cert, key } = await selfSignedCert(t.dir));
});
after(() => cleanup());

/** A raw WebSocket peer that decodes what the receiver answers and keeps the close code. */
async function rawPeer(url: string, protocols: string[] = ['framewire.v1']) {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
  const got: Message[] = [];
  const dec = new Decoder((m) => got.push(m));
  ws.on('message', (d: Buffer) => dec.write(d));
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await once(ws, 'open');
  return { ws, got, closed };
}

function hello(streams: object[] = []): Buffer {
  return toBytes(encodeControl(MessageType.HELLO, { protocol: 1, client: 'raw', epoch: 'e1', streams }));
}

function disconnects(server: FramewireServer): Array<FramewireError | undefined> {
  const errs: Array<FramewireError | undefined> = [];
  // Before the handshake a connection's end is a warning; after it, a disconnect.
  server.on('disconnect', (_c, err) => errs.push(err));
  server.on('warning', (err) => errs.push(err));
  return errs;
}

test('ws:// with a token: frames flow; no token and a wrong token are ERR_AUTH, nothing stored', async () => {
  let stored = 0;
  const server = await createServer({
    listen: 'ws://127.0.0.1:0',
    token: TOKEN,
    sinks: [{ frame: () => void stored++ }],
  });
  const url = server.urls[0]!;
  assert.match(url, /^ws:\/\/127\.0\.0\.1:\d+$/);
  await assert.rejects(connect(url, { retryForMs: 200 }), { code: 'ERR_AUTH', message: /sent no token/ });
  await assert.rejects(connect(url, { token: 'wrong', retryForMs: 200 }), { code: 'ERR_AUTH' });
  assert.equal(stored, 0);
  const client = await connect(url, { token: TOKEN });
  const st = client.stream('cam0');
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 30_000) });
  const stats = await client.close();
  await server.close();
  assert.equal(stats.framesAcked, 20);
  assert.equal(stored, 20);
});

test('wss:// with a certificate: verified with --ca, refused (ERR_TLS) without it', async () => {
  const server = await createServer({ listen: 'wss://127.0.0.1:0/in', tls: { cert, key }, token: TOKEN });
  const url = server.urls[0]!;
  assert.match(url, /^wss:\/\/127\.0\.0\.1:\d+\/in$/);
  await assert.rejects(connect(url, { token: TOKEN, retryForMs: 200 }), {
    code: 'ERR_TLS',
    message: /self.signed|certificate/i,
  });
  // The wrong path is refused by the receiver's HTTP answer.
  await assert.rejects(
    connect(url.replace(/\/in$/, '/other'), { token: TOKEN, tls: { ca: cert }, retryForMs: 200 }),
    {
      code: 'ERR_UNREACHABLE',
      message: /HTTP 404/,
    },
  );
  const client = await connect(url, { token: TOKEN, tls: { ca: cert } });
  const st = client.stream('secure');
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 50_000) });
  const stats = await client.close();
  await server.close();
  assert.equal(stats.framesAcked, 20);
});

test('reliable over ws:// through cut connections: every frame exactly once, in order (reconnect and resume)', async () => {
  const seqs: number[] = [];
  const server = await createServer({
    listen: 'ws://127.0.0.1:0',
    sinks: [{ frame: (f) => void seqs.push(f.seq) }],
  });
  const proxy = await startCutProxy(server.port);
  const client = await connect(`ws://127.0.0.1:${proxy.port}`, {
    windowFrames: 16,
    maxBackoffMs: 200,
    retryForMs: 30_000,
  });
  let reconnects = 0;
  client.on('connected', ({ reconnect }) => {
    if (reconnect) reconnects++;
  });
  const frames = function* () {
    for (let i = 0; i < 300; i++) yield { data: payload(i, 20_000 + (i % 7) * 1000) };
  };
  const { acked, done: sending } = sendAll(client, client.stream('cam0'), frames());
  try {
    await waitFor(() => acked() >= 60, 30_000, '60 frames acked');
    proxy.cut();
    await waitFor(() => acked() >= 150, 30_000, '150 frames acked');
    proxy.cut();
    const stats = await sending;
    assert.equal(stats.framesAcked, 300);
    assert.ok(reconnects >= 2, `reconnected (${reconnects})`);
    assert.deepEqual(seqs, [...Array(300).keys()], 'each frame once, in order');
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('live over ws://: frames arrive newest-first under a slow sink, nothing builds up', async () => {
  const seqs: number[] = [];
  const server = await createServer({
    listen: 'ws://127.0.0.1:0',
    sinks: [
      {
        async frame(f) {
          seqs.push(f.seq);
          await new Promise((r) => setTimeout(r, 20));
        },
      },
    ],
  });
  const client = await connect(server.urls[0]!);
  const st = client.stream('live0', { mode: 'live' });
  for (let i = 0; i < 100; i++) {
    await st.send({ data: payload(i, 10_000) });
    await new Promise((r) => setTimeout(r, 2));
  }
  await waitFor(() => seqs.includes(99), 20_000, 'the newest frame');
  await client.close();
  await server.close();
  assert.ok(seqs.length < 100, `live frames were dropped behind the slow sink (${seqs.length} stored)`);
  assert.deepEqual(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'in order',
  );
});

test('bad WebSocket input: garbage, a text message, a message cut short, each with its code', async () => {
  const server = await createServer({ listen: 'ws://127.0.0.1:0' });
  const errs = disconnects(server);
  const url = server.urls[0]!;
  try {
    // Bytes that are not a framewire header.
    const a = await rawPeer(url);
    a.ws.send(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    const ca = await a.closed;
    assert.equal(ca.code, 1002);
    assert.match(ca.reason, /^ERR_BAD_MAGIC/);
    assert.ok(a.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_BAD_MAGIC'));

    // A text message where binary framewire messages are expected.
    const b = await rawPeer(url);
    b.ws.send('{"hello":1}');
    const cb = await b.closed;
    assert.equal(cb.code, 1003);
    assert.match(cb.reason, /^ERR_WS_TEXT/);
    assert.ok(b.got.some((m) => m.type === MessageType.ERROR && m.body.code === 'ERR_WS_TEXT'));

    // A WebSocket message that ends inside a framewire message (the rest never comes in that message).
    const c = await rawPeer(url);
    const h = hello();
    c.ws.send(h.subarray(0, h.length - 3));
    const cc = await c.closed;
    assert.equal(cc.code, 1002);
    assert.match(cc.reason, /^ERR_TRUNCATED/);

    await waitFor(() => errs.length >= 3, 10_000, 'three disconnects');
    assert.deepEqual(errs.map((e) => e?.code).sort(), ['ERR_BAD_MAGIC', 'ERR_TRUNCATED', 'ERR_WS_TEXT']);
  } finally {
    await server.close();
  }
});

test('oversized WebSocket messages: ERR_FRAME_TOO_LARGE from the header, and close 1009 past maxPayload', async () => {
  const server = await createServer({
    listen: 'ws://127.0.0.1:0',
    limits: { maxFrameBytes: 10_000, maxMessageBytes: 10_000, maxControlBytes: 10_000 },
  });
  const errs = disconnects(server);
  const url = server.urls[0]!;
  try {
    // A frame over maxFrameBytes but inside the WebSocket limit: the decoder refuses it from its header.
    const a = await rawPeer(url);
    a.ws.send(hello([{ id: 0, name: 'cam', kind: 'other', mode: 'reliable', epoch: 'e1' }]));
    await waitFor(() => a.got.some((m) => m.type === MessageType.WELCOME), 5000, 'welcome');
    a.ws.send(
      toBytes(
        encodeFrame({ streamId: 0, seq: 0, captureUs: 1, contentType: 'raw', payload: payload(0, 20_000) }),
      ),
    );
    const ca = await a.closed;
    assert.equal(ca.code, 1009);
    assert.match(ca.reason, /^ERR_FRAME_TOO_LARGE/);

    // After the handshake, a WebSocket message past maxPayload (header + 64 KiB head + the largest body):
    // ws refuses it unread. (Before the handshake the bound is one control message: see the 60 MB test.)
    const b = await rawPeer(url);
    b.ws.send(hello([]));
    await waitFor(() => b.got.some((m) => m.type === MessageType.WELCOME), 5000, 'welcome');
    b.ws.send(Buffer.alloc(HEADER_BYTES + 0xffff + 10_000 + 1));
    const cb = await b.closed;
    assert.equal(cb.code, 1009);

    await waitFor(() => errs.length >= 2, 10_000, 'two disconnects');
    assert.deepEqual(
      errs.map((e) => e?.code),
      ['ERR_FRAME_TOO_LARGE', 'ERR_FRAME_TOO_LARGE'],
    );

    // The Node sender learns the limits from WELCOME and refuses the frame itself, keeping its connection.
    const client = await connect(url);
    const st = client.stream('big');
    await assert.rejects(st.send({ data: payload(1, 20_000) }), { code: 'ERR_FRAME_TOO_LARGE' });
    await st.send({ data: payload(2, 5_000) });
    const stats = await client.close();
    assert.equal(stats.framesAcked, 1);
  } finally {
    await server.close();
  }
});

test('the ws:// endpoint: plain HTTP gets 426, another site (Origin) gets 403, a wrong path 404', async () => {
  const server = await createServer({ listen: 'ws://127.0.0.1:0/fw' });
  const port = server.port;
  try {
    const status = await new Promise<number>((resolve, reject) =>
      http
        .get(`http://127.0.0.1:${port}/fw`, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject),
    );
    assert.equal(status, 426);
    const refused = (url: string, headers: Record<string, string> = {}) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(url, ['framewire.v1'], { headers });
        ws.on('unexpected-response', (_q, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('error', () => {});
        ws.on('open', () => {
          resolve(101);
          ws.close();
        });
      });
    assert.equal(await refused(`ws://127.0.0.1:${port}/fw`, { Origin: 'http://evil.example' }), 403);
    assert.equal(await refused(`ws://127.0.0.1:${port}/other`), 404);
    assert.equal(await refused(`ws://127.0.0.1:${port}/fw`, { Origin: `http://127.0.0.1:${port}` }), 101);
  } finally {
    await server.close();
  }
});

test('the https viewer takes framewire senders at wss://VIEW/ws (webSocketSenders), pages keep /ws', async () => {
  const viewer = await createViewer({ port: 0, tls: { cert, key } });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', token: TOKEN, sinks: [viewer] });
  viewer.takeSenders(webSocketSenders(server));
  assert.match(viewer.url, /^https:\/\//);
  let frames = 0;
  server.on('frame', () => frames++);
  try {
    const client = await connect(`wss://127.0.0.1:${viewer.port}/ws`, { token: TOKEN, tls: { ca: cert } });
    const st = client.stream('phone');
    for (let i = 0; i < 10; i++) await st.send({ data: payload(i, 20_000) });
    const stats = await client.close();
    assert.equal(stats.framesAcked, 10);
    assert.equal(frames, 10);
    // A page (no framewire subprotocol) still gets the viewer's own protocol.
    const page = new WebSocket(`wss://127.0.0.1:${viewer.port}/ws`, { ca: cert });
    const [first] = (await once(page, 'message')) as [Buffer];
    assert.equal(JSON.parse(first.toString()).type, 'hello');
    page.close();
  } finally {
    await server.close();
  }
});

test('before its handshake a ws:// connection announcing a 60 MB message is closed from the WebSocket header, unread', async () => {
  const server = await createServer({ listen: 'ws://127.0.0.1:0', token: TOKEN });
  const warnings: FramewireError[] = [];
  server.on('warning', (w) => warnings.push(w));
  const net = await import('node:net');
  const sock = net.connect(server.port, '127.0.0.1');
  try {
    await once(sock, 'connect');
    sock.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'Sec-WebSocket-Protocol: framewire.v1\r\n\r\n',
    );
    let got = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
    });
    await waitFor(() => got.includes('\r\n\r\n'), 20_000, 'the 101 answer');
    assert.match(got.toString('latin1'), /^HTTP\/1\.1 101/);
    got = Buffer.alloc(0);
    // A binary frame announcing 60,000,000 bytes (masked with a zero key, so the bytes are as sent), then
    // 2 MB of it: far below what the limits let through after the handshake (64 MiB), far above a control.
    const head = Buffer.alloc(14);
    head[0] = 0x82;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(60_000_000n, 2);
    sock.write(head);
    let closed = false;
    sock.on('close', () => {
      closed = true;
    });
    sock.on('error', () => {});
    for (let i = 0; i < 32 && !closed; i++) sock.write(Buffer.alloc(64 * 1024));
    await waitFor(() => closed, 30_000, 'the server to close the connection');
    // The close frame (0x88) says 1009, message too big: refused from the header, not after gathering it.
    const at = got.indexOf(0x88);
    assert.ok(at >= 0, `a close frame: ${got.toString('hex')}`);
    assert.equal(got.readUInt16BE(at + 2), 1009);
    await waitFor(() => warnings.some((w) => w.code === 'ERR_EARLY_DATA'), 10_000, 'ERR_EARLY_DATA');
  } finally {
    sock.destroy();
    await server.close();
  }
});
