/**
 * framewire as an ImageZMQ sender: `framewire send --to izmq://` into a Python REP hub, raw frames in the
 * send_image form (numpy compares them), `--to izmq+pub://` into a Python SUB hub, and a Python hub killed
 * right after saving a frame and before answering it, then restarted: every frame arrives, none twice.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { run } from '../../../src/cli/run.js';
import { createServer, type FramewireError, ImageZmqSender } from '../../../src/index.js';
import { capture } from '../../helpers/cli.js';
import { hue, solidJpeg } from '../../helpers/images.js';
import { freePort } from '../../helpers/net.js';
import { tempDir } from '../../helpers/tmp.js';
import { Peer, type PlanItem, writePlan } from './python.js';

async function frameFolder(dir: string, n: number): Promise<Map<string, Buffer>> {
  await mkdir(dir, { recursive: true });
  const files = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const data = await solidJpeg(64, 48, hue(i));
    await writeFile(join(dir, `${i}.jpg`), data);
    files.set(`${i}.jpg`, data);
  }
  return files;
}

async function assertSame(dir: string, files: Map<string, Buffer>): Promise<void> {
  const names = (await readdir(dir)).sort();
  assert.deepEqual(names, [...files.keys()].sort(), 'every frame once, nothing else');
  for (const [name, data] of files) assert.deepEqual(await readFile(join(dir, name)), data, name);
}

/** The array plan.json's {"dtype", "shape", "seed"} stands for (peer.py's array_of), as bytes. */
function arrayBytes(dtype: 'uint8' | 'uint16', shape: number[], seed: number): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  const item = dtype === 'uint8' ? 1 : 2;
  const b = Buffer.alloc(n * item);
  for (let k = 0; k < n; k++) {
    const v = Number((BigInt(k) * 7919n + BigInt(seed) * 104729n) % 65521n);
    if (item === 1) b[k] = v % 256;
    else b.writeUInt16LE(v, k * 2);
  }
  return b;
}

