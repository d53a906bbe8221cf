/**
 * Fuzzing the handshake states with the production DEFAULT limits (64 MiB frames, 64 KiB control messages):
 * several raw clients at once stay before HELLO, or send HELLO and stay before AUTH, and then send wild steps
 * and floods (a FRAME, MESSAGE or control header announcing up to the limits, then megabytes of zeros). The
 * session fuzz (session.test.ts) uses small limits that scripts can reach; this one checks what the small
 * limits hide: what a stranger can make a receiver hold. Whatever the clients do:
 * - nothing is stored, no WELCOME, OPENED or ACK is sent (with a token: before the proof; without: before
 *   HELLO), every ERROR has a code of src/errors.ts, nothing is thrown uncaught;
 * - what the decoders hold of partly received messages (the server's budget) stays within one control
 *   message per connection, and is all given back once the clients went;
 * - the connections are gone soon after the clients, and a well-behaved client is served;
 * - the process's peak RSS is printed (and must stay within a generous bound).
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { resourceUsage } from 'node:process';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { isErrorCode } from '../../src/errors.js';
import { createServer, type FramewireServer } from '../../src/index.js';
import { DEFAULT_LIMITS, MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import type { Message } from '../../src/protocol/messages.js';
import { writeOrWait } from '../helpers/net.js';
import { encodeStep, helloArb, MARK_UNAUTHED, type Step, type StepContext, stepArb } from './arbitraries.js';
import { checkAsync, LONG, runs, UncaughtTrap, within } from './harness.js';
import { assertDrained, assertServes, RecordingSink, TOKEN } from './peers.js';

const MB = 1024 * 1024;

type Flood = { kind: 'flood'; type: number; headLen: number; bodyLen: number; zeros: number };
type HStep = Step | Flood;

const floodArb: fc.Arbitrary<Flood> = fc.record({
  kind: fc.constant('flood' as const),
  type: fc.constantFrom(MessageType.FRAME, MessageType.MESSAGE, MessageType.HELLO, MessageType.AUTH),
  headLen: fc.constantFrom(0, 18, 32, 1000),
  bodyLen: fc.oneof(
    fc.constant(DEFAULT_LIMITS.maxFrameBytes),
    fc.constant(60_000_000),
    fc.constant(DEFAULT_LIMITS.maxMessageBytes),
    fc.constant(DEFAULT_LIMITS.maxControlBytes),
    fc.integer({ min: DEFAULT_LIMITS.maxControlBytes - 100, max: DEFAULT_LIMITS.maxControlBytes + 100 }),
    fc.nat(DEFAULT_LIMITS.maxFrameBytes),
  ),
  zeros: fc.integer({ min: 0, max: (LONG ? 8 : 2) * MB }),
});

/** Steps that never prove the token: the client stays before HELLO or before AUTH. */
const unprovenStepArb: fc.Arbitrary<HStep> = fc.oneof(
  { weight: 3, arbitrary: floodArb },
  { weight: 2, arbitrary: stepArb.filter((s) => s.kind !== 'auth-correct') },
);

const clientArb = fc.record({
  /** 'none': before HELLO; 'hello': HELLO (with a nonce when the server has a token) and on before AUTH. */
  state: fc.constantFrom('none' as const, 'hello' as const),
  hello: helloArb,
  steps: fc.array(unprovenStepArb, { minLength: 1, maxLength: 6 }),
});

type Client = typeof clientArb extends fc.Arbitrary<infer T> ? T : never;

const ZEROS = Buffer.alloc(64 * 1024);

