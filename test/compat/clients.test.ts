/** framewire's legacy clients against peers that behave exactly like the seed servers, and against framewire's own. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createServer,
  FolderSink,
  LegacyJsonClient,
  LegacyTcpClient,
  LegacyUdpClient,
  type ReceivedFrame,
  type ReceivedMessage,
  sendLegacyJson,
} from '../../src/index.js';
import { payload, tempDir } from '../helpers/tmp.js';
import {
  fakeJpeg,
  PyUdp,
  SeedJsonServer,
  SeedTcpServer,
  SeedUdpPictureServer,
  SeedUdpSingleServer,
  until,
} from './peers.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-legacy-clients-'));
});
after(async () => cleanup());

// ---- UDP pictures ----------------------------------------------------------------------------------------

test('LegacyUdpClient → the seed chunked server: every picture arrives whole, at 1024-multiples too', async () => {
  const seed = new SeedUdpPictureServer();
  const port = await seed.start();
  // The seed's chunked format cannot recover a lost chunk, so this test must not lose one: the JavaScript
  // model of the seed server may be starved of CPU for tens of milliseconds on a busy machine, and its
  // default-size socket buffer holds about a hundred 1 KiB datagrams. Pace for a reader of one datagram per
  // millisecond (readus=1000), so that a stall of ~100 ms still loses nothing (robust by design, not by retry).
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${port}?readus=1000`);
  try {
    const pics = [123_000, 1024, 4096, 1025, 500, 300_000].map((n, i) => fakeJpeg(n, i));
    for (const p of pics) await c.send(p);
    assert.equal(seed.crashed, undefined);
    assert.deepEqual(seed.pictures, pics);
    assert.deepEqual({ sent: c.stats.sent, resends: c.stats.resends }, { sent: pics.length, resends: 0 });
  } finally {
    await c.close();
    await seed.close();
  }
});

test('LegacyUdpClient ?single → the seed single-datagram server; a picture over 65,507 bytes is refused', async () => {
  const seed = new SeedUdpSingleServer();
  const port = await seed.start();
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${port}?single`);
  try {
    const pics = [fakeJpeg(65_507, 1), fakeJpeg(40_000, 2)];
    for (const p of pics) await c.send(p);
    assert.deepEqual(seed.pictures, pics);
    await assert.rejects(
      c.send(fakeJpeg(65_508, 3), '3.jpg'),
      (err: Error & { code?: string; hint?: string }) => {
        assert.equal(err.code, 'ERR_PICTURE_TOO_LARGE');
        assert.match(err.message, /3\.jpg is 65508 bytes; one UDP datagram carries at most 65507/);
        assert.match(err.hint ?? '', /drop \?single/);
        return true;
      },
    );
    assert.equal(seed.pictures.length, 2, 'nothing was sent for the refused picture');
  } finally {
    await c.close();
    await seed.close();
  }
});

test('a lost answer: the client waits ?timeout=1000, sends again, and goes on (no hang)', async () => {
  const seed = new SeedUdpPictureServer();
  seed.loseReplies = 1;
  const port = await seed.start();
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${port}?timeout=1000`);
  try {
    const p1 = fakeJpeg(20_000, 1);
    const p2 = fakeJpeg(20_000, 2);
    await c.send(p1);
    await c.send(p2);
    assert.equal(c.stats.resends, 1);
    // The seed server cannot tell a resend from a new picture: it keeps p1 twice (at least once).
    assert.deepEqual(seed.pictures, [p1, p1, p2]);
  } finally {
    await c.close();
    await seed.close();
  }
});

test('a lost chunk with a framewire server: "lost message!!!" makes the client send again at once', async () => {
  const server = await createServer({ listen: 'legacy-udp://127.0.0.1:0' });
  const frames: ReceivedFrame[] = [];
  server.on('frame', (f) => frames.push(f));
  // A proxy that loses the 5th datagram it forwards.
  const proxy = new PyUdp();
  const proxyPort = await proxy.bind();
  let client: { port: number; address: string } | undefined;
  let n = 0;
  proxy.socket.removeAllListeners('message');
  proxy.socket.on('message', (m, rinfo) => {
    if (rinfo.port === server.port) {
      if (client) proxy.socket.send(m, client.port, client.address);
      return;
    }
    client = { port: rinfo.port, address: rinfo.address };
    if (++n !== 5) proxy.socket.send(m, server.port, '127.0.0.1');
  });
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${proxyPort}?timeout=10000`);
  try {
    const p = fakeJpeg(10_000, 1);
    const started = Date.now();
    await c.send(p);
    assert.ok(Date.now() - started < 9000, 'answered by the NAK, not by the timeout');
    assert.equal(c.stats.resends, 1);
    assert.equal(frames.length, 1);
    assert.ok(frames[0]!.data.equals(p));
  } finally {
    await c.close();
    await proxy.close();
    await server.close();
  }
});

test('no server at all: a clear error after the retries, never a hang', async () => {
  const probe = new PyUdp();
  const port = await probe.bind();
  await probe.close();
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${port}?timeout=100&retries=2`);
  try {
    await assert.rejects(c.send(fakeJpeg(3000, 1)), (err: Error & { code?: string }) => {
      assert.ok(err.code === 'ERR_UNREACHABLE' || err.code === 'ERR_REPLY_TIMEOUT', err.message);
      assert.match(err.message, /3 attempts/);
      return true;
    });
    assert.equal(c.stats.resends, 2);
  } finally {
    await c.close();
  }
});

test('LegacyUdpClient ?header=4 → a framewire server (the seed 64-bit server would die on it)', async () => {
  const server = await createServer({ listen: 'legacy-udp://127.0.0.1:0' });
  const frames: ReceivedFrame[] = [];
  server.on('frame', (f) => frames.push(f));
  const c = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${server.port}?header=4&pace=0`);
  try {
    const pics = [fakeJpeg(200_000, 1), fakeJpeg(3000, 2)];
    for (const p of pics) await c.send(p);
    assert.deepEqual(
      frames.map((f) => f.data),
      pics,
    );
  } finally {
    await c.close();
    await server.close();
  }
});

// ---- TCP folder protocol ---------------------------------------------------------------------------------

function folder(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    name: `${i}.png`,
    data: i === 3 ? Buffer.alloc(0) : payload(i, [123_000, 4001, 2, 0, 60_001, 3][i % 6]!),
  }));
}

test('LegacyTcpClient → the seed TCP server: every file saved byte-identical under the folder', async () => {
  const seed = new SeedTcpServer();
  const port = await seed.start();
  const c = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${port}`, {
    folder: 'run42',
    format: 'infrared',
  });
  try {
    const files = folder(12);
    for (const f of files) await c.send(f);
    await c.close();
    await until(() => seed.files.get('run42')?.size === files.length, 'all files');
    assert.equal(seed.crashed, undefined);
    for (const f of files) assert.ok(seed.files.get('run42')!.get(f.name)!.equals(f.data), f.name);
    assert.equal(c.stats.sent, files.length);
  } finally {
    c.destroy();
    await seed.close();
  }
});

test('the seed server reading each piece in several recv()s (more "ok"s than pieces): still byte-identical', async () => {
  const seed = new SeedTcpServer();
  seed.recvCut = 7000;
  const port = await seed.start();
  const c = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${port}`, { folder: 'cut' });
  try {
    const files = folder(8);
    for (const f of files) await c.send(f);
    await c.close();
    await until(() => seed.files.get('cut')?.size === files.length, 'all files');
    assert.equal(seed.crashed, undefined);
    for (const f of files) assert.ok(seed.files.get('cut')!.get(f.name)!.equals(f.data), f.name);
  } finally {
    c.destroy();
    await seed.close();
  }
});

test('a connection lost mid-folder: the client reconnects (retryForMs) and sends the unconfirmed frame again', async () => {
  const seed = new SeedTcpServer();
  seed.dropConnectionAfterFrames = 2;
  const port = await seed.start();
  const c = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${port}?timeout=3000`, {
    folder: 'again',
    retryForMs: 10_000,
  });
  try {
    const files = folder(5);
    for (const f of files) await c.send(f);
    await c.close();
    await until(() => seed.files.get('again')?.size === files.length, 'all files');
    for (const f of files) assert.ok(seed.files.get('again')!.get(f.name)!.equals(f.data), f.name);
    assert.equal(c.stats.reconnects, 1);
  } finally {
    c.destroy();
    await seed.close();
  }
});

test('frames the seed protocol cannot carry are refused before anything is sent', async () => {
  const c = await LegacyTcpClient.open('legacy-tcp://127.0.0.1:1', { folder: 'x' });
  await assert.rejects(c.send({ name: '../x', data: payload(0, 10) }), { code: 'ERR_UNSAFE_NAME' });
  await assert.rejects(c.send({ name: 'a|b.png', data: payload(0, 10) }), { code: 'ERR_UNSAFE_NAME' });
  await assert.rejects(c.send({ name: 'one.png', data: Buffer.from('x') }), { code: 'ERR_BAD_FRAME' });
  await assert.rejects(c.send({ data: payload(0, 10) }), { code: 'ERR_BAD_FRAME' });
  await assert.rejects(LegacyTcpClient.open('legacy-tcp://127.0.0.1:1', { folder: '../up' }), {
    code: 'ERR_UNSAFE_NAME',
  });
  await assert.rejects(LegacyTcpClient.open('legacy-tcp://127.0.0.1:1', { folder: 'a', format: 'a|b' }), {
    code: 'ERR_BAD_OPTION',
  });
  await c.close();
});

test('a server that closes after the session header (the seed on a bad header): ERR_LEGACY_HEADER, not a hang', async () => {
  const seen: string[] = [];
  const srv = net.createServer((sock) => {
    sock.once('data', (d) => {
      seen.push(d.toString());
      sock.end(); // print('protocol header is incorrect…'); sc.close()
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as net.AddressInfo).port;
  const c = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${port}`, {
    folder: 'cam',
    format: 'visible',
  });
  try {
    await assert.rejects(
      c.send({ name: '0.png', data: payload(0, 100) }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_LEGACY_HEADER');
        assert.match(err.message, /closed the connection after the session header "visible\|cam"/);
        return true;
      },
    );
    assert.deepEqual(seen, ['visible|cam']);
  } finally {
    c.destroy();
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
});

test('LegacyTcpClient → framewire legacy-tcp (?gap=0&settle=0): 200 frames through the folder sink', async () => {
  const out = join(root, 'fw-tcp');
  const server = await createServer({
    listen: 'legacy-tcp://127.0.0.1:0',
    sinks: [await FolderSink.open(out)],
  });
  const c = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${server.port}?gap=0&settle=0`, {
    folder: 'fast',
    format: 'visible',
  });
  try {
    const files = Array.from({ length: 200 }, (_, i) => ({
      name: `${i}.jpg`,
      data: fakeJpeg(2000 + i * 13, i),
    }));
    for (const f of files) await c.send(f);
    await c.close();
    for (const f of files) assert.ok((await readFile(join(out, 'fast', f.name))).equals(f.data), f.name);
  } finally {
    c.destroy();
    await server.close();
  }
});

// ---- JSON messages ---------------------------------------------------------------------------------------

test('LegacyJsonClient → the seed JSON server; over 1024 bytes is refused with a hint; bad JSON is refused', async () => {
  const seed = new SeedJsonServer();
  const port = await seed.start();
  const c = await LegacyJsonClient.open(`legacy-json://127.0.0.1:${port}`);
  try {
    await c.send([0, 0, 0, 1]);
    await c.send('{"a": [1, 2]}', { raw: true });
    await sendLegacyJson(`legacy-json://127.0.0.1:${port}`, { done: true });
    assert.deepEqual(seed.messages, [[0, 0, 0, 1], { a: [1, 2] }, { done: true }]);
    await assert.rejects(
      c.send({ big: 'x'.repeat(1100) }),
      (err: Error & { code?: string; hint?: string }) => {
        assert.equal(err.code, 'ERR_MESSAGE_TOO_LARGE');
        assert.match(err.hint ?? '', /\?max=65507/);
        return true;
      },
    );
    await assert.rejects(c.send('[0, 0,', { raw: true }), { code: 'ERR_BAD_JSON' });
    assert.equal(seed.crashed, undefined, 'the seed server never saw what would have killed it');
  } finally {
    await c.close();
    await seed.close();
  }
});

test('LegacyJsonClient ?max=65507 → framewire legacy-json: large messages whole', async () => {
  const server = await createServer({ listen: 'legacy-json://127.0.0.1:0' });
  const messages: ReceivedMessage[] = [];
  server.on('message', (m) => messages.push(m));
  try {
    const big = { boxes: Array.from({ length: 5000 }, (_, i) => i) };
    await sendLegacyJson(`legacy-json://127.0.0.1:${server.port}?max=65507`, big);
    assert.deepEqual(messages[0]!.json, big);
  } finally {
    await server.close();
  }
});
