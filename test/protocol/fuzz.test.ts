/**
 * Fuzzing the Decoder: random bytes, header-shaped garbage and mutated valid messages, fed in random
 * chunks. Whatever arrives, the Decoder either delivers messages or throws a FramewireError with one of
 * the decoder's codes (an ERR_PROTOCOL here would mean an internal exception escaped), and it never
 * allocates or delivers more than the limits allow, whatever lengths the input announces.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type ErrorCode, FramewireError, isErrorCode } from '../../src/errors.js';
import { type Limits, MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import type { Message } from '../../src/protocol/messages.js';
import { bytesOf, bytewise, caseArb, cutsFor, recordAllocations, splitAt } from './helpers.js';

const LIMITS: Limits = {
  maxFrameBytes: 4096,
  maxMetaBytes: 256,
  maxMessageBytes: 1024,
  maxControlBytes: 1024,
};
const RUNS = 300;
/** Fixed, so that a failure reproduces (fast-check prints the seed and path of a counterexample too). */
const SEED = 20261121;
/**
 * The largest head and body one message may have under LIMITS: a FRAME head holds name and metadata
 * within maxMetaBytes + 1024; a MESSAGE head (the referenced stream name) only has its 16-bit length.
 */
const MAX_MESSAGE = Math.max(
  32 + LIMITS.maxMetaBytes + 1024 + LIMITS.maxFrameBytes,
  0xffff + LIMITS.maxMessageBytes,
  LIMITS.maxControlBytes,
);
/** Chunkings: random cut points (enough of them to make the decoder gather messages), or byte by byte. */
const chunkingArb = fc.oneof(
  fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 64 }),
  fc.constant('bytewise' as const),
);
function chunk(input: Buffer, how: number[] | 'bytewise'): Buffer[] {
  return how === 'bytewise' ? bytewise(input) : splitAt(input, cutsFor(input.length, how));
}

const DECODER_CODES = new Set<ErrorCode>([
  'ERR_BAD_MAGIC',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_UNKNOWN_TYPE',
  'ERR_BAD_HEADER',
  'ERR_FRAME_TOO_LARGE',
  'ERR_META_TOO_LARGE',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_CRC_MISMATCH',
  'ERR_TRUNCATED',
  'ERR_BAD_JSON',
]);

const bytes = (maxLength: number) => fc.uint8Array({ maxLength, size: 'max' }).map((a) => Buffer.from(a));

const FIXED_HEAD = new Map<number, number>([
  [MessageType.FRAME, 32],
  [MessageType.MESSAGE, 18],
  [MessageType.ACK, 12],
  [MessageType.PING, 8],
  [MessageType.PONG, 8],
  [MessageType.CLOCK, 8],
  [MessageType.CLOCK_REPLY, 24],
]);
const VARIABLE_HEAD = new Set<number>([MessageType.FRAME, MessageType.MESSAGE]);

/** A 12-byte header that mostly passes the first checks, followed by random bytes. */
const headerShaped = fc
  .record({
    version: fc.oneof(
      { weight: 9, arbitrary: fc.constant(1) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    ),
    type: fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...Object.values(MessageType)) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) },
    ),
    flags: fc.integer({ min: 0, max: 255 }),
    reserved: fc.oneof(
      { weight: 9, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 255 }) },
    ),
    // Mostly a head length that fits the type (as if a count were off), sometimes any.
    headLen: fc.oneof(
      { weight: 3, arbitrary: fc.constant(-1) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
    ),
    headExtra: fc.integer({ min: 0, max: 200 }),
    bodyLen: fc.oneof(
      fc.integer({ min: 0, max: 300 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 0, max: 0xffff_ffff }),
    ),
    tail: bytes(400),
  })
  .map((h) => {
    if (h.headLen === -1)
      h.headLen = (FIXED_HEAD.get(h.type) ?? 0) + (VARIABLE_HEAD.has(h.type) ? h.headExtra : 0);
    const b = Buffer.alloc(12);
    b.write('FW', 0, 'latin1');
    b[2] = h.version;
    b[3] = h.type;
    b[4] = h.flags;
    b[5] = h.reserved;
    b.writeUInt16BE(h.headLen, 6);
    b.writeUInt32BE(h.bodyLen, 8);
    return Buffer.concat([b, h.tail]);
  });

type Mutation = { op: 'flip' | 'set' | 'insert' | 'delete'; at: number; value: number };
const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'set', 'insert', 'delete'),
  // A large integer taken modulo the length: spreads mutations over the whole input (doubles in 0..1
  // lean towards 0 and would mostly hit the magic).
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
});

