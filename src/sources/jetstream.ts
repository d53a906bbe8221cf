/**
 * The JetStream source: frames and messages published by `serve --publish`, read through a durable pull
 * consumer per group. Workers of one group share the deliveries (each one goes to one of them); a delivery
 * is acknowledged only after the sinks took it, so a worker that dies leaves its deliveries to the others.
 */
import type { ConsumerConfig } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import { decodeBusMessage } from '../bus/codec.js';
import {
  type Bus,
  type BusConnectOptions,
  busError,
  closeBus,
  connectBus,
  retryUnreachable,
} from '../bus/connect.js';
import { nats } from '../bus/nats.js';
import { checkPullOptions, Pull, type Pulled, type PullOptions } from '../bus/pull.js';
import { parseDuration, subjectToken } from '../bus/url.js';
import { ErrorCode, FramewireError, isRefusal, toFramewireError } from '../errors.js';
import { framesAtOnce, type ReceivedFrame, type ReceivedMessage, type Sink } from '../types.js';

/** Where a new group starts: the first frame kept, only frames published from now on, or a point in time. */
export type StartFrom = 'first' | 'new' | Date;

/** Options of {@link JetStreamSource}. */
export interface JetStreamSourceOptions extends BusConnectOptions {
  /** The group (durable consumer) name; workers with the same group share the frames. Default "framewire". */
  group?: string;
  /**
   * framewire stream names to take; default every stream and the JSON messages. With one name the consumer
   * filters on the server; with several, nats-server 2.9 has no multi-subject filter, so the consumer takes
   * every subject and this worker acknowledges the other streams' deliveries unseen.
   */
  streams?: string[];
  /** Where a new group starts (an existing group goes on where it was). Default 'first'. */
  from?: StartFrom;
  /** How long a delivery may stay unacknowledged before JetStream gives it to another worker, ms (30000). */
  ackWaitMs?: number;
  /** Deliveries a worker holds unacknowledged at most (the group's max_ack_pending, default 256). */
  maxAckPending?: number;
  /** Deliveries asked for per pull request (default 16). */
  batch?: number;
  /** Pull requests kept open at once (default 2), so the server always has one to fill. */
  pullRequests?: number;
  /**
   * Pull request expiry, ms (default 2000, at least 1000): a stop waits for it at most, giving back what the
   * open requests bring. Outside the limits: ERR_BAD_OPTION.
   */
  expiresMs?: number;
  /**
   * Idle heartbeat the server sends on a waiting pull request, ms (default 1000, or half of `expiresMs` when
   * that is less; from 100 to half of `expiresMs`): two missed (a lost stream or consumer leader, a
   * restarted server) and the worker pulls again.
   */
  heartbeatMs?: number;
}

interface DeliveryBase {
  /** How many times JetStream delivered it (1 for the first time). */
  deliveryCount: number;
  /** The message's sequence number in the JetStream stream. */
  busSeq: number;
  /** Tells JetStream it was handled; it is not delivered again (to this group). */
  ack(): void;
  /** Tells JetStream it was not handled; it is delivered again (to any worker) after `delayMs`. */
  nak(delayMs?: number): void;
  /** Tells JetStream never to deliver it again. */
  term(): void;
}

/** A frame or a JSON message as the bus delivers it. */
export type BusDelivery =
  | (DeliveryBase & { type: 'frame'; frame: ReceivedFrame })
  | (DeliveryBase & { type: 'message'; message: ReceivedMessage });

/** Counters of {@link JetStreamSource.deliverTo}. */
export interface ConsumeStats {
  frames: number;
  messages: number;
  /** Deliveries that came again (deliveryCount > 1). */
  redelivered: number;
  /** Deliveries a sink failed on, given back to JetStream. */
  failed: number;
  /** Deliveries that were not framewire messages, or whose object was gone. */
  bad: number;
}

const NANOS = 1_000_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Parses `new`, `first` or a time (ISO 8601, or a duration ago such as `10m`). Throws ERR_BAD_OPTION. */
export function parseStartFrom(text: string): StartFrom {
  if (text === 'new' || text === 'first') return text;
  if (/^\d+(\.\d+)?(ms|s|m|h|d)$/i.test(text)) return new Date(Date.now() - parseDuration(text, '--from'));
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new FramewireError('ERR_BAD_OPTION', `--from "${text}" is not new, first, a time or a duration`, {
      hint: 'write new, first, 2026-01-31T12:00:00Z or 10m (ten minutes ago)',
    });
  }
  return new Date(t);
}

