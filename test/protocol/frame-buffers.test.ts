import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { FrameBufferPool, sizeClass } from '../../src/protocol/frame-buffers.js';
import { encodeFrame, type Message, toBytes } from '../../src/protocol/messages.js';
import {
  bytesOf,
  type Case,
  caseArb,
  cutsArb,
  cutsFor,
  frameCase,
  frameFieldsArb,
  splitAt,
} from './helpers.js';

describe('FrameBufferPool', () => {
  it('sizes come in four classes per doubling, never smaller than asked', () => {
    assert.equal(sizeClass(1), 16 * 1024);
    assert.equal(sizeClass(16 * 1024), 16 * 1024);
    assert.equal(sizeClass(16 * 1024 + 1), 20 * 1024);
    assert.equal(sizeClass(64 * 1024), 64 * 1024);
    assert.equal(sizeClass(64 * 1024 + 1), 80 * 1024);
    assert.equal(sizeClass(123_000), 128 * 1024);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 * 1024 * 1024 }), (n) => {
        const c = sizeClass(n);
        assert.ok(c >= n, `${c} < ${n}`);
        // At most a quarter more than asked (beyond the smallest class).
        assert.ok(n <= 16 * 1024 || c <= n * 1.25 + 1, `${c} for ${n}`);
      }),
      { numRuns: 500, seed: 20261203 },
    );
  });

  it('hands a given-back buffer out again, for any size of its class', () => {
    const pool = new FrameBufferPool();
    const a = pool.take(123_000);
    assert.equal(a.length, 123_000);
    pool.give(a.subarray(100, 200)); // a view of it is enough
    const b = pool.take(120_000);
    assert.equal(b.length, 120_000);
    assert.equal(b.buffer, a.buffer);
    assert.deepEqual(pool.stats, { reused: 1, allocated: 1, kept: 1, keptBytes: 0 });
  });

  it('never hands one buffer out twice at once: a second give, or a foreign buffer, is ignored', () => {
    const pool = new FrameBufferPool();
    const a = pool.take(50_000);
    pool.give(a);
    pool.give(a);
    pool.give(Buffer.alloc(50_000));
    const b = pool.take(50_000);
    const c = pool.take(50_000);
    assert.equal(b.buffer, a.buffer);
    assert.notEqual(c.buffer, a.buffer);
    assert.equal(pool.stats.kept, 1);
  });

  it('keeps at most maxKeptBytes waiting; small and huge sizes are plain allocations', () => {
    const pool = new FrameBufferPool(256 * 1024);
    const bufs = [pool.take(100_000), pool.take(100_000), pool.take(100_000)];
    for (const b of bufs) pool.give(b);
    assert.equal(pool.stats.kept, 2);
    assert.equal(pool.stats.keptBytes, 2 * sizeClass(100_000));
    const small = pool.take(1000);
    const huge = pool.take(16 * 1024 * 1024 + 1);
    pool.give(small);
    pool.give(huge);
    assert.equal(pool.stats.kept, 2);
    assert.equal(pool.stats.allocated, 3);
  });
});

/**
 * Decodes `chunks` the way a socket with one shared read buffer feeds them: each chunk is copied into the
 * same buffer, lent to the decoder, then scribbled over before the next one, so that anything the decoder
 * kept without copying would show up as garbage.
 */
function decodeLent(chunks: readonly Buffer[], pool?: FrameBufferPool): Message[] {
  const out: Message[] = [];
  const d = new Decoder((m) => out.push(m), undefined, { frameBuffers: pool });
  const shared = Buffer.alloc(Math.max(1, ...chunks.map((c) => c.length)));
  for (const c of chunks) {
    c.copy(shared);
    d.writeLent(shared.subarray(0, c.length));
    shared.fill(0xee);
  }
  d.end();
  return out;
}

/** Any valid messages, with frames large enough for the pool (16 KiB and more) among them. */
const mixArb = fc.array(
  fc.oneof(
    { weight: 2, arbitrary: caseArb },
    { weight: 1, arbitrary: frameFieldsArb(60_000).map((f): Case => frameCase(f)) },
  ),
  { minLength: 1, maxLength: 6 },
);

describe('Decoder.writeLent: bytes lent only for the call', () => {
  it('decodes any messages cut into any chunks, however the lent buffer is reused afterwards', () => {
    fc.assert(
      fc.property(mixArb, cutsArb, fc.boolean(), (cases, fractions, withPool) => {
        const bytes = bytesOf(...cases);
        const chunks = splitAt(bytes, cutsFor(bytes.length, fractions));
        const got = decodeLent(chunks, withPool ? new FrameBufferPool() : undefined);
        assert.deepStrictEqual(
          got,
          cases.map((c) => c.expected),
        );
      }),
      { numRuns: 150, seed: 20261204 },
    );
  });

  it('a frame whole in one lent chunk is copied; payloads given back are used again for later frames', () => {
    const pool = new FrameBufferPool();
    const frames = [0, 1, 2, 3].map((i) => ({
      streamId: 0,
      seq: i,
      captureUs: 0,
      contentType: 'image/jpeg' as const,
      payload: Buffer.alloc(40_000, i + 1),
    }));
    const got: Message[] = [];
    const d = new Decoder((m) => got.push(m), undefined, { frameBuffers: pool });
    const shared = Buffer.alloc(64 * 1024);
    for (const f of frames) {
      const bytes = toBytes(encodeFrame(f));
      bytes.copy(shared);
      d.writeLent(shared.subarray(0, bytes.length));
      shared.fill(0);
      const m = got.at(-1)!;
      assert.ok(m.type === MessageType.FRAME);
      assert.ok(m.frame.payload.equals(f.payload), `frame ${f.seq}`);
      assert.notEqual(m.frame.payload.buffer, shared.buffer);
      // Done with it: the next frame may take its buffer.
      pool.give(m.frame.payload);
    }
    assert.equal(pool.stats.allocated, 1);
    assert.equal(pool.stats.reused, 3);
  });
});
