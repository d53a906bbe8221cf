/**
 * What a connection may make the receiver hold before it authenticated (nothing beyond control messages),
 * and the server-wide budget for messages still arriving (maxPartialBytes). Over real TCP; the memory test
 * runs the receiver in a child process so that its RSS is its own.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import type net from 'node:net';
import { test } from 'node:test';
import { createServer } from '../../src/index.js';
import { MessageType } from '../../src/protocol/constants.js';
import { encodeControl, encodeFrame, toBytes } from '../../src/protocol/messages.js';
import { rawPeer, writeOrWait } from '../helpers/net.js';
import { waitFor } from '../helpers/tmp.js';

const TOKEN = 'intake-test-token';
const MB = 1024 * 1024;

/** A FRAME header (12 bytes) announcing `body` bytes of payload after a 32-byte head. */
function frameHeader(body: number): Buffer {
  const h = Buffer.alloc(12);
  h.write('FW', 0, 'latin1');
  h[2] = 1;
  h[3] = MessageType.FRAME;
  h.writeUInt16BE(32, 6);
  h.writeUInt32BE(body, 8);
  return h;
}

/** Writes `total` zero bytes with backpressure, stopping early when the socket closes. */
async function streamZeros(sock: net.Socket, total: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024);
  for (let sent = 0; sent < total && !sock.destroyed && sock.writable; sent += chunk.length) {
    await writeOrWait(sock, chunk);
  }
}

function ask<T>(child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as T));
    child.send(what);
  });
}

test('8 connections announcing 60 MB frames without HELLO or AUTH: refused from the header, RSS grows < 16 MB', async () => {
  const child = fork(
    new URL('./fixtures/receiver-child.ts', import.meta.url).pathname,
    [JSON.stringify({ token: TOKEN })],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  try {
    const { port } = await new Promise<{ port: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { port: number }));
      child.once('exit', (code) => reject(new Error(`the receiver exited with ${code}`)));
    });
    // Warm up what a refusal runs (code compiled on first use), without streaming anything.
    const warm = await rawPeer(port);
    warm.sock.write(frameHeader(60_000_000));
    await waitFor(() => warm.isClosed(), 10_000, 'the warm-up refusal').catch(() => warm.sock.destroy());
    const before = await ask<{ maxRss: number }>(child, 'rss');
    const peers = await Promise.all(Array.from({ length: 8 }, () => rawPeer(port)));
    // Each announces a 60 MB frame and streams 12 MB of it (96 MB in all, were they held).
    await Promise.all(
      peers.map(async (p) => {
        p.sock.write(frameHeader(60_000_000));
        await streamZeros(p.sock, 12 * MB);
      }),
    );
    const afterAttack = await ask<{ maxRss: number; warnings: string[]; partial: number }>(child, 'rss');
    const grew = afterAttack.maxRss - before.maxRss;
    assert.ok(grew < 16 * MB, `the receiver's peak RSS grew by ${(grew / MB).toFixed(1)} MB`);
    // Every connection is told why and closed (within the receiver's 2 s grace for peers that keep writing).
    await waitFor(() => peers.every((p) => p.isClosed()), 15_000, 'the receiver closing every connection');
    for (const p of peers) assert.equal(p.errorCode(), 'ERR_EARLY_DATA');
    // The receiver reports a refusal when its side of the socket has closed, which can come just after the
    // peer saw the close: ask until all nine (the warm-up and the eight) are in, or the deadline passes.
    let end = await ask<{ warnings: string[]; partial: number }>(child, 'rss');
    const early = () => end.warnings.filter((c) => c === 'ERR_EARLY_DATA').length;
    for (const deadline = Date.now() + 10_000; early() < 9 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      end = await ask<{ warnings: string[]; partial: number }>(child, 'rss');
    }
    assert.equal(early(), 9);
    assert.equal(end.partial, 0, 'nothing of the budget is held after the connections went');
    console.log(`# the receiver's peak RSS grew by ${(grew / MB).toFixed(1)} MB`);
  } finally {
    child.send('close');
    await new Promise((r) => child.once('exit', r));
  }
});

