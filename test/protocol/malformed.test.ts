/**
 * One test per kind of malformed input: each asserts the FramewireError code, and where the design says so,
 * that the error comes from the header alone, before the rest of the message arrives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import type { ErrorCode } from '../../src/errors.js';
import { type Limits, MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { encodeControl, type Message } from '../../src/protocol/messages.js';
import {
  ackCase,
  bytesOf,
  bytewise,
  controlCase,
  decodeChunks,
  frameCase,
  handMade,
  messageCase,
  patch,
  pingCase,
  recordAllocations,
  throwsCode,
} from './helpers.js';

const FRAME = bytesOf(
  frameCase({
    streamId: 1,
    seq: 7,
    captureUs: 1000,
    contentType: 'image/jpeg',
    name: 'a.jpg',
    metaJson: '{"a":1}',
    payload: Buffer.from('0123456789abcdef'),
  }),
);
/** Offsets inside FRAME: the head starts after the 12-byte header. */
const F = { contentType: 14, pixelFormat: 15, seq: 20, captureUs: 28, crc: 36, nameLen: 40, metaLen: 42 };
const FRAME_PAYLOAD_AT = FRAME.length - 16;
const MESSAGE = bytesOf(messageCase(3, '{"x":1}', { stream: 'cam0', seq: 9 }));
const M = { seq: 12, refSeq: 20, refLen: 28 };
const ACK = bytesOf(ackCase(1, 7));
const PING = bytesOf(pingCase(MessageType.PING, 1234));
const HELLO = bytesOf(
  controlCase(MessageType.HELLO, { protocol: 1, client: 't', epoch: 'e', streams: [], messageSeq: 0 }),
);
const CONTROL_TYPES = [
  MessageType.HELLO,
  MessageType.WELCOME,
  MessageType.OPEN,
  MessageType.OPENED,
  MessageType.ERROR,
  MessageType.BYE,
] as const;

/** Feeds the chunks one by one and asserts that the write of chunk `at` (default: the last) throws `code`. */
function failsAt(
  chunks: Buffer[],
  code: ErrorCode,
  limits?: Partial<Limits>,
  at = chunks.length - 1,
): Message[] {
  const got: Message[] = [];
  const d = new Decoder((m) => got.push(m), limits);
  for (let i = 0; i < at; i++) d.write(chunks[i]!);
  throwsCode(() => d.write(chunks[at]!), code);
  return got;
}

/** Asserts that the bytes fail with `code`, whole, byte by byte, and split after the header. */
function fails(bytes: Buffer, code: ErrorCode, limits?: Partial<Limits>): void {
  throwsCode(() => decodeChunks([bytes], limits), code);
  throwsCode(() => decodeChunks(bytewise(bytes), limits), code);
  throwsCode(() => decodeChunks([bytes.subarray(0, 12), bytes.subarray(12)], limits), code);
}

/** Writes a high/low pair of 32-bit words at `offset`. */
function u64Patch(buf: Buffer, offset: number, hi: number, lo: number): Buffer {
  const out = Buffer.from(buf);
  out.writeUInt32BE(hi, offset);
  out.writeUInt32BE(lo, offset + 4);
  return out;
}

describe('malformed input: magic', () => {
  it('rejects a whole header with the wrong magic', () => {
    fails(patch(ACK, 0, [0x58, 0x58]), 'ERR_BAD_MAGIC');
  });

  it('rejects a wrong first byte as soon as it arrives', () => {
    failsAt([Buffer.from([0x00])], 'ERR_BAD_MAGIC');
    failsAt([Buffer.from([0x57])], 'ERR_BAD_MAGIC');
  });

  it('rejects a wrong second byte as soon as it arrives, in the same chunk or the next', () => {
    failsAt([Buffer.from([0x46, 0x00])], 'ERR_BAD_MAGIC');
    failsAt([Buffer.from([0x46]), Buffer.from([0x46])], 'ERR_BAD_MAGIC');
  });

  it('rejects text protocols (HTTP) and TLS spoken to a plain framewire port at once', () => {
    failsAt([Buffer.from('GET / HTTP/1.1\r\n')], 'ERR_BAD_MAGIC');
    failsAt([Buffer.from([0x16, 0x03, 0x01])], 'ERR_BAD_MAGIC');
  });

  it('rejects bad magic at the start of a later message, after delivering the earlier ones', () => {
    const got = failsAt([Buffer.concat([ACK, PING, Buffer.from('XX')])], 'ERR_BAD_MAGIC');
    assert.equal(got.length, 2);
  });
});

