/**
 * Fuzzing the UDP layer's receiving half (src/transports/udp/: datagram decoding, ReceiveWindow and
 * Reassembler), driven the way src/transports/udp/connection.ts drives it, with a virtual clock:
 * - an honest sender's datagrams through a network that drops, duplicates, reorders, truncates and
 *   corrupts them, then resends what was not received: every reliable message is handed out exactly once,
 *   in order and byte-identical; every live one at most once and byte-identical; nothing else ever;
 * - forged datagrams (any header fields, a valid CRC) among them: nothing is thrown but ERR_REASSEMBLY_LIMIT,
 *   and memory stays under its cap (per peer and shared) however the input plays;
 * - in both, the memory accounting returns to zero once everything is released.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FramewireError } from '../../src/errors.js';
import {
  crcOk,
  DATA_HEADER_BYTES,
  DataFlags,
  DatagramType,
  datagramCrc,
  decodeData,
  decodeDrop,
  encodeData,
  encodeDrop,
  MAX_MTU,
  MIN_MTU,
  peekCommon,
  unwrap32,
} from '../../src/transports/udp/datagram.js';
import {
  fragmentBounds,
  fragmentPayload,
  planFragments,
  sliceParts,
} from '../../src/transports/udp/fragmenter.js';
import { type MemoryBudget, Reassembler } from '../../src/transports/udp/reassembler.js';
import { ReceiveWindow } from '../../src/transports/udp/receive-window.js';
import { applyNet, bytes, type NetOp, netOpsArb } from './arbitraries.js';
import { check, runs } from './harness.js';

const SESSION = 0x1234abcd;

interface Sent {
  live: boolean;
  /** Message number in its class. */
  seq: number;
  data: Buffer;
  pktFirst: number;
  count: number;
  datagrams: Buffer[];
  /** The sender gives it up (live only) after its first datagrams: a DROP datagram follows them. */
  abandon: boolean;
}

/** An honest sender: messages numbered per class, packets numbered across all, `mtu`-sized datagrams. */
function send(
  messages: readonly { live: boolean; length: number; budgetMs: number; abandon: boolean }[],
  mtu: number,
  firstPkt: number,
): Sent[] {
  const out: Sent[] = [];
  let pkt = firstPkt;
  let reliable = 0;
  let live = 0;
  for (const [k, m] of messages.entries()) {
    // Distinct contents: the message's index, then a pattern that depends on it.
    const data = Buffer.alloc(m.length);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + k * 7) & 0xff;
    if (data.length >= 2) data.writeUInt16BE(k, 0);
    const seq = m.live ? live++ : reliable++;
    const plan = planFragments(data.length, fragmentPayload(mtu));
    const datagrams: Buffer[] = [];
    for (let i = 0; i < plan.count; i++) {
      const [start, end] = fragmentBounds(data.length, plan.stride, i);
      const parts = encodeData(
        SESSION,
        {
          pkt: pkt + i,
          msg: seq,
          index: i,
          count: plan.count,
          length: data.length,
          flags: m.live ? DataFlags.LIVE : 0,
          budgetMs: m.live ? m.budgetMs : 0,
        },
        sliceParts([data], start, end),
      );
      datagrams.push(Buffer.concat(parts));
    }
    out.push({
      live: m.live,
      seq,
      data,
      pktFirst: pkt,
      count: plan.count,
      datagrams,
      abandon: m.live && m.abandon,
    });
    pkt += plan.count;
  }
  return out;
}

