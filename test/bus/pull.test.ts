/**
 * framewire's own pull (src/bus/pull.ts) against a real nats-server: several requests in flight, a stop
 * that leaves nothing waiting for ack_wait, a deleted consumer noticed at once, a restart noticed by the
 * missed heartbeats.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AckPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { loadNats } from '../../src/bus/nats.js';
import { ackInfo, checkPullOptions, Pull, type Pulled } from '../../src/bus/pull.js';
import { FramewireError, JetStreamSource } from '../../src/index.js';
import { HAVE_NATS, NatsServer } from '../helpers/nats.js';

const skip = HAVE_NATS ? false : 'nats-server is not installed (apt-get install nats-server)';

let server: NatsServer | undefined;
let nc: NatsConnection;
before(async () => {
  if (!HAVE_NATS) return;
  await loadNats();
  server = await NatsServer.start();
  nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
});
after(async () => {
  await nc?.close();
  await server?.close();
});

/** A stream of `count` messages of `bytes` and a pull consumer with a long ack_wait (30 s). */
async function setUp(name: string, count: number, bytes = 16): Promise<string> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name, subjects: [`${name}.>`] });
  const js = jetstream(nc);
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) sent.push(js.publish(`${name}.x`, Buffer.alloc(bytes, i)));
  await Promise.all(sent);
  await jsm.consumers.add(name, { durable_name: 'g', ack_policy: AckPolicy.Explicit, ack_wait: 30e9 });
  return `$JS.API.CONSUMER.MSG.NEXT.${name}.g`;
}

const opts = { batch: 8, requests: 3, expiresMs: 1000, heartbeatMs: 500 };

test('the ack subject: both forms, and anything else is not one', () => {
  assert.deepEqual(ackInfo('$JS.ACK.S.g.3.41.40.1700000000000000000.9'), { deliveryCount: 3, seq: 41 });
  assert.deepEqual(ackInfo('$JS.ACK.hub.ACCHASH.S.g.1.7.7.1700000000000000000.0.rnd'), {
    deliveryCount: 1,
    seq: 7,
  });
  assert.equal(ackInfo('_INBOX.abc'), undefined);
  assert.equal(ackInfo('$JS.ACK.S.g.x.41.40.1.9'), undefined);
  assert.equal(ackInfo('$JS.ACK.S.g.1.2'), undefined);
});

test('a stop with requests in flight gives every delivery back: none is left waiting for ack_wait', {
  skip,
  timeout: 60_000,
}, async () => {
  // Frames of 120 KB: the server is still writing deliveries into the socket when the stop comes.
  const subject = await setUp('STOP', 200, 120_000);
  const jsm = await jetstreamManager(nc);
  const pull = new Pull(nc, subject, opts);
  const taken: Pulled[] = [];
  for (let i = 0; i < 20; i++) {
    const m = await pull.next();
    assert.ok(m);
    taken.push(m);
  }
  for (const m of taken) m.ack();
  await new Promise((r) => setImmediate(r));
  // With three requests of 8 open, up to 24 more are on their way or queued: the stop must give them back.
  await pull.stop();
  assert.equal(await pull.next(), undefined, 'a stopped pull gives nothing more');
  await nc.flush();
  const info = await jsm.consumers.info('STOP', 'g');
  assert.equal(info.num_waiting, 0, 'no request is left open');
  assert.equal(info.ack_floor.stream_seq, 20);
  // What came after the 20 was given back (nak): it is delivered again at once, not after ack_wait.
  const givenBack = info.delivered.stream_seq - 20;
  assert.ok(givenBack > 0, 'deliveries were on their way when the pull stopped');

  // A new pull gets the other 180 at once, each once, in order.
  const t0 = Date.now();
  const again = new Pull(nc, subject, opts);
  const seqs: number[] = [];
  let second = 0;
  while (seqs.length < 180) {
    const m = await again.next();
    assert.ok(m);
    assert.ok(!seqs.includes(m.seq), `message ${m.seq} came twice`);
    seqs.push(m.seq);
    if (m.deliveryCount === 2) second++;
    m.ack();
  }
  await again.stop();
  assert.deepEqual(
    [...seqs].sort((a, b) => a - b),
    Array.from({ length: 180 }, (_, i) => i + 21),
  );
  assert.equal(second, givenBack, 'the ones given back came a second time, the others a first');
  assert.ok(Date.now() - t0 < 15_000, `the rest came in ${Date.now() - t0} ms, not after ack_wait`);
  await nc.flush();
  assert.equal((await jsm.consumers.info('STOP', 'g')).num_ack_pending, 0);
});

