/**
 * udp:// with a token: sealed datagrams (AES-256-GCM, keys from HKDF of the token and both handshake
 * nonces), replay protection, and the token handshake (both sides have a token, or neither).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { connect, createServer, type ReceivedFrame, type Sink } from '../../src/index.js';
import { DEFAULT_LIMITS, MessageType } from '../../src/protocol/constants.js';
import { encodeFrame, type Message } from '../../src/protocol/messages.js';
import type { TransportOptions } from '../../src/transports/types.js';
import * as A from '../../src/transports/udp/aead.js';
import * as D from '../../src/transports/udp/datagram.js';
import { type UdpConnection, type UdpListener, udpTransport } from '../../src/transports/udp/index.js';
import { payload, waitFor } from '../helpers/tmp.js';
import { startUdpProxy, type UdpProxy } from '../helpers/udp-proxy.js';

const TOKEN = 'udp-crypto-test-token-7f3a9c';
const opts = (token?: string): TransportOptions => ({
  limits: { ...DEFAULT_LIMITS },
  connectTimeoutMs: 5000,
  ...(token === undefined ? {} : { token }),
});
const hex = (b: Buffer | Buffer[]) => (Array.isArray(b) ? Buffer.concat(b) : b).toString('hex');

/** Frame bytes that are easy to find on the wire: an ASCII marker with the frame's number, repeated. */
const MARKER = 'FRAMEWIRE-PLAINTEXT-';
function pattern(i: number, size: number): Buffer {
  const unit = Buffer.from(`${MARKER}${String(i).padStart(6, '0')}|`);
  const b = Buffer.allocUnsafe(size);
  for (let o = 0; o < size; o += unit.length) unit.copy(b, o, 0, Math.min(unit.length, size - o));
  return b;
}

async function withSeed<T>(proxy: UdpProxy, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error) err.message += `\n${proxy.describe()}`;
    throw err;
  }
}

function frameMsg(i: number, size: number) {
  return encodeFrame({ streamId: 0, seq: i, captureUs: 0, contentType: 'raw', payload: pattern(i, size) });
}

function storeSink(store: Buffer[]): Sink {
  return {
    resumePoint: async () => store.length,
    frame: (f: ReceivedFrame) => {
      store.push(Buffer.from(f.data));
    },
  };
}

/** Sends `bufs` to the proxy's peer in direction `dir`, paced so that no socket buffer overflows. */
async function inject(proxy: UdpProxy, dir: 'up' | 'down', bufs: Buffer[]): Promise<void> {
  for (let i = 0; i < bufs.length; i++) {
    proxy.inject(dir, bufs[i]!);
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1));
  }
}

const isSealed = (b: Buffer) => b.length >= 4 && (b[3]! & D.SEALED) !== 0;
const isHandshake = (b: Buffer) => b.length >= 4 && b[3]! >= 0x10 && b[3]! <= 0x14;

// The vector of docs/protocol.md ("Sealed datagrams"): the UDP DATA vector, sealed client to server.
const V = {
  token: 'framewire-test-token',
  clientNonce: Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex'),
  serverNonce: Buffer.from('101112131415161718191a1b1c1d1e1f', 'hex'),
  c2sKey: '5110bafdb285dd6426d80de127c3fe6b019e802cfac2867209aed3394b4c0db2',
  c2sIv: 'fb895c20',
  s2cKey: '03033faa70925808c3f7993488286d189e491273aa562a2c0d23b733a12bfa9f',
  s2cIv: '43e9c1ed',
  counter: 7,
  sealed:
    '465501810a0b0c0d0000000000000007abf59b60976907a30317196b358c7b41c240e3eb38b53cd604ca87319b089be022f00cf9592e5d771acb',
};
const vectorData = () =>
  D.encodeData(0x0a0b0c0d, { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: 1, budgetMs: 120 }, [
    Buffer.from('dead', 'hex'),
  ]);

