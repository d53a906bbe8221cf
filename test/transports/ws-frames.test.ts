/**
 * The client's own masked frames (src/transports/ws-frames.ts) against a real `ws` server: whatever the
 * parts' lengths (the mask key runs on across them), the length forms (7-bit, 16-bit, 64-bit) and reuse of
 * the pooled buffers, the server reads exactly the bytes the parts held, and every frame is masked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import { WebSocket, WebSocketServer } from 'ws';
import { MaskedFrameWriter } from '../../src/transports/ws-frames.js';

async function pair(): Promise<{
  writer: MaskedFrameWriter;
  socket: Socket;
  received: Buffer[];
  waitFor: (n: number) => Promise<void>;
  close: () => Promise<void>;
}> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const received: Buffer[] = [];
  let wake: () => void = () => {};
  wss.on('connection', (ws) => {
    ws.on('message', (data: Buffer, isBinary) => {
      assert.equal(isBinary, true);
      received.push(data);
      wake();
    });
  });
  const port = (wss.address() as AddressInfo).port;
  const client = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false });
  await new Promise<void>((r, j) => {
    client.once('open', () => r());
    client.once('error', j);
  });
  const socket = (client as unknown as { _socket: Socket })._socket;
  return {
    writer: new MaskedFrameWriter(socket),
    socket,
    received,
    waitFor: (n) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${received.length} of ${n} messages`)), 30_000);
        const check = () => {
          if (received.length >= n) {
            clearTimeout(timer);
            resolve();
          }
        };
        wake = check;
        check();
      }),
    close: async () => {
      client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

test('ws frames: every length form and part split reaches a ws server byte for byte', async () => {
  const p = await pair();
  try {
    const cases: Buffer[][] = [];
    for (const n of [0, 1, 3, 125, 126, 127, 65535, 65536, 70_001, 123_000, 1_500_000]) {
      cases.push([randomBytes(n)]);
    }
    // Parts of every phase against the key (1, 2, 3 bytes past a multiple of 4), and empty parts.
    cases.push([randomBytes(5), randomBytes(7), Buffer.alloc(0), randomBytes(123_001)]);
    cases.push([randomBytes(34), randomBytes(123_000)]);
    for (const parts of cases) p.writer.write(parts);
    await p.waitFor(cases.length);
    for (const [i, parts] of cases.entries()) {
      assert.deepEqual(p.received[i], Buffer.concat(parts), `message ${i}`);
    }
  } finally {
    await p.close();
  }
});

test('ws frames: random part splits (fast-check), with pooled buffers reused between messages', async () => {
  const p = await pair();
  try {
    let expected = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: 1, maxLength: 4 }),
        async (lengths) => {
          const parts = lengths.map((n) => randomBytes(n));
          p.writer.write(parts);
          expected++;
          await p.waitFor(expected);
          assert.deepEqual(p.received[expected - 1], Buffer.concat(parts));
        },
      ),
      { numRuns: 60, seed: 14 },
    );
  } finally {
    await p.close();
  }
});

test('ws frames: the payload on the wire is masked (a fresh key per message), never the bytes as given', async () => {
  const p = await pair();
  try {
    const seen: Buffer[] = [];
    const write = p.socket.write.bind(p.socket);
    // Watch what the writer hands the socket (it still goes out unchanged).
    (p.socket as unknown as { write: typeof write }).write = ((chunk: Buffer, ...rest: never[]) => {
      seen.push(Buffer.from(chunk));
      return write(chunk, ...rest);
    }) as typeof write;
    const payload = Buffer.alloc(200_000, 0x41);
    p.writer.write([payload]);
    p.writer.write([payload]);
    await p.waitFor(2);
    assert.equal(seen.length, 2);
    for (const f of seen) {
      assert.equal(f[0], 0x82, 'FIN + binary');
      assert.equal(f[1]! & 0x80, 0x80, 'MASK bit set');
      assert.equal(f.length, 14 + payload.length);
      assert.notDeepEqual(f.subarray(14), payload, 'payload masked');
    }
    assert.notDeepEqual(seen[0]!.subarray(10, 14), seen[1]!.subarray(10, 14), 'a new key per message');
    assert.deepEqual(p.received[1], payload);
  } finally {
    await p.close();
  }
});
