/**
 * Shared helpers for the protocol tests: builders that pair an encoding with the message the Decoder must
 * deliver for it, fast-check arbitraries of valid messages, and small byte utilities.
 */
import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { type ErrorCode, FramewireError } from '../../src/errors.js';
import {
  CONTENT_TYPES,
  Flags,
  type Limits,
  MAX_STREAM_ID,
  MESSAGE_CHANNEL,
  MessageType,
  PIXEL_FORMATS,
  STREAM_KINDS,
  STREAM_MODES,
} from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import {
  type Encoded,
  encodeAck,
  encodeClock,
  encodeClockReply,
  encodeControl,
  encodeFrame,
  encodeMessage,
  encodePing,
  type FrameFields,
  type FrameRef,
  type Message,
  toBytes,
} from '../../src/protocol/messages.js';

/** One encoded message and what the Decoder must deliver for it. */
export interface Case {
  parts: Encoded;
  expected: Message;
}

export type ControlType =
  | typeof MessageType.HELLO
  | typeof MessageType.WELCOME
  | typeof MessageType.OPEN
  | typeof MessageType.OPENED
  | typeof MessageType.AUTH
  | typeof MessageType.ERROR
  | typeof MessageType.BYE;

export function controlCase(type: ControlType, body: object): Case {
  // The decoder hands back the parsed JSON, so compare against the body after a JSON round trip.
  return {
    parts: encodeControl(type, body),
    expected: { type, body: JSON.parse(JSON.stringify(body)) } as Message,
  };
}

export function frameCase(f: FrameFields): Case {
  return {
    parts: encodeFrame(f),
    expected: {
      type: MessageType.FRAME,
      frame: {
        streamId: f.streamId,
        seq: f.seq,
        captureUs: f.captureUs,
        contentType: f.contentType,
        pixelFormat: f.pixelFormat ?? 'none',
        width: f.width ?? 0,
        height: f.height ?? 0,
        crc: f.crc ?? crc32(f.payload),
        name: f.name ?? '',
        meta: f.metaJson === undefined ? undefined : JSON.parse(f.metaJson),
        payload: f.payload,
        flags: f.flags ?? 0,
      },
    },
  };
}

export function messageCase(seq: number, text: string, ref?: FrameRef, flags = 0): Case {
  return {
    parts: encodeMessage(seq, text, ref, flags),
    expected: {
      type: MessageType.MESSAGE,
      message: { seq, ref: ref === undefined ? undefined : { ...ref }, json: JSON.parse(text), text, flags },
    },
  };
}

export function ackCase(stream: number, seq: number): Case {
  return { parts: encodeAck(stream, seq), expected: { type: MessageType.ACK, stream, seq } };
}

export function pingCase(type: typeof MessageType.PING | typeof MessageType.PONG, time: number): Case {
  return { parts: encodePing(type, time), expected: { type, time } };
}

export function clockCase(t1: number, reply?: { t2: number; t3: number }): Case {
  return reply
    ? {
        parts: encodeClockReply(t1, reply.t2, reply.t3),
        expected: { type: MessageType.CLOCK_REPLY, t1, ...reply },
      }
    : { parts: encodeClock(t1), expected: { type: MessageType.CLOCK, t1 } };
}

/** The wire bytes of one or more cases, back to back. */
export function bytesOf(...cases: Case[]): Buffer {
  return Buffer.concat(cases.map((c) => toBytes(c.parts)));
}

/** Cuts `buf` at the given offsets (any order, duplicates and out-of-range offsets ignored). */
export function splitAt(buf: Buffer, points: readonly number[]): Buffer[] {
  const cuts = [...new Set(points.filter((p) => p > 0 && p < buf.length))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of cuts) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}

/** Splits into one-byte chunks. */
export function bytewise(buf: Buffer): Buffer[] {
  return Array.from(buf, (_, i) => buf.subarray(i, i + 1));
}

/** Feeds the chunks to a fresh Decoder, calls end(), and returns every message delivered. */
export function decodeChunks(chunks: readonly Buffer[], limits?: Partial<Limits>): Message[] {
  const out: Message[] = [];
  const d = new Decoder((m) => out.push(m), limits);
  for (const c of chunks) d.write(c);
  d.end();
  return out;
}