describe('malformed input: header', () => {
  it('rejects an unknown protocol version from the header alone', () => {
    for (const v of [0, 2, 0xff]) {
      failsAt([patch(FRAME, 2, [v]).subarray(0, 12)], 'ERR_UNSUPPORTED_VERSION');
      fails(patch(ACK, 2, [v]), 'ERR_UNSUPPORTED_VERSION');
    }
  });

  it('rejects an unknown message type from the header alone', () => {
    for (const t of [0x00, 0x06, 0x13, 0x21, 0x34, 0x40, 0xff]) {
      failsAt([handMade(t, Buffer.alloc(0)).subarray(0, 12)], 'ERR_UNKNOWN_TYPE');
    }
  });

  it('rejects a nonzero reserved byte', () => {
    fails(patch(ACK, 5, [1]), 'ERR_BAD_HEADER');
    fails(patch(FRAME, 5, [0x80]), 'ERR_BAD_HEADER');
  });

  it('ignores flag bits it does not know', () => {
    const [m] = decodeChunks([patch(ACK, 4, [0xfe])]);
    assert.deepStrictEqual(m, { type: MessageType.ACK, stream: 1, seq: 7 });
  });

  it('rejects an ACK with the wrong head length or a body', () => {
    fails(handMade(MessageType.ACK, ACK.subarray(12, 20)), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.ACK, Buffer.concat([ACK.subarray(12), Buffer.alloc(1)])), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.ACK, ACK.subarray(12), Buffer.alloc(1)), 'ERR_BAD_HEADER');
  });

  it('rejects a PING or PONG with the wrong head length or a body', () => {
    for (const t of [MessageType.PING, MessageType.PONG]) {
      fails(handMade(t, Buffer.alloc(12)), 'ERR_BAD_HEADER');
      fails(handMade(t, Buffer.alloc(4)), 'ERR_BAD_HEADER');
      fails(handMade(t, Buffer.alloc(8), Buffer.alloc(2)), 'ERR_BAD_HEADER');
    }
  });

  it('rejects a CLOCK or CLOCK_REPLY with the wrong head length, a body, or a time above 2^53-1', () => {
    fails(handMade(MessageType.CLOCK, Buffer.alloc(24)), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.CLOCK_REPLY, Buffer.alloc(8)), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.CLOCK, Buffer.alloc(8), Buffer.alloc(1)), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.CLOCK_REPLY, Buffer.alloc(24), Buffer.alloc(1)), 'ERR_BAD_HEADER');
    const big = Buffer.alloc(24);
    big.writeUInt32BE(0x0020_0000, 8);
    fails(handMade(MessageType.CLOCK_REPLY, big), 'ERR_BAD_HEADER');
  });

  it('rejects a control message with a head', () => {
    for (const t of CONTROL_TYPES) fails(handMade(t, Buffer.alloc(2), '{}'), 'ERR_BAD_HEADER');
  });

  it('rejects a FRAME head shorter than 32 bytes', () => {
    fails(handMade(MessageType.FRAME, Buffer.alloc(31)), 'ERR_BAD_HEADER');
    fails(handMade(MessageType.FRAME, Buffer.alloc(0)), 'ERR_BAD_HEADER');
  });

  it('rejects a MESSAGE head shorter than 18 bytes', () => {
    fails(handMade(MessageType.MESSAGE, Buffer.alloc(17), '1'), 'ERR_BAD_HEADER');
  });

  it('rejects FRAME name and metadata lengths that do not add up to the head length', () => {
    fails(patch(FRAME, F.nameLen, [0, 6]), 'ERR_BAD_HEADER');
    fails(patch(FRAME, F.nameLen, [0, 4]), 'ERR_BAD_HEADER');
    fails(patch(FRAME, F.metaLen, [0, 8]), 'ERR_BAD_HEADER');
    fails(patch(FRAME, F.metaLen, [0xff, 0xff]), 'ERR_BAD_HEADER');
  });

  it('rejects a MESSAGE stream name length that does not match the head length', () => {
    fails(patch(MESSAGE, M.refLen, [0, 5]), 'ERR_BAD_HEADER');
    fails(patch(MESSAGE, M.refLen, [0, 0]), 'ERR_BAD_HEADER');
  });

  it('rejects an unknown content type code', () => {
    for (const code of [4, 0x80, 0xff]) fails(patch(FRAME, F.contentType, [code]), 'ERR_BAD_HEADER');
  });

  it('rejects an unknown pixel format code', () => {
    for (const code of [9, 0x80, 0xff]) fails(patch(FRAME, F.pixelFormat, [code]), 'ERR_BAD_HEADER');
  });
});

