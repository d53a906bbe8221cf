/**
 * One connected sender (ReceiverSession): the connection's life (handshake and idle timers, fatal errors,
 * BYE, shutdown), the receiver's side of the handshake, and opening streams. What it receives is stored
 * by the data path it extends (delivery.ts).
 */
import { randomBytes } from 'node:crypto';
import { channels } from '../diagnostics.js';
import { authError, FramewireError, toFramewireError } from '../errors.js';
import { MessageType } from '../protocol/constants.js';
import {
  type AuthBody,
  encodeControl,
  encodePing,
  type HelloBody,
  type Message,
  type ResumePoint,
  type StreamDecl,
} from '../protocol/messages.js';
import { monoMs } from '../time.js';
import type { Connection } from '../transports/types.js';
import type { ConnectionInfo } from '../types.js';
import { CLOCK_VERSION, ClockSync } from './clock.js';
import { SessionDelivery } from './delivery.js';
import { challenge, checkAnswer, checkHello, welcomeBody } from './handshake.js';
import type { ReceiverHost } from './host.js';
import { checkDecl, isObject, type RxStream } from './records.js';

/** One connected sender. */
export class ReceiverSession extends SessionDelivery {
  readonly id = randomBytes(6).toString('hex');
  /** Streams being claimed (id → name): a declaration of the same id or name meanwhile is refused. */
  private readonly opening = new Map<number, string>();
  private client = '';
  private handshaken = false;
  /** HELLO of a sender that still has to answer the token challenge. */
  private pendingHello: HelloBody | undefined;
  private receiverNonce = '';
  private byeReceived = false;
  private lastHeard = monoMs();
  private readonly timers: NodeJS.Timeout[] = [];
  private closeError: FramewireError | undefined;

  constructor(server: ReceiverHost, conn: Connection) {
    super(server, conn);
    conn.on('message', (m) => this.onMessage(m));
    conn.on('close', (err) => this.onClose(err));
    const o = server.options;
    // Until the handshake is done the decoder reads control messages only: a FRAME or MESSAGE header is
    // refused (ERR_EARLY_DATA) before anything is reserved for it (openSession lifts this).
    conn.intake?.restrict(
      o.limits.maxControlBytes,
      o.token === undefined ? 'HELLO' : 'the sender proved the token',
    );
    conn.intake?.useBudget(server.partialBudget);
    this.timers.push(
      setTimeout(() => {
        if (!this.handshaken) {
          this.fatal(
            new FramewireError(
              'ERR_HANDSHAKE_TIMEOUT',
              `no HELLO from ${this.remote} within ${o.handshakeTimeoutMs} ms`,
            ),
          );
        }
      }, o.handshakeTimeoutMs),
    );
    const idleCheck = Math.max(50, Math.min(5000, o.idleTimeoutMs / 4));
    this.timers.push(
      setInterval(() => {
        if (monoMs() - this.lastHeard > o.idleTimeoutMs) {
          this.fatal(
            new FramewireError('ERR_PEER_TIMEOUT', `${this.remote} sent nothing for ${o.idleTimeoutMs} ms`),
          );
        }
      }, idleCheck),
    );
    for (const t of this.timers) t.unref();
  }

  get closed(): boolean {
    return this.finished || this.conn.closed;
  }

  private info(): ConnectionInfo {
    return { id: this.id, remote: this.remote, client: this.client };
  }

  private onMessage(m: Message): void {
    this.lastHeard = monoMs();
    if (this.finished) return;
    try {
      if (
        !this.handshaken &&
        m.type === MessageType.ERROR &&
        this.pendingHello &&
        m.body.code === 'ERR_AUTH'
      ) {
        // The sender found this receiver's proof wrong (the tokens differ) and sent no proof of its own.
        throw authError(`wrong token: ${this.remote} says this receiver does not prove the same token`);
      }
      if (
        !this.handshaken &&
        m.type !== MessageType.HELLO &&
        m.type !== MessageType.PING &&
        m.type !== MessageType.AUTH
      ) {
        throw new FramewireError('ERR_PROTOCOL', `expected HELLO first, got message type ${m.type}`);
      }
      switch (m.type) {
        case MessageType.FRAME:
          this.onFrame(m.frame);
          break;
        case MessageType.MESSAGE:
          this.onJsonMessage(m.message);
          break;
        case MessageType.HELLO:
          this.onHello(m.body);
          break;
        case MessageType.AUTH:
          this.onAuth(m.body);
          break;
        case MessageType.OPEN:
          this.onOpen(m.body);
          break;
        case MessageType.PING:
          this.conn.send(encodePing(MessageType.PONG, m.time));
          break;
        case MessageType.PONG:
          break;
        case MessageType.BYE:
          this.byeReceived = true;
          this.maybeFinishBye();
          break;
        case MessageType.ERROR:
          this.server.warn(
            new FramewireError('ERR_REMOTE', `${this.remote} reported ${m.body.code}: ${m.body.message}`),
          );
          break;
        default:
          if (this.clock?.handle(m)) break;
          throw new FramewireError('ERR_PROTOCOL', `a sender may not send message type ${m.type}`);
      }
    } catch (err) {
      this.fatal(toFramewireError(err, 'ERR_PROTOCOL', `session with ${this.remote}`));
    }
  }

