/** legacy-tcp:// against peers that send exactly as the seed's TCP client does, and ones whose reads merge. */

import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { legacyEndpoints } from '../../src/compat/index.js';
import { pieceBoundaries } from '../../src/compat/tcp-decoder.js';
import {
  createServer,
  FolderSink,
  type FramewireError,
  type FramewireServer,
  type ReceivedFrame,
  type StreamInfo,
} from '../../src/index.js';
import { payload, tempDir } from '../helpers/tmp.js';
import { fakeJpeg, PyTcp, type SeedFile, seedTcpClient, until } from './peers.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-legacy-tcp-'));
});
after(async () => cleanup());

interface Rig {
  server: FramewireServer;
  port: number;
  frames: ReceivedFrame[];
  errors: FramewireError[];
  warnings: FramewireError[];
  streams: StreamInfo[];
  out: string;
}

async function rig(name: string, query = ''): Promise<Rig> {
  const out = join(root, name);
  const server = await createServer({
    listen: [`legacy-tcp://127.0.0.1:0${query}`],
    sinks: [await FolderSink.open(out)],
  });
  const r: Rig = { server, port: server.port, frames: [], errors: [], warnings: [], streams: [], out };
  server.on('frame', (f) => r.frames.push(f));
  server.on('frame-error', (e) => r.errors.push(e));
  server.on('warning', (e) => r.warnings.push(e));
  server.on('stream', (s) => r.streams.push(s));
  return r;
}

const statsOf = (server: FramewireServer) => legacyEndpoints(server)[0]!.stats;

function folderFiles(n: number): SeedFile[] {
  const sizes = [123_000, 4001, 2, 3, 60_001, 1000];
  return Array.from({ length: n }, (_, i) => ({
    name: `${i}.png`,
    data: i % 3 === 0 ? fakeJpeg(sizes[i % sizes.length]! + 100, i) : payload(i, sizes[i % sizes.length]!),
  }));
}

async function assertSaved(dir: string, files: SeedFile[]) {
  for (const f of files) {
    const saved = await readFile(join(dir, f.name));
    assert.ok(saved.equals(f.data), `${f.name} is byte-identical`);
  }
}

for (const noDelay of [false, true]) {
  test(`the seed client (clien.py${noDelay ? ' with TCP_NODELAY' : ', Nagle on'}): every file saved, exactly one "ok" per wait`, async () => {
    const r = await rig(`seed-${noDelay}`);
    try {
      const files = folderFiles(12);
      const { replies } = await seedTcpClient(r.port, 'infrared', 'run42', files, { noDelay });
      // Every recv(1024) of the client read exactly "ok": no answer early, none left over.
      const waits = 1 + files.reduce((n, f) => n + 1 + pieceBoundaries(f.data.length).length, 0);
      assert.equal(replies.length, waits);
      assert.ok(
        replies.every((x) => x === 'ok'),
        JSON.stringify(replies.filter((x) => x !== 'ok')),
      );
      await until(() => r.frames.length === files.length, 'all frames');
      await assertSaved(join(r.out, 'run42'), files);
      assert.deepEqual(
        r.streams.map((s) => [s.name, s.kind, s.mode]),
        [['run42', 'infrared', 'reliable']],
      );
      assert.deepEqual(
        r.frames.map((f) => f.seq),
        files.map((_, i) => i),
      );
      assert.match(r.frames[0]!.stream.epoch, /^legacy-[0-9a-f]{12}$/);
      assert.equal(statsOf(r.server).dropped, 0);
    } finally {
      await r.server.close();
    }
  });
}

