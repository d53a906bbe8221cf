/**
 * The JetStream sink: publishes every frame and message a receiver takes in to NATS JetStream, and resolves
 * only once JetStream has acknowledged (stored) it. The receiver acknowledges a reliable frame to its sender
 * after its sinks resolved, so a frame the sender sees acknowledged is on the bus.
 *
 * Frames go to `<prefix>.<stream>`, messages to `<prefix>._messages`; `Nats-Msg-Id` is
 * `<stream>:<epoch>:<seq>`, so that a frame sent again after a reconnect is stored once. A frame larger than
 * the server's max_payload goes to the object store, and the message on the subject names the object.
 */
import type { PubAck } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { MsgHdrs } from '@nats-io/transport-node';
import { frameHeaders, frameMsgId, headerBytes, messageHeaders, messageMsgId } from '../bus/codec.js';
import {
  type Bus,
  type BusConnectOptions,
  busError,
  closeBus,
  connectBus,
  ensureStream,
  isRefusal,
  retryUnreachable,
} from '../bus/connect.js';
import { nats } from '../bus/nats.js';
import { redact, subjectToken } from '../bus/url.js';
import { FramewireError } from '../errors.js';
import type { ReceivedFrame, ReceivedMessage, Sink } from '../types.js';

/** Options of {@link JetStreamSink}. */
export interface JetStreamSinkOptions extends BusConnectOptions {
  /**
   * How long a publish is retried while the bus cannot be reached or has no JetStream leader, ms (default
   * 30000). Meanwhile the frame stays unacknowledged and the sender is held back; after it, the frame fails
   * with ERR_BUS_UNREACHABLE and its sender sends it again after reconnecting.
   */
  retryForMs?: number;
  /** How long to wait for one publish acknowledgement, ms (default 5000). */
  ackTimeoutMs?: number;
  /**
   * Frames larger than this many bytes (with their headers) go to the object store. Default: the server's
   * max_payload. Lower it to keep large frames out of the stream itself.
   */
  maxPayload?: number;
  /**
   * Frames of one stream published at once, each waiting for its own acknowledgement (default 32). The
   * receiver hands this many frames to the sink before the first is acknowledged (`frameConcurrency`), and
   * each frame still resolves only after every earlier frame of its stream: acknowledgements to the sender
   * stay in order. 1 publishes one frame at a time.
   */
  publishConcurrency?: number;
}

/** Counters of a {@link JetStreamSink}. */
export interface JetStreamSinkStats {
  /** Frames stored by JetStream (duplicates included). */
  frames: number;
  messages: number;
  /** Publishes JetStream reported as duplicates (a frame sent again after a reconnect). */
  duplicates: number;
  /** Frames whose bytes went to the object store. */
  objects: number;
  /** Publish attempts that failed and were tried again. */
  retries: number;
}

