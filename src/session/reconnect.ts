/**
 * Keeping a client connected: connecting with backoff until retryForMs, the handshake's state machine
 * (HELLO, AUTH, WELCOME; the messages are handshake.ts's), keepalive pings, dispatch while connected, and
 * reconnecting after a loss. Giving up (fail) ends every wait.
 */
import { authError, FramewireError, toFramewireError } from '../errors.js';
import { MESSAGE_CHANNEL, MessageType } from '../protocol/constants.js';
import {
  encodeControl,
  encodePing,
  type HelloBody,
  type Message,
  type WelcomeBody,
} from '../protocol/messages.js';
import { backoffMs, monoMs } from '../time.js';
import { transportFor } from '../transports/index.js';
import type { Connection } from '../transports/types.js';
import { redact } from '../urls.js';
import { newNonce } from './auth.js';
import type { ClientStream } from './client-stream.js';
import { CLOCK_VERSION, ClockSync } from './clock.js';
import { answerChallenge, remoteError } from './handshake.js';
import { ClientWindow } from './window.js';

/** Errors after which reconnecting cannot help. */
const FINAL_CODES = new Set<string>([
  'ERR_UNSUPPORTED_VERSION',
  'ERR_BAD_MAGIC',
  'ERR_UNKNOWN_TYPE',
  'ERR_BAD_HEADER',
  'ERR_BAD_JSON',
  'ERR_PROTOCOL',
  'ERR_AUTH',
  'ERR_TLS',
  'ERR_FRAME_TOO_LARGE',
  'ERR_META_TOO_LARGE',
  'ERR_MESSAGE_TOO_LARGE',
  'ERR_EARLY_DATA',
  // A setting the transport refuses (`udp://…?latency=abc`): no attempt will ever succeed.
  'ERR_BAD_OPTION',
  'ERR_BAD_URL',
]);

/** The connection layer of FramewireClient (client.ts), over its window. */
export abstract class ClientLink extends ClientWindow {
  /** The receiver's URL as messages show it (a ?token= or a password replaced by ***). */
  protected get shownUrl(): string {
    return redact(this.url.href);
  }

  private connecting: Promise<void> | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  private everConnected = false;
  /** Wakes backoff sleeps when the client fails or is destroyed. */
  private readonly sleepers = new Set<() => void>();

  /**
   * Gives up with `err`: every wait (backoff sleeps, ready(), a full window, flush()) ends with it, and
   * 'error' is emitted unless `emit` is false.
   */
  protected fail(err: FramewireError, emit = true): void {
    if (this.failure) return;
    this.failure = err;
    for (const wake of [...this.sleepers]) wake();
    for (const st of this.streams) for (const w of st.openWaiters.splice(0)) w.reject(err);
    this.stopKeepalive();
    this.conn?.destroy();
    this.wake();
    const w = this.flushWaiters;
    this.flushWaiters = [];
    for (const f of w) f.reject(err);
    if (emit && this.listenerCount('error') > 0) this.emit('error', err);
  }

