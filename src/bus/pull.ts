/**
 * framewire's own pull on a JetStream pull consumer: several pull requests kept in flight on one inbox, so
 * the server always has a request to fill while the worker handles what came.
 *
 * Why not the client's `fetch()` or `consume()`:
 * - `fetch()` asks for one batch at a time and waits for it; against nats-server 2.9 that delivers about 400
 *   frames of 123 KB a second, whatever the batch (docs/benchmarks.md, "The bus").
 * - `consume()` is fast, but its `stop()` drops the deliveries already on their way, so they come back only
 *   after `ack_wait` (30 s by default).
 *
 * Here a stop asks for nothing more, holds what arrives, and once every open request has ended (filled, or
 * expired after `expiresMs`) gives it all back (`-NAK`); nothing is left to ack_wait. Given back earlier, a
 * delivery would come straight back to one of our own open requests.
 *
 * The protocol (nats-server's `$JS.API.CONSUMER.MSG.NEXT`): a request `{batch, expires, idle_heartbeat}`
 * (times in ns) published with our inbox as reply. The server hands deliveries to its open requests in
 * turn (nats-server 2.9 moves a request to the back of its queue after each delivery), sends status 100
 * while a request waits with nothing to deliver, and 408 with `Nats-Pending-Messages` (what that request
 * had left) when one expires. So what is still asked for is known exactly, whichever request a delivery
 * counted against: every batch asked, less every delivery, less what each expired request had left.
 */