test('before HELLO (no token) a FRAME or MESSAGE header is refused; a big control message too', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', limits: { maxControlBytes: 1000 } });
  const warnings: string[] = [];
  server.on('warning', (w) => warnings.push(w.code));
  const a = await rawPeer(server.port);
  a.sock.write(frameHeader(1000));
  const b = await rawPeer(server.port);
  // A MESSAGE header: type 0x11, head 18, body 10.
  const m = Buffer.alloc(12);
  m.write('FW', 0, 'latin1');
  m[2] = 1;
  m[3] = MessageType.MESSAGE;
  m.writeUInt16BE(18, 6);
  m.writeUInt32BE(10, 8);
  b.sock.write(m);
  const c = await rawPeer(server.port);
  const hello = toBytes(
    encodeControl(MessageType.HELLO, { protocol: 1, client: 'x'.repeat(2000), epoch: 'e', streams: [] }),
  );
  c.sock.write(hello.subarray(0, 12));
  await waitFor(() => a.isClosed() && b.isClosed() && c.isClosed(), 10_000, 'three refusals');
  assert.equal(a.errorCode(), 'ERR_EARLY_DATA');
  assert.equal(b.errorCode(), 'ERR_EARLY_DATA');
  assert.equal(c.errorCode(), 'ERR_MESSAGE_TOO_LARGE');
  // After HELLO, frames right behind it in the same write are read.
  const frames: number[] = [];
  server.on('frame', (f) => frames.push(f.seq));
  const d = await rawPeer(server.port);
  const decl = { id: 1, name: 'cam', kind: 'other', mode: 'reliable', epoch: 'e' };
  d.sock.write(
    toBytes(encodeControl(MessageType.HELLO, { protocol: 1, client: 'x', epoch: 'e', streams: [decl] })),
  );
  await waitFor(() => d.got.some((x) => x.type === MessageType.WELCOME), 5000, 'WELCOME');
  d.sock.write(
    toBytes(
      encodeFrame({
        streamId: 1,
        seq: 0,
        captureUs: 0,
        contentType: 'image/jpeg',
        payload: Buffer.alloc(5000, 1),
      }),
    ),
  );
  await waitFor(() => frames.length === 1, 5000, 'the frame after the handshake');
  d.sock.destroy();
  await server.close();
});

test('maxPartialBytes bounds what all connections hold of frames still arriving', async () => {
  const maxFrameBytes = MB;
  // Room for two frames of 1 MB still arriving, not three.
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    limits: { maxFrameBytes },
    maxPartialBytes: 2 * MB + 0x10000 * 2 + 1000,
  });
  assert.equal(server.options.maxPartialBytes, 2 * MB + 0x10000 * 2 + 1000);
  const frames: string[] = [];
  server.on('frame', (f) => frames.push(f.stream.name));
  const budget = (server as unknown as { partialBudget: { used: number } }).partialBudget;
  const disconnects: string[] = [];
  server.on('disconnect', (_c, err) => disconnects.push(err?.code ?? 'none'));
  const peers: Awaited<ReturnType<typeof rawPeer>>[] = [];
  for (let i = 0; i < 3; i++) {
    const p = await rawPeer(server.port);
    const decl = { id: 1, name: `s${i}`, kind: 'other', mode: 'reliable', epoch: `e${i}` };
    p.sock.write(
      toBytes(
        encodeControl(MessageType.HELLO, { protocol: 1, client: 'x', epoch: `e${i}`, streams: [decl] }),
      ),
    );
    await waitFor(() => p.got.some((x) => x.type === MessageType.WELCOME), 5000, 'WELCOME');
    peers.push(p);
  }
  const whole = peers.map((_, i) =>
    toBytes(
      encodeFrame({
        streamId: 1,
        seq: 0,
        captureUs: 0,
        contentType: 'image/jpeg',
        payload: Buffer.alloc(MB - 100, i),
      }),
    ),
  );
  // The first two send half of their frame: both are held.
  for (let i = 0; i < 2; i++) peers[i]!.sock.write(whole[i]!.subarray(0, MB / 2));
  await waitFor(() => budget.used > 2 * (MB - 100), 5000, 'two frames held');
  // The third's would go over: refused, and only that connection.
  peers[2]!.sock.write(whole[2]!.subarray(0, MB / 2));
  await waitFor(() => peers[2]!.isClosed(), 10_000, 'the third connection closed');
  assert.equal(peers[2]!.errorCode(), 'ERR_RECEIVER_BUSY');
  // The first two complete their frames; the budget is given back.
  for (let i = 0; i < 2; i++) peers[i]!.sock.write(whole[i]!.subarray(MB / 2));
  await waitFor(() => frames.length === 2, 5000, 'the first two frames');
  assert.deepEqual(frames.sort(), ['s0', 's1']);
  assert.equal(budget.used, 0);
  // A connection that goes in the middle of a frame gives its share back too.
  peers[0]!.sock.write(
    toBytes(
      encodeFrame({
        streamId: 1,
        seq: 1,
        captureUs: 0,
        contentType: 'image/jpeg',
        payload: Buffer.alloc(MB - 100, 7),
      }),
    ).subarray(0, 1000),
  );
  await waitFor(() => budget.used > 0, 5000, 'a frame held');
  peers[0]!.sock.destroy();
  await waitFor(() => budget.used === 0, 5000, 'the budget given back after the connection went');
  await waitFor(() => disconnects.includes('ERR_RECEIVER_BUSY'), 5000, 'the disconnect event');
  for (const p of peers) p.sock.destroy();
  await server.close();
});

test('maxPartialBytes below one largest message is ERR_BAD_OPTION', async () => {
  await assert.rejects(
    createServer({ listen: 'tcp://127.0.0.1:0', limits: { maxFrameBytes: MB }, maxPartialBytes: MB }),
    { code: 'ERR_BAD_OPTION', message: /maxPartialBytes/ },
  );
});
