// The legacy-udp:// client: pictures to a seed-style UDP picture server, in one datagram or header + paced
// 1024-byte chunks, sent again after a timeout or a `lost message!!!` answer.
import { FramewireError } from '../errors.js';
import { DatagramPeer, newClientStats, noAnswer, type Resolved } from './client-common.js';
import {
  abortedError,
  flagParam,
  legacyAddress,
  MAX_DATAGRAM,
  numberParam,
  PICTURE_NAK,
  sleep,
  UDP_CHUNK,
} from './common.js';

// ---- UDP pictures ---------------------------------------------------------------------------------------

export interface LegacyUdpClientOptions {
  /** One datagram per picture (the seed's first form; at most 65,507 bytes) instead of header + chunks. URL: `?single`. */
  single?: boolean;
  /** Header of the chunked form: 8 bytes (64-bit Linux and macOS senders, default) or 4 (Windows, 32-bit). URL: `?header=4`. */
  headerBytes?: 4 | 8;
  /** How long to wait for the answer before sending the picture again (ms, default 3000). URL: `?timeout=MS`. */
  replyTimeoutMs?: number;
  /** Times a picture is sent again, after a timeout or a `lost message!!!` answer (default 3). URL: `?retries=N`. */
  retries?: number;
  /**
   * Pacing of the chunks, so that a receiver with a default socket buffer (about 90 datagrams on Linux,
   * fewer elsewhere) is not overrun. The seed server appends every chunk to what it holds (`data_total +=
   * data`), so reading chunk i costs it about `readUs + i·copyUs` microseconds; chunks are sent on that
   * schedule, at most `ahead` chunks in front of such a reader. Defaults: ahead 16, readUs 50, copyUs 1,
   * measured against the seed server (Python 3.11) on a loaded 2-core machine: a 123 KB picture takes about
   * 11 ms, a 1 MB one 0.5 s. `false` sends every chunk at once (a framewire receiver, with its 8 MiB socket
   * buffer and linear reassembly, keeps up with that). URL: `?ahead=N`, `?readus=US`, `?copyus=US`, `?pace=0`.
   */
  pacing?: { ahead: number; readUs: number; copyUs: number } | false;
  /** Stops waiting and sending. */
  signal?: AbortSignal;
}

/**
 * Sends pictures as the seed's UDP clients do: `struct.pack('l', n)` then 1024-byte chunks (or one datagram
 * with `single`), then waits for `get message!!!`; sends again after a timeout or `lost message!!!`.
 */
export class LegacyUdpClient {
  readonly target: string;
  readonly stats = newClientStats();
  readonly #peer: DatagramPeer;
  readonly #o: Resolved<LegacyUdpClientOptions>;

  private constructor(peer: DatagramPeer, target: string, o: Resolved<LegacyUdpClientOptions>) {
    this.#peer = peer;
    this.target = target;
    this.#o = o;
  }

  static async open(url: string | URL, options: LegacyUdpClientOptions = {}): Promise<LegacyUdpClient> {
    const a = legacyAddress(url, ['legacy-udp']);
    const headerBytes = options.headerBytes ?? numberParam(a, 'header', 8, { min: 4, max: 8, integer: true });
    if (headerBytes !== 4 && headerBytes !== 8) {
      throw new FramewireError('ERR_BAD_OPTION', `${a.text}: the header is 4 or 8 bytes, not ${headerBytes}`);
    }
    const o = {
      single: options.single ?? flagParam(a, 'single', false),
      headerBytes: headerBytes as 4 | 8,
      replyTimeoutMs: options.replyTimeoutMs ?? numberParam(a, 'timeout', 3000, { min: 1, max: 3_600_000 }),
      retries: options.retries ?? numberParam(a, 'retries', 3, { min: 0, max: 1000, integer: true }),
      pacing:
        options.pacing ??
        (flagParam(a, 'pace', true)
          ? {
              ahead: numberParam(a, 'ahead', 16, { min: 1, max: 1_000_000, integer: true }),
              readUs: numberParam(a, 'readus', 50, { min: 0, max: 1_000_000 }),
              copyUs: numberParam(a, 'copyus', 1, { min: 0, max: 1_000_000 }),
            }
          : false),
      signal: options.signal,
    };
    return new LegacyUdpClient(await DatagramPeer.open(a), a.text, o);
  }

  /** Sends one picture and waits for the server's answer; rejects with ERR_REPLY_TIMEOUT after the retries. */
  async send(picture: Buffer, label = 'a picture'): Promise<void> {
    const o = this.#o;
    if (picture.length === 0)
      throw new FramewireError(
        'ERR_BAD_FRAME',
        `${label} is empty; the seed server cannot take an empty picture`,
      );
    if (o.single && picture.length > MAX_DATAGRAM) {
      throw new FramewireError(
        'ERR_PICTURE_TOO_LARGE',
        `${label} is ${picture.length} bytes; one UDP datagram carries at most ${MAX_DATAGRAM}`,
        { hint: 'send it in chunks: drop ?single from the URL' },
      );
    }
    if (o.headerBytes === 4 && picture.length > 0x7fffffff) {
      throw new FramewireError('ERR_PICTURE_TOO_LARGE', `${label} is too large for a 4-byte header`);
    }
    for (let attempt = 0; attempt <= o.retries; attempt++) {
      if (o.signal?.aborted) throw abortedError(this.target);
      if (attempt > 0) this.stats.resends++;
      this.#peer.flush();
      await this.#transmit(picture);
      const answer = await this.#peer.nextReply(o.replyTimeoutMs, o.signal);
      if (answer === undefined) continue;
      if (answer.toString('latin1') === PICTURE_NAK) continue;
      this.stats.sent++;
      this.stats.bytes += picture.length;
      return;
    }
    if (o.signal?.aborted) throw abortedError(this.target);
    throw noAnswer(this.#peer, this.target, o.retries + 1, o.replyTimeoutMs, label);
  }

  async #transmit(picture: Buffer): Promise<void> {
    const o = this.#o;
    if (o.single) return this.#peer.send(picture);
    const header = Buffer.alloc(o.headerBytes);
    if (o.headerBytes === 8) header.writeBigInt64LE(BigInt(picture.length));
    else header.writeInt32LE(picture.length);
    await this.#peer.send(header);
    // As the seed: chunks of 1024 bytes, the last one shorter. (The seed also sends an empty datagram when
    // the length is a multiple of 1024; servers ignore it, so it is left out.)
    const pace = o.pacing;
    const start = performance.now();
    const sends: Promise<void>[] = [];
    for (let off = 0, i = 0; off < picture.length; off += UDP_CHUNK, i++) {
      // Chunk i may go when the modelled reader is done with chunk i - ahead.
      const j = pace ? i - pace.ahead : 0;
      if (pace && j > 0) {
        const wait = start + (j * pace.readUs + ((j * (j - 1)) / 2) * pace.copyUs) / 1000 - performance.now();
        if (wait >= 1) {
          await Promise.all(sends.splice(0));
          if (o.signal?.aborted) return;
          await sleep(wait);
        }
      }
      sends.push(this.#peer.send(picture.subarray(off, off + UDP_CHUNK)));
    }
    await Promise.all(sends);
  }

  close(): Promise<void> {
    return this.#peer.close();
  }
}