/** Copies `bytes` into a Buffer over an ArrayBuffer of its own (not Node's shared allocation pool). */
export function ownBuffer(bytes: Buffer): Buffer {
  const b = Buffer.from(new ArrayBuffer(bytes.length));
  bytes.copy(b);
  return b;
}

/** Returns a copy of `buf` with `bytes` written at `offset`. */
export function patch(buf: Buffer, offset: number, bytes: readonly number[]): Buffer {
  const out = Buffer.from(buf);
  for (let i = 0; i < bytes.length; i++) out[offset + i] = bytes[i]!;
  return out;
}

/** Runs fn, asserts it throws a FramewireError with the given code, and returns the error. */
export function throwsCode(fn: () => unknown, code: ErrorCode): FramewireError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof FramewireError, `expected a FramewireError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.startsWith(`${code}: `), caught.message);
  return caught;
}

// ---------------------------------------------------------------------------------------------------------
// fast-check arbitraries of valid messages

const u16 = fc.integer({ min: 0, max: 0xffff });
const u8 = fc.integer({ min: 0, max: 0xff });
const u64 = fc.oneof(
  fc.nat(1000),
  fc.maxSafeNat(),
  fc.constant(Number.MAX_SAFE_INTEGER),
  fc.constant(2 ** 32),
);
/** Well-formed Unicode only: a lone surrogate cannot survive UTF-8, and the encoders do not promise it. */
const text = (maxLength: number) => fc.string({ unit: 'grapheme', maxLength });
/** Any JS string, including lone surrogates: fine inside JSON bodies, which escape them. */
const anyText = (maxLength: number) => fc.string({ unit: 'binary', maxLength });

const streamDecl = fc.record({
  id: fc.integer({ min: 0, max: MAX_STREAM_ID }),
  name: anyText(20),
  kind: fc.constantFrom(...STREAM_KINDS),
  mode: fc.constantFrom(...STREAM_MODES),
  epoch: anyText(20),
});
const resumePoint = fc.record({ id: fc.integer({ min: 0, max: MAX_STREAM_ID }), next: u64 });

const helloArb = fc.record(
  {
    protocol: fc.constant(1),
    client: anyText(20),
    epoch: anyText(20),
    streams: fc.array(streamDecl, { maxLength: 3 }),
    messageSeq: u64,
  },
  { requiredKeys: ['protocol', 'client', 'epoch', 'streams'] },
);
const welcomeArb = fc.record({
  protocol: fc.constant(1),
  server: anyText(20),
  session: anyText(20),
  streams: fc.array(resumePoint, { maxLength: 3 }),
  messageNext: u64,
  limits: fc.record({ maxFrameBytes: fc.nat(), maxMetaBytes: fc.nat(), maxMessageBytes: fc.nat() }),
});
const errorArb = fc.record(
  {
    code: fc.string({ maxLength: 20 }),
    message: anyText(40),
    stream: u16,
    seq: u64,
    fatal: fc.boolean(),
  },
  { requiredKeys: ['code', 'message', 'fatal'] },
);

const controlArb: fc.Arbitrary<Case> = fc.oneof(
  helloArb.map((b) => controlCase(MessageType.HELLO, b)),
  welcomeArb.map((b) => controlCase(MessageType.WELCOME, b)),
  streamDecl.map((b) => controlCase(MessageType.OPEN, b)),
  resumePoint.map((b) => controlCase(MessageType.OPENED, b)),
  errorArb.map((b) => controlCase(MessageType.ERROR, b)),
  fc
    .record({ nonce: fc.stringMatching(/^[0-9a-f]{64}$/), proof: fc.stringMatching(/^[0-9a-f]{64}$/) })
    .map((b) => controlCase(MessageType.AUTH, b)),
  fc.record({ reason: anyText(30) }).map((b) => controlCase(MessageType.BYE, b)),
);

export const frameFieldsArb = (maxPayload = 300): fc.Arbitrary<FrameFields> =>
  fc
    .record({
      streamId: fc.integer({ min: 0, max: MAX_STREAM_ID }),
      seq: u64,
      captureUs: u64,
      contentType: fc.constantFrom(...CONTENT_TYPES),
      pixelFormat: fc.constantFrom(...PIXEL_FORMATS),
      width: u16,
      height: u16,
      name: text(12),
      metaJson: fc.option(fc.json({ maxDepth: 2 }), { nil: undefined }),
      payload: fc.uint8Array({ maxLength: maxPayload, size: 'max' }).map((a) => Buffer.from(a)),
      // Any flags but NO_CRC: a decoder that verifies CRCs (the default) refuses frames without one.
      flags: u8.map((x) => x & ~Flags.NO_CRC),
    })
    .map((f) => f as FrameFields);

const frameArb: fc.Arbitrary<Case> = frameFieldsArb().map(frameCase);

const messageArb: fc.Arbitrary<Case> = fc
  .tuple(
    u64,
    fc.json({ maxDepth: 2 }),
    fc.option(fc.record({ stream: text(12).filter((s) => s.length > 0), seq: u64 }), { nil: undefined }),
    u8,
  )
  .map(([seq, json, ref, flags]) => messageCase(seq, json, ref, flags));

const ackArb: fc.Arbitrary<Case> = fc
  .tuple(fc.oneof(u16, fc.constant(MESSAGE_CHANNEL)), u64)
  .map(([s, q]) => ackCase(s, q));

const pingArb: fc.Arbitrary<Case> = fc
  .tuple(fc.constantFrom(MessageType.PING, MessageType.PONG), u64)
  .map(([t, time]) => pingCase(t, time));

const clockArb: fc.Arbitrary<Case> = fc
  .tuple(u64, fc.option(fc.record({ t2: u64, t3: u64 }), { nil: undefined }))
  .map(([t1, reply]) => clockCase(t1, reply));

/** Any valid message of protocol v1, within the default limits. */
export const caseArb: fc.Arbitrary<Case> = fc.oneof(
  controlArb,
  frameArb,
  messageArb,
  ackArb,
  pingArb,
  clockArb,
);

/** Cut offsets for a buffer of unknown length: scaled into range by {@link cutsFor}. */
export const cutsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 });

export function cutsFor(length: number, fractions: readonly number[]): number[] {
  return fractions.map((f) => Math.floor(f * length));
}

/**
 * Runs fn while recording the size of every Buffer.alloc/allocUnsafe/allocUnsafeSlow call, and returns the
 * sizes with what fn threw (if anything). The Decoder allocates only through these.
 */
export function recordAllocations(fn: () => void): { sizes: number[]; error: unknown } {
  const sizes: number[] = [];
  const { alloc, allocUnsafe, allocUnsafeSlow } = Buffer;
  Buffer.alloc = ((size: number, ...rest: unknown[]) => {
    sizes.push(size);
    return (alloc as (...a: unknown[]) => Buffer)(size, ...rest);
  }) as typeof Buffer.alloc;
  Buffer.allocUnsafe = (size: number) => {
    sizes.push(size);
    return allocUnsafe(size);
  };
  Buffer.allocUnsafeSlow = (size: number) => {
    sizes.push(size);
    return allocUnsafeSlow(size);
  };
  let error: unknown;
  try {
    fn();
  } catch (err) {
    error = err;
  } finally {
    Buffer.alloc = alloc;
    Buffer.allocUnsafe = allocUnsafe;
    Buffer.allocUnsafeSlow = allocUnsafeSlow;
  }
  return { sizes, error };
}

/**
 * Builds a message by hand, field by field, independently of the encoders: for malformed input.
 * `head` and `body` are raw bytes; the lengths in the header are theirs unless given.
 */
export function handMade(
  type: number,
  head: Buffer,
  body: Buffer | string = Buffer.alloc(0),
  o: {
    magic?: [number, number];
    version?: number;
    flags?: number;
    reserved?: number;
    headLen?: number;
    bodyLen?: number;
  } = {},
): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const h = Buffer.alloc(12);
  h[0] = o.magic?.[0] ?? 0x46;
  h[1] = o.magic?.[1] ?? 0x57;
  h[2] = o.version ?? 1;
  h[3] = type;
  h[4] = o.flags ?? 0;
  h[5] = o.reserved ?? 0;
  h.writeUInt16BE(o.headLen ?? head.length, 6);
  h.writeUInt32BE(o.bodyLen ?? b.length, 8);
  return Buffer.concat([h, head, b]);
}