/** One raw client: plays its steps, stops a flood once the receiver answered or closed, then goes. */
async function playClient(port: number, c: Client, token: string | undefined, n: number): Promise<Message[]> {
  const sock = net.connect(port, '127.0.0.1');
  const got: Message[] = [];
  let closed = false;
  const dec = new Decoder((m) => got.push(m));
  let decodeError: unknown;
  sock.on('data', (d) => {
    if (decodeError !== undefined) return;
    try {
      dec.write(d);
    } catch (err) {
      decodeError = err;
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
  });
  await new Promise<void>((r) => {
    sock.once('connect', r);
    sock.once('close', r);
  });
  const ctx: StepContext = { marker: MARK_UNAUTHED, epochSuffix: `~h${n}` };
  const writable = () => !closed && !sock.destroyed && sock.writable;
  const write = async (b: Buffer) => {
    if (!writable()) return;
    await writeOrWait(sock, b);
  };
  if (c.state === 'hello') {
    const body = { ...c.hello, ...(token === undefined ? {} : { auth: { nonce: 'c'.repeat(64) } }) };
    await write(encodeStep({ kind: 'hello', body }, ctx));
    await within(100, () => got.length > 0 || closed);
  }
  for (const step of c.steps) {
    if (!writable()) break;
    if (step.kind === 'flood') {
      const h = Buffer.alloc(12);
      h.write('FW', 0, 'latin1');
      h[2] = 1;
      h[3] = step.type;
      h.writeUInt16BE(step.headLen, 6);
      h.writeUInt32BE(step.bodyLen, 8);
      await write(h);
      for (let sent = 0; sent < step.zeros && writable(); sent += ZEROS.length) {
        if (got.some((m) => m.type === MessageType.ERROR)) break;
        await write(ZEROS);
      }
      continue;
    }
    if (step.kind === 'wait') {
      await within(step.ms, () => closed);
      continue;
    }
    await write(encodeStep(step, ctx));
  }
  sock.end();
  await within(500, () => closed);
  sock.destroy();
  assert.equal(decodeError, undefined, `the server sent bytes that do not decode: ${String(decodeError)}`);
  return got;
}

for (const token of [TOKEN, undefined]) {
  const label = token === undefined ? 'without a token' : 'with a token';
  describe(`handshake fuzz with the default limits ${label}`, () => {
    let server: FramewireServer;
    let sink: RecordingSink;
    const trap = new UncaughtTrap();
    before(async () => {
      trap.install();
      sink = new RecordingSink(false);
      server = await createServer({
        listen: 'tcp://127.0.0.1:0',
        sinks: [sink],
        handshakeTimeoutMs: 3000,
        idleTimeoutMs: 10_000,
        ...(token === undefined ? {} : { token }),
      });
    });
    after(async () => {
      await server?.close();
      trap.dispose();
    });

    it(`strangers before HELLO and before AUTH hold at most a control message each (${label})`, async () => {
      // The process's peak RSS since it started is mostly loading and compiling: sample the current RSS.
      const rssBefore = process.memoryUsage.rss();
      let peakRss = rssBefore;
      let peakPartial = 0;
      let stored = 0;
      const onFrame = () => stored++;
      server.on('frame', onFrame);
      server.on('message', onFrame);
      let n = 0;
      await checkAsync(
        `handshake ${label}`,
        fc.asyncProperty(fc.array(clientArb, { minLength: 1, maxLength: 4 }), async (clients) => {
          let sampling = true;
          const sampler = (async () => {
            while (sampling) {
              peakPartial = Math.max(peakPartial, server.partialBudget.used);
              peakRss = Math.max(peakRss, process.memoryUsage.rss());
              await new Promise((r) => setTimeout(r, 2));
            }
          })();
          const outcomes = await Promise.all(clients.map((c) => playClient(server.port, c, token, n++)));
          sampling = false;
          await sampler;
          for (const [i, got] of outcomes.entries()) {
            for (const m of got) {
              if (m.type === MessageType.ERROR) {
                assert.ok(isErrorCode(m.body.code), `an ERROR with code ${JSON.stringify(m.body.code)}`);
              }
              // Without a token HELLO opens the session; with one, nothing does here.
              if (token !== undefined || clients[i]!.state === 'none') {
                assert.ok(
                  m.type !== MessageType.WELCOME &&
                    m.type !== MessageType.OPENED &&
                    m.type !== MessageType.ACK,
                  `the server sent message type ${m.type} before the handshake was done`,
                );
              }
            }
          }
          const bound = clients.length * (DEFAULT_LIMITS.maxControlBytes + 0xffff);
          assert.ok(
            peakPartial <= bound || token === undefined,
            `the decoders held ${peakPartial} bytes of partly received messages (bound ${bound})`,
          );
          trap.check('during the clients');
          sink.check();
        }),
        runs(4, 0.01),
      );
      server.off('frame', onFrame);
      server.off('message', onFrame);
      await assertDrained(server);
      assert.equal(server.partialBudget.used, 0, 'every decoder gave its share of the budget back');
      if (token !== undefined)
        assert.equal(stored, 0, 'nothing stored from senders that never proved the token');
      await assertServes(server, token);
      trap.check('after the fuzz runs');
      const grew = (peakRss - rssBefore) / MB;
      const processPeak = (resourceUsage().maxRSS * 1024) / MB;
      console.log(
        `fuzz: handshake ${label}: peak RSS ${(peakRss / MB).toFixed(0)} MB while the clients ran ` +
          `(grew ${grew.toFixed(1)} MB; the process's peak since it started ${processPeak.toFixed(0)} MB), ` +
          `peak partly received ${(peakPartial / 1024).toFixed(0)} KiB`,
      );
      assert.ok(grew < 128, `the RSS grew by ${grew.toFixed(0)} MB while the clients ran`);
    });
  });
}