  /** Reports a fatal error to the peer and closes the connection. Never throws. */
  protected fatal(err: FramewireError): void {
    if (this.finished) return;
    this.closeError ??= err;
    this.server.warn(err);
    try {
      this.sendError(err.code, err.message, { fatal: true });
    } catch {
      /* the connection may already be gone */
    }
    this.finish();
    this.conn.close();
    setTimeout(() => this.conn.destroy(), 2000).unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clock?.stop();
    for (const t of this.timers) clearTimeout(t);
    // Queued frames that were not started are dropped: they were not acknowledged, the sender resends them.
    for (const s of this.streams.values()) this.detach(s);
  }

  private detach(s: RxStream): void {
    this.addPending(-s.queue.reduce((n, q) => n + q.frame.payload.length, 0));
    s.queue.length = 0;
    if (!s.busy) s.idleResolve?.();
    if (s.record.owner === this) s.record.owner = undefined;
  }

  /** @internal Gives up stream `name` (another connection of the same sender took it over). */
  release(name: string, _why: FramewireError): void {
    for (const [id, s] of this.streams) {
      if (s.info.name === name) {
        this.detach(s);
        this.streams.delete(id);
      }
    }
  }

  private onClose(err: FramewireError | undefined): void {
    const wasOpen = this.handshaken;
    this.finish();
    if (wasOpen) {
      const error = this.byeReceived ? undefined : (err ?? this.closeError);
      if (channels.disconnect.hasSubscribers) {
        channels.disconnect.publish({ server: this.server, connection: this.info(), error });
      }
      this.server.emit('disconnect', this.info(), error);
    } else if (err) this.server.warn(err);
  }