/** The pull's options from the source's (defaults: 16 a request, 2 requests, 2 s expiry, 1 s heartbeat). */
function pullOptionsOf(o: JetStreamSourceOptions): PullOptions {
  const expiresMs = o.expiresMs ?? 2000;
  return {
    batch: o.batch ?? 16,
    requests: o.pullRequests ?? 2,
    expiresMs,
    heartbeatMs: o.heartbeatMs ?? Math.min(1000, Math.floor(expiresMs / 2)),
  };
}

/** A durable group name must be one NATS token: letters, digits, - and _. */
function checkGroup(group: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(group)) {
    throw new FramewireError('ERR_BAD_OPTION', `group "${group}" may hold only letters, digits, - and _`, {
      hint: 'name the group like a consumer: detector, recorder_1',
    });
  }
  return group;
}

/**
 * Reads framewire frames and messages from JetStream. Iterate it for deliveries (acknowledge each one
 * yourself), or hand it sinks with {@link deliverTo}.
 */
export class JetStreamSource implements AsyncIterable<BusDelivery> {
  readonly url: string;
  readonly group: string;
  readonly #bus: Bus;
  readonly #opts: JetStreamSourceOptions;
  readonly #wanted: Set<string> | undefined;
  readonly #pullOptions: PullOptions;
  #pull: Pull | undefined;
  #objects: Promise<ObjectStore> | undefined;
  #closed = false;

  private constructor(bus: Bus, opts: JetStreamSourceOptions) {
    this.#bus = bus;
    this.#opts = opts;
    this.url = bus.cfg.display;
    this.group = opts.group ?? 'framewire';
    const streams = opts.streams ?? [];
    this.#wanted = streams.length > 1 ? new Set(streams) : undefined;
    this.#pullOptions = pullOptionsOf(opts);
  }