test('a consumer deleted under a pull: next() rejects with ERR_BUS_REFUSED within seconds', {
  skip,
  timeout: 30_000,
}, async () => {
  const subject = await setUp('DEL', 0);
  const pull = new Pull(nc, subject, opts);
  const next = pull.next();
  next.catch(() => {}); // handled below; the rejection may come before assert.rejects is reached
  const jsm = await jetstreamManager(nc);
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  await jsm.consumers.delete('DEL', 'g');
  await assert.rejects(next, (err: unknown) => {
    assert.ok(err instanceof FramewireError);
    assert.match(err.code, /^ERR_BUS_(REFUSED|UNREACHABLE)$/);
    return true;
  });
  assert.ok(Date.now() - t0 < 5_000, `noticed after ${Date.now() - t0} ms`);
  await pull.stop();
});

test('a pull held back by max_ack_pending still hears heartbeats: it is not taken for a lost one', {
  skip,
  timeout: 30_000,
}, async () => {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'HELD', subjects: ['HELD.>'] });
  const js = jetstream(nc);
  for (let i = 0; i < 10; i++) await js.publish('HELD.x', Buffer.from([i]));
  await jsm.consumers.add('HELD', {
    durable_name: 'g',
    ack_policy: AckPolicy.Explicit,
    ack_wait: 30e9,
    max_ack_pending: 4,
  });
  const pull = new Pull(nc, '$JS.API.CONSUMER.MSG.NEXT.HELD.g', opts);
  const held: Pulled[] = [];
  for (let i = 0; i < 4; i++) held.push((await pull.next())!);
  // The server gives no more until one is acknowledged; the open requests wait, for longer than two
  // heartbeats (500 ms each) and than their expiry (1 s): they are renewed, not failed.
  const fifth = pull.next();
  fifth.catch(() => {});
  const outcome = await Promise.race([
    fifth.then(
      () => 'delivered',
      (err: Error) => `failed: ${err.message}`,
    ),
    new Promise((r) => setTimeout(() => r('waiting'), 3500)),
  ]);
  assert.equal(outcome, 'waiting');
  held[0]!.ack();
  const m = await fifth;
  assert.equal(m?.seq, 5);
  for (const h of held.slice(1)) h.ack();
  m?.ack();
  await pull.stop();
});

test('pull options the server would refuse are ERR_BAD_OPTION, before any connection', async () => {
  const ok = { batch: 16, requests: 2, expiresMs: 2000, heartbeatMs: 1000 };
  checkPullOptions(ok);
  for (const bad of [
    { ...ok, batch: 0 },
    { ...ok, requests: 1.5 },
    { ...ok, expiresMs: 999 },
    { ...ok, heartbeatMs: 1001 }, // nats-server: 400 "heartbeat value too large" above half the expiry
    { ...ok, heartbeatMs: 50 },
  ]) {
    assert.throws(() => checkPullOptions(bad), { code: 'ERR_BAD_OPTION' }, JSON.stringify(bad));
  }
  // The source checks before it connects (nothing listens on port 1).
  await assert.rejects(
    JetStreamSource.open({ url: 'nats://127.0.0.1:1', expiresMs: 1000, heartbeatMs: 1000 }),
    {
      code: 'ERR_BAD_OPTION',
    },
  );
});

test('a delivery that comes while stopping is given back once, after our requests ended', {
  skip,
  timeout: 30_000,
}, async () => {
  const subject = await setUp('BOUNCE', 0);
  const pull = new Pull(nc, subject, opts);
  await new Promise((r) => setTimeout(r, 200)); // three empty requests open on the server
  const stopped = pull.stop();
  await jetstream(nc).publish('BOUNCE.x', Buffer.from('frame'));
  await stopped;
  // Given back while a request of ours was open, it would have come straight back to it, again and again.
  const again = new Pull(nc, subject, opts);
  const m = await again.next();
  assert.equal(m?.seq, 1);
  assert.ok(m!.deliveryCount <= 2, `delivered ${m!.deliveryCount} times`);
  m!.ack();
  await again.stop();
});

