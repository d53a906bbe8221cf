/**
 * The transport contract: one suite every transport must pass, whatever carries the bytes. It talks to the
 * Transport interface only (connect, listen, Connection events), on 127.0.0.1 and port 0, with bounded
 * loops and generous timeouts. Run it from a `<scheme>.test.ts` with `transportContract({...})`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import '../../src/index.js';
import type { FramewireError } from '../../src/errors.js';
import { DEFAULT_LIMITS, MessageType } from '../../src/protocol/constants.js';
import {
  type Encoded,
  encodeAck,
  encodeFrame,
  encodeMessage,
  type Message,
} from '../../src/protocol/messages.js';
import { transportFor } from '../../src/transports/index.js';
import type { Connection, Listener, TransportOptions } from '../../src/transports/types.js';
import { payload, waitFor } from '../helpers/tmp.js';

export interface ContractTarget {
  /** The scheme, e.g. "tcp". */
  scheme: string;
  /** Query string added to the listen and connect URLs (e.g. "mtu=1200"), without "?". */
  listenQuery?: string;
  connectQuery?: string;
  /** How long a peer that vanished may take to be noticed (ms). */
  goneWithinMs?: number;
  /** Extra transport options (e.g. TLS material), read when a test starts. */
  options?: () => Partial<TransportOptions>;
}

const OPTS: TransportOptions = { limits: { ...DEFAULT_LIMITS }, connectTimeoutMs: 5000 };

interface Pair {
  listener: Listener;
  client: Connection;
  server: Connection;
  /** Messages the server received, in order. */
  atServer: Message[];
  atClient: Message[];
  close(): Promise<void>;
}

function q(query: string | undefined): string {
  return query ? `?${query}` : '';
}

async function listen(t: ContractTarget, onConn: (c: Connection) => void): Promise<Listener> {
  const url = new URL(`${t.scheme}://127.0.0.1:0${q(t.listenQuery)}`);
  return transportFor(url).listen(url, { ...OPTS, ...t.options?.() }, onConn);
}

async function connectTo(t: ContractTarget, port: number): Promise<Connection> {
  const url = new URL(`${t.scheme}://127.0.0.1:${port}${q(t.connectQuery)}`);
  return transportFor(url).connect(url, { ...OPTS, ...t.options?.() });
}

function closed(c: Connection, timeoutMs = 15_000): Promise<FramewireError | undefined> {
  return new Promise((resolve, reject) => {
    if (c.closed) {
      // Already closed: the event may still be pending; give it a moment.
      setTimeout(() => resolve(undefined), 50);
      return;
    }
    const t = setTimeout(
      () => reject(new Error(`connection did not close within ${timeoutMs} ms`)),
      timeoutMs,
    );
    c.once('close', (err) => {
      clearTimeout(t);
      resolve(err);
    });
  });
}

async function pair(t: ContractTarget, pauseServer = false): Promise<Pair> {
  const atServer: Message[] = [];
  const atClient: Message[] = [];
  let server: Connection | undefined;
  const listener = await listen(t, (c) => {
    if (pauseServer) c.pause();
    server = c;
    c.on('message', (m) => atServer.push(m));
  });
  const client = await connectTo(t, listener.port);
  client.on('message', (m) => atClient.push(m));
  // The server side exists once the first bytes arrive (TCP: at accept; UDP: after the handshake).
  await waitFor(() => server !== undefined, 10_000, 'the server side of the connection');
  return {
    listener,
    client,
    server: server!,
    atServer,
    atClient,
    async close() {
      client.destroy();
      server?.destroy();
      await listener.close();
    },
  };
}

/** Sends a message, waiting for 'drain' (or close) when the connection says so. */
async function sendAll(c: Connection, msgs: Encoded[]): Promise<void> {
  for (const m of msgs) {
    if (!c.send(m)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          c.off('drain', done);
          c.off('close', done);
          resolve();
        };
        c.on('drain', done);
        c.on('close', done);
      });
      if (c.closed) throw new Error('connection closed while sending');
    }
  }
}

function frame(seq: number, size: number): Encoded {
  return encodeFrame({ streamId: 1, seq, captureUs: seq, contentType: 'raw', payload: payload(seq, size) });
}

