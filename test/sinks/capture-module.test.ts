/**
 * The capture page's module (/capture.js) imported in Node as the browser gets it: its bytes must be the
 * Node encoder's bytes, and its token proof the session's. The real browser run is capture.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageType } from '../../src/protocol/constants.js';
import { encodeAck, encodeControl, encodeFrame, toBytes } from '../../src/protocol/messages.js';
import { proof } from '../../src/session/auth.js';
import { captureModule } from '../../src/sinks/capture-module.js';
import { payload } from '../helpers/tmp.js';

interface CaptureModule {
  encodeControl(type: number, body: unknown): Uint8Array;
  encodeFrameHead(f: object): Uint8Array;
  crc32(b: Uint8Array): number;
  decode(b: ArrayBuffer | Uint8Array): { type: number; stream?: number; seq?: number; body?: unknown };
  proof(token: string, role: string, ns: string, nr: string): Promise<string>;
}

async function load(): Promise<CaptureModule> {
  const url = `data:text/javascript;base64,${Buffer.from(captureModule()).toString('base64')}`;
  return (await import(url)) as CaptureModule;
}

test('the browser module encodes HELLO and FRAME byte for byte as src/protocol does, and decodes ACK', async () => {
  const m = await load();
  const hello = { protocol: 1, client: 'x', epoch: 'e', streams: [] };
  assert.ok(
    Buffer.from(m.encodeControl(MessageType.HELLO, hello)).equals(
      toBytes(encodeControl(MessageType.HELLO, hello)),
    ),
  );
  const data = payload(3, 5000);
  const f = { streamId: 0, seq: 2 ** 40 + 5, captureUs: 1_700_000_000_123_456, width: 640, height: 480 };
  const head = m.encodeFrameHead({ ...f, payload: new Uint8Array(data) });
  const ours = Buffer.concat([Buffer.from(head), data]);
  assert.ok(ours.equals(toBytes(encodeFrame({ ...f, contentType: 'image/jpeg', payload: data }))));
  assert.equal(m.crc32(new Uint8Array(0)), 0);
  const ack = m.decode(toBytes(encodeAck(0, 2 ** 33 + 1)));
  assert.deepEqual({ ...ack }, { type: MessageType.ACK, stream: 0, seq: 2 ** 33 + 1 });
});

test("the browser module's token proof is the session's (WebCrypto HMAC-SHA256)", async () => {
  const m = await load();
  const ns = 'a'.repeat(64);
  const nr = 'b'.repeat(64);
  for (const role of ['sender', 'receiver'] as const) {
    assert.equal(await m.proof('tok', role, ns, nr), proof('tok', role, ns, nr));
  }
});

test('the browser module checks an impostor receiver proof first and sends it no proof of its own', async () => {
  // Node 20 has no global WebSocket; the `ws` package speaks the same onopen/onmessage/binaryType API.
  const { WebSocket, WebSocketServer } = await import('ws');
  const g = globalThis as { WebSocket?: unknown };
  const had = g.WebSocket;
  g.WebSocket = WebSocket;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'framewire.v1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as { port: number }).port;
  const m = (await load()) as CaptureModule & {
    Sender: new (
      url: string,
      o: object,
    ) => { open(): void; close(): void; error: string; onchange: () => void };
  };
  const got: { type: number; body?: Record<string, unknown> }[] = [];
  const done = new Promise<void>((resolve) => {
    wss.on('connection', (ws) => {
      ws.on('message', (data: Buffer) => {
        const msg = m.decode(new Uint8Array(data)) as { type: number; body?: Record<string, unknown> };
        got.push(msg);
        if (msg.type === MessageType.HELLO) {
          // An impostor: it does not know the token, so its proof is made up.
          ws.send(m.encodeControl(MessageType.AUTH, { nonce: 'c'.repeat(64), proof: 'd'.repeat(64) }));
        }
      });
      ws.on('close', () => resolve());
    });
  });
  const sender = new m.Sender(`ws://127.0.0.1:${port}/ws`, {
    stream: 'phone',
    kind: 'visible',
    mode: 'live',
    token: 'the-real-token',
  });
  try {
    sender.open();
    await done;
    assert.deepEqual(
      got.map((x) => x.type),
      [MessageType.HELLO, MessageType.ERROR],
      'HELLO, then an ERROR: never an AUTH answer',
    );
    assert.equal(got[1]!.body!.code, 'ERR_AUTH');
    assert.match(sender.error, /ERR_AUTH/);
    assert.ok(
      got.every((x) => x.body?.proof === undefined),
      `no proof sent: ${JSON.stringify(got)}`,
    );
  } finally {
    sender.close();
    wss.close();
    g.WebSocket = had;
  }
});