test('reads that merge: "continue"+header, header+payload, a whole payload at once, "over" with the last bytes', async () => {
  const r = await rig('merged');
  const sock = await PyTcp.connect(r.port, true);
  try {
    const a = fakeJpeg(30_000, 1);
    const b = fakeJpeg(20_001, 2);
    const c = payload(3, 777);
    sock.send('visible|merged');
    assert.equal((await sock.recv(1024)).toString(), 'ok');
    // Header and the whole payload in one write; the client waits once and reads both answers.
    sock.send(Buffer.concat([Buffer.from(`${a.length}|a.jpg`), a]));
    await until(() => sock.received === 'ok' + 'ok' + 'ok', 'header and payload answered');
    assert.equal((await sock.recv(1024)).toString(), 'okok');
    // "continue" and the next header in one write, then the payload in three odd pieces.
    sock.send(`continue${b.length}|b.jpg`);
    assert.equal((await sock.recv(1024)).toString(), 'ok');
    sock.send(b.subarray(0, 7));
    sock.send(b.subarray(7, 15_000));
    sock.send(b.subarray(15_000));
    await until(() => r.frames.length === 2, 'b stored');
    sock.send(`continue${c.length}|c.bin`);
    await sock.recv(1024);
    sock.send(Buffer.concat([c, Buffer.from('over')]));
    await until(() => r.frames.length === 3, 'c stored');
    await assertSaved(join(r.out, 'merged'), [
      { name: 'a.jpg', data: a },
      { name: 'b.jpg', data: b },
      { name: 'c.bin', data: c },
    ]);
    assert.equal(r.frames[2]!.contentType, 'application/octet-stream');
    assert.equal(r.frames[0]!.contentType, 'image/jpeg');
  } finally {
    sock.close();
    await r.server.close();
  }
});

test('a client that cuts its payload in 1024-byte pieces and waits after each is answered (?idleok=20)', async () => {
  const r = await rig('small-pieces', '?idleok=20');
  const sock = await PyTcp.connect(r.port, true);
  try {
    const data = payload(4, 10_000);
    sock.send('visible|small');
    await sock.recv(1024);
    sock.send(`${data.length}|x.raw`);
    await sock.recv(1024);
    for (let go = 0; go < data.length; go += 1024) {
      sock.send(data.subarray(go, go + 1024));
      assert.equal((await sock.recv(1024)).toString().replace(/(ok)+/, 'ok'), 'ok');
    }
    sock.send('over');
    await until(() => r.frames.length === 1, 'stored');
    assert.ok(r.frames[0]!.data.equals(data));
    assert.ok((statsOf(r.server).notes['idle-ok'] ?? 0) > 0);
  } finally {
    sock.close();
    await r.server.close();
  }
});

test('a header naming ../x: refused (ERR_UNSAFE_NAME), nothing written outside, the next files saved', async () => {
  const r = await rig('unsafe');
  try {
    const files: SeedFile[] = [
      { name: '0.png', data: payload(0, 5000) },
      { name: '../x', data: payload(1, 5000) },
      { name: '2.png', data: payload(2, 5000) },
    ];
    const { replies } = await seedTcpClient(r.port, 'visible', 'cam', files);
    assert.ok(
      replies.every((x) => x === 'ok'),
      'the client is not left waiting',
    );
    await until(() => r.frames.length === 2 && r.errors.length === 1, 'two frames and one refusal');
    assert.equal(r.errors[0]!.code, 'ERR_UNSAFE_NAME');
    assert.match(r.errors[0]!.message, /file name "\.\.\/x" is refused: it contains a path separator/);
    await assertSaved(join(r.out, 'cam'), [files[0]!, files[2]!]);
    await assert.rejects(stat(join(r.out, 'x')), { code: 'ENOENT' });
    assert.deepEqual(statsOf(r.server).drops, { 'unsafe-name': 1 });
  } finally {
    await r.server.close();
  }
});

test('a bad session header: a clear log line and the connection closed, as the seed does', async () => {
  const r = await rig('badheader');
  try {
    for (const header of ['no pipe here\n', 'a|b|c', 'visible|../up']) {
      const sock = await PyTcp.connect(r.port, true);
      sock.send(header);
      const got = await sock.recv(1024);
      assert.equal(got.length, 0, `closed without an answer after ${JSON.stringify(header)}`);
    }
    await until(() => r.warnings.length === 3, 'three warnings');
    assert.match(
      r.warnings[0]!.message,
      /ERR_LEGACY_HEADER: legacy-tcp:\/\/127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+: session header "no pipe here\\n" is not FORMAT\|FOLDER; closing the connection/,
    );
    assert.match(r.warnings[1]!.message, /has 2 "\|", not 1/);
    assert.equal(r.warnings[2]!.code, 'ERR_UNSAFE_NAME');
    assert.equal(statsOf(r.server).notes['bad-session-header'], 3);
    assert.deepEqual(await readdir(r.out), []);
  } finally {
    await r.server.close();
  }
});

