/** udp://: the transport contract, the datagram layer's parts, and sessions over an impaired path. */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  connect,
  createServer,
  FramewireError,
  type ReceivedFrame,
  type Sink,
  type StreamInfo,
} from '../../src/index.js';
import { DEFAULT_LIMITS, MessageType } from '../../src/protocol/constants.js';
import { encodeFrame, type Message } from '../../src/protocol/messages.js';
import { parseByteSize } from '../../src/sizes.js';
import type { TransportOptions } from '../../src/transports/types.js';
import { deriveKeys, sealDatagram } from '../../src/transports/udp/aead.js';
import * as D from '../../src/transports/udp/datagram.js';
import { fragmentBounds, planFragments, sliceParts, strideOf } from '../../src/transports/udp/fragmenter.js';
import { type UdpConnection, type UdpListener, udpTransport } from '../../src/transports/udp/index.js';
import { parseUdpOptions } from '../../src/transports/udp/options.js';
import { Reassembler } from '../../src/transports/udp/reassembler.js';
import { ReceiveWindow } from '../../src/transports/udp/receive-window.js';
import { SendWindow } from '../../src/transports/udp/sender-window.js';
import { payload, waitFor } from '../helpers/tmp.js';
import { prng, startUdpProxy, type UdpProxy } from '../helpers/udp-proxy.js';
import { transportContract } from './contract.js';

// A small reassembly cap on the receiver makes the backpressure test reach the sender's queue.
transportContract({ scheme: 'udp', listenQuery: 'reassembly=6MiB' });

const OPTS: TransportOptions = { limits: { ...DEFAULT_LIMITS }, connectTimeoutMs: 5000 };
const hex = (parts: Buffer | Buffer[]) =>
  (Array.isArray(parts) ? Buffer.concat(parts) : parts).toString('hex');

/** Runs `fn`; when it fails, the proxy's seed and counts are added to the error, so the run can be repeated. */
async function withSeed<T>(proxy: UdpProxy, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) err.message += `\n${proxy.describe()}`;
    throw err;
  }
}

