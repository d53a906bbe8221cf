/**
 * The sending side. A client holds one connection at a time to one receiver and multiplexes named streams
 * over it. Frames are pipelined under a window (frames and bytes): no round trip per frame; the receiver
 * acknowledges cumulatively. Reliable streams keep every unacknowledged frame and resend it after a
 * reconnect from the resume point the receiver gives; live streams keep only the newest unsent frame.
 *
 * This file is the public face (FramewireClient, connect); the work is done by the layers below it:
 * window.ts (what is in flight, acks, backpressure) and reconnect.ts (connecting, handshake, keepalive),
 * over client-stream.ts, client-types.ts and handshake.ts.
 */
import { FramewireError } from '../errors.js';
import { checkStreamName } from '../names.js';
import { MAX_STREAM_ID, MessageType, STREAM_KINDS, STREAM_MODES } from '../protocol/constants.js';
import { encodeControl, type FrameRef } from '../protocol/messages.js';
import { ClientStream } from './client-stream.js';
import {
  type ClientStats,
  type ConnectOptions,
  resolveClientOptions,
  type StreamOptions,
} from './client-types.js';
import { ClientLink } from './reconnect.js';

export { ClientStream } from './client-stream.js';
export type { AckEvent, ClientEvents, ClientStats, ConnectOptions, StreamOptions } from './client-types.js';

export class FramewireClient extends ClientLink {
  constructor(url: string, options: ConnectOptions = {}) {
    const { url: parsed, epoch, settings } = resolveClientOptions(url, options);
    super(parsed, epoch, settings);
    const signal = options.signal;
    if (signal) {
      const onAbort = () => {
        this.fail(new FramewireError('ERR_CLOSED', 'aborted'));
        this.destroy();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  /** The error the client gave up with, if it did. */
  get error(): FramewireError | undefined {
    return this.failure;
  }

  /** True while a connection is up and its handshake done. */
  get connected(): boolean {
    return this.ready;
  }

  /** Limits the receiver announced in WELCOME. */
  get receiverLimits(): Readonly<{ maxFrameBytes: number; maxMetaBytes: number; maxMessageBytes: number }> {
    return this.serverLimits;
  }

  /**
   * Declares a stream. Throws ERR_UNSAFE_NAME at once for a name the receiver would refuse. The receiver
   * may still refuse it (ERR_STREAM_BUSY, ERR_TOO_MANY_STREAMS): then 'stream-error' is emitted and
   * send() rejects.
   */
  stream(name: string, options: StreamOptions = {}): ClientStream {
    this.assertUsable();
    checkStreamName(name);
    const kind = options.kind ?? 'other';
    const mode = options.mode ?? 'reliable';
    if (!STREAM_KINDS.includes(kind)) {
      throw new FramewireError('ERR_BAD_OPTION', `kind "${kind}" is not one of ${STREAM_KINDS.join(', ')}`);
    }
    if (!STREAM_MODES.includes(mode)) {
      throw new FramewireError('ERR_BAD_OPTION', `mode "${mode}" is not one of ${STREAM_MODES.join(', ')}`);
    }
    const existing = this.streams.find((s) => s.name === name);
    if (existing) return existing;
    if (this.streams.length > MAX_STREAM_ID)
      throw new FramewireError('ERR_TOO_MANY_STREAMS', 'too many streams');
    const st = new ClientStream(this, this.streams.length, name, kind, mode);
    this.streams.push(st);
    this.byId.set(st.id, st);
    if (this.ready && this.conn) {
      this.conn.send(encodeControl(MessageType.OPEN, this.decl(st)));
    }
    return st;
  }

  /**
   * Sends a JSON message, optionally naming the frame it describes. Resolves once queued; delivery is
   * reliable (acknowledged, resent after a reconnect). `json` may be a value or JSON text.
   */
  async message(json: unknown, options: { ref?: FrameRef; raw?: boolean } = {}): Promise<number> {
    this.assertUsable();
    let text: string;
    if (options.raw && typeof json === 'string') {
      try {
        JSON.parse(json);
      } catch (err) {
        throw new FramewireError('ERR_BAD_JSON', `message is not valid JSON: ${(err as Error).message}`, {
          hint: 'quote the JSON for the shell, e.g. \'{"a":1}\'',
        });
      }
      text = json;
    } else {
      const t = JSON.stringify(json);
      if (t === undefined) throw new FramewireError('ERR_BAD_JSON', 'message has no JSON representation');
      text = t;
    }
    if (Buffer.byteLength(text) > this.serverLimits.maxMessageBytes) {
      throw new FramewireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message exceeds the receiver's maxMessageBytes ${this.serverLimits.maxMessageBytes}`,
      );
    }
    return this.queueMessage(text, options.ref);
  }

  /** Resolves when every frame and message sent so far is acknowledged (or refused). */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pendingFrames === 0 && this.messages.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.flushWaiters.push({ resolve, reject }));
  }

  /** Waits for every acknowledgement, says BYE and closes. Rejects when the client gave up. */
  async close(): Promise<ClientStats> {
    if (this.closed) {
      if (this.failure) throw this.failure;
      return this.stats();
    }
    try {
      if (!this.failure) await this.flush();
    } finally {
      this.closing = true;
      await this.disconnect();
    }
    if (this.failure) throw this.failure;
    return this.stats();
  }

  /** Closes at once, dropping whatever is not acknowledged. */
  destroy(): void {
    this.closing = true;
    this.closed = true;
    this.stopKeepalive();
    this.conn?.destroy();
    this.fail(new FramewireError('ERR_CLOSED', 'client destroyed'), false);
  }
}

/**
 * Connects to a receiver. Resolves once the first handshake is done; retries with backoff for
 * `retryForMs` and rejects with ERR_UNREACHABLE when the receiver cannot be reached.
 */
export async function connect(url: string, options: ConnectOptions = {}): Promise<FramewireClient> {
  const client = new FramewireClient(url, options);
  await client.connectLoop();
  if (client.error) throw client.error;
  return client;
}