  /** Closes the connection once what it received is stored. */
  async shutdown(reason: string): Promise<void> {
    if (this.finished) return;
    const idle = [...this.streams.values()].map((s) => s.record.idle);
    await Promise.all(idle);
    this.flushAcks();
    try {
      this.conn.send(encodeControl(MessageType.BYE, { reason }));
    } catch {
      /* gone */
    }
    this.finish();
    this.conn.close();
    await new Promise<void>((resolve) => {
      if (this.conn.closed) return resolve();
      const t = setTimeout(() => {
        this.conn.destroy();
        resolve();
      }, 1000);
      t.unref();
      this.conn.on('close', () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  // ---- handshake and streams -------------------------------------------------------------------------
  private onHello(body: HelloBody): void {
    if (this.handshaken || this.pendingHello) throw new FramewireError('ERR_PROTOCOL', 'HELLO sent twice');
    this.client = checkHello(body);
    const token = this.server.options.token;
    if (token !== undefined) {
      const { receiverNonce, auth } = challenge(token, body, this.remote);
      // Nothing is opened before the sender has proved it knows the token.
      this.pendingHello = body;
      this.receiverNonce = receiverNonce;
      this.conn.send(encodeControl(MessageType.AUTH, auth));
      return;
    }
    this.openSession(body);
  }

  private onAuth(body: AuthBody): void {
    const hello = this.pendingHello;
    const token = this.server.options.token;
    if (!hello || token === undefined || this.handshaken)
      throw new FramewireError('ERR_PROTOCOL', 'unexpected AUTH');
    this.pendingHello = undefined;
    checkAnswer(token, hello, this.receiverNonce, body, this.remote);
    this.openSession(hello);
  }

  private openSession(body: HelloBody): void {
    this.epoch = body.epoch;
    this.handshaken = true;
    // Synchronously, inside the decoder's callback: frames right behind the HELLO or AUTH are read whole.
    this.conn.intake?.admitAll();
    // The HELLO arrived; the idle timer takes over from the handshake timer.
    const streams = body.streams;
    void (async () => {
      const points: ResumePoint[] = [];
      for (const d of streams) {
        const p = await this.openStream(d);
        if (p) points.push(p);
      }
      if (this.finished) return;
      const known = this.server.messageResume(this.epoch);
      const claimed = typeof body.messageSeq === 'number' ? body.messageSeq : 0;
      this.messageNext = Math.max(known, 0);
      // A restarted receiver does not know the channel; take the sender's word for where it starts.
      if (known === 0 && claimed > 0) this.messageNext = claimed;
      this.messageAcked = this.messageNext - 1;
      this.messageAckSent = this.messageAcked;
      const welcome = welcomeBody(
        this.id,
        points,
        this.messageNext,
        this.server.options.limits,
        this.server.options.verifyCrc,
      );
      if (body.clock === CLOCK_VERSION) {
        this.clock = new ClockSync((m) => this.conn.send(m), {
          intervalMs: this.server.options.clockIntervalMs,
        });
        welcome.clock = CLOCK_VERSION;
      }
      this.conn.send(encodeControl(MessageType.WELCOME, welcome));
      this.clock?.start();
      if (channels.connection.hasSubscribers) {
        channels.connection.publish({ server: this.server, connection: this.info() });
      }
      this.server.emit('connection', this.info());
    })().catch((err) => this.fatal(toFramewireError(err, 'ERR_PROTOCOL', 'handshake')));
  }

  private onOpen(body: StreamDecl): void {
    void this.openStream(body)
      .then((p) => {
        if (p && !this.finished) this.conn.send(encodeControl(MessageType.OPENED, p));
      })
      .catch((err) => this.fatal(toFramewireError(err, 'ERR_PROTOCOL', 'open')));
  }

  /** Validates and claims one stream; answers a refusal with a non-fatal ERROR and returns undefined. */
  private async openStream(raw: unknown): Promise<ResumePoint | undefined> {
    const rawId = isObject(raw) && typeof raw.id === 'number' ? raw.id : undefined;
    try {
      const decl = checkDecl(raw);
      if (this.streams.has(decl.id) || this.opening.has(decl.id)) {
        throw new FramewireError('ERR_PROTOCOL', `stream id ${decl.id} is declared twice`);
      }
      if (this.streams.size + this.opening.size >= this.server.options.maxStreamsPerConnection) {
        throw new FramewireError(
          'ERR_TOO_MANY_STREAMS',
          `connection has ${this.server.options.maxStreamsPerConnection} streams already (maxStreamsPerConnection)`,
          { stream: decl.name },
        );
      }
      const names = [...[...this.streams.values()].map((s) => s.info.name), ...this.opening.values()];
      if (names.includes(decl.name)) {
        throw new FramewireError('ERR_PROTOCOL', `stream "${decl.name}" is declared twice`);
      }
      this.opening.set(decl.id, decl.name);
      try {
        const { record, info } = await this.server.claim(this, decl, this.remote);
        if (this.finished) {
          if (record.owner === this) record.owner = undefined;
          return undefined;
        }
        const s: RxStream = {
          id: decl.id,
          info,
          record,
          next: record.durableNext,
          queue: [],
          busy: false,
          acked: record.durableNext - 1,
          ackSent: record.durableNext - 1,
          drops: 0,
          idleResolve: undefined,
        };
        this.streams.set(decl.id, s);
        if (channels.stream.hasSubscribers) {
          channels.stream.publish({ server: this.server, stream: info, next: s.next });
        }
        this.server.emit('stream', info, { next: s.next });
        return { id: decl.id, next: s.next };
      } finally {
        this.opening.delete(decl.id);
      }
    } catch (err) {
      const e = toFramewireError(err, 'ERR_PROTOCOL', 'stream declaration');
      if (e.code === 'ERR_PROTOCOL' && rawId === undefined) throw e;
      this.server.warn(e);
      this.sendError(e.code, e.message, rawId === undefined ? {} : { stream: rawId });
      return undefined;
    }
  }

  protected maybeFinishBye(): void {
    if (!this.byeReceived || this.finished) return;
    for (const s of this.streams.values()) if (s.busy || s.queue.length > 0) return;
    this.flushAcks();
    this.conn.send(encodeControl(MessageType.BYE, { reason: 'bye' }));
    this.finish();
    this.conn.close();
  }
}
