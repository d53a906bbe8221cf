/** Tokens, TLS and connection limits, over real sockets on 127.0.0.1. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { connect, createServer, Decoder, type FramewireError, type Message } from '../../src/index.js';
import { MessageType } from '../../src/protocol/constants.js';
import { selfSignedCert } from '../helpers/certs.js';
import { startCutProxy } from '../helpers/proxy.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

const TOKEN = 'correct horse battery staple';
let dir: string;
let cleanup: () => Promise<void>;
let cert: string;
let key: string;

before(async () => {
  ({ dir, cleanup } = await tempDir());
  // A certificate made at test time for localhost and 127.0.0.1 (openssl from Debian's base system).
  ({ cert, key } = await selfSignedCert(dir));
});
after(async () => cleanup());

test('the same token on both sides: frames flow, and the token never crosses the wire', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', token: TOKEN });
  let frames = 0;
  server.on('frame', () => frames++);
  const proxy = await startCutProxy(server.port);
  const seen: Buffer[] = [];
  const tap = net.createServer((c) => {
    const up = net.connect(proxy.port, '127.0.0.1');
    c.on('data', (d) => {
      seen.push(Buffer.from(d));
      up.write(d);
    });
    up.on('data', (d) => {
      seen.push(Buffer.from(d));
      c.write(d);
    });
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
    c.on('error', () => {});
    up.on('error', () => {});
  });
  await new Promise<void>((r) => tap.listen(0, '127.0.0.1', r));
  const client = await connect(`tcp://127.0.0.1:${(tap.address() as net.AddressInfo).port}`, {
    token: TOKEN,
  });
  const st = client.stream('cam0');
  for (let i = 0; i < 10; i++) await st.send({ data: payload(i, 1000) });
  await client.close();
  await server.close();
  await proxy.close();
  tap.close();
  assert.equal(frames, 10);
  const wire = Buffer.concat(seen);
  assert.equal(wire.includes(Buffer.from(TOKEN)), false, 'the token is not on the wire');
  assert.equal(wire.includes(Buffer.from('horse')), false);
});

test('a wrong token: ERR_AUTH on both sides, no retry, nothing stored', async () => {
  let stored = 0;
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    token: TOKEN,
    sinks: [{ frame: () => void stored++ }],
  });
  const warnings: FramewireError[] = [];
  server.on('warning', (w) => warnings.push(w));
  let streams = 0;
  server.on('stream', () => streams++);
  const t0 = Date.now();
  await assert.rejects(
    connect(`tcp://127.0.0.1:${server.port}`, { token: 'wrong', retryForMs: 20_000 }),
    (err: FramewireError) => {
      assert.equal(err.code, 'ERR_AUTH');
      assert.match(err.message, /wrong token: tcp:\/\/127\.0\.0\.1:\d+\/? does not prove the same token/);
      assert.match(err.hint ?? '', /--token/);
      return true;
    },
  );
  assert.ok(Date.now() - t0 < 10_000, 'no retrying for retryForMs');
  await waitFor(() => warnings.length > 0, 5000, 'server warning');
  assert.equal(warnings[0]!.code, 'ERR_AUTH');
  assert.equal(stored, 0);
  assert.equal(streams, 0);
  await server.close();
});

test('an impostor receiver (no token) gets no proof from the sender, and the sender fails with ERR_AUTH', async () => {
  const { proof } = await import('../../src/session/auth.js');
  const { encodeControl, toBytes } = await import('../../src/protocol/messages.js');
  const fromSender: Message[] = [];
  const wire: Buffer[] = [];
  let senderNonce = '';
  let impostorNonce = '';
  let connections = 0;
  // It answers HELLO as a receiver would, with a nonce and a proof made without the token.
  const impostor = net.createServer((c) => {
    connections++;
    const dec = new Decoder((m) => {
      fromSender.push(m);
      if (m.type === MessageType.HELLO) {
        senderNonce = String((m.body.auth as { nonce?: string } | undefined)?.nonce);
        impostorNonce = 'b'.repeat(64);
        const guess = proof('not the token', 'receiver', senderNonce, impostorNonce);
        c.write(toBytes(encodeControl(MessageType.AUTH, { nonce: impostorNonce, proof: guess })));
      }
    });
    c.on('data', (d) => {
      wire.push(Buffer.from(d));
      dec.write(d);
    });
    c.on('error', () => {});
  });
  await new Promise<void>((r) => impostor.listen(0, '127.0.0.1', r));
  const port = (impostor.address() as net.AddressInfo).port;
  await assert.rejects(
    connect(`tcp://127.0.0.1:${port}`, { token: TOKEN, retryForMs: 20_000 }),
    (err: FramewireError) => {
      assert.equal(err.code, 'ERR_AUTH');
      assert.match(err.message, /does not prove the same token \(this sender sent no proof\)/);
      return true;
    },
  );
  await waitFor(() => fromSender.some((m) => m.type === MessageType.ERROR), 5000, "the sender's ERROR");
  impostor.close();
  assert.equal(connections, 1, 'no retry');
  assert.deepEqual(
    fromSender.map((m) => m.type),
    [MessageType.HELLO, MessageType.ERROR],
    'HELLO, then a fatal ERROR: no AUTH',
  );
  const e = fromSender[1]!;
  assert.ok(e.type === MessageType.ERROR && e.body.code === 'ERR_AUTH' && e.body.fatal === true);
  // Nothing the impostor could test guesses against: neither the sender's proof nor the token is on the wire.
  const bytes = Buffer.concat(wire);
  assert.equal(bytes.includes(proof(TOKEN, 'sender', senderNonce, impostorNonce)), false);
  assert.equal(bytes.includes(Buffer.from(TOKEN)), false);
  assert.equal(/[0-9a-f]{64}/.test(bytes.toString('latin1').replace(senderNonce, '')), false);
});

test('a missing token on the sender, and a receiver without one, are both ERR_AUTH', async () => {
  const guarded = await createServer({ listen: 'tcp://127.0.0.1:0', token: TOKEN });
  await assert.rejects(connect(`tcp://127.0.0.1:${guarded.port}`), (err: FramewireError) => {
    assert.equal(err.code, 'ERR_AUTH');
    assert.match(err.message, /sent no token/);
    return true;
  });
  await guarded.close();
  const open = await createServer({ listen: 'tcp://127.0.0.1:0' });
  await assert.rejects(connect(`tcp://127.0.0.1:${open.port}`, { token: TOKEN }), (err: FramewireError) => {
    assert.equal(err.code, 'ERR_AUTH');
    assert.match(err.message, /does not check tokens/);
    return true;
  });
  await open.close();
});

test('frames sent before the challenge is answered are refused (nothing before AUTH)', async () => {
  let stored = 0;
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    token: TOKEN,
    sinks: [{ frame: () => void stored++, message: () => void stored++ }],
  });
  let streams = 0;
  server.on('stream', () => streams++);
  const { encodeControl, encodeFrame, encodeMessage, toBytes } = await import(
    '../../src/protocol/messages.js'
  );
  const decl = { id: 0, name: 'cam', kind: 'other', mode: 'reliable', epoch: 'e' };
  const hello = toBytes(
    encodeControl(MessageType.HELLO, {
      protocol: 1,
      client: 'x',
      epoch: 'e',
      streams: [decl],
      auth: { nonce: 'a'.repeat(64) },
    }),
  );
  const frame = toBytes(
    encodeFrame({ streamId: 0, seq: 0, captureUs: 0, contentType: 'image/jpeg', payload: Buffer.alloc(100) }),
  );
  const message = toBytes(encodeMessage(0, '{"a":1}', undefined));
  // Three senders that do not prove the token: one sends a frame once challenged, one right behind its
  // HELLO, one a JSON message once challenged.
  const cases = [
    { before: [hello], after: frame },
    { before: [Buffer.concat([hello, frame])], after: undefined },
    { before: [hello], after: message },
  ];
  for (const c of cases) {
    const sock = net.connect(server.port, '127.0.0.1');
    const got: Message[] = [];
    const dec = new Decoder((m) => got.push(m));
    let closed = false;
    sock.on('data', (d) => dec.write(d));
    sock.on('error', () => {});
    sock.on('close', () => {
      closed = true;
    });
    for (const b of c.before) sock.write(b);
    if (c.after) {
      await waitFor(() => got.some((m) => m.type === MessageType.AUTH), 5000, 'the challenge');
      sock.write(c.after);
    }
    await waitFor(() => closed, 10_000, 'the receiver closing the connection');
    const e = got.find((m) => m.type === MessageType.ERROR);
    assert.ok(e && e.type === MessageType.ERROR, 'an ERROR before the close');
    assert.equal(e.body.code, 'ERR_EARLY_DATA');
    assert.equal(e.body.fatal, true);
    assert.ok(
      got.every((m) => m.type === MessageType.AUTH || m.type === MessageType.ERROR),
      'no WELCOME, OPENED or ACK',
    );
  }
  assert.equal(streams, 0, 'no stream opened');
  assert.equal(stored, 0, 'nothing stored');
  await server.close();
});

test('tls://: verified with the CA, refused without it, and a plain TCP client cannot hurt the server', async () => {
  const server = await createServer({ listen: 'tls://127.0.0.1:0', tls: { cert, key }, token: TOKEN });
  let frames = 0;
  server.on('frame', () => frames++);
  const url = `tls://127.0.0.1:${server.port}`;
  // Not trusted: the sender refuses the receiver's self-signed certificate.
  await assert.rejects(connect(url, { token: TOKEN, retryForMs: 200 }), (err: FramewireError) => {
    assert.equal(err.code, 'ERR_TLS');
    assert.match(err.message, /self.signed|certificate/i);
    return true;
  });
  // Plain TCP bytes at the TLS port.
  const plain = net.connect(server.port, '127.0.0.1');
  plain.on('error', () => {});
  plain.write('FW hello in clear text');
  await new Promise((r) => setTimeout(r, 200));
  plain.destroy();
  const client = await connect(url, { token: TOKEN, tls: { ca: cert } });
  const st = client.stream('secure');
  for (let i = 0; i < 20; i++) await st.send({ data: payload(i, 50_000) });
  await client.close();
  await server.close();
  assert.equal(frames, 20);
});

test('a tls:// endpoint without a certificate is a clear error', async () => {
  await assert.rejects(createServer({ listen: 'tls://127.0.0.1:0' }), {
    code: 'ERR_BAD_OPTION',
    message: /needs a certificate and a key/,
  });
});

test('connections beyond maxConnectionsPerAddress and maxConnections are refused with ERR_TOO_MANY_CONNECTIONS', async () => {
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    maxConnectionsPerAddress: 2,
    maxConnections: 3,
  });
  const a = await connect(`tcp://127.0.0.1:${server.port}`);
  const b = await connect(`tcp://127.0.0.1:${server.port}`);
  await waitFor(() => server.connections === 2, 5000, 'two connections');
  await assert.rejects(
    connect(`tcp://127.0.0.1:${server.port}`, { retryForMs: 300 }),
    (err: FramewireError) => {
      assert.equal(err.code, 'ERR_UNREACHABLE');
      assert.match(err.message, /ERR_TOO_MANY_CONNECTIONS.*maxConnectionsPerAddress/);
      return true;
    },
  );
  await a.close();
  const c = await connect(`tcp://127.0.0.1:${server.port}`, { retryForMs: 5000 });
  await b.close();
  await c.close();
  await server.close();
});

test('maxPendingFrames bounds what one stream holds before reading pauses; every frame still arrives', async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const stored: number[] = [];
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    maxPendingFrames: 4,
    sinks: [
      {
        async frame(f) {
          await gate;
          stored.push(f.seq);
        },
      },
    ],
  });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, {
    windowFrames: 500,
    windowBytes: 64 << 20,
  });
  const st = client.stream('many');
  // 200 frames of 20 kB (4 MB) handed to the socket, far under maxPendingBytes: only the frame limit binds.
  for (let i = 0; i < 200; i++) await st.send({ data: payload(i, 20_000) });
  const held = () => (server as unknown as { pendingTotal: number }).pendingTotal;
  // Wait for what the receiver reads to settle (no change for 300 ms).
  let last = -1;
  for (let since = Date.now(), end = Date.now() + 10_000; Date.now() < end && Date.now() - since < 300; ) {
    await new Promise((r) => setTimeout(r, 20));
    if (held() !== last) {
      last = held();
      since = Date.now();
    }
  }
  // The stream's queue: 4 frames, plus what the read that crossed the limit brought (a 64 KiB chunk: 4).
  const frames = held() / 20_000;
  try {
    assert.ok(frames >= 4, `the receiver holds ${frames} frames: it read up to its limit`);
    assert.ok(frames <= 4 + 5, `the receiver holds ${frames} frames of one stream, not up to 200`);
  } finally {
    release();
  }
  const stats = await client.close();
  await server.close();
  assert.equal(stats.framesAcked, 200);
  assert.deepEqual(stored, [...Array(200).keys()], 'reading resumed: every frame arrived, in order');
});

test('maxTotalPendingBytes bounds what all connections together hold; every frame still arrives', async () => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let stored = 0;
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    maxTotalPendingBytes: 200_000,
    sinks: [
      {
        async frame() {
          await gate;
          stored++;
        },
      },
    ],
  });
  const clients = await Promise.all(
    [0, 1, 2].map(() =>
      connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 1000, windowBytes: 64 << 20 }),
    ),
  );
  await Promise.all(
    clients.map(async (c, i) => {
      const st = c.stream(`s${i}`);
      for (let k = 0; k < 40; k++) await st.send({ data: payload(k, 50_000) });
    }),
  );
  await new Promise((r) => setTimeout(r, 300));
  const held = (server as unknown as { pendingTotal: number }).pendingTotal;
  assert.ok(
    held <= 200_000 + 3 * 300_000,
    `the receiver holds ${held} bytes, near its 200,000 limit, not 6 MB`,
  );
  release();
  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  assert.equal(stored, 120);
});