  /**
   * Connects, and creates the group's durable consumer when missing. Rejects with ERR_BAD_URL,
   * ERR_BAD_OPTION, ERR_BUS_UNREACHABLE or ERR_BUS_REFUSED (auth, no JetStream, no such JetStream stream,
   * or a group of that name that filters other subjects).
   */
  static async open(opts: JetStreamSourceOptions): Promise<JetStreamSource> {
    checkGroup(opts.group ?? 'framewire');
    checkPullOptions(pullOptionsOf(opts));
    const bus = await connectBus({ name: `framewire consume ${opts.group ?? 'framewire'}`, ...opts });
    const src = new JetStreamSource(bus, opts);
    try {
      await retryUnreachable(() => src.#ensureConsumer(), opts.startRetryMs ?? 15_000);
    } catch (err) {
      await bus.nc.close().catch(() => {});
      throw err;
    }
    return src;
  }

  /** The consumer's subject filter. */
  get filter(): string {
    const { prefix } = this.#bus.cfg;
    const streams = this.#opts.streams ?? [];
    return streams.length === 1 ? `${prefix}.${subjectToken(streams[0]!)}` : `${prefix}.>`;
  }

  async #ensureConsumer(): Promise<void> {
    const { cfg, jsm } = this.#bus;
    const { AckPolicy, DeliverPolicy, JetStreamApiError } = nats().jetstream;
    const o = this.#opts;
    const from = o.from ?? 'first';
    const config: Partial<ConsumerConfig> = {
      durable_name: this.group,
      ack_policy: AckPolicy.Explicit,
      ack_wait: (o.ackWaitMs ?? 30_000) * NANOS,
      max_ack_pending: o.maxAckPending ?? 256,
      filter_subject: this.filter,
      deliver_policy:
        from === 'first' ? DeliverPolicy.All : from === 'new' ? DeliverPolicy.New : DeliverPolicy.StartTime,
      ...(from instanceof Date ? { opt_start_time: from.toISOString() } : {}),
    };
    try {
      const info = await jsm.consumers.info(cfg.stream, this.group).catch((err: unknown) => {
        if (err instanceof JetStreamApiError && err.status === 404) return undefined;
        throw err;
      });
      if (info) {
        if (info.config.filter_subject !== this.filter) {
          throw new FramewireError(
            'ERR_BUS_REFUSED',
            `group "${this.group}" exists on ${cfg.display} with filter ${info.config.filter_subject ?? '(none)'}, not ${this.filter}`,
            { hint: 'give the same --stream options to every worker of a group, or use another --group' },
          );
        }
        return;
      }
      await jsm.consumers.add(cfg.stream, config);
    } catch (err) {
      if (err instanceof JetStreamApiError && /stream not found/i.test(err.message)) {
        throw new FramewireError(
          'ERR_BUS_REFUSED',
          `JetStream stream ${cfg.stream} does not exist on ${cfg.display}`,
          {
            cause: err,
            hint: 'start a receiver with serve --publish first (it creates the stream), or give ?stream=',
          },
        );
      }
      throw busError(err, cfg, `cannot create group "${this.group}" on stream ${cfg.stream}`);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<BusDelivery> {
    const { cfg, js, jsm, nc } = this.#bus;
    const o = this.#opts;
    const subject = `${js.apiPrefix}.CONSUMER.MSG.NEXT.${cfg.stream}.${this.group}`;
    // framewire's own pull (bus/pull.ts): `pullRequests` requests of `batch` open at once, each ending when
    // filled or after `expires`. A stop waits for the open requests and gives back what they bring, so no
    // delivery is left to wait for ack_wait; a lost leader or a restarted server is noticed by the missed
    // heartbeats within seconds, rather than after the client's 30 s default.
    for (let attempt = 0; !this.#closed; ) {
      let pull: Pull;
      try {
        // The group must exist (a deleted one is refused, not waited for).
        await jsm.consumers.info(cfg.stream, this.group);
        if (this.#closed) return;
        pull = new Pull(nc, subject, this.#pullOptions);
      } catch (err) {
        if (this.#closed) return;
        const e = busError(err, cfg, `cannot consume group "${this.group}"`);
        if (e.code !== 'ERR_BUS_UNREACHABLE' || nc.isClosed()) throw e;
        o.onStatus?.(`${e.message} (trying again)`);
        await sleep(Math.min(250 * 2 ** attempt++, 2000));
        continue;
      }
      this.#pull = pull;
      try {
        for (let m = await pull.next(); m; m = await pull.next()) {
          attempt = 0;
          const d = await this.#decode(m);
          if (d) yield d;
        }
      } catch (err) {
        if (nc.isClosed() || this.#closed) return;
        const e = busError(err, cfg, `pull on group "${this.group}" failed`);
        if (e.code === 'ERR_BUS_REFUSED' && !/consumer deleted/i.test(e.message)) throw e;
        // Heartbeats missed, a leader lost, the group deleted (the lookup above tells): pull again.
        o.onStatus?.(`${e.message} (pulling again)`);
        await sleep(Math.min(250 * 2 ** attempt++, 2000));
      } finally {
        await pull.stop();
        this.#pull = undefined;
      }
    }
  }

  /**
   * The newest frame of each framewire stream the group takes, read straight from the JetStream stream
   * (last message per subject) without touching the group: what a live viewer shows at once, before the
   * group's next delivery. Frames whose bytes are gone from the object store are left out.
   */
  async latest(): Promise<ReceivedFrame[]> {
    const { cfg, jsm } = this.#bus;
    const messagesSubject = `${cfg.prefix}._messages`;
    let subjects: string[];
    try {
      const info = await jsm.streams.info(cfg.stream, { subjects_filter: this.filter });
      subjects = Object.keys(info.state.subjects ?? {}).filter((s) => s !== messagesSubject);
    } catch (err) {
      throw busError(err, cfg, `cannot list the subjects of ${cfg.stream}`);
    }
    const frames: ReceivedFrame[] = [];
    for (const subject of subjects.sort()) {
      try {
        const m = await jsm.streams.getMessage(cfg.stream, { last_by_subj: subject });
        if (!m) continue;
        const d = decodeBusMessage(subject, m.header, m.data);
        if (d.type !== 'frame') continue;
        if (this.#wanted && !this.#wanted.has(d.frame.stream.name)) continue;
        if (d.object !== undefined) {
          const data = await this.#fetchObject(d.object);
          if (!data) continue;
          d.frame.data = data;
        }
        frames.push(d.frame);
      } catch (err) {
        this.#warn(toFramewireError(err, ErrorCode.BUS_BAD_MESSAGE, `the newest message on ${subject}`));
      }
    }
    return frames;
  }

  /** Turns a JetStream message into a delivery; undefined (and handled) when it is not one to hand out. */
  async #decode(m: Pulled): Promise<BusDelivery | undefined> {
    const base: DeliveryBase = {
      deliveryCount: m.deliveryCount,
      busSeq: m.seq,
      ack: () => m.ack(),
      nak: (delayMs?: number) => m.nak(delayMs),
      term: () => m.term(),
    };
    let decoded: ReturnType<typeof decodeBusMessage>;
    try {
      decoded = decodeBusMessage(m.subject, m.headers, m.data);
    } catch (err) {
      m.term();
      this.#warn(toFramewireError(err, ErrorCode.BUS_BAD_MESSAGE, `bus message ${m.seq}`));
      return undefined;
    }
    if (decoded.type === 'message') {
      if (this.#wanted) {
        m.ack();
        return undefined;
      }
      return { ...base, type: 'message', message: decoded.message };
    }
    const frame = decoded.frame;
    if (this.#wanted && !this.#wanted.has(frame.stream.name)) {
      m.ack();
      return undefined;
    }
    if (decoded.object !== undefined) {
      const data = await this.#fetchObject(decoded.object).catch((err: unknown) => err as Error);
      if (data instanceof Error) {
        // The bus is down or has no leader: try again later.
        m.nak(1000);
        this.#warn(busError(data, this.#bus.cfg, `cannot read object ${decoded.object}`));
        return undefined;
      }
      if (data === null) {
        m.term();
        this.#warn(
          new FramewireError(
            'ERR_BUS_BAD_MESSAGE',
            `frame ${frame.seq} of "${frame.stream.name}": object ${decoded.object} is gone`,
            {
              hint: 'the object store bucket keeps objects for the stream max-age; raise it',
            },
          ),
        );
        return undefined;
      }
      frame.data = data;
    }
    return { ...base, type: 'frame', frame };
  }

  async #fetchObject(name: string): Promise<Buffer | null> {
    if (!this.#objects) {
      const p = new (nats().obj.Objm)(this.#bus.js).open(this.#bus.cfg.bucket);
      p.catch(() => {
        if (this.#objects === p) this.#objects = undefined;
      });
      this.#objects = p;
    }
    const blob = await (await this.#objects).getBlob(name);
    return blob === null ? null : Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  }

  #warn(err: FramewireError): void {
    this.#onWarning?.(err);
  }

  #onWarning: ((err: FramewireError) => void) | undefined;

  /**
   * Hands every delivery to `sinks` (each sink in turn) and acknowledges it once all of them resolved. Frames
   * are handed over as many at once as the sinks take (their smallest `frameConcurrency`), in the order
   * they came; a JSON message waits for the frames under way and is handled alone. A sink that rejects
   * leaves the delivery to JetStream (nak: delivered again, possibly to another worker), except for
   * ERR_UNSAFE_NAME or ERR_NAME_TAKEN, which no retry can cure (term). Resolves when the source is closed
   * (or `signal` aborts).
   */
  async deliverTo(
    sinks: Sink[],
    opts: {
      signal?: AbortSignal;
      onFrame?: (f: ReceivedFrame, d: BusDelivery) => void;
      onMessage?: (m: ReceivedMessage, d: BusDelivery) => void;
      onError?: (err: FramewireError) => void;
    } = {},
  ): Promise<ConsumeStats> {
    const stats: ConsumeStats = { frames: 0, messages: 0, redelivered: 0, failed: 0, bad: 0 };
    this.#onWarning = (err) => {
      stats.bad++;
      opts.onError?.(err);
    };
    const onAbort = () => this.stop();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) return stats;
    // Deliveries handled side by side: as many as the sinks take at once (the smallest frameConcurrency of
    // those with frame(), 1 when none says). Each is acknowledged on its own once its sinks resolved.
    const width = framesAtOnce(sinks, 1024);
    const inFlight = new Set<Promise<void>>();
    const handle = async (d: BusDelivery): Promise<void> => {
      try {
        if (d.type === 'frame') {
          for (const s of sinks) if (s.frame) await s.frame(d.frame);
        } else {
          for (const s of sinks) if (s.message) await s.message(d.message);
        }
      } catch (err) {
        const e = toFramewireError(err, ErrorCode.WRITE_FAILED, `bus message ${d.busSeq}`);
        stats.failed++;
        if (isRefusal(e.code)) d.term();
        else d.nak(1000);
        opts.onError?.(e);
        return;
      }
      d.ack();
      if (d.type === 'frame') {
        stats.frames++;
        opts.onFrame?.(d.frame, d);
      } else {
        stats.messages++;
        opts.onMessage?.(d.message, d);
      }
    };
    try {
      for await (const d of this) {
        if (d.deliveryCount > 1) stats.redelivered++;
        // frameConcurrency speaks of frames: a JSON message waits for what is under way, and is handled alone.
        if (d.type === 'message' && inFlight.size > 0) await Promise.all(inFlight);
        const p = handle(d);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
        if (inFlight.size >= width) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
    return stats;
  }

  /**
   * Stops pulling: the iteration ends after the delivery in hand; deliveries taken but not handed out, and
   * what the open pull requests still bring, are given back (nak) once those requests end (normally at
   * their expiry, at most about `expiresMs` + 1 s).
   */
  stop(): void {
    this.#closed = true;
    void this.#pull?.stop();
  }

  /** Stops, then flushes the acknowledgements and closes the connection. */
  async close(): Promise<void> {
    this.stop();
    // The open pull requests end (filled or expired) and what they bring goes back to the group.
    await this.#pull?.stop();
    await this.#bus.nc.flush().catch(() => {});
    await closeBus(this.#bus);
  }
}
