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
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', token: TOKEN });
  let streams = 0;
  server.on('stream', () => streams++);
  const sock = net.connect(server.port, '127.0.0.1');
  const got: Message[] = [];
  const dec = new Decoder((m) => got.push(m));
  sock.on('data', (d) => dec.write(d));
  sock.on('error', () => {});
  const { encodeControl, toBytes } = await import('../../src/protocol/messages.js');
  sock.write(
    toBytes(
      encodeControl(MessageType.HELLO, {
        protocol: 1,
        client: 'x',
        epoch: 'e',
        streams: [{ id: 0, name: 'cam', kind: 'other', mode: 'reliable', epoch: 'e' }],
        auth: { nonce: 'a'.repeat(64) },
      }),
    ),
  );
  sock.write(toBytes(encodeControl(MessageType.AUTH, { proof: '0'.repeat(64) })));
  await waitFor(() => got.some((m) => m.type === MessageType.ERROR), 5000, 'error');
  const e = got.find((m) => m.type === MessageType.ERROR);
  assert.ok(e && e.type === MessageType.ERROR && e.body.code === 'ERR_AUTH');
  assert.equal(streams, 0);
  sock.destroy();
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
  let inflight = 0;
  let maxSeen = 0;
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    maxPendingFrames: 4,
    sinks: [
      {
        async frame() {
          inflight++;
          maxSeen = Math.max(maxSeen, inflight);
          await new Promise((r) => setTimeout(r, 2));
          inflight--;
        },
      },
    ],
  });
  const client = await connect(`tcp://127.0.0.1:${server.port}`, { windowFrames: 500 });
  const st = client.stream('many');
  for (let i = 0; i < 200; i++) await st.send({ data: payload(i, 200) });
  const stats = await client.close();
  await server.close();
  assert.equal(stats.framesAcked, 200);
  assert.equal(maxSeen, 1, 'frames of one stream are stored one at a time');
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