describe('malformed input: 64-bit values', () => {
  const fields: Array<[string, Buffer, number]> = [
    ['FRAME seq', FRAME, F.seq],
    ['FRAME captureUs', FRAME, F.captureUs],
    ['MESSAGE seq', MESSAGE, M.seq],
    ['MESSAGE referenced seq', MESSAGE, M.refSeq],
    ['ACK seq', ACK, 16],
    ['PING time', PING, 12],
  ];
  for (const [what, bytes, offset] of fields) {
    it(`rejects ${what} of 2^53 and above, accepts 2^53-1`, () => {
      fails(u64Patch(bytes, offset, 0x0020_0000, 0), 'ERR_BAD_HEADER');
      fails(u64Patch(bytes, offset, 0xffff_ffff, 0xffff_ffff), 'ERR_BAD_HEADER');
      assert.equal(decodeChunks([u64Patch(bytes, offset, 0x001f_ffff, 0xffff_ffff)]).length, 1);
    });
  }

  it('rejects a PONG time of 2^53', () => {
    fails(u64Patch(bytesOf(pingCase(MessageType.PONG, 1)), 12, 0x0020_0000, 0), 'ERR_BAD_HEADER');
  });
});

describe('malformed input: limits', () => {
  const limits = { maxFrameBytes: 4096, maxMetaBytes: 16, maxMessageBytes: 32, maxControlBytes: 64 };

  function frameWithPayload(n: number): Buffer {
    return bytesOf(
      frameCase({ streamId: 0, seq: 0, captureUs: 0, contentType: 'raw', payload: Buffer.alloc(n, 1) }),
    );
  }

  it('rejects a frame over maxFrameBytes from the header alone, without allocating it', () => {
    const header = frameWithPayload(4097).subarray(0, 12);
    const { sizes, error } = recordAllocations(() => failsAt([header], 'ERR_FRAME_TOO_LARGE', limits));
    assert.equal(error, undefined);
    assert.ok(
      sizes.every((n) => n < 4097),
      `allocated ${sizes.join(', ')}`,
    );
  });

  it('names the size and the limit in the message', () => {
    const err = throwsCode(() => decodeChunks([frameWithPayload(4097)], limits), 'ERR_FRAME_TOO_LARGE');
    assert.match(err.message, /4097/);
    assert.match(err.message, /maxFrameBytes 4096/);
  });

  it('rejects a 4 GiB frame announcement under the default limit from the header alone', () => {
    const header = handMade(MessageType.FRAME, Buffer.alloc(32), Buffer.alloc(0), { bodyLen: 0xffff_ffff });
    const { sizes, error } = recordAllocations(() =>
      failsAt([header.subarray(0, 12)], 'ERR_FRAME_TOO_LARGE'),
    );
    assert.equal(error, undefined);
    assert.ok(
      sizes.every((n) => n < 1024),
      `allocated ${sizes.join(', ')}`,
    );
  });

  it('accepts a frame of exactly maxFrameBytes', () => {
    assert.equal(decodeChunks([frameWithPayload(4096)], limits).length, 1);
  });

  it('rejects frame metadata over maxMetaBytes, accepts exactly maxMetaBytes', () => {
    const meta = (n: number) => JSON.stringify('x'.repeat(n - 2));
    const frame = (n: number) =>
      bytesOf(
        frameCase({
          streamId: 0,
          seq: 0,
          captureUs: 0,
          contentType: 'raw',
          metaJson: meta(n),
          payload: Buffer.alloc(1),
        }),
      );
    fails(frame(17), 'ERR_META_TOO_LARGE', limits);
    assert.equal(decodeChunks([frame(16)], limits).length, 1);
  });

  it('rejects a FRAME head far over maxMetaBytes from the header alone', () => {
    // Name and metadata may take at most maxMetaBytes + 1024 bytes of head.
    const header = handMade(MessageType.FRAME, Buffer.alloc(0), Buffer.alloc(0), {
      headLen: 32 + 16 + 1024 + 1,
    });
    failsAt([header], 'ERR_META_TOO_LARGE', limits);
  });

  it('rejects a MESSAGE over maxMessageBytes from the header alone, accepts exactly maxMessageBytes', () => {
    const msg = (n: number) => bytesOf(messageCase(0, JSON.stringify('y'.repeat(n - 2))));
    failsAt([msg(33).subarray(0, 12)], 'ERR_MESSAGE_TOO_LARGE', limits);
    fails(msg(33), 'ERR_MESSAGE_TOO_LARGE', limits);
    assert.equal(decodeChunks([msg(32)], limits).length, 1);
  });

  it('rejects a control message over maxControlBytes from the header alone, accepts exactly maxControlBytes', () => {
    for (const t of CONTROL_TYPES) {
      const ctl = (n: number) => handMade(t, Buffer.alloc(0), JSON.stringify({ r: 'z'.repeat(n - 8) }));
      failsAt([ctl(65).subarray(0, 12)], 'ERR_MESSAGE_TOO_LARGE', limits);
      assert.equal(decodeChunks([ctl(64)], limits).length, 1);
    }
  });

  it('applies the default limits when none are given', () => {
    const d = new Decoder(() => {});
    assert.deepStrictEqual(d.limits, {
      maxFrameBytes: 64 * 1024 * 1024,
      maxMetaBytes: 16 * 1024,
      maxMessageBytes: 1024 * 1024,
      maxControlBytes: 64 * 1024,
    });
    const over = encodeControl(MessageType.BYE, { reason: 'w'.repeat(64 * 1024 - 13) })[0]!;
    assert.equal(over.readUInt32BE(8), 64 * 1024);
    assert.equal(decodeChunks([over]).length, 1);
    failsAt(
      [handMade(MessageType.BYE, Buffer.alloc(0), Buffer.alloc(0), { bodyLen: 64 * 1024 + 1 })],
      'ERR_MESSAGE_TOO_LARGE',
    );
  });
});

