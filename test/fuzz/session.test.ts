/**
 * Fuzzing the receiver's handshake and session over real TCP: a raw client sends a random script of
 * valid-shaped but semantically wild messages (HELLO with mutated fields, OPEN, AUTH, FRAME, MESSAGE, ACK,
 * PING, BYE in any order, before and after HELLO), raw bytes and damaged encodings, then goes. One server
 * serves many scripts. Whatever a script does:
 * - nothing is thrown uncaught and no promise rejection is left unhandled;
 * - no frame is stored for an unsafe stream or file name, and with a token, nothing is stored, and no
 *   WELCOME, OPENED or ACK is sent, before the sender proved the token;
 * - a stream's frames are stored at most once and in order (per name and epoch, across connections);
 * - the server sends only what a receiver may send, decodable, and every ERROR has a code of src/errors.ts;
 * - the connection is gone from the server soon after the client went;
 * - and a well-behaved client can still open a stream, send 3 frames and get them acknowledged.
 */
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FramewireServer } from '../../src/index.js';
import { scriptArb } from './arbitraries.js';
import { checkAsync, runs, UncaughtTrap } from './harness.js';
import {
  assertDrained,
  assertServes,
  checkOutcome,
  fuzzServer,
  play,
  type RecordingSink,
  TOKEN,
} from './peers.js';

/** Check that a well-behaved client is served every this many runs (and after the last). */
const HEALTH_EVERY = 20;

for (const token of [undefined, TOKEN]) {
  const label = token === undefined ? 'without a token' : 'with a token';
  describe(`session fuzz ${label}`, () => {
    let server: FramewireServer;
    let sink: RecordingSink;
    const trap = new UncaughtTrap();
    before(async () => {
      trap.install();
      ({ server, sink } = await fuzzServer(token));
    });
    after(async () => {
      await server?.close();
      trap.dispose();
    });

    it(`serves wild scripts over TCP ${label}, and then a well-behaved client`, async () => {
      let run = 0;
      await checkAsync(
        `session ${label}`,
        // `shared`: the script's epochs are those of earlier scripts (resume and takeover across connections);
        // otherwise its own, so that shrinking replays the same situation.
        fc.asyncProperty(scriptArb, fc.boolean(), async (script, shared) => {
          const o = await play(server.port, script, token, !shared);
          checkOutcome(o, token);
          trap.check('during the script');
          sink.check();
          if (++run % HEALTH_EVERY === 0) {
            await assertServes(server, token);
            trap.check('while serving a well-behaved client');
            sink.check();
          }
        }),
        runs(40, 0.5),
      );
      await assertDrained(server);
      await assertServes(server, token);
      trap.check('after the fuzz runs');
      sink.check();
    });
  });
}
