/**
 * framewire as an ImageZMQ hub: Python senders (pyzmq, test/compat/imagezmq/peer.py) into
 * `izmq://` (REQ/REP) and `izmq+sub://` (PUB/SUB), byte-identical JPEGs and arrays (numpy compares them),
 * malformed messages from a real ZeroMQ REQ socket, duplicates of a framewire sender, and the viewer.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as zmq from 'zeromq';
import {
  createServer,
  FolderSink,
  type FramewireError,
  type FramewireServer,
  imageZmqEndpoints,
  izmqStreamName,
} from '../../../src/index.js';
import { createViewer } from '../../../src/sinks/viewer.js';
import { hue, solidJpeg } from '../../helpers/images.js';
import { tempDir, waitFor } from '../../helpers/tmp.js';
import { Peer, type PlanItem, writePlan } from './python.js';

async function indexOf(dir: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(join(dir, 'index.jsonl'), 'utf8');
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function jpegs(dir: string, n: number): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < n; i++) {
    const f = join(dir, `in-${i}.jpg`);
    await writeFile(f, await solidJpeg(64, 48, hue(i)));
    files.push(f);
  }
  return files;
}

describe('ImageZMQ stream names', () => {
  test('msg text becomes a safe stream name by the documented rule', () => {
    assert.equal(izmqStreamName('pi-3|cam 0'), 'pi-3_cam_0');
    assert.equal(izmqStreamName('raspberrypi.local'), 'raspberrypi.local');
    assert.equal(izmqStreamName('../../etc/passwd'), '_._.._etc_passwd');
    assert.equal(izmqStreamName('.hidden'), '_hidden');
    assert.equal(izmqStreamName('name.'), 'name_');
    assert.equal(izmqStreamName(''), 'imagezmq');
    assert.equal(izmqStreamName('con'), '_con');
    assert.equal(izmqStreamName('カメラ1'), 'カメラ1');
    assert.equal(izmqStreamName('a\u0000b\nc'), 'a_b_c');
    assert.equal(Buffer.byteLength(izmqStreamName('x'.repeat(500))), 128);
  });
});

describe('Python REQ sender → framewire izmq:// hub', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let server: FramewireServer;
  before(async () => {
    ({ dir, cleanup } = await tempDir('fw-izmq-'));
    server = await createServer({
      listen: 'izmq://127.0.0.1:0',
      sinks: [await FolderSink.open(join(dir, 'out'))],
      limits: { maxFrameBytes: 200_000 },
    });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  test('send_jpg and send_image forms are stored byte-identical, with the mapping of the issue', async () => {
    const files = await jpegs(dir, 3);
    const plan: PlanItem[] = [
      ...files.map((jpg) => ({ msg: 'pi-1|cam0', jpg })),
      { msg: 'pi-1|bgr', image: { dtype: 'uint8', shape: [48, 64, 3], seed: 1 } },
      { msg: 'pi-1|bgr', image: { dtype: 'uint8', shape: [48, 64, 3], seed: 2 } },
      { msg: 'pi-1|gray', image: { dtype: 'uint8', shape: [48, 64], seed: 3 } },
      { msg: 'pi-1|thermal', image: { dtype: 'uint16', shape: [24, 32], seed: 4 } },
      { msg: 'pi-1|depth', image: { dtype: 'float32', shape: [6, 5], seed: 5 } },
    ];
    const planPath = await writePlan(dir, plan);
    const peer = new Peer(['req', `tcp://127.0.0.1:${server.port}`, planPath]);
    assert.equal(await peer.wait(), 0, peer.stderr);
    assert.deepEqual(
      peer.lines.map((l) => l.reply),
      plan.map(() => 'OK'),
    );
    const out = join(dir, 'out');
    // JPEGs: same bytes, image/jpeg, the original msg in the metadata.
    const cam = await indexOf(join(out, 'pi-1_cam0'));
    assert.equal(cam.length, 3);
    for (const [i, e] of cam.entries()) {
      assert.equal(e.contentType, 'image/jpeg');
      assert.deepEqual(e.meta, { imagezmq: { msg: 'pi-1|cam0' } });
      assert.deepEqual(await readFile(join(out, 'pi-1_cam0', e.name as string)), await readFile(files[i]!));
    }
    const one = async (s: string) => (await indexOf(join(out, s)))[0]!;
    const bgr = await one('pi-1_bgr');
    assert.equal(bgr.contentType, 'raw');
    assert.equal(bgr.pixelFormat, 'bgr24');
    assert.equal(bgr.width, 64);
    assert.equal(bgr.height, 48);
    assert.equal((await one('pi-1_gray')).pixelFormat, 'gray8');
    assert.equal((await one('pi-1_thermal')).pixelFormat, 'gray16le');
    const depth = await one('pi-1_depth');
    assert.equal(depth.contentType, 'application/octet-stream');
    assert.deepEqual(depth.meta, { imagezmq: { msg: 'pi-1|depth', dtype: 'float32', shape: [6, 5] } });
    // numpy compares every array with the one sent (the check reads the index's dtype and shape).
    const renamed = plan.map((p) => ({ ...p, msg: izmqStreamName(p.msg) }));
    const check = new Peer(['check', out, await writePlan(dir, renamed, 'renamed.json')]);
    assert.equal(await check.wait(), 0, JSON.stringify(check.lines) + check.stderr);
    assert.equal(check.lines.at(-1)?.equal, 5);
    const [l] = imageZmqEndpoints(server);
    assert.equal(l?.stats.delivered, plan.length);
  });

  test('malformed messages get an ERR_ reply, nothing is saved, the next good message is served', async () => {
    const refused: FramewireError[] = [];
    const onError = (e: FramewireError) => refused.push(e);
    server.on('frame-error', onError);
    const req = new zmq.Request({ linger: 0, receiveTimeout: 20_000 });
    req.connect(`tcp://127.0.0.1:${server.port}`);
    const ask = async (parts: Buffer[]) => {
      await req.send(parts);
      const [r] = await req.receive();
      return r!.toString();
    };
    const jpg = await solidJpeg(16, 16, [1, 2, 3]);
    const md = (o: unknown) => Buffer.from(JSON.stringify(o));
    const cases: [string, Buffer[]][] = [
      ['ERR_IZMQ_PARTS', [md({ msg: 'bad' })]],
      ['ERR_IZMQ_PARTS', [md({ msg: 'bad' }), jpg, jpg]],
      ['ERR_IZMQ_JSON', [Buffer.from('{"msg": "bad"'), jpg]],
      ['ERR_IZMQ_JSON', [Buffer.from('[1, 2]'), jpg]],
      ['ERR_IZMQ_NO_MSG', [md({ host: 'bad' }), jpg]],
      ['ERR_IZMQ_NO_MSG', [md({ msg: 42 }), jpg]],
      ['ERR_IZMQ_SHAPE', [md({ msg: 'bad', dtype: 'uint8', shape: [4, 4, 3] }), Buffer.alloc(47)]],
      ['ERR_IZMQ_SHAPE', [md({ msg: 'bad', dtype: 'uint8' }), Buffer.alloc(48)]],
      ['ERR_IZMQ_SHAPE', [md({ msg: 'bad', dtype: 'uint8', shape: [4, -1] }), Buffer.alloc(48)]],
      ['ERR_FRAME_TOO_LARGE', [md({ msg: 'bad' }), Buffer.alloc(200_001)]],
      ['ERR_META_TOO_LARGE', [md({ msg: 'x'.repeat(20_000) }), jpg]],
    ];
    try {
      for (const [code, parts] of cases) {
        const reply = await ask(parts);
        assert.ok(reply.startsWith(`${code}: `), `${code} expected, got ${reply}`);
      }
      assert.equal(await ask([md({ msg: 'good' }), jpg]), 'OK');
    } finally {
      req.close();
      server.off('frame-error', onError);
    }
    assert.deepEqual(
      refused.map((e) => e.code),
      cases.map(([c]) => c),
    );
    const names = await readdir(join(dir, 'out'));
    assert.ok(!names.includes('bad'), 'nothing saved for a malformed message');
    assert.equal((await indexOf(join(dir, 'out', 'good'))).length, 1);
  });

  test("a framewire sender's resent frame (same fw epoch and seq) is answered OK and saved once", async () => {
    const req = new zmq.Request({ linger: 0, receiveTimeout: 20_000 });
    req.connect(`tcp://127.0.0.1:${server.port}`);
    const jpg = await solidJpeg(16, 16, [9, 9, 9]);
    const fw = (seq: number) => ({ epoch: 'run-1', seq, name: `f${seq}.jpg` });
    try {
      for (const seq of [0, 1, 1, 0, 2]) {
        await req.send([Buffer.from(JSON.stringify({ msg: 'dup', fw: fw(seq) })), jpg]);
        assert.equal((await req.receive())[0]!.toString(), 'OK');
      }
    } finally {
      req.close();
    }
    const idx = await indexOf(join(dir, 'out', 'dup'));
    assert.deepEqual(
      idx.map((e) => e.name),
      ['f0.jpg', 'f1.jpg', 'f2.jpg'],
    );
    assert.equal(imageZmqEndpoints(server)[0]?.stats.notes.duplicate, 2);
  });
});

describe('Python PUB sender → framewire izmq+sub:// hub (live)', () => {
  test('frames arrive byte-identical in a live stream', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-sub-');
    const files = await jpegs(dir, 4);
    const planPath = await writePlan(
      dir,
      files.map((jpg) => ({ msg: 'pub-cam', jpg })),
    );
    const pub = new Peer(['pub', 'tcp://127.0.0.1:0', planPath]);
    let server: FramewireServer | undefined;
    try {
      const port = await pub.port();
      server = await createServer({
        listen: `izmq+sub://127.0.0.1:${port}`,
        sinks: [await FolderSink.open(join(dir, 'out'))],
      });
      const s = server;
      const modes = new Set<string>();
      s.on('frame', (f) => modes.add(f.stream.mode));
      let n = 0;
      s.on('frame', () => n++);
      await waitFor(() => n >= 6, 20_000, 'six frames from the Python publisher');
      await pub.end();
      await s.close();
      server = undefined;
      assert.deepEqual([...modes], ['live']);
      const wanted = await Promise.all(files.map((f) => readFile(f)));
      const idx = await indexOf(join(dir, 'out', 'pub-cam'));
      assert.ok(idx.length >= 6);
      for (const e of idx) {
        const got = await readFile(join(dir, 'out', 'pub-cam', e.name as string));
        assert.ok(
          wanted.some((w) => w.equals(got)),
          `${e.name} is one of the JPEGs sent`,
        );
      }
    } finally {
      await server?.close();
      await pub.kill();
      await cleanup();
    }
  });
});

describe('the viewer shows an ImageZMQ stream', () => {
  test('GET /api/streams lists it and /streams/NAME.jpg serves its latest JPEG', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-view-');
    const viewer = await createViewer({ host: '127.0.0.1', port: 0 });
    const server = await createServer({ listen: 'izmq://127.0.0.1:0', sinks: [viewer] });
    try {
      const files = await jpegs(dir, 2);
      const planPath = await writePlan(
        dir,
        files.map((jpg) => ({ msg: 'garage|cam1', jpg })),
      );
      const peer = new Peer(['req', `tcp://127.0.0.1:${server.port}`, planPath]);
      assert.equal(await peer.wait(), 0, peer.stderr);
      const fetch = (path: string) =>
        new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
          get(`${viewer.url.replace(/\/$/, '')}${path}`, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                type: String(res.headers['content-type']),
                body: Buffer.concat(chunks),
              }),
            );
          }).on('error', reject);
        });
      const { streams: list } = JSON.parse((await fetch('/api/streams')).body.toString()) as {
        streams: { name: string; frames: number; width: number; height: number; jpeg: string }[];
      };
      const s = list.find((x) => x.name === 'garage_cam1');
      assert.ok(s, `stream listed: ${JSON.stringify(list)}`);
      assert.equal(s.frames, 2);
      assert.equal(s.width, 64);
      assert.equal(s.height, 48);
      assert.equal(s.jpeg, '/streams/garage_cam1.jpg');
      const latest = await fetch(s.jpeg);
      assert.equal(latest.status, 200);
      assert.equal(latest.type, 'image/jpeg');
      assert.deepEqual(latest.body, await readFile(files[1]!));
    } finally {
      await server.close();
      await viewer.close();
      await cleanup();
    }
  });
});

describe('a framewire hub restarted on the same folder', () => {
  test("knows a framewire sender's frames it already saved (from index.jsonl) and does not save them twice", async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-again-');
    const jpg = await solidJpeg(16, 16, [5, 6, 7]);
    const sendAll = async (seqs: number[]) => {
      const server = await createServer({
        listen: 'izmq://127.0.0.1:0',
        sinks: [await FolderSink.open(dir)],
      });
      const req = new zmq.Request({ linger: 0, receiveTimeout: 20_000 });
      req.connect(`tcp://127.0.0.1:${server.port}`);
      try {
        for (const seq of seqs) {
          const fw = { epoch: 'run-7', seq, name: `${seq}.jpg` };
          await req.send([Buffer.from(JSON.stringify({ msg: 'again', fw })), jpg]);
          assert.equal((await req.receive())[0]!.toString(), 'OK');
        }
      } finally {
        req.close();
        await server.close();
      }
    };
    try {
      await sendAll([0, 1, 2]);
      // The reply to 2 was "lost": the sender sends 2 again to the restarted hub, then goes on.
      await sendAll([2, 3]);
      const idx = await indexOf(join(dir, 'again'));
      assert.deepEqual(
        idx.map((e) => [e.seq, e.name]),
        [
          [0, '0.jpg'],
          [1, '1.jpg'],
          [2, '2.jpg'],
          [3, '3.jpg'],
        ],
      );
    } finally {
      await cleanup();
    }
  });
});
