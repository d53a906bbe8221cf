import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FramewireError } from '../../src/errors.js';
import { Flags, HEADER_BYTES, MESSAGE_CHANNEL, MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeFrame, type Message, toBytes } from '../../src/protocol/messages.js';
import {
  ackCase,
  bytesOf,
  bytewise,
  type Case,
  caseArb,
  clockCase,
  controlCase,
  cutsArb,
  cutsFor,
  decodeChunks,
  frameCase,
  messageCase,
  ownBuffer,
  pingCase,
  recordAllocations,
  splitAt,
} from './helpers.js';

function payloadOf(m: Message | undefined): Buffer {
  assert.ok(m !== undefined && m.type === MessageType.FRAME);
  return m.frame.payload;
}

const pattern = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff));

/** One or more samples of every message type and every FRAME and MESSAGE variant. */
const SAMPLES: ReadonlyArray<readonly [string, Case]> = [
  [
    'HELLO',
    controlCase(MessageType.HELLO, {
      protocol: 1,
      client: 'framewire/0.1.0',
      epoch: 'ep-1',
      streams: [
        { id: 0, name: 'cam0', kind: 'visible', mode: 'reliable', epoch: 'ep-1' },
        { id: 1, name: 'ir', kind: 'infrared', mode: 'live', epoch: 'ep-1' },
      ],
      messageSeq: 12,
    }),
  ],
  [
    'WELCOME',
    controlCase(MessageType.WELCOME, {
      protocol: 1,
      server: 'framewire/0.1.0',
      session: 'a1b2c3',
      streams: [
        { id: 0, next: 0 },
        { id: 1, next: 2 ** 40 },
      ],
      messageNext: 12,
      limits: { maxFrameBytes: 1 << 26, maxMetaBytes: 1 << 14, maxMessageBytes: 1 << 20 },
    }),
  ],
  [
    'OPEN',
    controlCase(MessageType.OPEN, { id: 2, name: 'depth', kind: 'depth', mode: 'live', epoch: 'ep-1' }),
  ],
  ['OPENED', controlCase(MessageType.OPENED, { id: 2, next: 5 })],
  [
    'ERROR fatal',
    controlCase(MessageType.ERROR, { code: 'ERR_SEQUENCE_GAP', message: 'gap', stream: 0, fatal: true }),
  ],
  [
    'ERROR non-fatal with stream and seq',
    controlCase(MessageType.ERROR, {
      code: 'ERR_UNSAFE_NAME',
      message: 'x',
      stream: 1,
      seq: 9,
      fatal: false,
    }),
  ],
  ['AUTH', controlCase(MessageType.AUTH, { nonce: 'ab'.repeat(32), proof: 'cd'.repeat(32) })],
  ['BYE', controlCase(MessageType.BYE, { reason: 'sender finished' })],
  [
    'FRAME application/octet-stream',
    frameCase({
      streamId: 0,
      seq: 0,
      captureUs: 0,
      contentType: 'application/octet-stream',
      payload: pattern(100),
    }),
  ],
  [
    'FRAME image/jpeg with name',
    frameCase({
      streamId: 3,
      seq: 42,
      captureUs: 1_700_000_000_123_456,
      contentType: 'image/jpeg',
      name: 'frame_000042.jpg',
      payload: pattern(300),
    }),
  ],
  [
    'FRAME image/png with name and metadata',
    frameCase({
      streamId: 0xfffe,
      seq: Number.MAX_SAFE_INTEGER,
      captureUs: Number.MAX_SAFE_INTEGER,
      contentType: 'image/png',
      name: 'snapshots/ø-0001.png',
      metaJson: JSON.stringify({ exposure: 8, gain: 1.5, boxes: [[1, 2, 3, 4]], label: 'ünïcode' }),
      payload: pattern(64),
    }),
  ],
  [
    'FRAME raw rgb24 4x2',
    frameCase({
      streamId: 7,
      seq: 2 ** 32 + 1,
      captureUs: 1,
      contentType: 'raw',
      pixelFormat: 'rgb24',
      width: 4,
      height: 2,
      payload: pattern(4 * 2 * 3),
    }),
  ],
  [
    'FRAME raw nv12 with the largest width and height',
    frameCase({
      streamId: 8,
      seq: 1,
      captureUs: 2,
      contentType: 'raw',
      pixelFormat: 'nv12',
      width: 0xffff,
      height: 0xffff,
      payload: pattern(6),
    }),
  ],
  [
    'FRAME with empty payload and metadata only',
    frameCase({
      streamId: 1,
      seq: 5,
      captureUs: 3,
      contentType: 'image/jpeg',
      metaJson: 'null',
      payload: Buffer.alloc(0),
    }),
  ],
  [
    'FRAME with RETRANSMIT and unknown flag bits',
    frameCase({
      streamId: 1,
      seq: 6,
      captureUs: 4,
      contentType: 'image/jpeg',
      payload: pattern(3),
      flags: 0xff & ~Flags.NO_CRC,
    }),
  ],
  ['MESSAGE without frame reference', messageCase(0, '{"cmd":"start"}')],
  [
    'MESSAGE with frame reference',
    messageCase(2 ** 33, '{"boxes":[[1,2,3,4]],"score":0.9}', { stream: 'cam0', seq: 41 }),
  ],
  ['MESSAGE with a scalar body and flags', messageCase(1, '"text"', { stream: 'é', seq: 0 }, 1)],
  ['ACK', ackCase(0, 0)],
  ['ACK of the message channel, seq above 2^32', ackCase(MESSAGE_CHANNEL, 2 ** 32 + 123)],
  ['ACK at 2^53-1', ackCase(0xfffe, Number.MAX_SAFE_INTEGER)],
  ['PING', pingCase(MessageType.PING, 1_700_000_000_000)],
  ['PONG', pingCase(MessageType.PONG, 0)],
  ['CLOCK', clockCase(1_700_000_000_000_000)],
  ['CLOCK_REPLY at 2^53-1', clockCase(1, { t2: Number.MAX_SAFE_INTEGER, t3: 0 })],
];