test('a frame header with an absurd length closes the connection with ERR_FRAME_TOO_LARGE', async () => {
  const out = join(root, 'huge');
  const server = await createServer({
    listen: 'legacy-tcp://127.0.0.1:0',
    sinks: [await FolderSink.open(out)],
    limits: { maxFrameBytes: 1 << 20 },
  });
  const warnings: FramewireError[] = [];
  server.on('warning', (w) => warnings.push(w));
  const sock = await PyTcp.connect(server.port, true);
  try {
    sock.send('visible|cam');
    await sock.recv(1024);
    sock.send('99999999999999|big.png');
    assert.equal((await sock.recv(1024)).length, 0, 'closed');
    await until(() => warnings.length === 1, 'warning');
    assert.equal(warnings[0]!.code, 'ERR_FRAME_TOO_LARGE');
    assert.match(warnings[0]!.message, /announces 99999999999999 bytes, above the limit of 1048576/);
  } finally {
    sock.close();
    await server.close();
  }
});

test('a client that disconnects mid-payload: the frame is reported cut, nothing half-written', async () => {
  const r = await rig('cut');
  const sock = await PyTcp.connect(r.port, true);
  try {
    sock.send('visible|cut');
    await sock.recv(1024);
    sock.send('10000|a.png');
    await sock.recv(1024);
    sock.send(payload(0, 3000));
    await new Promise((res) => setTimeout(res, 50));
    sock.socket.destroy();
    await until(() => r.errors.length === 1, 'frame-error');
    assert.equal(r.errors[0]!.code, 'ERR_TRUNCATED');
    assert.match(r.errors[0]!.message, /closed after 3000 of 10000 bytes of frame "a\.png"/);
    assert.equal(r.frames.length, 0);
    assert.deepEqual(statsOf(r.server).drops, { truncated: 1 });
  } finally {
    await r.server.close();
  }
});

test('an unknown format is kind "other", and the format is kept in the frame metadata', async () => {
  const r = await rig('format');
  try {
    await seedTcpClient(r.port, 'thermal-16bit', 'th', [{ name: '0.raw', data: payload(0, 100) }]);
    await until(() => r.frames.length === 1, 'frame');
    assert.equal(r.frames[0]!.stream.kind, 'other');
    assert.deepEqual(r.frames[0]!.meta, { legacyFormat: 'thermal-16bit' });
    const index = (await readFile(join(r.out, 'th', 'index.jsonl'), 'utf8')).trim().split('\n');
    assert.deepEqual(JSON.parse(index[0]!).meta, { legacyFormat: 'thermal-16bit' });
  } finally {
    await r.server.close();
  }
});

test('two clients at once into two folders, and the seed client\'s empty folder ("over" right away)', async () => {
  const r = await rig('two');
  try {
    const fa = folderFiles(5);
    const fb = folderFiles(4).map((f) => ({ ...f, data: Buffer.concat([f.data, Buffer.from('b')]) }));
    await Promise.all([
      seedTcpClient(r.port, 'visible', 'a', fa),
      seedTcpClient(r.port, 'infrared', 'b', fb),
    ]);
    await seedTcpClient(r.port, 'visible', 'empty', []);
    await until(() => r.frames.length === 9, 'nine frames');
    await assertSaved(join(r.out, 'a'), fa);
    await assertSaved(join(r.out, 'b'), fb);
    assert.equal(r.warnings.length, 0);
  } finally {
    await r.server.close();
  }
});

test("connections beyond the server's per-address limit are closed at once (ERR_TOO_MANY_CONNECTIONS)", async () => {
  const out = join(root, 'limit');
  const server = await createServer({
    listen: ['legacy-tcp://127.0.0.1:0'],
    sinks: [await FolderSink.open(out)],
    maxConnectionsPerAddress: 2,
  });
  const warnings: FramewireError[] = [];
  server.on('warning', (w) => warnings.push(w));
  const open = async () => {
    const s = net.connect(server.port, '127.0.0.1');
    s.on('error', () => {});
    await new Promise((r) => s.once('connect', r));
    return s;
  };
  const a = await open();
  const b = await open();
  await new Promise((r) => setTimeout(r, 100));
  const c = await open();
  await new Promise<void>((resolve) => c.once('close', () => resolve()));
  assert.ok(
    warnings.some((w) => w.code === 'ERR_TOO_MANY_CONNECTIONS' && /maxConnectionsPerAddress/.test(w.message)),
  );
  assert.equal(a.destroyed || b.destroyed, false, 'the first two stay connected');
  a.destroy();
  b.destroy();
  await server.close();
});
