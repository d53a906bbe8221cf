// The legacy-json:// client: JSON messages to a seed-style UDP message port (LegacyJsonClient, and the
// one-shot sendLegacyJson), each sent again until the server answers `get the msg`.
import { FramewireError } from '../errors.js';
import { DatagramPeer, newClientStats, noAnswer, type Resolved } from './client-common.js';
import {
  abortedError,
  legacyAddress,
  MAX_DATAGRAM,
  MESSAGE_BAD,
  MESSAGE_LOST,
  numberParam,
  SEED_JSON_MAX,
} from './common.js';

// ---- JSON messages --------------------------------------------------------------------------------------

export interface LegacyJsonClientOptions {
  /** How long to wait for `get the msg` before sending again (ms, default 3000). URL: `?timeout=MS`. */
  replyTimeoutMs?: number;
  /** Times a message is sent again (default 3). URL: `?retries=N`. */
  retries?: number;
  /**
   * Largest message sent (default 1024: the seed server reads 1024 bytes per datagram and would get a cut,
   * unreadable message). A framewire legacy-json server takes up to 65,507. URL: `?max=BYTES`.
   */
  maxBytes?: number;
  signal?: AbortSignal;
}

/** Sends JSON messages as the seed's message client does, one datagram each, and waits for `get the msg`. */
export class LegacyJsonClient {
  readonly target: string;
  readonly stats = newClientStats();
  readonly #peer: DatagramPeer;
  readonly #o: Resolved<LegacyJsonClientOptions>;

  private constructor(peer: DatagramPeer, target: string, o: Resolved<LegacyJsonClientOptions>) {
    this.#peer = peer;
    this.target = target;
    this.#o = o;
  }

  static async open(url: string | URL, options: LegacyJsonClientOptions = {}): Promise<LegacyJsonClient> {
    const a = legacyAddress(url, ['legacy-json']);
    const o = {
      replyTimeoutMs: options.replyTimeoutMs ?? numberParam(a, 'timeout', 3000, { min: 1, max: 3_600_000 }),
      retries: options.retries ?? numberParam(a, 'retries', 3, { min: 0, max: 1000, integer: true }),
      maxBytes:
        options.maxBytes ??
        numberParam(a, 'max', SEED_JSON_MAX, { min: 1, max: MAX_DATAGRAM, integer: true }),
      signal: options.signal,
    };
    return new LegacyJsonClient(await DatagramPeer.open(a), a.text, o);
  }

  /**
   * Sends one message: a value (serialised with JSON.stringify) or, with `raw`, JSON text sent as it is
   * (checked first). Rejects with ERR_BAD_JSON, ERR_MESSAGE_TOO_LARGE or ERR_REPLY_TIMEOUT.
   */
  async send(message: unknown, options: { raw?: boolean } = {}): Promise<void> {
    let text: string;
    if (options.raw) {
      if (typeof message !== 'string')
        throw new FramewireError('ERR_BAD_JSON', 'a raw message must be a string of JSON');
      try {
        JSON.parse(message);
      } catch (err) {
        throw new FramewireError('ERR_BAD_JSON', `the message is not valid JSON: ${(err as Error).message}`);
      }
      text = message;
    } else {
      const s = JSON.stringify(message);
      if (s === undefined) throw new FramewireError('ERR_BAD_JSON', 'the message has no JSON form');
      text = s;
    }
    const buf = Buffer.from(text, 'utf8');
    const o = this.#o;
    if (buf.length > o.maxBytes) {
      throw new FramewireError(
        'ERR_MESSAGE_TOO_LARGE',
        `message of ${buf.length} bytes exceeds ${o.maxBytes} for ${this.target}`,
        {
          hint:
            o.maxBytes === SEED_JSON_MAX
              ? 'the seed server reads 1024 bytes per datagram; a framewire legacy-json server takes more: add ?max=65507 to the URL'
              : 'send a smaller message',
        },
      );
    }
    for (let attempt = 0; attempt <= o.retries; attempt++) {
      if (o.signal?.aborted) throw abortedError(this.target);
      if (attempt > 0) this.stats.resends++;
      this.#peer.flush();
      await this.#peer.send(buf);
      const answer = await this.#peer.nextReply(o.replyTimeoutMs, o.signal);
      if (answer === undefined) continue;
      const a = answer.toString('utf8');
      if (a === MESSAGE_LOST) continue;
      if (a === MESSAGE_BAD)
        throw new FramewireError(
          'ERR_BAD_JSON',
          `${this.target} answered "${MESSAGE_BAD}": it could not read the message`,
        );
      this.stats.sent++;
      this.stats.bytes += buf.length;
      return;
    }
    if (o.signal?.aborted) throw abortedError(this.target);
    throw noAnswer(this.#peer, this.target, o.retries + 1, o.replyTimeoutMs, 'the message');
  }

  close(): Promise<void> {
    return this.#peer.close();
  }
}

/** Sends one JSON message to a `legacy-json://` server and waits for its answer. */
export async function sendLegacyJson(
  url: string | URL,
  message: unknown,
  options: LegacyJsonClientOptions & { raw?: boolean } = {},
): Promise<void> {
  const c = await LegacyJsonClient.open(url, options);
  try {
    await c.send(message, { raw: options.raw ?? false });
  } finally {
    await c.close();
  }
}