  /** Says BYE (or just closes, before the handshake) and waits up to 2 s for the connection to close. */
  protected async disconnect(): Promise<void> {
    this.closed = true;
    this.stopKeepalive();
    const conn = this.conn;
    if (!conn || conn.closed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        conn.destroy();
        resolve();
      }, 2000);
      t.unref();
      conn.on('close', () => {
        clearTimeout(t);
        resolve();
      });
      if (this.ready) conn.send(encodeControl(MessageType.BYE, { reason: 'done' }));
      else conn.close();
    });
  }

  // ---- connecting --------------------------------------------------------------------------------------

  /** @internal Connects, retrying with backoff until retryForMs has passed since the first failure. */
  connectLoop(): Promise<void> {
    this.connecting ??= this.runConnectLoop().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async runConnectLoop(): Promise<void> {
    const started = monoMs();
    let attempt = 0;
    for (;;) {
      if (this.closed || this.failure) return;
      try {
        await this.attempt();
        return;
      } catch (err) {
        const e = toFramewireError(err, 'ERR_UNREACHABLE', `connecting to ${this.shownUrl}`);
        if (FINAL_CODES.has(e.code)) {
          this.fail(e);
          return;
        }
        attempt++;
        const elapsed = monoMs() - started;
        if (elapsed >= this.o.retryForMs) {
          const reason = e.code === 'ERR_UNREACHABLE' ? e.detail : e.message;
          this.fail(
            new FramewireError(
              'ERR_UNREACHABLE',
              `gave up on ${this.shownUrl} after ${attempt} attempts in ${(elapsed / 1000).toFixed(1)} s: ${reason}`,
              {
                hint: e.hint ?? 'is the receiver running? start it with: framewire serve',
                cause: e,
              },
            ),
          );
          return;
        }
        const delayMs = Math.min(
          backoffMs(attempt, this.o.maxBackoffMs),
          Math.max(0, this.o.retryForMs - elapsed),
        );
        if (this.listenerCount('reconnecting') > 0) this.emit('reconnecting', { attempt, delayMs, error: e });
        await new Promise<void>((r) => {
          const wake = () => {
            clearTimeout(t);
            this.sleepers.delete(wake);
            r();
          };
          const t = setTimeout(wake, delayMs);
          this.sleepers.add(wake);
        });
      }
    }
  }

  private attempt(): Promise<void> {
    const t = transportFor(this.url);
    return t
      .connect(this.url, {
        limits: this.o.limits,
        connectTimeoutMs: this.o.connectTimeoutMs,
        tlsClient: this.o.tls,
        token: this.o.token,
      })
      .then((conn) => this.handshake(conn));
  }

  private handshake(conn: Connection): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.closed) {
        conn.destroy();
        resolve();
        return;
      }
      this.conn = conn;
      this.lastHeard = monoMs();
      let settled = false;
      const token = this.o.token;
      const senderNonce = token === undefined ? '' : newNonce();
      let authenticated = token === undefined;
      let authFailure: FramewireError | undefined;
      const timer = setTimeout(() => {
        settle(
          new FramewireError(
            'ERR_HANDSHAKE_TIMEOUT',
            `${this.shownUrl} did not answer HELLO within ${this.o.handshakeTimeoutMs} ms`,
          ),
        );
      }, this.o.handshakeTimeoutMs);
      const settle = (err?: FramewireError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          conn.destroy(err);
          if (this.conn === conn) this.conn = undefined;
          reject(err);
        } else resolve();
      };
      conn.on('message', (m: Message) => {
        this.lastHeard = monoMs();
        if (!this.ready) {
          if (m.type === MessageType.AUTH && token !== undefined && !authenticated) {
            // The receiver proves the token first; the sender's proof goes only to one that did. One that
            // did not gets a fatal ERROR instead, so that both sides see ERR_AUTH.
            const { answer, error } = answerChallenge(token, senderNonce, m.body, this.url.href);
            if (error) {
              authFailure = error;
              const body = { code: error.code, message: 'the receiver did not prove the token', fatal: true };
              conn.send(encodeControl(MessageType.ERROR, body));
              conn.close();
              setTimeout(() => settle(error), 1000).unref();
              return;
            }
            conn.send(encodeControl(MessageType.AUTH, answer));
            authenticated = true;
          } else if (m.type === MessageType.WELCOME) {
            if (!authenticated) {
              settle(
                authError(`${this.shownUrl} does not check tokens; refusing to send to it with --token`),
              );
              return;
            }
            this.onWelcome(m.body, declared);
            settle();
          } else if (m.type === MessageType.ERROR) {
            if (m.body.fatal) settle(authFailure ?? remoteError(m.body));
            else this.onError(m.body);
          } else if (m.type === MessageType.BYE) {
            settle(
              new FramewireError(
                'ERR_CLOSED',
                `receiver said BYE during the handshake: ${String(m.body.reason)}`,
              ),
            );
          }
          return;
        }
        this.onMessage(m);
      });
      conn.on('drain', () => this.pump());
      conn.on('close', (err) => {
        if (!settled) {
          settle(
            authFailure ??
              err ??
              new FramewireError('ERR_CLOSED', `${this.shownUrl} closed the connection during the handshake`),
          );
          return;
        }
        this.onConnectionLost(conn, err);
      });
      // Streams made while this handshake is under way are not in the HELLO; WELCOME opens them.
      const declared = this.streams.filter((s) => !s.failed);
      const hello: HelloBody = {
        protocol: 1,
        client: this.o.clientName,
        epoch: this.epoch,
        streams: declared.map((s) => this.decl(s)),
        messageSeq: this.messages[0]?.seq ?? this.messageSeq,
        ...(token === undefined ? {} : { auth: { nonce: senderNonce } }),
        clock: CLOCK_VERSION,
      };
      conn.send(encodeControl(MessageType.HELLO, hello));
    });
  }

  private onWelcome(w: WelcomeBody, declared: readonly ClientStream[]): void {
    const reconnect = this.everConnected;
    this.everConnected = true;
    this.ready = true;
    if (reconnect) this.s.reconnects++;
    if (w.limits && typeof w.limits.maxFrameBytes === 'number') this.serverLimits = { ...w.limits };
    this.sendCrc = w.verifyCrc !== false;
    if (this.sendCrc) this.addMissingCrcs();
    for (const p of Array.isArray(w.streams) ? w.streams : []) this.applyResume(p);
    for (const st of this.streams) {
      if (!st.failed && !declared.includes(st))
        this.conn?.send(encodeControl(MessageType.OPEN, this.decl(st)));
    }
    // Messages the receiver already holds are done; the rest go again.
    const mnext = typeof w.messageNext === 'number' ? w.messageNext : 0;
    this.ackMessages(mnext - 1);
    this.startKeepalive();
    this.clock?.stop();
    this.clock = undefined;
    if (w.clock === CLOCK_VERSION && this.conn) {
      const conn = this.conn;
      this.clock = new ClockSync((m) => conn.send(m));
      this.clock.start();
    }
    this.emit('connected', { url: this.url.href, session: String(w.session), reconnect });
    this.pump();
  }

  private onConnectionLost(conn: Connection, err: FramewireError | undefined): void {
    if (this.conn !== conn) return;
    this.conn = undefined;
    this.ready = false;
    this.stopKeepalive();
    this.requeueAfterLoss();
    this.wake();
    if (this.closed || this.failure) return;
    this.emit('disconnected', err);
    void this.connectLoop();
  }

  private startKeepalive(): void {
    this.stopKeepalive();
    this.keepalive = setInterval(() => {
      const conn = this.conn;
      if (!conn || !this.ready) return;
      if (monoMs() - this.lastHeard > this.o.peerTimeoutMs) {
        conn.destroy(
          new FramewireError(
            'ERR_PEER_TIMEOUT',
            `${this.shownUrl} sent nothing for ${this.o.peerTimeoutMs} ms`,
          ),
        );
        return;
      }
      conn.send(encodePing(MessageType.PING, Math.round(performance.now() * 1000)));
    }, this.o.keepaliveMs);
    this.keepalive.unref();
  }

  protected stopKeepalive(): void {
    this.clock?.stop();
    if (this.keepalive) clearInterval(this.keepalive);
    this.keepalive = undefined;
  }

  // ---- while connected ---------------------------------------------------------------------------------

  private onMessage(m: Message): void {
    switch (m.type) {
      case MessageType.ACK:
        if (m.stream === MESSAGE_CHANNEL) this.ackMessages(m.seq);
        else {
          const st = this.byId.get(m.stream);
          if (st) this.ackStream(st, m.seq);
        }
        break;
      case MessageType.OPENED:
        if (m.body && typeof m.body.id === 'number') this.applyResume(m.body);
        this.pump();
        break;
      case MessageType.ERROR:
        if (m.body.fatal) {
          const e = remoteError(m.body);
          if (FINAL_CODES.has(e.code)) this.fail(e);
          // Otherwise the receiver closes the connection and we reconnect and resume.
        } else this.onError(m.body);
        break;
      case MessageType.PONG:
        this.s.rttMs = (performance.now() * 1000 - m.time) / 1000;
        break;
      case MessageType.PING:
        this.conn?.send(encodePing(MessageType.PONG, m.time));
        break;
      case MessageType.BYE:
        // The receiver is shutting down; it closes the connection and we reconnect.
        break;
      default:
        this.clock?.handle(m);
        break;
    }
  }
}