describe('malformed input: CRC', () => {
  it('rejects a payload whose CRC32 does not match', () => {
    fails(patch(FRAME, FRAME.length - 1, [FRAME[FRAME.length - 1]! ^ 0x01]), 'ERR_CRC_MISMATCH');
    fails(patch(FRAME, FRAME_PAYLOAD_AT, [0]), 'ERR_CRC_MISMATCH');
    fails(patch(FRAME, F.crc + 3, [FRAME[F.crc + 3]! ^ 0x80]), 'ERR_CRC_MISMATCH');
  });

  it('rejects an empty payload with a nonzero CRC', () => {
    const empty = bytesOf(
      frameCase({ streamId: 0, seq: 0, captureUs: 0, contentType: 'raw', payload: Buffer.alloc(0) }),
    );
    assert.equal(empty.readUInt32BE(F.crc), crc32(Buffer.alloc(0)));
    fails(patch(empty, F.crc, [0, 0, 0, 1]), 'ERR_CRC_MISMATCH');
  });
});

describe('malformed input: truncation', () => {
  for (const [what, bytes] of [
    ['FRAME', FRAME],
    ['MESSAGE', MESSAGE],
    ['ACK', ACK],
    ['HELLO', HELLO],
  ] as const) {
    it(`reports a ${what} cut short at end(), wherever it was cut`, () => {
      for (let n = 1; n < bytes.length; n++) {
        const d = new Decoder(() => assert.fail('no message expected'));
        d.write(bytes.subarray(0, n));
        throwsCode(() => d.end(), 'ERR_TRUNCATED');
      }
    });
  }

  it('reports a FRAME cut short while it was being gathered from many small chunks', () => {
    const d = new Decoder(() => assert.fail('no message expected'));
    for (const c of bytewise(FRAME.subarray(0, FRAME.length - 1))) d.write(c);
    assert.equal(d.pendingBytes, FRAME.length - 1 - 12);
    throwsCode(() => d.end(), 'ERR_TRUNCATED');
  });

  it('names where the input ended', () => {
    const d = new Decoder(() => {});
    d.write(FRAME.subarray(0, 20));
    const err = throwsCode(() => d.end(), 'ERR_TRUNCATED');
    assert.match(err.message, /FRAME/);
    const d2 = new Decoder(() => {});
    d2.write(FRAME.subarray(0, 5));
    assert.match(throwsCode(() => d2.end(), 'ERR_TRUNCATED').message, /header/);
  });
});