describe('Decoder round trip', () => {
  it('covers every message type', () => {
    const types = new Set(SAMPLES.map(([, c]) => c.expected.type));
    assert.deepEqual([...types].sort(), Object.values(MessageType).sort());
  });

  for (const [name, c] of SAMPLES) {
    describe(name, () => {
      const bytes = bytesOf(c);

      it('decodes from one chunk', () => {
        assert.deepStrictEqual(decodeChunks([bytes]), [c.expected]);
      });

      it('decodes from its encoded parts written separately', () => {
        assert.deepStrictEqual(decodeChunks(c.parts), [c.expected]);
      });

      it('decodes byte by byte', () => {
        assert.deepStrictEqual(decodeChunks(bytewise(bytes)), [c.expected]);
      });

      it('decodes when split in two at every offset', () => {
        for (let i = 1; i < bytes.length; i++) {
          assert.deepStrictEqual(decodeChunks(splitAt(bytes, [i])), [c.expected], `split at ${i}`);
        }
      });

      it('decodes when split in three', () => {
        const n = bytes.length;
        const cuts: Array<[number, number]> = [
          [1, 2],
          [HEADER_BYTES - 1, HEADER_BYTES + 1],
          [HEADER_BYTES, n - 1],
          [2, n - 2],
          [Math.floor(n / 3), Math.floor((2 * n) / 3)],
        ];
        for (const [a, b] of cuts) {
          assert.deepStrictEqual(decodeChunks(splitAt(bytes, [a, b])), [c.expected], `split at ${a}, ${b}`);
        }
      });
    });
  }

  it('decodes a FRAME and a MESSAGE split in three at every pair of offsets', () => {
    const c1 = SAMPLES.find(([n]) => n === 'FRAME image/png with name and metadata')![1];
    const c2 = SAMPLES.find(([n]) => n === 'MESSAGE with frame reference')![1];
    for (const c of [c1, c2]) {
      const bytes = bytesOf(c);
      for (let a = 1; a < bytes.length; a += 3) {
        for (let b = a + 1; b < bytes.length; b += 5) {
          assert.deepStrictEqual(decodeChunks(splitAt(bytes, [a, b])), [c.expected], `split at ${a}, ${b}`);
        }
      }
    }
  });

  it('decodes every sample back to back in one chunk, in order', () => {
    const cases = SAMPLES.map(([, c]) => c);
    assert.deepStrictEqual(
      decodeChunks([bytesOf(...cases)]),
      cases.map((c) => c.expected),
    );
  });

  it('decodes every sample back to back, byte by byte and split at every offset', () => {
    const cases = SAMPLES.map(([, c]) => c);
    const bytes = bytesOf(...cases);
    const expected = cases.map((c) => c.expected);
    assert.deepStrictEqual(decodeChunks(bytewise(bytes)), expected);
    for (let i = 1; i < bytes.length; i += 7)
      assert.deepStrictEqual(decodeChunks(splitAt(bytes, [i])), expected);
  });

  it('delivers each message during the write that completes it', () => {
    const a = ackCase(1, 1);
    const b = pingCase(MessageType.PING, 5);
    const bytes = bytesOf(a, b);
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m));
    d.write(bytes.subarray(0, 30)); // the ACK (24 bytes) and 6 bytes of the PING
    assert.deepStrictEqual(got, [a.expected]);
    assert.equal(d.pendingBytes, 6);
    d.write(bytes.subarray(30));
    assert.deepStrictEqual(got, [a.expected, b.expected]);
    assert.equal(d.pendingBytes, 0);
    d.end();
  });

  it('ignores empty chunks', () => {
    const c = ackCase(2, 3);
    const bytes = bytesOf(c);
    const empty = Buffer.alloc(0);
    assert.deepStrictEqual(
      decodeChunks([empty, bytes.subarray(0, 5), empty, empty, bytes.subarray(5), empty]),
      [c.expected],
    );
  });

  it('accepts end() with no input and between messages', () => {
    assert.deepStrictEqual(decodeChunks([]), []);
    const d = new Decoder(() => {});
    d.write(bytesOf(ackCase(0, 0)));
    d.end();
  });

  it('fails with ERR_PROTOCOL, keeping the cause, when the handler throws something else', () => {
    const boom = new Error('handler failed');
    const d = new Decoder(() => {
      throw boom;
    });
    const bytes = bytesOf(ackCase(0, 0));
    let err: unknown;
    try {
      d.write(bytes);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof FramewireError);
    assert.equal(err.code, 'ERR_PROTOCOL');
    assert.equal(err.cause, boom);
    assert.throws(
      () => d.write(bytes),
      (e) => e === err,
    );
  });
});