function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const i = b.length === 0 ? 0 : m.at % (m.op === 'insert' ? b.length + 1 : b.length);
    if (m.op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([m.value]), b.subarray(i)]);
    else if (b.length === 0) continue;
    else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (m.op === 'flip') b[i] = b[i]! ^ (1 << (m.value & 7));
    else b[i] = m.value;
  }
  return b;
}

/** Valid messages, back to back, with a few bytes flipped, overwritten, inserted or deleted. */
const mutatedValid = fc
  .tuple(
    fc.array(caseArb, { minLength: 1, maxLength: 4 }),
    fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
  )
  .map(([cases, mutations]) => mutate(bytesOf(...cases), mutations));

const inputArb = fc.oneof(bytes(200), headerShaped, mutatedValid);

interface Outcome {
  messages: Message[];
  error: unknown;
  allocations: number[];
}

function run(input: Buffer, chunks: Buffer[]): Outcome {
  const messages: Message[] = [];
  const d = new Decoder((m) => messages.push(m), LIMITS);
  const { sizes, error } = recordAllocations(() => {
    for (const c of chunks) d.write(c);
    d.end();
  });
  assert.equal(
    chunks.reduce((n, c) => n + c.length, 0),
    input.length,
  );
  return { messages, error, allocations: sizes };
}

function checkOutcome(input: Buffer, o: Outcome): void {
  if (o.error !== undefined) {
    assert.ok(o.error instanceof FramewireError, `not a FramewireError: ${String(o.error)}`);
    assert.ok(isErrorCode(o.error.code), o.error.code);
    assert.ok(DECODER_CODES.has(o.error.code), o.error.message);
  }
  // The Decoder copies bytes that arrived, or gathers a message of the announced size once it arrived in many
  // chunks: never more than the limits allow for one message.
  for (const n of o.allocations) {
    assert.ok(n <= MAX_MESSAGE, `allocated ${n} bytes for ${input.length} bytes of input`);
  }
  for (const m of o.messages) {
    if (m.type === MessageType.FRAME) {
      assert.ok(m.frame.payload.length <= LIMITS.maxFrameBytes);
    } else if (m.type === MessageType.MESSAGE) {
      assert.ok(Buffer.byteLength(m.message.text) <= LIMITS.maxMessageBytes);
    }
  }
}

describe('Decoder fuzz', () => {
  it('decodes or throws a decoder FramewireError for any input in any chunks, within the limits', () => {
    fc.assert(
      fc.property(inputArb, chunkingArb, (input, how) => {
        checkOutcome(input, run(input, chunk(input, how)));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('gives the same messages and the same error however the input is chunked', () => {
    fc.assert(
      fc.property(inputArb, chunkingArb, (input, how) => {
        const whole = run(input, input.length > 0 ? [input] : []);
        const chunked = run(input, chunk(input, how));
        assert.deepStrictEqual(chunked.messages, whole.messages);
        const code = (o: Outcome) => (o.error instanceof FramewireError ? o.error.code : o.error);
        assert.equal(code(chunked), code(whole));
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('gathers a message arriving in many chunks into at most the size the limits allow', () => {
    let gathered = 0;
    fc.assert(
      fc.property(headerShaped, (input) => {
        const o = run(input, bytewise(input));
        checkOutcome(input, o);
        // A buffer larger than the input can only come from an announced length.
        if (o.allocations.some((n) => n > input.length)) gathered++;
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // The property above means something only if the decoder did gather announced sizes (the fixed-size
    // types, ACK, PING, PONG, CLOCK, CLOCK_REPLY, never do).
    assert.ok(gathered > RUNS / 25, `only ${gathered} runs gathered a message`);
  });

  it('fails on the header of a frame that announces more than maxFrameBytes, whatever follows', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: LIMITS.maxFrameBytes + 1, max: 0xffff_ffff }),
        bytes(64),
        (bodyLen, tail) => {
          const h = Buffer.alloc(12);
          h.write('FW', 0, 'latin1');
          h[2] = 1;
          h[3] = MessageType.FRAME;
          h.writeUInt16BE(32, 6);
          h.writeUInt32BE(bodyLen, 8);
          const o = run(Buffer.concat([h, tail]), [h, tail]);
          assert.ok(o.error instanceof FramewireError);
          assert.equal(o.error.code, 'ERR_FRAME_TOO_LARGE');
          assert.ok(o.allocations.every((n) => n <= 12));
        },
      ),
      { numRuns: 100, seed: SEED },
    );
  });
});