describe('malformed input: JSON', () => {
  it('rejects FRAME metadata that is not JSON', () => {
    const payload = Buffer.from('p');
    for (const meta of ['{bad', '{"a":1}x', 'undefined', "{'a':1}"]) {
      const head = Buffer.alloc(32);
      head.writeUInt32BE(crc32(payload), 24);
      head.writeUInt16BE(Buffer.byteLength(meta), 30);
      fails(handMade(MessageType.FRAME, Buffer.concat([head, Buffer.from(meta)]), payload), 'ERR_BAD_JSON');
    }
  });

  it('rejects a MESSAGE body that is not JSON', () => {
    const head = MESSAGE.subarray(12, 12 + 22);
    for (const body of ['not json', '', '{"a":', '\u00ff']) {
      fails(handMade(MessageType.MESSAGE, head, body), 'ERR_BAD_JSON');
    }
  });

  it('rejects a control body that is not JSON or not an object', () => {
    for (const t of CONTROL_TYPES) {
      for (const body of ['', '{', '[1,2]', 'null', '"text"', '42', 'true']) {
        fails(handMade(t, Buffer.alloc(0), body), 'ERR_BAD_JSON');
      }
    }
  });
});

describe('a failed Decoder stays failed', () => {
  it('throws the same error on every later write and on end()', () => {
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m));
    const err = throwsCode(() => d.write(patch(ACK, 2, [9])), 'ERR_UNSUPPORTED_VERSION');
    assert.throws(
      () => d.write(ACK),
      (e) => e === err,
    );
    assert.throws(
      () => d.write(Buffer.alloc(0)),
      (e) => e === err,
    );
    assert.throws(
      () => d.end(),
      (e) => e === err,
    );
    assert.equal(got.length, 0);
    assert.equal(d.pendingBytes, 0);
  });

  it('stays failed after ERR_TRUNCATED', () => {
    const d = new Decoder(() => {});
    d.write(ACK.subarray(0, 3));
    const err = throwsCode(() => d.end(), 'ERR_TRUNCATED');
    assert.throws(
      () => d.write(ACK.subarray(3)),
      (e) => e === err,
    );
  });

  it('drops the rest of the chunk that failed', () => {
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m));
    throwsCode(() => d.write(Buffer.concat([ACK, patch(PING, 5, [1]), ACK])), 'ERR_BAD_HEADER');
    assert.equal(got.length, 1);
  });
});