describe('udp datagram layer', () => {
  test('the layout matches the hex vectors of docs/protocol.md, both ways', () => {
    const session = 0x0a0b0c0d;
    const data = D.encodeData(
      session,
      { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: D.DataFlags.LIVE, budgetMs: 120 },
      [Buffer.from('dead', 'hex')],
    );
    assert.equal(hex(data), '465501010a0b0c0ddbd29163000000070000000300000001000000020000000501000078dead');
    const d = D.decodeData(Buffer.concat(data))!;
    assert.deepEqual(
      { ...d, fragment: d.fragment.toString('hex') },
      { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: 1, budgetMs: 120, fragment: 'dead' },
    );
    const ack = {
      cumulative: 7,
      window: 1048576,
      newest: 9,
      delayUs: 250,
      drops: 1,
      repairs: 2,
      sack: [[9, 10]] as Array<[number, number]>,
      dropped: [3],
    };
    const a = D.encodeAck(session, ack);
    assert.equal(
      hex(a),
      '465501020a0b0c0de42fa72b000000070010000000000009000000fa000000010000000201010000000000090000000a00000003',
    );
    assert.deepEqual(D.decodeAck(a), ack);
    const nack = D.encodeNack(session, [[7, 9]]);
    assert.equal(hex(nack), '465501030a0b0c0d2fea4746000100000000000700000009');
    assert.deepEqual(D.decodeNack(nack), [[7, 9]]);
    const drop = D.encodeDrop(session, { first: 7, end: 9, msg: 3 });
    assert.equal(hex(drop), '465501040a0b0c0df572de7b000000070000000900000003');
    assert.deepEqual(D.decodeDrop(drop), { first: 7, end: 9, msg: 3 });
    const req = D.encodeHandshake(D.DatagramType.HS_REQUEST, 0, {
      nonce: 0x11223344,
      mtu: 1200,
      rcvbuf: 8388608,
    });
    assert.equal(hex(req), '4655011000000000e5ef7cdf1122334404b00000008000000000000000000000');
    assert.deepEqual(D.decodeHandshake(req), { nonce: 0x11223344, mtu: 1200, rcvbuf: 8388608 });
    const cookie = D.encodeHandshake(D.DatagramType.HS_COOKIE, session, {
      nonce: 0x11223344,
      mtu: 65507,
      rcvbuf: 8388608,
    });
    assert.equal(hex(cookie), '465501110a0b0c0d3699a63311223344ffe30000008000000000000000000000');
    assert.ok(cookie.length <= req.length, 'an answer is never larger than the request (no amplification)');
    assert.equal(hex(D.encodeKeepalive(session, 1)), '465501050a0b0c0dac1ea0f501000000');
    assert.equal(hex(D.encodeClose(session, 0)), '4655011e0a0b0c0d3a371b3c00000000');
    assert.equal(hex(D.encodeReset(session)), '4655011f0a0b0c0d633d3dd1');
    for (const b of [Buffer.concat(data), a, nack, drop, req, cookie]) {
      assert.ok(D.crcOk(b));
      assert.deepEqual(D.peekCommon(b)?.session, b === req ? 0 : session);
    }
  });

  test('docs/protocol.md gives exactly these bytes', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('\n## UDP\n'), doc.indexOf('\n## Test vectors'));
    const s = 0x0a0b0c0d;
    const vectors = [
      D.encodeData(s, { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: 1, budgetMs: 120 }, [
        Buffer.from('dead', 'hex'),
      ]),
      D.encodeAck(s, {
        cumulative: 7,
        window: 1048576,
        newest: 9,
        delayUs: 250,
        drops: 1,
        repairs: 2,
        sack: [[9, 10]],
        dropped: [3],
      }),
      D.encodeHandshake(D.DatagramType.HS_REQUEST, 0, { nonce: 0x11223344, mtu: 1200, rcvbuf: 8388608 }),
      // The sealed vector: the DATA above, client to server, counter 7 (udp-crypto.test.ts checks the keys).
      sealDatagram(
        deriveKeys(
          'framewire-test-token',
          Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
          Buffer.from('101112131415161718191a1b1c1d1e1f', 'hex'),
        ).c2s,
        7,
        D.encodeData(s, { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: 1, budgetMs: 120 }, [
          Buffer.from('dead', 'hex'),
        ]),
      ),
    ].map(hex);
    // The annotated blocks: hex groups, then two spaces and a note, on every line.
    const blocks = [...section.matchAll(/```\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .filter((b) => /^[0-9a-f]{2} /.test(b))
      .map((b) =>
        b
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => l.split(/\s{2,}/)[0]!.replace(/ /g, ''))
          .join(''),
      );
    assert.deepEqual(blocks, vectors);
    for (const v of [
      ...vectors.slice(0, 2),
      hex(D.encodeNack(s, [[7, 9]])),
      hex(D.encodeDrop(s, { first: 7, end: 9, msg: 3 })),
      hex(D.encodeKeepalive(s, 1)),
      hex(D.encodeClose(s, 0)),
      hex(D.encodeReset(s)),
      hex(D.encodeHandshake(D.DatagramType.HS_COOKIE, s, { nonce: 0x11223344, mtu: 65507, rcvbuf: 8388608 })),
    ]) {
      assert.ok(section.includes(`\`${v}\``), `docs/protocol.md shows ${v}`);
    }
  });

  test('a changed byte anywhere in a datagram fails its CRC32; junk never decodes', () => {
    const data = Buffer.concat(
      D.encodeData(0x01020304, { pkt: 1, msg: 1, index: 0, count: 1, length: 64, flags: 0, budgetMs: 0 }, [
        payload(1, 64),
      ]),
    );
    for (let i = 0; i < data.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(data);
        bad[i] = bad[i]! ^ x;
        assert.equal(D.crcOk(bad), false, `byte ${i} ^ ${x}`);
      }
    }
    const random = prng(42);
    for (let i = 0; i < 2000; i++) {
      const junk = Buffer.alloc(Math.floor(random() * 80));
      for (let k = 0; k < junk.length; k++) junk[k] = Math.floor(random() * 256);
      if (D.peekCommon(junk)) assert.equal(D.crcOk(junk), false);
    }
    assert.equal(D.peekCommon(Buffer.from('GET / HTTP/1.1\r\n')), undefined);
    // Fields that do not fit together are refused before anything is allocated.
    const h = { pkt: 1, msg: 1, index: 2, count: 2, length: 10, flags: 0, budgetMs: 0 };
    assert.equal(D.decodeData(Buffer.concat(D.encodeData(1, h, [Buffer.alloc(5)]))), undefined);
    assert.equal(D.decodeData(Buffer.concat(D.encodeData(1, { ...h, index: 0, count: 11 }, []))), undefined);
  });

  test('32-bit sequence numbers unwrap around the reference', () => {
    assert.equal(D.unwrap32(5, 3), 5);
    assert.equal(D.unwrap32(2, 2 ** 32 + 10), 2 ** 32 + 2);
    assert.equal(D.unwrap32(0xfffffff0, 2 ** 32 + 5), 0xfffffff0);
    assert.equal(D.unwrap32(3, 2 ** 32 - 2), 2 ** 32 + 3);
  });

  test('fragment plans cover every message exactly, the receiver derives the same stride', () => {
    for (let maxPayload = 1; maxPayload <= 40; maxPayload++) {
      for (let length = 1; length <= 400; length++) {
        const { count, stride } = planFragments(length, maxPayload);
        assert.equal(strideOf(length, count), stride, `length ${length}, payload ${maxPayload}`);
        assert.ok(stride <= maxPayload);
        let covered = 0;
        for (let i = 0; i < count; i++) {
          const [s, e] = fragmentBounds(length, stride, i);
          assert.equal(s, covered);
          assert.ok(e > s, 'no empty fragment');
          covered = e;
        }
        assert.equal(covered, length);
      }
    }
    const parts = [Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('ij')];
    assert.equal(Buffer.concat(sliceParts(parts, 2, 9)).toString(), 'cdefghi');
    assert.equal(Buffer.concat(sliceParts(parts, 3, 8)).toString(), 'defgh');
    assert.equal(strideOf(5, 0), undefined);
    assert.equal(strideOf(3, 5), undefined);
  });

  test('the receive window finds duplicates, missing and received ranges', () => {
    const w = new ReceiveWindow();
    for (const p of [0, 1, 2, 5, 6, 9]) assert.equal(w.mark(p), true);
    assert.equal(w.mark(5), false, 'duplicate');
    assert.equal(w.cumulative, 3);
    assert.equal(w.missing, 4);
    assert.deepEqual(w.ranges(16, 16), {
      received: [
        [5, 7],
        [9, 10],
      ],
      missing: [
        [3, 5],
        [7, 9],
      ],
    });
    w.markRange(3, 5);
    assert.equal(w.cumulative, 7);
    assert.ok(w.has(4) && !w.has(8) && w.has(9));
    assert.ok(w.tooFar(7 + (1 << 17)));
    for (let p = 7; p < 5000; p++) if (p !== 9) w.mark(p);
    assert.equal(w.cumulative, 5000);
    assert.equal(w.missing, 0);
  });

  test('reassembly: reliable in order, live at once, memory capped, budget back to zero', () => {
    const budget = { used: 0, cap: 100_000 };
    const out: string[] = [];
    const ra = new Reassembler({
      maxBytes: 50_000,
      maxMessageBytes: 80_000,
      budget,
      deliver: (b) => {
        out.push(b.toString());
        ra.release(b.length);
      },
    });
    const frag = (live: boolean, msg: number, text: string, pkt: number, index = 0, count = 1) => {
      const length = count === 1 ? text.length : 20;
      const stride = strideOf(length, count)!;
      const [s, e] = fragmentBounds(length, stride, index);
      const body = count === 1 ? Buffer.from(text) : Buffer.from(text.padEnd(20, '.')).subarray(s, e);
      const d = D.decodeData(
        Buffer.concat(
          D.encodeData(
            1,
            { pkt, msg, index, count, length, flags: live ? D.DataFlags.LIVE : 0, budgetMs: 50 },
            [body],
          ),
        ),
      )!;
      return ra.add(d, pkt, 0);
    };
    assert.equal(frag(false, 1, 'r1', 1), 'ok');
    assert.deepEqual(out, [], 'reliable 1 waits for 0');
    assert.equal(frag(true, 0, 'l0', 2), 'ok');
    assert.deepEqual(out, ['l0'], 'a live message is not held back');
    assert.equal(frag(false, 0, 'r0', 0), 'ok');
    assert.deepEqual(out, ['l0', 'r0', 'r1']);
    assert.equal(frag(false, 0, 'r0', 0), 'duplicate');
    assert.equal(frag(true, 0, 'l0', 2), 'duplicate');
    // Two fragments; the live one expires whole.
    assert.equal(frag(true, 1, 'live-two-fragments', 10, 0, 2), 'ok');
    assert.equal(ra.expire(10).length, 0);
    assert.deepEqual(
      ra.expire(100).map((x) => x.seq),
      [1],
    );
    assert.equal(frag(true, 1, 'live-two-fragments', 11, 1, 2), 'duplicate', 'given up is given up');
    // Memory: a later reliable message that does not fit is refused, the next one in order never is.
    const big = (msg: number, pkt: number, length: number, index: number) =>
      ra.add(
        D.decodeData(
          Buffer.concat(
            D.encodeData(1, { pkt, msg, index, count: 2, length, flags: 0, budgetMs: 0 }, [
              Buffer.alloc(length / 2),
            ]),
          ),
        )!,
        pkt,
        0,
      );
    assert.equal(big(3, 20, 40_000, 0), 'ok');
    assert.equal(big(4, 22, 40_000, 0), 'refused', 'over maxBytes');
    assert.equal(big(2, 24, 40_000, 0), 'ok', 'the next reliable message is always admitted');
    assert.equal(big(2, 25, 40_000, 1), 'ok');
    assert.equal(big(3, 21, 40_000, 1), 'ok');
    assert.equal(out.length, 5);
    assert.equal(budget.used, 0);
    assert.throws(
      () => big(4, 26, 60_000, 0),
      (e: unknown) => e instanceof FramewireError && e.code === 'ERR_REASSEMBLY_LIMIT',
    );
    ra.clear();
    assert.equal(budget.used, 0);
  });

  test('congestion: the window shrinks on a loss, once per round trip, and grows again with ACKs', () => {
    const sent: Buffer[] = [];
    const w = new SendWindow({
      session: 1,
      mtu: 1200,
      rateBytesPerSec: 0,
      peerRcvbuf: 8 * 1024 * 1024,
      defaultLatencyMs: 120,
      emit: (parts) => sent.push(Buffer.concat(parts)),
      initialRttMs: 10,
    });
    let now = 1000;
    w.enqueue([payload(1, 2_000_000)], undefined, now);
    while (w.pump(now) === 0) now += 0.01;
    const first = sent.length;
    assert.ok(first > 10 && first < 2_000_000 / 1164, `the window holds back the rest (${first} sent)`);
    const cwnd0 = w.stats().cwndBytes;
    const ack = (cumulative: number) =>
      w.onAck(
        {
          cumulative,
          window: 1e9,
          newest: cumulative - 1,
          delayUs: 0,
          drops: 0,
          repairs: 0,
          sack: [],
          dropped: [],
        },
        now,
      );
    // Packet 3 lost: a NACK for it reduces the window, a second NACK in the same round trip does not.
    now += 10;
    w.onNack([[3, 4]], now);
    const cwnd1 = w.stats().cwndBytes;
    assert.ok(cwnd1 < cwnd0, `${cwnd1} < ${cwnd0}`);
    assert.equal(w.stats().lossEvents, 1);
    w.onNack([[5, 6]], now);
    assert.equal(w.stats().cwndBytes, cwnd1, 'one reduction per round trip');
    w.pump(now);
    assert.equal(w.stats().retransmits, 2, 'both NACKed packets resent at once');
    // Everything acknowledged, round after round: the window grows back past where it was.
    let acked = sent.length - 2;
    for (let round = 0; round < 40 && w.stats().cwndBytes <= cwnd0; round++) {
      now += 10;
      ack(acked);
      while (w.pump(now) === 0) now += 0.01;
      acked = new Set(sent.map((b) => D.decodeData(b)?.pkt ?? -1)).size - 1;
    }
    assert.ok(w.stats().cwndBytes > cwnd0, `the window grew back (${w.stats().cwndBytes} > ${cwnd0})`);
  });

  test('options: mtu bounds, sizes and rates', () => {
    const u = (q: string) => parseUdpOptions(new URL(`udp://h:1?${q}`), { ...DEFAULT_LIMITS });
    assert.equal(u('').mtu, 1200);
    assert.equal(parseUdpOptions(new URL('udp://h:1'), { ...DEFAULT_LIMITS }, 'listen').mtu, 65507);
    assert.equal(u('mtu=9000').mtu, 9000);
    assert.throws(() => u('mtu=70000'), { code: 'ERR_DATAGRAM_TOO_LARGE' });
    assert.throws(() => u('mtu=100'), { code: 'ERR_BAD_OPTION' });
    assert.equal(u('rate=50MB').rateBytesPerSec, 50_000_000);
    assert.equal(u('rate=50MB/s').rateBytesPerSec, 50_000_000);
    assert.equal(u('latency=200').latencyMs, 200);
    assert.equal(parseByteSize('8MiB', 'x'), 8 * 1024 * 1024);
    assert.throws(() => u('rate=fast'), { code: 'ERR_BAD_OPTION' });
    assert.ok(u('').maxReassemblyBytes > DEFAULT_LIMITS.maxFrameBytes);
  });
});