describe('Decoder payload views', () => {
  const c = frameCase({
    streamId: 1,
    seq: 1,
    captureUs: 1,
    contentType: 'image/jpeg',
    name: 'a.jpg',
    metaJson: '{"a":1}',
    payload: pattern(1000),
  });
  const bytes = bytesOf(c);
  const payloadOffset = bytes.length - 1000;

  it('is a view of the chunk, not a copy, when a FRAME arrives in one chunk', () => {
    // A chunk over an ArrayBuffer of its own, so a pooled copy cannot share its .buffer by chance.
    const chunk = ownBuffer(bytes);
    const [m] = decodeChunks([chunk]);
    const payload = payloadOf(m);
    assert.equal(payload.buffer, chunk.buffer);
    assert.equal(payload.byteOffset, chunk.byteOffset + payloadOffset);
    assert.equal(payload.length, 1000);
  });

  it('is a view of each chunk when several FRAMEs arrive in one chunk', () => {
    const chunk = ownBuffer(Buffer.concat([bytes, bytes, bytes]));
    const got = decodeChunks([chunk]);
    assert.equal(got.length, 3);
    got.forEach((m, i) => {
      const payload = payloadOf(m);
      assert.equal(payload.buffer, chunk.buffer);
      assert.equal(payload.byteOffset, i * bytes.length + payloadOffset);
    });
  });

  it('is a view of the later chunk when only the header and head straddle chunks', () => {
    const first = ownBuffer(bytes.subarray(0, 20));
    const second = ownBuffer(bytes.subarray(20));
    const [m] = decodeChunks([first, second]);
    const payload = payloadOf(m);
    assert.equal(payload.buffer, second.buffer);
    assert.deepStrictEqual(payload, c.parts[1]);
  });

  it('is a copy with the same bytes when the payload straddles chunks', () => {
    const first = ownBuffer(bytes.subarray(0, payloadOffset + 10));
    const second = ownBuffer(bytes.subarray(payloadOffset + 10));
    const [m] = decodeChunks([first, second]);
    const payload = payloadOf(m);
    assert.notEqual(payload.buffer, first.buffer);
    assert.notEqual(payload.buffer, second.buffer);
    assert.deepStrictEqual(payload, c.parts[1]);
  });

  it('encodeFrame passes the payload through without copying', () => {
    const payload = pattern(10);
    const parts = encodeFrame({ streamId: 0, seq: 0, captureUs: 0, contentType: 'raw', payload });
    assert.equal(parts.length, 2);
    assert.equal(parts[1], payload);
    const empty = encodeFrame({
      streamId: 0,
      seq: 0,
      captureUs: 0,
      contentType: 'raw',
      payload: Buffer.alloc(0),
    });
    assert.equal(empty.length, 1);
  });
});

