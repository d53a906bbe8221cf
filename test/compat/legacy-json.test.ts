/** legacy-json:// against a peer that sends exactly as the seed's message client (udp_client_2.py) does. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { legacyEndpoints } from '../../src/compat/index.js';
import { createServer, FolderSink, type FramewireError, type ReceivedMessage } from '../../src/index.js';
import { tempDir } from '../helpers/tmp.js';
import { PyUdp, until } from './peers.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-legacy-json-'));
});
after(async () => cleanup());

test('udp_client_2.py: json.dumps([0,0,0,1]) every 10 ms, answered "get the msg", saved to messages.jsonl', async () => {
  const out = join(root, 'msgs');
  const server = await createServer({
    listen: 'legacy-json://127.0.0.1:0',
    sinks: [await FolderSink.open(out)],
  });
  const messages: ReceivedMessage[] = [];
  server.on('message', (m) => messages.push(m));
  const s = new PyUdp();
  try {
    const port = await s.bind();
    for (let i = 0; i < 20; i++) {
      s.sendto(JSON.stringify([0, 0, 0, 1]).replace(/,/g, ', '), server.port); // json.dumps writes ", "
      await new Promise((r) => setTimeout(r, 10)); // time.sleep(0.01)
      assert.equal((await s.recvfrom(1024))[0].toString('utf8'), 'get the msg');
    }
    assert.equal(messages.length, 20);
    messages.forEach((m, i) => {
      assert.deepEqual(m.json, [0, 0, 0, 1]);
      assert.equal(m.text, '[0, 0, 0, 1]');
      assert.equal(m.seq, i);
      assert.equal(m.sender, `127.0.0.1:${port}`);
      assert.equal(m.ref, undefined);
    });
    await server.close();
    const lines = (await readFile(join(out, 'messages.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 20);
    assert.deepEqual(JSON.parse(lines[0]!).json, [0, 0, 0, 1]);
  } finally {
    await s.close();
    await server.close();
  }
});

test('objects, nested lists and UTF-8 text are messages too; each sender has its own numbering', async () => {
  const server = await createServer({ listen: 'legacy-json://127.0.0.1:0' });
  const messages: ReceivedMessage[] = [];
  server.on('message', (m) => messages.push(m));
  const a = new PyUdp();
  const b = new PyUdp();
  try {
    await a.bind();
    await b.bind();
    a.sendto('{"detections": [[10, 20, 30, 40]], "label": "café"}', server.port);
    b.sendto('[[1, 2], [3, 4]]', server.port);
    a.sendto('42', server.port);
    for (const p of [a, b, a]) await p.recvfrom(1024);
    await until(() => messages.length === 3, '3 messages');
    const fromA = messages.filter((m) => m.sender === `127.0.0.1:${a.socket.address().port}`);
    assert.deepEqual(
      fromA.map((m) => [m.seq, m.json]),
      [
        [0, { detections: [[10, 20, 30, 40]], label: 'café' }],
        [1, 42],
      ],
    );
    assert.notEqual(fromA[0]!.epoch, messages.find((m) => !fromA.includes(m))!.epoch);
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

test('invalid JSON or UTF-8 is logged, counted and answered "bad msg"; the port keeps working', async () => {
  const server = await createServer({ listen: 'legacy-json://127.0.0.1:0' });
  const warnings: FramewireError[] = [];
  const messages: ReceivedMessage[] = [];
  server.on('warning', (w) => warnings.push(w));
  server.on('message', (m) => messages.push(m));
  const s = new PyUdp();
  try {
    await s.bind();
    for (const bad of [Buffer.from('[0, 0, 0,'), Buffer.from([0xff, 0xfe, 0x5b, 0x5d]), Buffer.alloc(0)]) {
      s.sendto(bad, server.port);
      assert.equal((await s.recvfrom(1024))[0].toString(), 'bad msg');
    }
    s.sendto('[1]', server.port);
    assert.equal((await s.recvfrom(1024))[0].toString(), 'get the msg');
    assert.equal(messages.length, 1);
    assert.equal(warnings.length, 3);
    for (const w of warnings) assert.equal(w.code, 'ERR_BAD_JSON');
    assert.match(warnings[0]!.message, /datagram of 9 bytes from 127\.0\.0\.1:\d+ is not JSON/);
    const st = legacyEndpoints(server)[0]!.stats;
    assert.deepEqual(st.drops, { 'bad-json': 3 });
    assert.equal(st.delivered, 1);
  } finally {
    await s.close();
    await server.close();
  }
});

test("messages longer than the seed's 1024 bytes are taken whole (up to a datagram)", async () => {
  const server = await createServer({ listen: 'legacy-json://127.0.0.1:0' });
  const messages: ReceivedMessage[] = [];
  server.on('message', (m) => messages.push(m));
  const s = new PyUdp();
  try {
    await s.bind();
    const big = { boxes: Array.from({ length: 2000 }, (_, i) => i) };
    s.sendto(JSON.stringify(big), server.port);
    assert.equal((await s.recvfrom(1024))[0].toString(), 'get the msg');
    assert.deepEqual(messages[0]!.json, big);
  } finally {
    await s.close();
    await server.close();
  }
});