/** The receiving half of one connection, as connection.ts runs it, with a virtual clock. */
class Receiver {
  readonly rw = new ReceiveWindow();
  readonly ra: Reassembler;
  readonly delivered: Buffer[] = [];
  /** Messages handed out but not yet taken by a paused reader. */
  held: Buffer[] = [];
  paused = false;
  failed: FramewireError | undefined;
  maxUsed = 0;
  now = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxMessageBytes: number,
    readonly budget: MemoryBudget,
  ) {
    this.ra = new Reassembler({
      maxBytes,
      maxMessageBytes,
      budget,
      deliver: (buf) => {
        if (this.paused) this.held.push(buf);
        else this.take(buf);
      },
    });
  }

  private take(buf: Buffer): void {
    this.ra.release(buf.length);
    // A copy: a one-fragment message is a view of its datagram, which the test may damage later.
    this.delivered.push(Buffer.from(buf));
  }

  resume(): void {
    this.paused = false;
    for (const b of this.held.splice(0)) this.take(b);
  }

  /** One datagram off the socket. Only ERR_REASSEMBLY_LIMIT may come out of the reassembler. */
  datagram(buf: Buffer): void {
    this.now += 1;
    for (const d of this.ra.expire(this.now)) this.rw.markRange(d.pktFirst, d.pktFirst + d.count);
    if (this.failed) return;
    const c = peekCommon(buf);
    if (!c || c.session !== SESSION || !crcOk(buf)) return;
    if (c.type === DatagramType.DROP) {
      const d = decodeDrop(buf);
      if (!d) return;
      this.ra.dropLive(d.msg);
      const first = unwrap32(d.first, this.rw.cumulative);
      const end = unwrap32(d.end, first);
      if (end > first) this.rw.markRange(first, end);
      return;
    }
    if (c.type !== DatagramType.DATA) return;
    const d = decodeData(buf);
    if (!d) return;
    const pkt = unwrap32(d.pkt, this.rw.cumulative);
    if (this.rw.has(pkt) || this.rw.tooFar(pkt)) return;
    let result: ReturnType<Reassembler['add']>;
    try {
      result = this.ra.add(d, pkt, this.now);
    } catch (err) {
      assert.ok(err instanceof FramewireError, `the reassembler threw ${String(err)}`);
      assert.equal(err.code, 'ERR_REASSEMBLY_LIMIT', err.message);
      // The connection ends: what it holds is given back.
      this.failed = err;
      return;
    } finally {
      this.checkMemory();
    }
    if (result === 'refused' || result === 'bad') return;
    this.rw.mark(pkt);
  }

  /** Per peer: the cap, plus the next reliable message, which is always admitted so delivery goes on. */
  checkMemory(): void {
    this.maxUsed = Math.max(this.maxUsed, this.ra.used);
    assert.ok(this.ra.used >= 0, `used is ${this.ra.used}`);
    assert.ok(
      this.ra.used <= this.maxBytes + this.maxMessageBytes,
      `a peer holds ${this.ra.used} bytes; its cap is ${this.maxBytes} (+ one message of at most ${this.maxMessageBytes})`,
    );
  }

  /** Frees everything, as when the connection ends. */
  close(): void {
    this.resume();
    this.ra.clear();
  }
}

const messagesArb = fc.array(
  fc.record({
    live: fc.boolean(),
    length: fc.oneof(
      fc.integer({ min: 1, max: 300 }),
      fc.integer({ min: 1, max: 6000 }),
      fc.integer({ min: 4000, max: 6000 }),
    ),
    budgetMs: fc.integer({ min: 1, max: 400 }),
    abandon: fc.boolean(),
  }),
  { minLength: 1, maxLength: 12 },
);

const mtuArb = fc.oneof(fc.constantFrom(MIN_MTU, 1200), fc.integer({ min: MIN_MTU, max: 1500 }));
const ALL_NET = ['drop', 'dup', 'swap', 'trunc', 'corrupt', 'junk'] as const;