/** Collects frames; a resume point kept across server restarts, as a folder sink would. */
function memorySink(store: Map<string, Buffer[]>): Sink {
  return {
    resumePoint: async (s: StreamInfo) => store.get(s.name)?.length ?? 0,
    frame: (f: ReceivedFrame) => {
      const list = store.get(f.stream.name) ?? [];
      if (f.seq !== list.length) throw new Error(`sink got seq ${f.seq}, expected ${list.length}`);
      list.push(Buffer.from(f.data));
      store.set(f.stream.name, list);
    },
  };
}

describe('udp sessions over an impaired path', () => {
  test('reliable: 10% loss, 5% duplication and reordering both ways: 300 frames exactly once, in order, byte-identical', async () => {
    const server = await createServer({ listen: 'udp://127.0.0.1:0' });
    const imp = { loss: 0.1, duplicate: 0.05, reorder: 0.05, reorderMs: 3, jitterMs: 1 };
    const proxy = await startUdpProxy({ target: server.port, up: imp, down: { ...imp } });
    const frames: ReceivedFrame[] = [];
    server.on('frame', (f) => frames.push(f));
    const size = (i: number) => 1000 + ((i * 7919) % 40_000);
    try {
      await withSeed(proxy, async () => {
        const client = await connect(`udp://127.0.0.1:${proxy.port}`, { retryForMs: 20_000 });
        const st = client.stream('cam0');
        for (let i = 0; i < 300; i++) await st.send({ data: payload(i, size(i)), name: `${i}.jpg` });
        const stats = await client.close();
        assert.equal(stats.framesAcked, 300);
        assert.equal(frames.length, 300);
        frames.forEach((f, i) => {
          assert.equal(f.seq, i);
          assert.ok(f.data.equals(payload(i, size(i))), `frame ${i} byte-identical`);
        });
        assert.ok(proxy.stats.up.dropped > 100, 'the proxy did lose datagrams');
      });
    } finally {
      await server.close();
      await proxy.close();
    }
  });

  test('live: 5% loss, 200 ms budget, 30 fps: at least 95% of frames whole, none corrupt', async () => {
    const server = await createServer({ listen: 'udp://127.0.0.1:0' });
    const imp = { loss: 0.05, delayMs: 2, jitterMs: 1 };
    const proxy = await startUdpProxy({ target: server.port, up: imp, down: { ...imp } });
    const frames: ReceivedFrame[] = [];
    server.on('frame', (f) => frames.push(f));
    const N = 120;
    const size = (i: number) => 40_000 + (i % 7) * 1000;
    try {
      await withSeed(proxy, async () => {
        const client = await connect(`udp://127.0.0.1:${proxy.port}`, { latencyMs: 200 });
        let drops = 0;
        client.on('drop', () => drops++);
        const st = client.stream('cam0', { mode: 'live' });
        for (let i = 0; i < N; i++) {
          await st.send({ data: payload(i, size(i)) });
          await new Promise((r) => setTimeout(r, 33));
        }
        const stats = await client.close();
        for (const f of frames)
          assert.ok(f.data.equals(payload(f.seq, size(f.seq))), `frame ${f.seq} is whole`);
        const seqs = frames.map((f) => f.seq);
        assert.deepEqual(
          seqs,
          [...seqs].sort((a, b) => a - b),
          'never older after newer',
        );
        assert.ok(frames.length >= 0.95 * N, `${frames.length} of ${N} frames delivered (${drops} drops)`);
        assert.equal(stats.framesDropped, drops, 'every drop is counted');
      });
    } finally {
      await server.close();
      await proxy.close();
    }
  });

  test('corrupted datagrams never produce a corrupt frame', async () => {
    const server = await createServer({ listen: 'udp://127.0.0.1:0' });
    const proxy = await startUdpProxy({
      target: server.port,
      up: { corrupt: 0.08, loss: 0.02 },
      down: { corrupt: 0.08 },
    });
    const frames: ReceivedFrame[] = [];
    const warnings: string[] = [];
    server.on('frame', (f) => frames.push(f));
    server.on('warning', (e) => warnings.push(e.message));
    try {
      await withSeed(proxy, async () => {
        const client = await connect(`udp://127.0.0.1:${proxy.port}`, { retryForMs: 20_000 });
        const st = client.stream('cam0');
        for (let i = 0; i < 150; i++) await st.send({ data: payload(i, 20_000 + i) });
        const stats = await client.close();
        assert.equal(stats.reconnects, 0, 'no connection was lost to a bad frame');
        assert.equal(frames.length, 150);
        for (const f of frames) assert.ok(f.data.equals(payload(f.seq, 20_000 + f.seq)));
        assert.ok(proxy.stats.up.corrupted > 50, 'the proxy did corrupt datagrams');
        assert.deepEqual(
          warnings.filter((w) => w.includes('CRC')),
          [],
        );
      });
    } finally {
      await server.close();
      await proxy.close();
    }
  });

  test('a receiver restart mid-stream is survived: every frame once, in order', async () => {
    const store = new Map<string, Buffer[]>();
    let server = await createServer({ listen: 'udp://127.0.0.1:0', sinks: [memorySink(store)] });
    const port = server.port;
    const proxy = await startUdpProxy({ target: port, up: { loss: 0.02 }, down: { loss: 0.02 } });
    try {
      await withSeed(proxy, async () => {
        const client = await connect(`udp://127.0.0.1:${proxy.port}`, {
          retryForMs: 30_000,
          maxBackoffMs: 300,
        });
        const st = client.stream('cam0');
        const size = (i: number) => 5000 + (i % 13) * 700;
        let restarted = false;
        for (let i = 0; i < 200; i++) {
          await st.send({ data: payload(i, size(i)) });
          if (i === 80 && !restarted) {
            restarted = true;
            await server.close();
            server = await createServer({ listen: `udp://127.0.0.1:${port}`, sinks: [memorySink(store)] });
          }
        }
        const stats = await client.close();
        assert.ok(stats.reconnects >= 1, 'the sender reconnected');
        const got = store.get('cam0') ?? [];
        assert.equal(got.length, 200);
        for (const [i, b] of got.entries()) assert.ok(b.equals(payload(i, size(i))), `frame ${i}`);
      });
    } finally {
      await server.close();
      await proxy.close();
    }
  });
});