test('an event loop blocked past two heartbeats is not taken for a lost pull', {
  skip,
  timeout: 30_000,
}, async () => {
  const subject = await setUp('BLOCK', 0);
  const pull = new Pull(nc, subject, opts);
  const next = pull.next();
  next.catch(() => {});
  await new Promise((r) => setTimeout(r, 700));
  await nc.flush();
  // A synchronous handler holds the loop for 1.5 s (> 2 x 500 + 250 ms); the heartbeats wait in the socket.
  const until = Date.now() + 1500;
  while (Date.now() < until) {}
  const outcome = await Promise.race([
    next.then(
      () => 'delivered',
      (err: Error) => `failed: ${err.message}`,
    ),
    new Promise((r) => setTimeout(() => r('waiting'), 2000)),
  ]);
  assert.equal(outcome, 'waiting');
  await pull.stop();
});

test('a connection closed under a pull: next() rejects with ERR_BUS_UNREACHABLE, it does not wait for ever', {
  skip,
  timeout: 30_000,
}, async () => {
  const own = await connect({ servers: server!.url });
  const subject = await setUp('CLOSED', 0);
  const pull = new Pull(own, subject, opts);
  const next = pull.next();
  next.catch(() => {});
  await new Promise((r) => setTimeout(r, 200));
  await own.close();
  await assert.rejects(next, { code: 'ERR_BUS_UNREACHABLE' });
  await pull.stop();
});

test('a reconnect ends the pull at once; its old requests stay served until the stop gives back what they bring', {
  skip,
  timeout: 60_000,
}, async () => {
  const own = await connect({ servers: server!.url, reconnectTimeWait: 50 });
  const subject = await setUp('RECON', 0);
  const jsm = await jetstreamManager(nc);
  const pull = new Pull(own, subject, opts);
  const next = pull.next();
  next.catch(() => {});
  await new Promise((r) => setTimeout(r, 200));
  await own.reconnect();
  // The server stayed up: once the client subscribes to the inbox again, the old requests are alive, and
  // what is asked for is not known any more. The pull ends rather than guess.
  await assert.rejects(next, { code: 'ERR_BUS_UNREACHABLE', message: /re-established/ });
  const stopped = pull.stop();
  for (let i = 0; i < 16; i++) await jetstream(nc).publish('RECON.x', Buffer.from([i]));
  await stopped;
  // Everything published while it stopped is there for the next pull at once, each message once.
  const again = new Pull(nc, subject, opts);
  const seqs: number[] = [];
  const t0 = Date.now();
  while (seqs.length < 16) {
    const m = await again.next();
    assert.ok(m);
    assert.ok(!seqs.includes(m.seq), `message ${m.seq} came twice`);
    seqs.push(m.seq);
    m.ack();
  }
  await again.stop();
  assert.ok(Date.now() - t0 < 10_000, `the rest came in ${Date.now() - t0} ms, not after ack_wait`);
  await nc.flush();
  assert.equal((await jsm.consumers.info('RECON', 'g')).num_ack_pending, 0);
  await own.close();
});

test('a connection closed while a stop holds deliveries: the stop still ends, and answers do not throw', {
  skip,
  timeout: 30_000,
}, async () => {
  const own = await connect({ servers: server!.url });
  const subject = await setUp('HOLD', 50, 120_000);
  const pull = new Pull(own, subject, opts);
  const first = await pull.next();
  assert.ok(first);
  const stopped = pull.stop();
  await own.close();
  await stopped;
  first.ack(); // no one to tell: dropped, not thrown
  first.nak();
  first.term();
});

test('a server restart under a waiting pull: the missed heartbeats end it with ERR_BUS_UNREACHABLE', {
  skip,
  timeout: 60_000,
}, async () => {
  const subject = await setUp('RST', 0);
  const pull = new Pull(nc, subject, opts);
  const next = pull.next();
  // Stopped for longer than two heartbeats: the server forgets the requests, the client cannot reach it.
  await server!.stop();
  const t0 = Date.now();
  await assert.rejects(next, (err: unknown) => {
    assert.ok(err instanceof FramewireError);
    assert.equal(err.code, 'ERR_BUS_UNREACHABLE');
    assert.match(err.message, /heartbeats missed/);
    return true;
  });
  assert.ok(Date.now() - t0 < 10_000, `noticed after ${Date.now() - t0} ms`);
  await pull.stop();
  await server!.startAgain(); // the last test: the others use the server as it first started
});