describe('Decoder memory', () => {
  const limits = { maxFrameBytes: 4096 };
  const c = frameCase({ streamId: 0, seq: 0, captureUs: 0, contentType: 'raw', payload: pattern(4000) });
  const bytes = bytesOf(c);
  const messageBytes = bytes.length - HEADER_BYTES; // head and body: what the decoder may gather

  it('holds a frame arriving in a few chunks without allocating for it until it is complete', () => {
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m), limits);
    const chunks = splitAt(bytes, [400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600, bytes.length - 1]);
    const { sizes, error } = recordAllocations(() => {
      for (const chunk of chunks.slice(0, -1)) d.write(chunk);
    });
    assert.equal(error, undefined);
    assert.ok(
      sizes.every((n) => n <= HEADER_BYTES),
      `allocated ${sizes.join(', ')}`,
    );
    // pendingBytes counts what is held besides the header already parsed.
    assert.equal(d.pendingBytes, bytes.length - 1 - HEADER_BYTES);
    d.write(chunks.at(-1)!);
    assert.deepStrictEqual(got, [c.expected]);
  });

  it('gathers a frame arriving in many small chunks into one buffer of its announced size', () => {
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m), limits);
    const { sizes, error } = recordAllocations(() => {
      bytewise(bytes).forEach((chunk, i) => {
        d.write(chunk);
        const held = i + 1 < HEADER_BYTES ? i + 1 : i + 1 - HEADER_BYTES;
        if (i < bytes.length - 1) assert.equal(d.pendingBytes, held);
      });
    });
    assert.equal(error, undefined);
    // One allocation of the announced head and body, and nothing else of any size.
    assert.deepStrictEqual(
      sizes.filter((n) => n > HEADER_BYTES),
      [messageBytes],
    );
    assert.deepStrictEqual(got, [c.expected]);
    assert.equal(d.pendingBytes, 0);
  });

  it('goes on with the bytes after a gathered frame, in the chunk that completed it', () => {
    const next = ackCase(0, 9);
    const all = Buffer.concat([bytes, bytesOf(next, next)]);
    const chunks = [...bytewise(all.subarray(0, bytes.length - 1)), all.subarray(bytes.length - 1)];
    assert.deepStrictEqual(decodeChunks(chunks, limits), [c.expected, next.expected, next.expected]);
  });

  it('takes linear time for a large frame arriving one byte at a time', () => {
    const payload = Buffer.alloc(300_000, 0xab);
    const bytes = toBytes(encodeFrame({ streamId: 0, seq: 0, captureUs: 0, contentType: 'raw', payload }));
    const started = performance.now();
    const [m] = decodeChunks(bytewise(bytes));
    const ms = performance.now() - started;
    assert.deepStrictEqual(payloadOf(m), payload);
    // Linear decoding takes well under a second here; the quadratic version took about 40 s.
    assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  });
});

