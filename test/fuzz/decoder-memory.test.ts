/**
 * What test/protocol/fuzz.test.ts does not cover of the Decoder's memory: messages announced just under
 * realistic limits that arrive in many tiny chunks, on many decoders at once (one per connection), measured
 * as the process sees it (heapUsed and arrayBuffers after a full GC), not only as Buffer allocations:
 * - while the messages are incomplete, memory grows by at most one announced message per decoder (its
 *   assembly buffer) plus a fixed amount, however many chunks arrived;
 * - once they complete and are dropped, it is all given back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { type Limits, MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import { check, runs } from './harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const LIMITS: Limits = {
  maxFrameBytes: 2 * 1024 * 1024,
  maxMetaBytes: 16 * 1024,
  maxMessageBytes: 512 * 1024,
  maxControlBytes: 64 * 1024,
};
const MiB = 1024 * 1024;
/** The most one message may occupy under LIMITS: the largest FRAME head and body. */
const MAX_MESSAGE = 32 + LIMITS.maxMetaBytes + 1024 + LIMITS.maxFrameBytes;
/** What a decoder may use besides the message it gathers: its object, a few held chunks, slack. */
const PER_DECODER = 64 * 1024;
const SLACK = 2 * MiB;

type Kind = 'frame' | 'message' | 'hello';

/** The whole encoding of a message of the given kind with a body `under` bytes below its limit. */
function bigMessage(kind: Kind, under: number): Buffer {
  const h = Buffer.alloc(12);
  h.write('FW', 0, 'latin1');
  h[2] = 1;
  if (kind === 'frame') {
    const body = Buffer.alloc(LIMITS.maxFrameBytes - under, 0x5a);
    const head = Buffer.alloc(32);
    head[2] = 1; // image/jpeg
    head.writeUInt32BE(crc32(body), 24);
    h[3] = MessageType.FRAME;
    h.writeUInt16BE(32, 6);
    h.writeUInt32BE(body.length, 8);
    return Buffer.concat([h, head, body]);
  }
  if (kind === 'message') {
    const body = Buffer.alloc(LIMITS.maxMessageBytes - under, 0x20);
    body[0] = 0x31; // "1" then spaces: valid JSON
    const head = Buffer.alloc(18);
    h[3] = MessageType.MESSAGE;
    h.writeUInt16BE(18, 6);
    h.writeUInt32BE(body.length, 8);
    return Buffer.concat([h, head, body]);
  }
  const body = Buffer.alloc(LIMITS.maxControlBytes - under, 0x20);
  body.write('{}', 0, 'latin1');
  h[3] = MessageType.HELLO;
  h.writeUInt32BE(body.length, 8);
  return Buffer.concat([h, body]);
}

function usage(): { heap: number; buffers: number } {
  // Twice: the first full GC hands dead ArrayBuffers to a background sweeper, the second one finishes it.
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}

const caseArb = fc.record({
  decoders: fc.array(
    fc.record({
      kind: fc.constantFrom<Kind>('frame', 'message', 'hello'),
      under: fc.constantFrom(0, 1, 7, 63),
      chunk: fc.integer({ min: 1, max: 16 }),
      chunks: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 20_000 })),
    }),
    { minLength: 1, maxLength: 6 },
  ),
});

describe('Decoder memory under announced lengths just below the limits, in tiny chunks', () => {
  it('grows by at most one message per decoder while incomplete, and gives it all back', () => {
    // Built once per (kind, under) and kept: they are the input, not what the decoders hold.
    const messages = new Map<string, Buffer>();
    const messageOf = (kind: Kind, under: number) => {
      const key = `${kind}:${under}`;
      let m = messages.get(key);
      if (!m) {
        m = bigMessage(kind, under);
        messages.set(key, m);
      }
      return m;
    };
    check(
      'decoder memory',
      fc.property(caseArb, ({ decoders }) => {
        const inputs = decoders.map((d) => ({ ...d, bytes: messageOf(d.kind, d.under) }));
        const base = usage();
        let delivered = 0;
        const live = inputs.map((d) => {
          const dec = new Decoder(() => {
            delivered++;
          }, LIMITS);
          // Tiny chunks, each its own allocation (as reads from a socket are), never the whole message.
          let off = 0;
          for (let i = 0; i < d.chunks && off < d.bytes.length - 1; i++) {
            const n = Math.min(d.chunk, d.bytes.length - 1 - off);
            dec.write(Buffer.from(d.bytes.subarray(off, off + n)));
            off += n;
          }
          return { dec, off, d };
        });
        const during = usage();
        const allowed = live.length * (MAX_MESSAGE + PER_DECODER) + SLACK;
        const grew = during.buffers - base.buffers + (during.heap - base.heap);
        assert.ok(
          grew <= allowed,
          `${live.length} decoders holding incomplete messages grew memory by ${grew} bytes (allowed ${allowed})`,
        );
        const heapGrew = during.heap - base.heap;
        assert.ok(
          heapGrew <= live.length * PER_DECODER + SLACK,
          `the heap grew by ${heapGrew} bytes for ${live.length} decoders: it must not grow with the chunk count`,
        );
        // The rest of each message in one chunk: each delivers, and nothing stays behind.
        for (const { dec, off, d } of live) {
          dec.write(d.bytes.subarray(off));
          dec.end();
        }
        assert.equal(delivered, live.length);
        live.length = 0;
        const afterwards = usage();
        const kept = afterwards.buffers - base.buffers + (afterwards.heap - base.heap);
        assert.ok(
          kept <= SLACK,
          `${kept} bytes were still held after the messages were delivered and dropped`,
        );
      }),
      runs(12, 0.01),
    );
  });
});