describe('UDP reassembly fuzz', () => {
  it('hands out exactly what an honest sender sent, through a lossy network, within its memory cap', () => {
    check(
      'udp lossy network',
      fc.property(
        messagesArb,
        mtuArb,
        netOpsArb(ALL_NET, 30),
        fc.boolean(),
        fc.integer({ min: 6000, max: 24 * 1024 }),
        (messages, mtu, ops, pausedFirst, maxBytes) => {
          const budget: MemoryBudget = { used: 0, cap: maxBytes * 2 };
          const rx = new Receiver(maxBytes, 6000, budget);
          const sent = send(messages, mtu, 0);
          const wire: Buffer[] = [];
          for (const s of sent) {
            wire.push(...s.datagrams.slice(0, s.abandon ? Math.ceil(s.count / 2) : s.count));
            if (s.abandon) {
              wire.push(encodeDrop(SESSION, { first: s.pktFirst, end: s.pktFirst + s.count, msg: s.seq }));
            }
          }
          rx.paused = pausedFirst;
          for (const d of applyNet(wire, ops)) rx.datagram(d);
          rx.resume();
          // The sender resends, in order and undamaged, every packet not yet received (at most one pass per
          // message: each pass completes at least the next reliable message, which is always admitted).
          for (let pass = 0; pass <= sent.length + 1; pass++) {
            for (const s of sent) {
              if (s.abandon) continue;
              for (let i = 0; i < s.count; i++) {
                if (!rx.rw.has(s.pktFirst + i)) rx.datagram(s.datagrams[i]!);
              }
            }
          }
          assert.equal(
            rx.failed,
            undefined,
            'an honest sender within the limits never hits ERR_REASSEMBLY_LIMIT',
          );
          const reliable = sent.filter((s) => !s.live);
          const got = rx.delivered;
          const gotReliable = got.filter((b) => reliable.some((s) => s.data.equals(b)));
          assert.deepEqual(
            gotReliable.map((b) => reliable.findIndex((s) => s.data.equals(b))),
            reliable.map((_, i) => i),
            'every reliable message exactly once, in order',
          );
          const seen = new Set<Sent>();
          for (const b of got) {
            const s = sent.find((x) => x.data.equals(b));
            assert.ok(s, `a message of ${b.length} bytes was handed out that was never sent`);
            assert.ok(
              !seen.has(s),
              `message ${s.seq} (${s.live ? 'live' : 'reliable'}) was handed out twice`,
            );
            seen.add(s);
          }
          rx.close();
          assert.equal(rx.ra.used, 0, 'the peer gives all its memory back');
          assert.equal(budget.used, 0, 'the shared budget gets all its memory back');
        },
      ),
      runs(150),
    );
  });

  it('survives forged datagrams among honest ones: only ERR_REASSEMBLY_LIMIT, memory under the caps', () => {
    // Any header fields, any fragment, a valid CRC: what a hostile peer can send.
    const forgedArb = fc
      .record({
        pkt: fc.oneof(fc.nat(64), fc.nat(0xffff_ffff)),
        msg: fc.oneof(fc.nat(8), fc.nat(0xffff_ffff)),
        index: fc.oneof(fc.nat(8), fc.nat(0xffff_ffff)),
        count: fc.oneof(fc.integer({ min: 1, max: 8 }), fc.nat(0xffff_ffff)),
        length: fc.oneof(fc.integer({ min: 1, max: 9000 }), fc.nat(0xffff_ffff)),
        flags: fc.nat(255),
        budgetMs: fc.nat(0xffff),
        fragment: bytes(1400),
        type: fc.constantFrom(DatagramType.DATA, DatagramType.DATA, DatagramType.DROP),
      })
      .map((f) => {
        const b = Buffer.concat([Buffer.alloc(DATA_HEADER_BYTES), f.fragment]);
        b.write('FU', 0, 'latin1');
        b[2] = 1;
        b[3] = f.type;
        b.writeUInt32BE(SESSION, 4);
        b.writeUInt32BE(f.pkt, 12);
        b.writeUInt32BE(f.msg, 16);
        b.writeUInt32BE(f.index, 20);
        b.writeUInt32BE(f.count, 24);
        b.writeUInt32BE(f.length, 28);
        b[32] = f.flags;
        b.writeUInt16BE(f.budgetMs, 34);
        const d = f.type === DatagramType.DROP ? b.subarray(0, 24) : b;
        d.writeUInt32BE(datagramCrc([d]), 8);
        return d;
      });
    check(
      'udp forged datagrams',
      fc.property(
        messagesArb,
        mtuArb,
        fc.array(fc.record({ at: fc.nat(), d: forgedArb }), { minLength: 1, maxLength: 40 }),
        fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }),
        fc.integer({ min: 4 * 1024, max: 64 * 1024 }),
        (messages, mtu, forged, paused, maxBytes) => {
          // Two peers of one listener share a budget smaller than both their caps.
          const budget: MemoryBudget = { used: 0, cap: maxBytes };
          const maxMessage = 6000;
          const peers = [
            new Receiver(maxBytes, maxMessage, budget),
            new Receiver(maxBytes, maxMessage, budget),
          ];
          const wire = send(messages, mtu, 0).flatMap((s) => s.datagrams);
          const ops: NetOp[] = forged.map((f) => ({ op: 'junk', at: f.at, data: f.d }));
          const input = applyNet(wire, ops);
          peers.forEach((p, i) => {
            p.paused = paused[i]!;
          });
          for (const [k, d] of input.entries()) {
            const p = peers[k % 2]!;
            p.datagram(d);
            assert.ok(budget.used >= 0);
            // The shared cap, plus one next reliable message per peer (always admitted).
            assert.ok(
              budget.used <= budget.cap + peers.length * maxMessage,
              `the peers hold ${budget.used} bytes; the shared cap is ${budget.cap}`,
            );
            assert.equal(
              budget.used,
              peers.reduce((n, x) => n + x.ra.used, 0),
              'the shared budget counts exactly what the peers hold',
            );
          }
          for (const p of peers) {
            // Whatever was handed out has the length some DATA header announced: never beyond the limit.
            for (const b of [...p.delivered, ...p.held]) assert.ok(b.length <= maxMessage);
            p.close();
            assert.equal(p.ra.used, 0);
          }
          assert.equal(budget.used, 0, 'the shared budget gets all its memory back');
        },
      ),
      runs(150),
    );
  });

  it('keeps a forged flood of one-byte messages far ahead from growing without bound', () => {
    // Every datagram a complete one-byte reliable message, all ahead of the next expected one: each is held
    // (it cannot be handed out before message 0) and charged 1 byte; the window bounds how many there are.
    check(
      'udp one-byte flood',
      fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 50 }), (n, spread) => {
        const budget: MemoryBudget = { used: 0, cap: 1 << 20 };
        const rx = new Receiver(1 << 20, 6000, budget);
        for (let i = 0; i < n; i++) {
          const parts = encodeData(
            SESSION,
            { pkt: 1 + i * spread, msg: 1 + i, index: 0, count: 1, length: 1, flags: 0, budgetMs: 0 },
            [Buffer.from([i & 0xff])],
          );
          rx.datagram(Buffer.concat(parts));
        }
        assert.equal(rx.delivered.length, 0, 'nothing before message 0');
        assert.ok(rx.ra.used <= n);
        rx.close();
        assert.equal(budget.used, 0);
      }),
      runs(20, 0.01),
    );
  });
});

// Keep the datagram constants honest: a DATA datagram of the largest mtu fits one UDP payload.
assert.ok(fragmentPayload(MAX_MTU) + DATA_HEADER_BYTES <= MAX_MTU);