/** `publishConcurrency` checked: an integer 1..1024 (default 32), else ERR_BAD_OPTION. */
function publishConcurrency(opts: JetStreamSinkOptions): number {
  const c = opts.publishConcurrency ?? 32;
  if (!Number.isInteger(c) || c < 1 || c > 1024) {
    throw new FramewireError('ERR_BAD_OPTION', `publishConcurrency must be an integer 1..1024, got ${c}`);
  }
  return c;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Publishes received frames and messages to NATS JetStream. Use {@link JetStreamSink.open}. */
export class JetStreamSink implements Sink {
  /** The bus URL without credentials. */
  readonly url: string;
  readonly stats: JetStreamSinkStats = { frames: 0, messages: 0, duplicates: 0, objects: 0, retries: 0 };
  readonly #bus: Bus;
  readonly #retryForMs: number;
  readonly #ackTimeoutMs: number;
  readonly #maxPayload: number;
  #objects: Promise<ObjectStore> | undefined;
  #closing: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();
  /** The newest frame's promise per stream run: the next frame of the run resolves after it. */
  readonly #lastOfRun = new Map<string, Promise<void>>();
  /** Per stream run: resolves once the newest frame's publish is on the wire (see #frame). */
  readonly #issued = new Map<string, Promise<void>>();
  /** Frames of one stream the receiver may hand over before the first resolves (see publishConcurrency). */
  readonly frameConcurrency: number;

  private constructor(bus: Bus, opts: JetStreamSinkOptions) {
    this.#bus = bus;
    this.url = bus.cfg.display;
    this.#retryForMs = opts.retryForMs ?? 30_000;
    this.#ackTimeoutMs = opts.ackTimeoutMs ?? 5000;
    this.#maxPayload = opts.maxPayload ?? bus.nc.info?.max_payload ?? 1024 * 1024;
    this.frameConcurrency = publishConcurrency(opts);
  }

  /**
   * Connects to the bus and creates the JetStream stream when it is missing (with the URL's limits).
   * Rejects with ERR_BAD_URL, ERR_BUS_UNREACHABLE or ERR_BUS_REFUSED (auth, no JetStream, a stream of that
   * name with other subjects).
   */
  static async open(opts: JetStreamSinkOptions): Promise<JetStreamSink> {
    publishConcurrency(opts); // a bad value is refused before connecting
    const bus = await connectBus({ name: 'framewire serve', ...opts });
    try {
      await retryUnreachable(() => ensureStream(bus), opts.startRetryMs ?? 15_000);
    } catch (err) {
      await bus.nc.close().catch(() => {});
      throw err;
    }
    return new JetStreamSink(bus, opts);
  }

  /** The subject a stream's frames are published on. */
  subjectOf(stream: string): string {
    return `${this.#bus.cfg.prefix}.${subjectToken(stream)}`;
  }

  frame(f: ReceivedFrame): Promise<void> {
    // Publishes run side by side; each frame resolves only once the frames before it in its run did (and
    // fails when one of them failed), so that the receiver's acknowledgements never pass a frame not stored.
    const run = `${f.stream.name}\u0000${f.stream.epoch}`;
    const before = this.#lastOfRun.get(run);
    const published = this.#frame(f, run);
    const inOrder = before === undefined ? published : published.then(() => before);
    this.#lastOfRun.set(run, inOrder);
    const forget = () => {
      if (this.#lastOfRun.get(run) === inOrder) this.#lastOfRun.delete(run);
    };
    inOrder.then(forget, forget);
    return this.#track(inOrder);
  }

  message(m: ReceivedMessage): Promise<void> {
    return this.#track(this.#message(m));
  }

  async #frame(f: ReceivedFrame, run: string): Promise<void> {
    this.#checkOpen();
    // Publishes of one run go on the wire in sequence order (NATS keeps the order of one connection), so the
    // bus holds a stream's frames in order although their acknowledgements overlap: a frame waits until the
    // one before it is on its way (its object, if any, stored first). Only a retried publish can land late.
    const before = this.#issued.get(run);
    let issued!: () => void;
    const mine = new Promise<void>((r) => {
      issued = r;
    });
    this.#issued.set(run, mine);
    try {
      if (before) await before;
      await this.#publishFrame(f, issued);
    } finally {
      issued();
      if (this.#issued.get(run) === mine) this.#issued.delete(run);
    }
  }

  async #publishFrame(f: ReceivedFrame, issued: () => void): Promise<void> {
    const subject = this.subjectOf(f.stream.name);
    const id = frameMsgId(f);
    let h = frameHeaders(f);
    let payload: Uint8Array = f.data;
    if (f.data.length + headerBytes(h) + subject.length + 64 > this.#maxPayload) {
      // Too large for one message: the bytes go to the object store under the message id, the message
      // names them. Putting the same object again (a resend) replaces it with the same bytes.
      await this.#retry(
        `storing frame ${f.seq} of "${f.stream.name}" in object store ${this.#bus.cfg.bucket}`,
        async () => {
          const os = await this.#objectStore();
          await os.putBlob({ name: id }, f.data);
        },
      );
      this.stats.objects++;
      h = frameHeaders(f, id);
      payload = new Uint8Array(0);
    }
    const pending = this.#publish(subject, payload, id, h, `frame ${f.seq} of "${f.stream.name}"`);
    issued();
    const ack = await pending;
    this.stats.frames++;
    if (ack.duplicate) this.stats.duplicates++;
  }

  async #message(m: ReceivedMessage): Promise<void> {
    this.#checkOpen();
    const subject = `${this.#bus.cfg.prefix}._messages`;
    const ack = await this.#publish(
      subject,
      Buffer.from(m.text, 'utf8'),
      messageMsgId(m),
      messageHeaders(m),
      `message ${m.seq}`,
    );
    this.stats.messages++;
    if (ack.duplicate) this.stats.duplicates++;
  }

  #publish(
    subject: string,
    payload: Uint8Array,
    msgID: string,
    headers: MsgHdrs,
    what: string,
  ): Promise<PubAck> {
    return this.#retry(`publishing ${what} on ${subject}`, () =>
      this.#bus.js.publish(subject, payload, { msgID, headers, timeout: this.#ackTimeoutMs }),
    );
  }

  /**
   * Runs `fn` until it succeeds, the bus refuses (ERR_BUS_REFUSED at once), `retryForMs` passes
   * (ERR_BUS_UNREACHABLE) or the sink closes. Safe because every publish carries its deduplication id.
   */
  async #retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (isRefusal(err) || Date.now() >= deadline || this.#closing || this.#bus.nc.isClosed()) {
          throw busError(err, this.#bus.cfg, what);
        }
        this.stats.retries++;
        await sleep(Math.min(50 * 2 ** attempt, 1000));
      }
    }
  }

  #objectStore(): Promise<ObjectStore> {
    if (!this.#objects) {
      const { cfg, js } = this.#bus;
      const p = new (nats().obj.Objm)(js).create(cfg.bucket, {
        replicas: cfg.replicas,
        ...(cfg.maxAgeMs > 0 ? { ttl: cfg.maxAgeMs * 1_000_000 } : {}),
        ...(cfg.maxBytes > 0 ? { max_bytes: cfg.maxBytes } : {}),
      });
      p.catch(() => {
        if (this.#objects === p) this.#objects = undefined;
      });
      this.#objects = p;
    }
    return this.#objects;
  }

  #checkOpen(): void {
    if (this.#closing)
      throw new FramewireError('ERR_CLOSED', `JetStream sink for ${redact(this.url)} is closed`);
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  /** Waits for publishes under way, then drains and closes the connection. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#inFlight]);
      await closeBus(this.#bus);
    })();
    return this.#closing;
  }
}