function checkFrames(got: Message[], sizes: number[]): void {
  const frames = got.filter((m) => m.type === MessageType.FRAME);
  assert.equal(frames.length, sizes.length, 'every frame arrived once');
  frames.forEach((m, i) => {
    if (m.type !== MessageType.FRAME) return;
    assert.equal(m.frame.seq, i, 'in order');
    assert.ok(m.frame.payload.equals(payload(i, sizes[i]!)), `frame ${i} is byte-identical`);
  });
}

export function transportContract(t: ContractTarget): void {
  describe(`transport contract: ${t.scheme}://`, () => {
    test('listens on port 0, reports the real port, connects and names both ends', async () => {
      const p = await pair(t);
      try {
        assert.ok(p.listener.port > 0);
        assert.ok(p.listener.url.startsWith(`${t.scheme}://`));
        assert.ok(p.listener.url.endsWith(`:${p.listener.port}`));
        assert.equal(p.client.remote, `127.0.0.1:${p.listener.port}`);
        assert.match(p.server.remote, /^127\.0\.0\.1:\d+$/);
        assert.equal(p.client.closed, false);
      } finally {
        await p.close();
      }
    });

    test('carries messages in order, both ways, whole and unchanged', async () => {
      const p = await pair(t);
      try {
        const sizes = Array.from({ length: 200 }, (_, i) => (i * 7919) % 60_000);
        const out: Encoded[] = [];
        sizes.forEach((n, i) => {
          out.push(frame(i, n));
          if (i % 4 === 0) out.push(encodeMessage(i, JSON.stringify({ i, text: 'x'.repeat(i) })));
        });
        const back = Array.from({ length: 300 }, (_, i) => encodeAck(1, i));
        await Promise.all([sendAll(p.client, out), sendAll(p.server, back)]);
        await waitFor(
          () => p.atServer.length === out.length && p.atClient.length === back.length,
          30_000,
          'all messages',
        );
        checkFrames(p.atServer, sizes);
        const msgs = p.atServer.filter((m) => m.type === MessageType.MESSAGE);
        assert.deepEqual(
          msgs.map((m) => (m.type === MessageType.MESSAGE ? m.message.seq : -1)),
          sizes.map((_, i) => i).filter((i) => i % 4 === 0),
        );
        assert.deepEqual(
          p.atClient.map((m) => (m.type === MessageType.ACK ? m.seq : -1)),
          back.map((_, i) => i),
        );
      } finally {
        await p.close();
      }
    });

    test('carries large messages: 4K frames of 425 KB and a 4 MiB raw frame', async () => {
      const p = await pair(t);
      try {
        const sizes = [425_000, 425_000, 4 * 1024 * 1024, 425_000, 1];
        await sendAll(
          p.client,
          sizes.map((n, i) => frame(i, n)),
        );
        await waitFor(() => p.atServer.length === sizes.length, 30_000, 'the large frames');
        checkFrames(p.atServer, sizes);
      } finally {
        await p.close();
      }
    });

    test('backpressure: a paused receiver makes send() return false; resume() brings drain and every message', async () => {
      const p = await pair(t, true);
      try {
        const sizes = Array.from({ length: 40 }, () => 256 * 1024);
        let sawFalse = false;
        let sawCongested = false;
        let drained: Promise<void> = Promise.resolve();
        let i = 0;
        for (; i < sizes.length; i++) {
          const ok = p.client.send(frame(i, sizes[i]!));
          if (!ok) {
            sawFalse = true;
            sawCongested = p.client.congested;
            drained = new Promise<void>((resolve) => p.client.once('drain', () => resolve()));
            i++;
            break;
          }
        }
        assert.ok(sawFalse, 'send() returned false before 10 MiB were queued');
        assert.ok(sawCongested, 'congested is true after send() returned false');
        await new Promise((r) => setTimeout(r, 300));
        assert.equal(p.atServer.length, 0, 'a paused connection delivers nothing');
        p.server.resume();
        await drained;
        await sendAll(
          p.client,
          sizes.slice(i).map((n, k) => frame(i + k, n)),
        );
        await waitFor(() => p.atServer.length === sizes.length, 30_000, 'every frame after resume');
        checkFrames(p.atServer, sizes);
      } finally {
        await p.close();
      }
    });

    test('close() by the client: what was sent arrives first, then both ends close without error', async () => {
      const p = await pair(t);
      try {
        const sizes = Array.from({ length: 30 }, (_, i) => 10_000 + i);
        const serverClosed = new Promise<{ err: FramewireError | undefined; count: number }>((resolve) =>
          p.server.once('close', (err) => resolve({ err, count: p.atServer.length })),
        );
        await sendAll(
          p.client,
          sizes.map((n, i) => frame(i, n)),
        );
        p.client.close();
        const [s, c] = await Promise.all([serverClosed, closed(p.client)]);
        assert.equal(s.err, undefined);
        assert.equal(c, undefined);
        assert.equal(s.count, sizes.length, 'every frame arrived before the close');
        checkFrames(p.atServer, sizes);
        assert.equal(p.client.closed, true);
        assert.equal(p.client.send(frame(99, 1)), false, 'send() after close returns false');
      } finally {
        await p.close();
      }
    });

    test('close() by the server: the client sees the close', async () => {
      const p = await pair(t);
      try {
        await sendAll(p.server, [encodeAck(1, 1)]);
        await waitFor(() => p.atClient.length === 1, 10_000, 'the ack');
        const c = closed(p.client);
        const s = closed(p.server);
        p.server.close();
        assert.equal(await c, undefined);
        assert.equal(await s, undefined);
      } finally {
        await p.close();
      }
    });

    test('a peer going away: destroy() on one end closes the other', async () => {
      const p = await pair(t);
      try {
        const s = closed(p.server, t.goneWithinMs ?? 15_000);
        p.client.destroy();
        await s;
        assert.equal(p.server.closed, true);
        const p2 = await pair(t);
        try {
          const c = closed(p2.client, t.goneWithinMs ?? 15_000);
          p2.server.destroy();
          await c;
          assert.equal(p2.client.closed, true);
        } finally {
          await p2.close();
        }
      } finally {
        await p.close();
      }
    });

    test('a listener closing ends its connections', async () => {
      const p = await pair(t);
      try {
        const c = closed(p.client, t.goneWithinMs ?? 15_000);
        await p.listener.close();
        await c;
      } finally {
        await p.close();
      }
    });

    test('connecting where nothing listens fails with ERR_UNREACHABLE', async () => {
      const l = await listen(t, () => {});
      const port = l.port;
      await l.close();
      await assert.rejects(connectTo(t, port), { code: 'ERR_UNREACHABLE' });
    });

    test('many connections at once stay apart', async () => {
      const byConn = new Map<Connection, Message[]>();
      const listener = await listen(t, (c) => {
        const got: Message[] = [];
        byConn.set(c, got);
        c.on('message', (m) => got.push(m));
      });
      const clients: Connection[] = [];
      try {
        for (let k = 0; k < 16; k++) clients.push(await connectTo(t, listener.port));
        await Promise.all(
          clients.map((c, k) =>
            sendAll(
              c,
              Array.from({ length: 40 }, (_, i) =>
                encodeMessage(i, JSON.stringify({ k, i, pad: 'y'.repeat(k * 100) })),
              ),
            ),
          ),
        );
        await waitFor(
          () => byConn.size === 16 && [...byConn.values()].every((g) => g.length === 40),
          30_000,
          'every message on every connection',
        );
        const seen = new Set<number>();
        for (const got of byConn.values()) {
          const first = got[0];
          assert.ok(first && first.type === MessageType.MESSAGE);
          const k = (first.message.json as { k: number }).k;
          seen.add(k);
          got.forEach((m, i) => {
            assert.ok(m.type === MessageType.MESSAGE);
            assert.deepEqual(m.message.json, { k, i, pad: 'y'.repeat(k * 100) });
          });
        }
        assert.equal(seen.size, 16, 'each connection carries one client');
        assert.equal(new Set([...byConn.keys()].map((c) => c.remote)).size, 16);
      } finally {
        for (const c of clients) c.destroy();
        await listener.close();
      }
    });
  });
}