describe('framewire sender → Python ImageZMQ hubs', () => {
  test('send DIR --to izmq:// delivers every JPEG byte-identical, in the send_jpg form', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-send-');
    const files = await frameFolder(join(dir, 'cam0'), 5);
    const hub = new Peer(['rep', 'tcp://127.0.0.1:0', join(dir, 'hub'), '--count', '5']);
    try {
      const port = await hub.port();
      const io = capture();
      const code = await run(
        ['send', join(dir, 'cam0'), '--to', `izmq://127.0.0.1:${port}`, '--no-progress'],
        io,
      );
      assert.equal(code, 0, io.err());
      assert.equal(await hub.wait(), 0, hub.stderr);
      await assertSame(join(dir, 'hub', 'cam0'), files);
    } finally {
      await hub.kill();
      await cleanup();
    }
  });

  test('raw frames go in the send_image form; numpy finds the arrays equal', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-raw-');
    const hub = new Peer(['rep', 'tcp://127.0.0.1:0', dir, '--count', '4']);
    let sender: ImageZmqSender | undefined;
    try {
      const port = await hub.port();
      sender = await ImageZmqSender.open(`izmq://127.0.0.1:${port}`);
      const plan: PlanItem[] = [];
      const frames: [string, 'bgr24' | 'gray8' | 'gray16le', 'uint8' | 'uint16', number[]][] = [
        ['color', 'bgr24', 'uint8', [48, 64, 3]],
        ['color', 'bgr24', 'uint8', [48, 64, 3]],
        ['gray', 'gray8', 'uint8', [48, 64]],
        ['thermal', 'gray16le', 'uint16', [24, 32]],
      ];
      for (const [i, [msg, pixelFormat, dtype, shape]] of frames.entries()) {
        const data = arrayBytes(dtype, shape, i);
        const reply = await sender.send(msg, {
          data,
          contentType: 'raw',
          pixelFormat,
          width: shape[1],
          height: shape[0],
        });
        assert.equal(reply?.toString(), 'OK');
        plan.push({ msg, image: { dtype, shape, seed: i } });
      }
      assert.equal(await hub.wait(), 0, hub.stderr);
      const check = new Peer(['check', dir, await writePlan(dir, plan)]);
      assert.equal(await check.wait(), 0, JSON.stringify(check.lines) + check.stderr);
      assert.equal(check.lines.at(-1)?.equal, 4);
    } finally {
      await sender?.close();
      await hub.kill();
      await cleanup();
    }
  });

  test('a raw frame whose size does not match its layout is refused before sending (ERR_BAD_FRAME)', async () => {
    const sender = await ImageZmqSender.open('izmq://127.0.0.1:9');
    try {
      await assert.rejects(
        sender.send('x', {
          data: Buffer.alloc(10),
          contentType: 'raw',
          pixelFormat: 'gray8',
          width: 4,
          height: 4,
        }),
        (e: FramewireError) => e.code === 'ERR_BAD_FRAME',
      );
    } finally {
      await sender.close();
    }
  });

  test('no hub: ERR_UNREACHABLE after the retry time, never a hang', async () => {
    const port = await freePort();
    const sender = await ImageZmqSender.open(`izmq://127.0.0.1:${port}?timeout=100`, { retryForMs: 400 });
    try {
      await assert.rejects(
        sender.send('x', { data: await solidJpeg(8, 8, [0, 0, 0]) }),
        (e: FramewireError) => e.code === 'ERR_UNREACHABLE',
      );
      assert.ok(sender.stats.resends >= 1);
    } finally {
      await sender.close();
    }
  });

  test('send --to izmq+pub:// waits for a subscriber, then a Python SUB hub gets every frame', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-pub-');
    const files = await frameFolder(join(dir, 'cam1'), 6);
    const port = await freePort();
    const io = capture();
    const sending = run(
      ['send', join(dir, 'cam1'), '--to', `izmq+pub://127.0.0.1:${port}`, '--fps', '25', '--no-progress'],
      io,
    );
    const hub = new Peer(['sub', `tcp://127.0.0.1:${port}`, join(dir, 'hub'), '--count', '6']);
    try {
      assert.equal(await sending, 0, io.err());
      assert.equal(await hub.wait(), 0, hub.stderr);
      await assertSame(join(dir, 'hub', 'cam1'), files);
    } finally {
      await hub.kill();
      await cleanup();
    }
  });

  test('a hub killed after saving a frame but before answering, then restarted: every frame once', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-restart-');
    const files = await frameFolder(join(dir, 'cam2'), 12);
    const out = join(dir, 'hub');
    // The first hub saves frame 4 and dies before its OK: the sender's resend of frame 4 must not make a
    // second copy, and the sender must not hang while no hub runs.
    // A port outside the ephemeral range: the sender reconnects to it while no hub runs (see freePort).
    const port = await freePort();
    const first = new Peer(['rep', `tcp://127.0.0.1:${port}`, out, '--die-after', '5']);
    let second: Peer | undefined;
    try {
      await first.port();
      const io = capture();
      const sending = run(
        // --retry-for well past the default 30 s: a Python hub restarting on a machine with two CPU hogs can
        // take longer than that to import numpy and zmq, and the sender must simply keep trying.
        [
          'send',
          join(dir, 'cam2'),
          '--to',
          `izmq://127.0.0.1:${port}?timeout=300`,
          '--retry-for',
          '150',
          '--no-progress',
        ],
        io,
      );
      assert.equal(await first.wait(), 3, first.stderr);
      await new Promise((r) => setTimeout(r, 700));
      second = new Peer(['rep', `tcp://127.0.0.1:${port}`, out, '--count', '8']);
      assert.equal(
        await sending,
        0,
        `${io.err()}\nsecond hub: ${JSON.stringify(second.lines)} ${second.stderr} exit ${second.child.exitCode}`,
      );
      assert.match(io.err(), /sent again after a reply did not come in time/);
      assert.equal(await second.wait(), 0, second.stderr);
      await assertSame(join(out, 'cam2'), files);
    } finally {
      await first.kill();
      await second?.kill();
      await cleanup();
    }
  });
});

describe('bad ImageZMQ URLs and options', () => {
  test('send --to izmq+sub:// is refused with ERR_UNSUPPORTED_SCHEME (a hub endpoint)', async () => {
    const { dir, cleanup } = await tempDir('fw-izmq-bad-');
    try {
      await frameFolder(join(dir, 'cam'), 1);
      const io = capture();
      const code = await run(
        ['send', join(dir, 'cam'), '--to', 'izmq+sub://127.0.0.1:5555', '--no-progress'],
        io,
      );
      assert.equal(code, 2, 'a usage error, like any scheme that cannot take frames');
      assert.match(io.err(), /ERR_UNSUPPORTED_SCHEME/);
    } finally {
      await cleanup();
    }
  });

  test('?timeout=abc, ?kind=bogus and a SUB hub without a port are ERR_BAD_OPTION / ERR_BAD_URL', async () => {
    await assert.rejects(ImageZmqSender.open('izmq://127.0.0.1:5555?timeout=abc'), (e: FramewireError) => {
      return e.code === 'ERR_BAD_OPTION';
    });
    await assert.rejects(createServer({ listen: 'izmq://127.0.0.1:0?kind=bogus' }), (e: FramewireError) => {
      return e.code === 'ERR_BAD_OPTION';
    });
    await assert.rejects(createServer({ listen: 'izmq+sub://127.0.0.1:0' }), (e: FramewireError) => {
      return e.code === 'ERR_BAD_URL';
    });
  });
});