describe('Decoder properties', () => {
  it('decodes any sequence of valid messages cut into any chunks', () => {
    fc.assert(
      fc.property(fc.array(caseArb, { minLength: 1, maxLength: 8 }), cutsArb, (cases, fractions) => {
        const bytes = bytesOf(...cases);
        const chunks = splitAt(bytes, cutsFor(bytes.length, fractions));
        assert.deepStrictEqual(
          decodeChunks(chunks),
          cases.map((c) => c.expected),
        );
      }),
      { numRuns: 200, seed: 20261121 },
    );
  });

  it('decodes any valid message fed byte by byte', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        assert.deepStrictEqual(decodeChunks(bytewise(bytesOf(c))), [c.expected]);
      }),
      { numRuns: 100, seed: 20261122 },
    );
  });
});

describe('Decoder intake: restrict() before the handshake, and the shared budget', () => {
  const header = (type: number, headLen: number, bodyLen: number) => {
    const h = Buffer.alloc(HEADER_BYTES);
    h.write('FW', 0, 'latin1');
    h[2] = 1;
    h[3] = type;
    h.writeUInt16BE(headLen, 6);
    h.writeUInt32BE(bodyLen, 8);
    return h;
  };

  it('refuses a FRAME or MESSAGE from its 12 header bytes while restricted, and control messages over N', () => {
    for (const [type, head] of [
      [MessageType.FRAME, 32],
      [MessageType.MESSAGE, 18],
    ] as const) {
      const d = new Decoder(() => {});
      d.restrict(1000, 'HELLO');
      assert.throws(() => d.write(header(type, head, 60_000_000)), {
        code: 'ERR_EARLY_DATA',
        message: /before HELLO/,
      });
      assert.equal(d.pendingBytes, 0);
    }
    const d = new Decoder(() => {});
    d.restrict(1000, 'HELLO');
    assert.throws(() => d.write(header(MessageType.HELLO, 0, 1001)), {
      code: 'ERR_MESSAGE_TOO_LARGE',
      message: /maxControlBytes 1000/,
    });
  });

  it('admitAll() lifts it, also for a frame in the same chunk as the message that lifts it', () => {
    const got: Message[] = [];
    const d = new Decoder((m) => {
      got.push(m);
      if (m.type === MessageType.PING) d.admitAll();
    });
    d.restrict(1000, 'HELLO');
    const ping = Buffer.concat([header(MessageType.PING, 8, 0), Buffer.alloc(8)]);
    const frame = toBytes(
      encodeFrame({
        streamId: 1,
        seq: 0,
        captureUs: 0,
        contentType: 'image/jpeg',
        payload: Buffer.alloc(10),
      }),
    );
    d.write(Buffer.concat([ping, frame]));
    assert.deepEqual(
      got.map((m) => m.type),
      [MessageType.PING, MessageType.FRAME],
    );
  });

  it('a message left incomplete takes its announced size from the budget, given back when it completes', async () => {
    const { PartialBudget } = await import('../../src/protocol/decoder.js');
    const budget = new PartialBudget(2500);
    const frame = (n: number) =>
      toBytes(
        encodeFrame({
          streamId: 1,
          seq: 0,
          captureUs: 0,
          contentType: 'image/jpeg',
          payload: Buffer.alloc(n),
        }),
      );
    const a = new Decoder(() => {});
    const b = new Decoder(() => {});
    const c = new Decoder(() => {});
    for (const d of [a, b, c]) d.useBudget(budget);
    // A whole message takes nothing.
    a.write(frame(2000));
    assert.equal(budget.used, 0);
    a.write(frame(1000).subarray(0, 100));
    assert.equal(budget.used, 1032);
    b.write(frame(1000).subarray(0, 100));
    assert.equal(budget.used, 2064);
    assert.throws(() => c.write(frame(1000).subarray(0, 100)), { code: 'ERR_RECEIVER_BUSY' });
    assert.equal(budget.used, 2064, 'a refused message takes nothing');
    a.write(frame(1000).subarray(100));
    assert.equal(budget.used, 1032);
    b.dispose();
    assert.equal(budget.used, 0, 'a disposed decoder gives its share back');
    // A decoder that fails, or ends inside a message, gives its share back too.
    const e = new Decoder(() => {});
    e.useBudget(budget);
    e.write(frame(1000).subarray(0, 100));
    assert.throws(() => e.end(), { code: 'ERR_TRUNCATED' });
    assert.equal(budget.used, 0);
  });
});