describe('udp transport specifics', () => {
  test('large datagrams: a 4 MiB raw frame and 4K frames over mtu 65000', async () => {
    const server = await createServer({ listen: 'udp://127.0.0.1:0' });
    const frames: ReceivedFrame[] = [];
    server.on('frame', (f) => frames.push(f));
    try {
      const client = await connect(`udp://127.0.0.1:${server.port}?mtu=65000`);
      const st = client.stream('raw');
      const sizes = [4 * 1024 * 1024, 425_000, 425_000, 1, 65_000 - 36];
      for (const [i, n] of sizes.entries()) await st.send({ data: payload(i, n), contentType: 'raw' });
      await client.close();
      assert.equal(frames.length, sizes.length);
      for (const [i, f] of frames.entries()) assert.ok(f.data.equals(payload(i, sizes[i]!)));
    } finally {
      await server.close();
    }
  });

  test('a flood of junk datagrams costs nothing: the transfer goes on, no state, no memory', async () => {
    const got: Message[] = [];
    let serverConn: UdpConnection | undefined;
    const listener = (await udpTransport.listen(new URL('udp://127.0.0.1:0'), OPTS, (c) => {
      serverConn = c as UdpConnection;
      c.on('message', (m) => got.push(m));
    })) as UdpListener;
    const client = await udpTransport.connect(new URL(`udp://127.0.0.1:${listener.port}`), OPTS);
    const junk = dgram.createSocket('udp4');
    try {
      await waitFor(() => serverConn !== undefined, 5000, 'the server side');
      const random = prng(7);
      const session = serverConn!.session;
      let sent = 0;
      const flood = async () => {
        // Paced, 25 per turn of the event loop: this process is also the receiver, and libuv reads at most
        // 32 datagrams per turn; faster, the kernel drops the excess before anything here sees it.
        for (let round = 0; round < 400; round++) {
          for (let k = 0; k < 25; k++) {
            const len = 12 + Math.floor(random() * 1200);
            const b = Buffer.alloc(len);
            for (let j = 0; j < len; j += 4)
              b.writeUInt32LE(Math.floor(random() * 2 ** 32) >>> 0, Math.min(j, len - 4));
            const kind = k % 4;
            if (kind > 0) {
              b[0] = 0x46;
              b[1] = 0x55;
              b[2] = 1;
            }
            // Kind 2: our own session id from another address; kind 3: an unknown session id.
            if (kind === 2) b.writeUInt32BE(session, 4);
            if (kind === 1) b.writeUInt32BE(0, 4);
            junk.send(b, listener.port, '127.0.0.1');
            sent++;
          }
          await new Promise((r) => setImmediate(r));
        }
      };
      const frames = Array.from({ length: 100 }, (_, i) =>
        encodeFrame({ streamId: 0, seq: i, captureUs: 0, contentType: 'raw', payload: payload(i, 30_000) }),
      );
      await Promise.all([
        flood(),
        (async () => {
          for (const f of frames) {
            if (!client.send(f)) await new Promise((r) => client.once('drain', r));
          }
        })(),
      ]);
      await waitFor(() => got.length === 100, 30_000, 'every frame despite the flood');
      got.forEach((m, i) => {
        assert.ok(m.type === MessageType.FRAME && m.frame.payload.equals(payload(i, 30_000)));
      });
      await waitFor(
        () => {
          const s = listener.stats();
          return s.junk + s.unknownSession + s.corrupt >= sent * 0.5;
        },
        10_000,
        `the junk to be counted (sent ${sent}, ${JSON.stringify(listener.stats())})`,
      );
      const s = listener.stats();
      assert.equal(s.peers, 1, 'junk created no peer');
      assert.equal(s.handshakes, 1);
      assert.equal(serverConn!.stats().malformed, 0, 'no junk reached the connection');
      client.close();
      await waitFor(() => listener.stats().peers === 0, 10_000, 'the peer to go');
      assert.equal(listener.stats().reassemblyBytes, 0, 'every reassembly byte given back');
    } finally {
      junk.close();
      client.destroy();
      await listener.close();
    }
  });

  test('a peer that goes silent is timed out (ERR_PEER_TIMEOUT); a restarted receiver answers RESET', async () => {
    const listener = await udpTransport.listen(new URL('udp://127.0.0.1:0'), OPTS, () => {});
    const proxy = await startUdpProxy({ target: listener.port });
    try {
      const client = await udpTransport.connect(
        new URL(`udp://127.0.0.1:${proxy.port}?timeout=600&keepalive=100`),
        OPTS,
      );
      const gone = new Promise<FramewireError | undefined>((r) => client.once('close', r));
      proxy.up.loss = 1;
      proxy.down.loss = 1;
      const err = await gone;
      assert.equal(err?.code, 'ERR_PEER_TIMEOUT');
      // A listener that never heard of a session answers a valid datagram of it with RESET (rate-limited),
      // so that a sender whose receiver restarted reconnects at once; junk gets no answer.
      const raw = dgram.createSocket('udp4');
      try {
        const replies: Buffer[] = [];
        raw.on('message', (b) => replies.push(b));
        await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
        raw.send(Buffer.from('junk, no answer'), listener.port, '127.0.0.1');
        raw.send(D.encodeKeepalive(0x12345678), listener.port, '127.0.0.1');
        await waitFor(() => replies.length > 0, 5000, 'a RESET');
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(replies.length, 1);
        assert.equal(hex(replies[0]!), hex(D.encodeReset(0x12345678)));
      } finally {
        raw.close();
      }
    } finally {
      await proxy.close();
      await listener.close();
    }
  });

  test('a frame larger than the receiver may reassemble ends the connection with ERR_REASSEMBLY_LIMIT', async () => {
    const listener = await udpTransport.listen(new URL('udp://127.0.0.1:0?reassembly=1MiB'), OPTS, () => {});
    try {
      const client = await udpTransport.connect(new URL(`udp://127.0.0.1:${listener.port}`), OPTS);
      const got: Message[] = [];
      client.on('message', (m) => got.push(m));
      const closed = new Promise<FramewireError | undefined>((r) => client.once('close', r));
      client.send(
        encodeFrame({
          streamId: 0,
          seq: 0,
          captureUs: 0,
          contentType: 'raw',
          payload: payload(0, 2_000_000),
        }),
      );
      await closed;
      const e = got.find((m) => m.type === MessageType.ERROR);
      assert.ok(e && e.type === MessageType.ERROR);
      assert.equal(e.body.code, 'ERR_REASSEMBLY_LIMIT');
      assert.equal((listener as UdpListener).stats().reassemblyBytes, 0);
    } finally {
      await listener.close();
    }
  });

  test('the receiver reports its live drops and repairs to the sender', async () => {
    let server: UdpConnection | undefined;
    const listener = await udpTransport.listen(new URL('udp://127.0.0.1:0'), OPTS, (c) => {
      server = c as UdpConnection;
    });
    const proxy = await startUdpProxy({ target: listener.port, up: {} });
    try {
      await withSeed(proxy, async () => {
        const client = (await udpTransport.connect(
          new URL(`udp://127.0.0.1:${proxy.port}`),
          OPTS,
        )) as UdpConnection;
        await waitFor(() => server !== undefined, 5000, 'the server side');
        proxy.up.loss = 0.1;
        let given = 0;
        for (let i = 0; i < 40; i++) {
          // Budgets of 1 ms: most frames that lose a fragment cannot be repaired in time.
          const budget = i % 2 === 0 ? 1 : 300;
          client.send(
            encodeFrame({
              streamId: 0,
              seq: i,
              captureUs: 0,
              contentType: 'raw',
              payload: payload(i, 20_000),
            }),
            { live: true, deadlineMs: budget, onDrop: () => given++ },
          );
          await new Promise((r) => setTimeout(r, 15));
        }
        proxy.up.loss = 0;
        await waitFor(
          () => {
            const tx = client.stats();
            const rx = server!.stats();
            return rx.repaired > 0 && tx.peerRepairs === rx.repaired && tx.peerDrops === rx.liveDropped;
          },
          10_000,
          'the ACKs to carry the receiver counts',
        );
        assert.ok(given > 0, 'frames given up were called back');
        assert.ok(client.stats().liveAbandoned >= given);
        client.destroy();
      });
    } finally {
      await proxy.close();
      await listener.close();
    }
  });

  test('a rate cap paces the sender', async () => {
    const got: Message[] = [];
    const listener = await udpTransport.listen(new URL('udp://127.0.0.1:0'), OPTS, (c) =>
      c.on('message', (m) => got.push(m)),
    );
    try {
      const client = (await udpTransport.connect(
        new URL(`udp://127.0.0.1:${listener.port}?rate=2MB`),
        OPTS,
      )) as UdpConnection;
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) {
        client.send(
          encodeFrame({
            streamId: 0,
            seq: i,
            captureUs: 0,
            contentType: 'raw',
            payload: payload(i, 100_000),
          }),
        );
      }
      await waitFor(() => got.length === 10, 20_000, 'the frames');
      // 1 MB at 2 MB/s takes about 0.5 s; at least well above what loopback needs unpaced.
      assert.ok(performance.now() - t0 > 250, `took ${Math.round(performance.now() - t0)} ms`);
      client.destroy();
    } finally {
      await listener.close();
    }
  });
});