import type { Msg, MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { FramewireError } from '../errors.js';
import { nats } from './nats.js';

const NANOS = 1_000_000;

/** One delivery of the consumer: the message and how to answer it. */
export interface Pulled {
  subject: string;
  headers: MsgHdrs | undefined;
  data: Uint8Array;
  /** The message's sequence number in the JetStream stream. */
  seq: number;
  /** How many times it was delivered (1 the first time). */
  deliveryCount: number;
  ack(): void;
  /** Delivered again (to any worker of the group) after `delayMs`, or at once. */
  nak(delayMs?: number): void;
  term(): void;
}

export interface PullOptions {
  /** Deliveries asked for per request. */
  batch: number;
  /** Requests kept open at once (at least 1). */
  requests: number;
  /** Request expiry, ms. */
  expiresMs: number;
  /** The server's idle heartbeat on a waiting request, ms; two missed end the pull with an error. */
  heartbeatMs: number;
}

/**
 * Reads the ack subject: `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or with
 * a domain and an account hash in front (`$JS.ACK.<domain>.<hash>.<stream>…`, 12 tokens).
 */
export function ackInfo(reply: string): { deliveryCount: number; seq: number } | undefined {
  const t = reply.split('.');
  if (t[0] !== '$JS' || t[1] !== 'ACK') return undefined;
  const at = t.length === 9 ? 4 : t.length >= 11 ? 6 : -1;
  if (at < 0) return undefined;
  const deliveryCount = Number(t[at]);
  const seq = Number(t[at + 1]);
  if (!Number.isSafeInteger(deliveryCount) || !Number.isSafeInteger(seq)) return undefined;
  return { deliveryCount, seq };
}

/**
 * One pull on a consumer. {@link next} gives the deliveries in the order they came (one caller at a time);
 * it rejects when the pull cannot go on (heartbeats missed, the consumer deleted, no JetStream): make a new
 * one after a pause, having stopped this one.
 */
export class Pull {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #opts: PullOptions;
  readonly #inbox: string;
  /** The body of every pull request (the same for each). */
  readonly #request: string;
  readonly #sub: Subscription;
  readonly #queue: Pulled[] = [];
  /** Deliveries asked for and not yet come: the open requests' sum (see the top of this file). */
  #asked = 0;
  #failure: FramewireError | undefined;
  #waiters: (() => void)[] = [];
  #stopping = false;
  /** What came while stopping (and what was queued): given back only once the requests ended. */
  readonly #held: Pulled[] = [];
  #drained: Promise<void> | undefined;
  #endDrain: (() => void) | undefined;
  #lastHeard = Date.now();
  #lastAsked = 0;
  #rechecking = false;
  readonly #watch: NodeJS.Timeout;
  readonly #status: AsyncIterable<unknown> & { stop?: () => void };

  constructor(nc: NatsConnection, subject: string, opts: PullOptions) {
    checkPullOptions(opts);
    this.#nc = nc;
    this.#subject = subject;
    this.#opts = { ...opts };
    this.#inbox = nats().core.createInbox();
    this.#request = JSON.stringify({
      batch: opts.batch,
      expires: Math.round(opts.expiresMs * NANOS),
      idle_heartbeat: Math.round(opts.heartbeatMs * NANOS),
    });
    this.#sub = nc.subscribe(this.#inbox, { callback: (err, m) => this.#arrived(err, m) });
    this.#watch = setInterval(() => this.#check(), Math.max(100, Math.floor(opts.heartbeatMs / 2)));
    this.#watch.unref();
    // A reconnect ends this pull at once rather than at the watchdog: what was on its way in the dead
    // socket is gone, and what is still asked for is not known any more (a server that stayed up keeps the
    // old requests alive once the client subscribes to the inbox again; one that did not, dropped them).
    // The caller's next pull has an inbox of its own; this one, stopping, still takes and gives back what
    // its old requests bring, until they expired.
    const status = nc.status() as AsyncIterable<unknown> & { stop?: () => void };
    this.#status = status;
    void (async () => {
      for await (const s of status) {
        if ((s as { type?: string }).type !== 'reconnect') continue;
        this.#fail(
          new FramewireError('ERR_BUS_UNREACHABLE', `pull on ${subject}: the connection was re-established`),
        );
      }
    })().catch(() => {});
    this.#topUp();
  }

  /** The next delivery; undefined once stopped. Rejects when the pull failed. */
  async next(): Promise<Pulled | undefined> {
    for (;;) {
      if (this.#stopping) return undefined;
      const m = this.#queue.shift();
      if (m) {
        this.#topUp();
        return m;
      }
      if (this.#failure) throw this.#failure;
      await new Promise<void>((r) => {
        this.#waiters.push(r);
      });
    }
  }

  /**
   * Asks for nothing more and resolves once every open request has ended (filled, or expired: at most
   * `expiresMs` and a margin after the last one was made), then gives back (-NAK) what came and was not
   * taken. Given back only then: a delivery given back while a request of ours is still open would come
   * straight back to it, again and again (and count against the group's max_deliver).
   */
  stop(): Promise<void> {
    if (this.#drained) return this.#drained;
    this.#stopping = true;
    this.#held.push(...this.#queue.splice(0));
    this.#drained = new Promise<void>((r) => {
      this.#endDrain = r;
    });
    this.#wakeUp();
    this.#maybeDrained();
    return this.#drained;
  }

  #arrived(err: Error | null, m: Msg): void {
    this.#lastHeard = Date.now();
    if (err) {
      this.#fail(
        new FramewireError('ERR_BUS_REFUSED', `pull on ${this.#subject}: ${err.message}`, { cause: err }),
      );
      return;
    }
    if (m.reply?.startsWith('$JS.ACK.')) {
      this.#delivered(m);
      return;
    }
    const code = Number(m.headers?.code ?? 0);
    const description = m.headers?.description ?? '';
    if (code === 100) return; // idle heartbeat (or flow control, which a pull consumer does not use)
    if (
      code === 400 ||
      (code === 409 && /consumer deleted|push based|exceeded maxrequest/i.test(description))
    ) {
      // A request the server will never take (bad values, above the group's request limits), or no group.
      // A refused request was never open: it has nothing to deliver.
      if (code === 400 || /exceeded maxrequest/i.test(description)) {
        this.#asked = Math.max(0, this.#asked - this.#opts.batch);
      }
      this.#fail(
        new FramewireError('ERR_BUS_REFUSED', `pull on ${this.#subject}: ${code} ${description}`, {
          hint: 'check the group (consumer) on the bus and the pull options (batch, expiresMs, heartbeatMs)',
        }),
      );
      return;
    }
    if (code === 408 || ((code === 404 || code === 409) && m.headers?.get('Nats-Pending-Messages'))) {
      // A request ended unfilled: expired (408), or cut short by a limit such as the size of a message
      // (409 with what it had left).
      this.#asked = Math.max(0, this.#asked - Number(m.headers?.get('Nats-Pending-Messages') || 0));
      this.#afterChange();
      return;
    }
    // 503 no responders (no JetStream leader yet), 409 max waiting or anything else: this pull is over;
    // the caller makes a new one after a pause. A request refused for max waiting was never open.
    if (code === 409 && /exceeded maxwaiting/i.test(description)) {
      this.#asked = Math.max(0, this.#asked - this.#opts.batch);
    }
    this.#fail(
      new FramewireError('ERR_BUS_UNREACHABLE', `pull on ${this.#subject}: ${code} ${description}`.trim()),
    );
  }

  #delivered(m: Msg): void {
    if (this.#asked > 0) this.#asked--;
    const info = ackInfo(m.reply!);
    const reply = m.reply!;
    const nc = this.#nc;
    const d: Pulled = {
      subject: m.subject,
      headers: m.headers,
      data: m.data,
      seq: info?.seq ?? 0,
      deliveryCount: info?.deliveryCount ?? 1,
      ack: () => answer(nc, reply, '+ACK'),
      nak: (delayMs?: number) =>
        answer(
          nc,
          reply,
          delayMs ? `-NAK ${JSON.stringify({ delay: Math.round(delayMs * NANOS) })}` : '-NAK',
        ),
      term: () => answer(nc, reply, '+TERM'),
    };
    if (this.#stopping) this.#held.push(d);
    else this.#queue.push(d);
    this.#afterChange();
  }

  #afterChange(): void {
    if (this.#stopping) {
      this.#maybeDrained();
      return;
    }
    this.#topUp();
    this.#wakeUp();
  }

  /** Keeps `requests` batches asked for or waiting in the queue. */
  #topUp(): void {
    if (this.#stopping || this.#failure || this.#nc.isClosed()) return;
    const { batch, requests } = this.#opts;
    while (this.#asked + this.#queue.length <= batch * (requests - 1)) {
      if (this.#asked === 0) this.#lastHeard = Date.now();
      this.#asked += batch;
      this.#lastAsked = Date.now();
      this.#nc.publish(this.#subject, this.#request, { reply: this.#inbox });
    }
  }

  /**
   * Two heartbeats missed while a request is open: the server lost it (a restart, a new leader). Decided
   * only after the socket was read (setImmediate runs after the poll phase), so heartbeats that came while
   * the event loop was blocked are not taken for missing ones.
   */
  #check(): void {
    if (this.#stopping) {
      this.#maybeDrained();
      return;
    }
    if (this.#failure || this.#rechecking) return;
    if (this.#nc.isClosed()) {
      this.#fail(
        new FramewireError('ERR_BUS_UNREACHABLE', `pull on ${this.#subject}: the connection closed`),
      );
      return;
    }
    if (!this.#silent()) return;
    this.#rechecking = true;
    setImmediate(() => {
      this.#rechecking = false;
      if (this.#stopping || this.#failure || !this.#silent()) return;
      this.#fail(
        new FramewireError('ERR_BUS_UNREACHABLE', `pull on ${this.#subject}: heartbeats missed`, {
          hint: 'the bus restarted or its JetStream leader moved; pulling again',
        }),
      );
    });
  }

  #silent(): boolean {
    return this.#asked > 0 && Date.now() - this.#lastHeard > 2 * this.#opts.heartbeatMs + 250;
  }

  /**
   * The pull cannot go on. What it asked for stays counted: requests still open on the server may yet
   * deliver, and a stop waits for them (or their expiry) before it gives back what came.
   */
  #fail(err: FramewireError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#wakeUp();
  }

  #maybeDrained(): void {
    if (!this.#stopping || !this.#endDrain) return;
    const expired = Date.now() - this.#lastAsked > this.#opts.expiresMs + 500;
    if (this.#asked > 0 && !expired && !this.#nc.isClosed()) return;
    const end = this.#endDrain;
    this.#endDrain = undefined;
    try {
      clearInterval(this.#watch);
      this.#status.stop?.();
      for (const m of this.#held.splice(0)) m.nak();
      if (!this.#nc.isClosed()) this.#sub.unsubscribe();
    } finally {
      end();
    }
  }

  #wakeUp(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

/**
 * Answers a delivery (ack, nak, term). On a closed connection there is no one to tell: JetStream delivers it
 * again after ack_wait, so the answer is dropped rather than thrown at the sink loop.
 */
function answer(nc: NatsConnection, reply: string, text: string): void {
  if (nc.isClosed()) return;
  try {
    nc.publish(reply, text);
  } catch {
    // Closed or draining between the check and the publish: as above.
  }
}

/** The server refuses a heartbeat above half the expiry (400 "heartbeat value too large"). */
export function checkPullOptions(o: PullOptions): void {
  const bad = (what: string) =>
    new FramewireError('ERR_BAD_OPTION', `pull: ${what}`, {
      hint: 'batch and requests are whole numbers from 1; expiresMs at least 1000; heartbeatMs from 100 to half of expiresMs',
    });
  if (!Number.isSafeInteger(o.batch) || o.batch < 1)
    throw bad(`batch ${o.batch} is not a whole number from 1`);
  if (!Number.isSafeInteger(o.requests) || o.requests < 1)
    throw bad(`requests ${o.requests} is not a whole number from 1`);
  if (!(o.expiresMs >= 1000) || !Number.isFinite(o.expiresMs))
    throw bad(`expiresMs ${o.expiresMs} is below 1000`);
  if (!(o.heartbeatMs >= 100) || o.heartbeatMs * 2 > o.expiresMs)
    throw bad(`heartbeatMs ${o.heartbeatMs} is not between 100 and half of expiresMs (${o.expiresMs})`);
}