describe('sealed datagrams', () => {
  test('keys and the sealed DATA vector of docs/protocol.md (cross-checked with Python cryptography)', () => {
    const k = A.deriveKeys(V.token, V.clientNonce, V.serverNonce);
    assert.equal(k.c2s.key.toString('hex'), V.c2sKey);
    assert.equal(k.c2s.ivPrefix.toString('hex'), V.c2sIv);
    assert.equal(k.s2c.key.toString('hex'), V.s2cKey);
    assert.equal(k.s2c.ivPrefix.toString('hex'), V.s2cIv);
    const sealed = A.sealDatagram(k.c2s, V.counter, vectorData());
    assert.equal(hex(sealed), V.sealed);
    assert.equal(Buffer.concat(sealed).length, Buffer.concat(vectorData()).length + A.SEAL_OVERHEAD);
    // Without the CRC (a sealed sender skips it) the bytes are the same: the CRC field is not sent.
    const noCrc = D.encodeData(
      0x0a0b0c0d,
      { pkt: 7, msg: 3, index: 1, count: 2, length: 5, flags: 1, budgetMs: 120 },
      [Buffer.from('dead', 'hex')],
      false,
    );
    assert.equal(hex(A.sealDatagram(k.c2s, V.counter, noCrc)), V.sealed);
    const opened = A.openDatagram(k.c2s, Buffer.from(V.sealed, 'hex'))!;
    const plain = Buffer.concat(vectorData());
    plain.writeUInt32BE(0, 8);
    assert.equal(opened.toString('hex'), plain.toString('hex'));
    assert.equal(D.decodeData(opened)?.fragment.toString('hex'), 'dead');
    assert.equal(A.sealedCounter(Buffer.from(V.sealed, 'hex')), 7);

    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('\n## UDP\n'), doc.indexOf('\n## Test vectors'));
    for (const s of [V.c2sKey, V.c2sIv, V.s2cKey, V.s2cIv, V.sealed, V.token]) {
      assert.ok(section.includes(s), `docs/protocol.md shows ${s}`);
    }
  });

  test('a changed byte anywhere fails the tag; the other key fails; every type opens to its unsealed bytes', () => {
    const k = A.deriveKeys(TOKEN, randomBytes(16), randomBytes(16));
    const s = 0x01020304;
    const data = Buffer.concat(
      A.sealDatagram(
        k.c2s,
        2 ** 40 + 3,
        D.encodeData(s, { pkt: 1, msg: 1, index: 0, count: 1, length: 64, flags: 0, budgetMs: 0 }, [
          payload(1, 64),
        ]),
      ),
    );
    assert.equal(A.sealedCounter(data), 2 ** 40 + 3);
    assert.ok(A.openDatagram(k.c2s, data));
    assert.equal(A.openDatagram(k.s2c, data), undefined, 'the other direction');
    for (let i = 0; i < data.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(data);
        bad[i] = bad[i]! ^ x;
        assert.equal(A.openDatagram(k.c2s, bad), undefined, `byte ${i} ^ ${x}`);
      }
    }
    assert.equal(A.openDatagram(k.c2s, data.subarray(0, data.length - 1)), undefined, 'cut short');
    assert.equal(A.openDatagram(k.c2s, data.subarray(0, 31)), undefined);
    const unsealed = [
      Buffer.concat(vectorData()),
      D.encodeAck(s, {
        cumulative: 7,
        window: 1,
        newest: 9,
        delayUs: 2,
        drops: 0,
        repairs: 0,
        sack: [[9, 10]],
        dropped: [3],
      }),
      D.encodeNack(s, [[7, 9]]),
      D.encodeDrop(s, { first: 7, end: 9, msg: 3 }),
      D.encodeKeepalive(s, 1),
      D.encodeClose(s, 2),
      D.encodeReset(s),
    ];
    for (const [n, u] of unsealed.entries()) {
      const sealed = Buffer.concat(A.sealDatagram(k.s2c, n, [u]));
      assert.equal(sealed[3], u[3]! | D.SEALED);
      assert.equal(sealed.length, u.length + A.SEAL_OVERHEAD);
      const o = A.openDatagram(k.s2c, sealed)!;
      const want = Buffer.from(u);
      want.writeUInt32BE(0, 8);
      assert.equal(o.toString('hex'), want.toString('hex'));
    }
  });

  test('the replay window: each counter once, reordering inside the window, anything older refused', () => {
    const w = new A.ReplayWindow(128);
    for (const n of [0, 1, 5, 3, 2, 4, 200, 100, 199]) {
      assert.ok(w.fresh(n), `${n} is new`);
      w.mark(n);
      assert.equal(w.fresh(n), false, `${n} seen`);
    }
    assert.equal(w.fresh(5), false, '5 is older than the window (200 - 128)');
    assert.equal(w.fresh(72), false);
    assert.ok(w.fresh(73) && w.fresh(198) && w.fresh(201));
    w.mark(10_000);
    for (const n of [9872, 9873, 9999]) assert.ok(w.fresh(n) === n > 9872, `${n}`);
    // A sealed stream of datagrams: each delivered once whatever the order; a forgery moves nothing.
    const k = A.deriveKeys(TOKEN, randomBytes(16), randomBytes(16));
    const tx = A.DatagramCrypto.forSide(k, 'client');
    const rx = A.DatagramCrypto.forSide(k, 'server');
    const sent = Array.from({ length: 300 }, () => Buffer.concat(tx.seal([D.encodeKeepalive(9)])!));
    assert.equal(tx.sent, 300);
    assert.deepEqual(
      sent.map((b) => A.sealedCounter(b)),
      sent.map((_, i) => i),
      'one counter per datagram, from 0',
    );
    const forged = Buffer.from(sent[299]!);
    forged.writeUInt32BE(5000, 12);
    assert.equal(rx.open(forged), A.UNAUTHENTIC);
    const order = [...sent.keys()].sort((a, b) => ((a * 7919) % 300) - ((b * 7919) % 300));
    let opened = 0;
    for (const i of order) if (Buffer.isBuffer(rx.open(sent[i]!))) opened++;
    assert.equal(opened, 300, 'the forged counter 5000 did not move the window past them');
    for (const b of sent) assert.equal(rx.open(b), A.REPLAYED);
  });

  test('handshake datagrams: the token flag, 64-byte HS_CONFIRM and HS_DONE with a proof, HS_REFUSED', () => {
    const h = { nonce: 0x11223344, mtu: 1200, rcvbuf: 8388608 };
    // Without a token: the bytes of before (the vector of docs/protocol.md).
    assert.equal(
      hex(D.encodeHandshake(D.DatagramType.HS_REQUEST, 0, h)),
      '4655011000000000e5ef7cdf1122334404b00000008000000000000000000000',
    );
    const req = D.encodeHandshake(D.DatagramType.HS_REQUEST, 0, h, { flags: D.HandshakeFlags.TOKEN });
    assert.equal(req.length, 32);
    assert.equal(D.decodeHandshakeExtra(req).flags, D.HandshakeFlags.TOKEN);
    const nonce16 = randomBytes(16);
    const confirm = D.encodeHandshake(D.DatagramType.HS_CONFIRM, 0x0a0b0c0d, h, {
      flags: D.HandshakeFlags.TOKEN,
      nonce16,
      prove: (c) => A.handshakeProof(TOKEN, 'confirm', c),
    });
    assert.equal(confirm.length, 64);
    assert.ok(D.crcOk(confirm));
    assert.deepEqual(D.decodeHandshake(confirm), h);
    const x = D.decodeHandshakeExtra(confirm);
    assert.ok(x.nonce16?.equals(nonce16));
    const want = A.handshakeProof(TOKEN, 'confirm', D.handshakeCovered(confirm));
    assert.ok(A.proofOk(want, x.proof));
    assert.equal(
      A.proofOk(A.handshakeProof('other', 'confirm', D.handshakeCovered(confirm)), x.proof),
      false,
    );
    // A 64-byte handshake without the token flag is not one.
    const odd = Buffer.from(confirm);
    odd.writeUInt16BE(0, 18);
    assert.equal(D.decodeHandshake(odd), undefined);
    const refused = D.encodeHandshake(
      D.DatagramType.HS_REFUSED,
      0x0a0b0c0d,
      { ...h, rcvbuf: 0 },
      {
        reason: D.RefuseReason.BAD_PROOF,
      },
    );
    assert.equal(refused.length, 32);
    assert.equal(D.decodeHandshakeExtra(refused).reason, D.RefuseReason.BAD_PROOF);
  });
});

describe('udp with a token', () => {
  test('frames arrive byte-identical through loss, duplication, reordering and corruption; nothing readable on the wire', async () => {
    const server = await createServer({ listen: 'udp://127.0.0.1:0', token: TOKEN });
    const imp = { loss: 0.05, duplicate: 0.03, reorder: 0.03, reorderMs: 3, corrupt: 0.02 };
    const proxy = await startUdpProxy({ target: server.port, up: imp, down: { ...imp } });
    const wire: Array<{ dir: 'up' | 'down'; buf: Buffer }> = [];
    proxy.tap = (dir, buf) => wire.push({ dir, buf });
    const frames: ReceivedFrame[] = [];
    const warnings: string[] = [];
    server.on('frame', (f) => frames.push(f));
    server.on('warning', (e) => warnings.push(e.message));
    const N = 120;
    const size = (i: number) => 2000 + ((i * 7919) % 30_000);
    const streamName = 'stream-name-in-clear-text';
    try {
      await withSeed(proxy, async () => {
        const client = await connect(`udp://127.0.0.1:${proxy.port}`, { token: TOKEN, retryForMs: 20_000 });
        const st = client.stream(streamName);
        for (let i = 0; i < N; i++) await st.send({ data: pattern(i, size(i)), name: `${MARKER}${i}.raw` });
        const stats = await client.close();
        assert.equal(stats.framesAcked, N);
        assert.equal(stats.reconnects, 0);
        assert.equal(frames.length, N);
        frames.forEach((f, i) => {
          assert.equal(f.seq, i);
          assert.ok(f.data.equals(pattern(i, size(i))), `frame ${i} byte-identical`);
        });
        assert.deepEqual(warnings, []);
        assert.ok(proxy.stats.up.dropped > 10 && proxy.stats.up.corrupted > 5, 'the path was impaired');

        const needles = [MARKER, TOKEN, Buffer.from(TOKEN).toString('hex'), streamName].map((s) =>
          Buffer.from(s),
        );
        let sealedData = 0;
        for (const { dir, buf } of wire) {
          for (const n of needles) assert.equal(buf.indexOf(n), -1, `${dir}: "${n}" on the wire`);
          // Handshake datagrams, and a listener's RESETs (answers to datagrams whose session id the proxy
          // changed: just a header), are the only ones in clear.
          if (isHandshake(buf) || (buf[3] === D.DatagramType.RESET && buf.length === D.COMMON_BYTES))
            continue;
          assert.ok(isSealed(buf), `${dir}: a datagram of type ${buf[3]} after the handshake is sealed`);
          if (buf[3] === (D.DatagramType.DATA | D.SEALED)) sealedData++;
        }
        assert.ok(sealedData > N, `${sealedData} sealed DATA datagrams seen`);
        // The search can see: every stretch of a frame at least two markers long holds the marker whole,
        // and a sealed DATA carries up to 1144 bytes of one.
        assert.ok(
          pattern(7, 5000)
            .subarray(1234, 1234 + 2 * (MARKER.length + 7))
            .includes(MARKER),
        );
      });
    } finally {
      await server.close();
      await proxy.close();
    }
  });

  test('replayed datagrams are dropped and counted, each way; nothing is delivered twice', async () => {
    let serverConn: UdpConnection | undefined;
    const got: Message[] = [];
    const listener = (await udpTransport.listen(new URL('udp://127.0.0.1:0'), opts(TOKEN), (c) => {
      serverConn = c as UdpConnection;
      c.on('message', (m) => got.push(m));
    })) as UdpListener;
    const proxy = await startUdpProxy({ target: listener.port });
    const captured = { up: [] as Buffer[], down: [] as Buffer[] };
    proxy.tap = (dir, buf) => {
      if (isSealed(buf)) captured[dir].push(Buffer.from(buf));
    };
    const client = (await udpTransport.connect(
      new URL(`udp://127.0.0.1:${proxy.port}`),
      opts(TOKEN),
    )) as UdpConnection;
    try {
      await waitFor(() => serverConn !== undefined, 5000, 'the server side');
      for (let i = 0; i < 40; i++) client.send(frameMsg(i, 3000));
      await waitFor(() => got.length === 40, 15_000, 'the first 40 frames');
      await new Promise((r) => setTimeout(r, 200));
      const up = captured.up.splice(0);
      const down = captured.down.splice(0);
      assert.ok(up.length >= 80 && down.length > 0, `${up.length} up, ${down.length} down captured`);
      // Every one again, and the first 20 a third time, late and in the wrong order.
      const upReplay = [...up].reverse().concat(up.slice(0, 20));
      const downReplay = [...down].reverse().concat(down.slice(0, 20));
      await Promise.all([inject(proxy, 'up', upReplay), inject(proxy, 'down', downReplay)]);
      for (let i = 40; i < 50; i++) client.send(frameMsg(i, 3000));
      await waitFor(
        () =>
          serverConn!.stats().replayed === upReplay.length && client.stats().replayed === downReplay.length,
        15_000,
        `the replays to be counted (server ${serverConn!.stats().replayed}/${upReplay.length}, client ${client.stats().replayed}/${downReplay.length})`,
      );
      await waitFor(() => got.length >= 50, 15_000, 'the last frames');
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(got.length, 50, 'nothing delivered twice');
      got.forEach((m, i) => {
        assert.ok(
          m.type === MessageType.FRAME && m.frame.seq === i && m.frame.payload.equals(pattern(i, 3000)),
        );
      });
      assert.equal(serverConn!.stats().messagesDelivered, 50);
      assert.equal(serverConn!.stats().unauthentic, 0);
      assert.equal(listener.stats().peers, 1);
    } finally {
      client.destroy();
      await proxy.close();
      await listener.close();
    }
  });

  test('a changed byte anywhere in a sealed datagram, or an unsealed datagram, is dropped: no corrupt frame', async () => {
    let serverConn: UdpConnection | undefined;
    const got: Message[] = [];
    const listener = (await udpTransport.listen(new URL('udp://127.0.0.1:0'), opts(TOKEN), (c) => {
      serverConn = c as UdpConnection;
      c.on('message', (m) => got.push(m));
    })) as UdpListener;
    const proxy = await startUdpProxy({ target: listener.port });
    let held: Buffer | undefined;
    proxy.tap = (dir, buf) => {
      if (dir === 'up' && buf[3] === (D.DatagramType.DATA | D.SEALED)) held ??= Buffer.from(buf);
    };
    const client = (await udpTransport.connect(
      new URL(`udp://127.0.0.1:${proxy.port}`),
      opts(TOKEN),
    )) as UdpConnection;
    try {
      await waitFor(() => serverConn !== undefined, 5000, 'the server side');
      // The one DATA of a frame is held back: the receiver sees only changed copies of it first, each with
      // a counter it has not seen, so each is judged by its tag alone.
      proxy.up.loss = 1;
      client.send(frameMsg(0, 100));
      await waitFor(() => held !== undefined, 10_000, 'the DATA datagram');
      const before = { ...serverConn!.stats() };
      const l0 = listener.stats();
      const bad: Buffer[] = [];
      for (let i = 0; i < held!.length; i++) {
        for (const x of [0x01, 0xff]) {
          const b = Buffer.from(held!);
          b[i] = b[i]! ^ x;
          bad.push(b);
        }
      }
      // Unsealed datagrams of the session, with a correct CRC: an ABORT and a DATA. Anyone can make these.
      const session = serverConn!.session;
      const unsealed = [
        D.encodeClose(session, D.CloseKind.ABORT),
        Buffer.concat(
          D.encodeData(session, { pkt: 0, msg: 0, index: 0, count: 1, length: 8, flags: 0, budgetMs: 0 }, [
            Buffer.alloc(8),
          ]),
        ),
      ];
      await inject(proxy, 'up', [...bad, ...unsealed]);
      const delta = () => {
        const s = serverConn!.stats();
        const l = listener.stats();
        return {
          unauthentic: s.unauthentic - before.unauthentic,
          replayed: s.replayed - before.replayed,
          listener: l.junk - l0.junk + l.unknownSession - l0.unknownSession,
        };
      };
      const total = () => {
        const d = delta();
        return d.unauthentic + d.replayed + d.listener;
      };
      await waitFor(
        () => total() === bad.length + unsealed.length,
        15_000,
        `every changed datagram to be dropped (${JSON.stringify(delta())} of ${bad.length + unsealed.length})`,
      );
      const d = delta();
      assert.equal(d.replayed, 0);
      // Magic, version and session id bytes fail before the session (7 bytes × 2); the rest the tag.
      assert.equal(d.listener, 14, JSON.stringify(d));
      assert.equal(serverConn!.stats().messagesDelivered, 0);
      assert.equal(serverConn!.stats().datagramsReceived, before.datagramsReceived);
      assert.equal(serverConn!.closed, false, 'an unsealed ABORT does not end a sealed session');
      // The path heals: the original (or its retransmission) arrives, whole.
      proxy.up.loss = 0;
      await waitFor(() => got.length === 1, 10_000, 'the frame');
      client.send(frameMsg(1, 100));
      await waitFor(() => got.length === 2, 10_000, 'the next frame');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(got.length, 2);
      got.forEach((m, i) => {
        assert.ok(m.type === MessageType.FRAME && m.frame.payload.equals(pattern(i, 100)));
      });
    } finally {
      client.destroy();
      await proxy.close();
      await listener.close();
    }
  });

  test('a wrong token: ERR_AUTH at the sender within seconds, no retry, nothing created or stored', async () => {
    const store: Buffer[] = [];
    const server = await createServer({
      listen: 'udp://127.0.0.1:0',
      token: TOKEN,
      sinks: [storeSink(store)],
    });
    let connections = 0;
    server.on('connection', () => connections++);
    try {
      const t0 = performance.now();
      await assert.rejects(
        connect(`udp://127.0.0.1:${server.port}`, { token: `${TOKEN}-wrong`, retryForMs: 20_000 }),
        (e: Error & { code?: string }) => e.code === 'ERR_AUTH' && /wrong token/.test(e.message),
      );
      const ms = performance.now() - t0;
      assert.ok(ms < 4000, `ERR_AUTH after ${Math.round(ms)} ms`);
      assert.equal(connections, 0);
      assert.equal(store.length, 0);
    } finally {
      await server.close();
    }
    // The listener itself: the proof is refused before anything exists.
    const listener = (await udpTransport.listen(new URL('udp://127.0.0.1:0'), opts(TOKEN), () =>
      assert.fail('no connection with a wrong token'),
    )) as UdpListener;
    try {
      await assert.rejects(
        udpTransport.connect(new URL(`udp://127.0.0.1:${listener.port}`), opts('not the token')),
        { code: 'ERR_AUTH' },
      );
      const s = listener.stats();
      assert.equal(s.peers, 0);
      assert.equal(s.handshakes, 0);
      assert.ok(s.refused >= 1);
      assert.equal(s.reassemblyBytes, 0);
    } finally {
      await listener.close();
    }
  });

  test('a token on one side only: ERR_AUTH, either way, within seconds', async () => {
    for (const [listenToken, connectToken, why] of [
      [TOKEN, undefined, /requires a token/],
      [undefined, TOKEN, /does not check tokens/],
    ] as const) {
      const store: Buffer[] = [];
      const server = await createServer({
        listen: 'udp://127.0.0.1:0',
        sinks: [storeSink(store)],
        ...(listenToken === undefined ? {} : { token: listenToken }),
      });
      try {
        const t0 = performance.now();
        await assert.rejects(
          connect(`udp://127.0.0.1:${server.port}`, {
            retryForMs: 20_000,
            ...(connectToken === undefined ? {} : { token: connectToken }),
          }),
          (e: Error & { code?: string }) => e.code === 'ERR_AUTH' && why.test(e.message),
        );
        assert.ok(performance.now() - t0 < 4000);
        assert.equal(store.length, 0);
      } finally {
        await server.close();
      }
    }
  });

  test('without a token nothing changes: 32-byte handshakes with flags 0, CRC-checked datagrams, no sealing', async () => {
    const got: Message[] = [];
    const listener = (await udpTransport.listen(new URL('udp://127.0.0.1:0'), opts(), (c) =>
      c.on('message', (m) => got.push(m)),
    )) as UdpListener;
    const proxy = await startUdpProxy({ target: listener.port });
    const wire: Buffer[] = [];
    proxy.tap = (_dir, buf) => wire.push(buf);
    const client = (await udpTransport.connect(
      new URL(`udp://127.0.0.1:${proxy.port}`),
      opts(),
    )) as UdpConnection;
    try {
      client.send(frameMsg(0, 5000));
      await waitFor(() => got.length === 1, 10_000, 'the frame');
      assert.equal(client.stats().sealed, false);
      assert.ok(wire.length >= 8);
      for (const b of wire) {
        assert.ok(D.crcOk(b) && !isSealed(b), `type ${b[3]}: unsealed, CRC right`);
        if (isHandshake(b)) {
          assert.equal(b.length, D.HANDSHAKE_BYTES);
          assert.equal(b.subarray(18, 20).toString('hex') + b.subarray(24).toString('hex'), '0'.repeat(20));
        }
      }
      assert.ok(
        wire.some((b) => b.indexOf(Buffer.from(MARKER)) >= 0),
        'frame bytes in clear, as before',
      );
    } finally {
      client.destroy();
      await proxy.close();
      await listener.close();
    }
  });

  test('a forged or replayed handshake creates nothing at the listener', async () => {
    const listener = (await udpTransport.listen(
      new URL('udp://127.0.0.1:0'),
      opts(TOKEN),
      () => {},
    )) as UdpListener;
    const raw = dgram.createSocket('udp4');
    const replies: Buffer[] = [];
    raw.on('message', (b) => replies.push(b));
    await new Promise<void>((r) => raw.bind(0, '127.0.0.1', () => r()));
    const ask = async (buf: Buffer, answered = true): Promise<Buffer | undefined> => {
      const n = replies.length;
      raw.send(buf, listener.port, '127.0.0.1');
      if (!answered) {
        await new Promise((r) => setTimeout(r, 150));
        assert.equal(replies.length, n, 'no answer');
        return undefined;
      }
      await waitFor(() => replies.length > n, 5000, 'an answer');
      return replies[n];
    };
    try {
      const h = { nonce: 0x5eed1234, mtu: 1200, rcvbuf: 1 << 20 };
      const cookie = (await ask(
        D.encodeHandshake(D.DatagramType.HS_REQUEST, 0, h, { flags: D.HandshakeFlags.TOKEN }),
      ))!;
      assert.equal(cookie[3], D.DatagramType.HS_COOKIE);
      assert.equal(D.decodeHandshakeExtra(cookie).flags, D.HandshakeFlags.TOKEN, 'the cookie says: token');
      const session = D.peekCommon(cookie)!.session;
      const clientNonce = randomBytes(16);
      const confirm = (token: string, s = session) =>
        D.encodeHandshake(D.DatagramType.HS_CONFIRM, s, h, {
          flags: D.HandshakeFlags.TOKEN,
          nonce16: clientNonce,
          prove: (c) => A.handshakeProof(token, 'confirm', c),
        });
      const refusal = async (buf: Buffer, reason: number) => {
        const r = (await ask(buf))!;
        assert.equal(r[3], D.DatagramType.HS_REFUSED);
        assert.equal(D.decodeHandshakeExtra(r).reason, reason);
        assert.ok(r.length <= buf.length, 'no amplification');
      };
      await refusal(confirm('a guess'), D.RefuseReason.BAD_PROOF);
      await refusal(D.encodeHandshake(D.DatagramType.HS_CONFIRM, session, h), D.RefuseReason.TOKEN_REQUIRED);
      const junkProof = confirm(TOKEN);
      junkProof[60] = junkProof[60]! ^ 1;
      junkProof.writeUInt32BE(D.datagramCrc([junkProof]), 8);
      await refusal(junkProof, D.RefuseReason.BAD_PROOF);
      await ask(confirm(TOKEN, session ^ 0x10), false); // not our cookie: silence
      assert.equal(listener.stats().peers, 0);
      assert.equal(listener.stats().handshakes, 0);

      // The real thing: HS_DONE proves the token over both nonces, and a session exists.
      const good = confirm(TOKEN);
      const done = (await ask(good))!;
      assert.equal(done[3], D.DatagramType.HS_DONE);
      assert.ok(done.length <= good.length);
      const dx = D.decodeHandshakeExtra(done);
      assert.ok(A.proofOk(A.handshakeProof(TOKEN, 'done', D.handshakeCovered(done), clientNonce), dx.proof));
      assert.equal(listener.stats().peers, 1);
      // It ends (a sealed ABORT); its HS_CONFIRM, replayed while the cookie is still valid, opens nothing.
      const keys = A.deriveKeys(TOKEN, clientNonce, Buffer.from(dx.nonce16!));
      const mine = A.DatagramCrypto.forSide(keys, 'client');
      raw.send(
        Buffer.concat(mine.seal([D.encodeClose(session, D.CloseKind.ABORT)])!),
        listener.port,
        '127.0.0.1',
      );
      await waitFor(() => listener.stats().peers === 0, 5000, 'the session to end');
      await new Promise((r) => setTimeout(r, 50));
      replies.length = 0;
      await ask(good, false);
      assert.equal(listener.stats().peers, 0);
      assert.equal(listener.stats().handshakes, 1);
    } finally {
      raw.close();
      await listener.close();
    }
  });
});
