/**
 * framewire as an ImageZMQ sender (docs/compat.md, "ImageZMQ"):
 * - `izmq://HOST:PORT` connects a REQ socket to any ImageZMQ hub and waits for each reply with a deadline.
 *   On a timeout it closes the socket, makes a new one and sends the same message again (ZeroMQ's "Lazy
 *   Pirate" pattern), for up to `retryForMs`, so a restarted hub never hangs the sender.
 * - `izmq+pub://HOST:PORT` binds a PUB socket; hubs connect SUB sockets to it. Nothing is answered.
 *
 * A resend after a lost reply can deliver a frame twice (the hub may have saved it before it died). Each
 * message therefore carries framewire's `fw` key (the run's epoch, the frame's sequence number and name),
 * which ImageZMQ hubs ignore: framewire's own hub drops the duplicate, and any hub can do the same or save
 * under `fw.name` (see docs/compat.md).
 */
import { randomBytes } from 'node:crypto';
import { FramewireError } from '../../errors.js';
import type { StreamKind } from '../../protocol/constants.js';
import { monoMs } from '../../time.js';
import type { Frame } from '../../types.js';
import { abortedError, sleep } from '../common.js';
import { encodeImageZmq, type FwInfo, isErrorReply } from './format.js';
import {
  bindError,
  type IzmqAddress,
  izmqAddress,
  izmqNumber,
  loadZmq,
  portOfEndpoint,
  type Zmq,
} from './zmq.js';

export interface ImageZmqSenderOptions {
  /** REQ: how long to wait for each reply before sending again (ms, default 2500; `?timeout=MS`). */
  timeoutMs?: number;
  /** REQ: how long one frame may go unanswered, resends included, before ERR_UNREACHABLE (default 30000). */
  retryForMs?: number;
  /** PUB: subscribers to wait for before the first frame (default 1; `?subscribers=N`; 0 sends at once). */
  subscribers?: number;
  /** PUB: frames queued per subscriber; beyond it ZeroMQ drops the newest (default 4; `?hwm=N`). */
  highWaterMark?: number;
  /** Add framewire's `fw` key to the JSON (default true; `?fw=0` sends exactly what ImageZMQ sends). */
  fw?: boolean;
  /** The run's epoch in `fw` (default: random). */
  epoch?: string;
  /** The stream kind in `fw`, for a framewire hub. */
  kind?: StreamKind;
  /** Stops waiting (a send in progress rejects with ERR_CLOSED). */
  signal?: AbortSignal;
}

export interface ImageZmqSenderStats {
  /** Frames sent (and, over REQ, answered). */
  sent: number;
  bytes: number;
  /** REQ: messages sent again after a reply did not come in time. */
  resends: number;
  /** REQ: frames the hub answered with an `ERR_…` reply. */
  refused: number;
}

/** Sends frames to an ImageZMQ hub (REQ) or to ImageZMQ subscribers (PUB). */
export class ImageZmqSender {
  readonly #zmq: Zmq;
  readonly #addr: IzmqAddress;
  readonly #timeoutMs: number;
  readonly #retryForMs: number;
  readonly #fw: boolean;
  readonly #epoch: string;
  readonly #kind: StreamKind | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #seqs = new Map<string, number>();
  #req: InstanceType<Zmq['Request']> | undefined;
  #pub: InstanceType<Zmq['XPublisher']> | undefined;
  #subscribers = 0;
  #closed = false;
  readonly stats: ImageZmqSenderStats = { sent: 0, bytes: 0, resends: 0, refused: 0 };
  /** The hub (REQ) or the bound address (PUB), with the real port. */
  readonly target: string;

  private constructor(zmq: Zmq, addr: IzmqAddress, o: ImageZmqSenderOptions, target: string) {
    this.#zmq = zmq;
    this.#addr = addr;
    this.#timeoutMs = o.timeoutMs ?? izmqNumber(addr, 'timeout', 2500, { min: 1, max: 3_600_000 });
    this.#retryForMs = o.retryForMs ?? 30_000;
    this.#fw = o.fw ?? addr.params.get('fw') !== '0';
    this.#epoch = o.epoch ?? `izmq-${randomBytes(6).toString('hex')}`;
    this.#kind = o.kind;
    this.#signal = o.signal;
    this.target = target;
  }

  /** Connects (REQ, `izmq://`) or binds (PUB, `izmq+pub://`); a PUB then waits for its first subscribers. */
  static async open(url: string | URL, options: ImageZmqSenderOptions = {}): Promise<ImageZmqSender> {
    const addr = izmqAddress(url, ['izmq', 'izmq+pub']);
    const zmq = await loadZmq();
    if (addr.scheme === 'izmq') {
      if (addr.port === 0) throw new FramewireError('ERR_BAD_URL', `${addr.text}: name the hub's port`);
      const s = new ImageZmqSender(zmq, addr, options, addr.text);
      s.#req = s.#newRequest();
      return s;
    }
    const hwm = options.highWaterMark ?? izmqNumber(addr, 'hwm', 4, { min: 1, max: 1_000_000 });
    const wanted = options.subscribers ?? izmqNumber(addr, 'subscribers', 1, { min: 0, max: 10_000 });
    const pub = new zmq.XPublisher({ linger: 1000, sendHighWaterMark: hwm, ipv6: addr.host.includes(':') });
    pub.verbosity = 'allSubsUnsubs';
    try {
      await pub.bind(addr.zmqEndpoint);
    } catch (err) {
      pub.close();
      throw bindError(err, addr);
    }
    const shown = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
    const s = new ImageZmqSender(
      zmq,
      addr,
      options,
      `izmq+pub://${shown}:${portOfEndpoint(pub.lastEndpoint, addr.port)}`,
    );
    s.#pub = pub;
    s.#watchSubscriptions(pub);
    try {
      await s.#waitForSubscribers(wanted);
    } catch (err) {
      await s.close();
      throw err;
    }
    return s;
  }

  /** PUB: subscribers connected now. */
  get subscribers(): number {
    return this.#subscribers;
  }

  /** PUB: counts subscribe and unsubscribe messages (XPUB passes them all up with verbosity on). */
  #watchSubscriptions(pub: InstanceType<Zmq['XPublisher']>): void {
    void (async () => {
      try {
        for (;;) {
          const [m] = await pub.receive();
          if (m?.[0] === 1) this.#subscribers++;
          else if (m?.[0] === 0) this.#subscribers = Math.max(0, this.#subscribers - 1);
        }
      } catch {
        // closed
      }
    })();
  }

  async #waitForSubscribers(n: number): Promise<void> {
    const until = monoMs() + this.#retryForMs;
    while (this.#subscribers < n) {
      if (this.#signal?.aborted || this.#closed) throw abortedError(this.target);
      if (monoMs() >= until) {
        throw new FramewireError(
          'ERR_UNREACHABLE',
          `${this.target}: ${this.#subscribers} of ${n} subscriber(s) connected within ${this.#retryForMs} ms`,
          { hint: 'start the hub (SUB) pointing at this address, or pass ?subscribers=0' },
        );
      }
      await sleep(20, this.#signal);
    }
  }

  #newRequest(): InstanceType<Zmq['Request']> {
    const sock = new this.#zmq.Request({
      linger: 0,
      receiveTimeout: this.#timeoutMs,
      sendTimeout: this.#timeoutMs,
      ipv6: this.#addr.host.includes(':'),
    });
    sock.connect(this.#addr.zmqEndpoint);
    return sock;
  }

  /**
   * Sends one frame under the text `msg` (ImageZMQ's stream name): an encoded frame in the `send_jpg` form,
   * a raw one (bgr24, rgb24, gray8, gray16le, bgra32, rgba32) in the `send_image` form. Over REQ it resolves
   * to the hub's reply once it came; over PUB to undefined once queued. Rejects with ERR_REMOTE when the hub
   * answers `ERR_…` (the frame was refused; the sender may go on), ERR_UNREACHABLE when no reply came
   * within `retryForMs`, ERR_CLOSED when stopped.
   */
  async send(msg: string, frame: Frame): Promise<Buffer | undefined> {
    if (this.#closed || this.#signal?.aborted) throw abortedError(this.target);
    const seq = this.#seqs.get(msg) ?? 0;
    const fw: FwInfo | undefined = this.#fw
      ? {
          epoch: this.#epoch,
          seq,
          ...(frame.name ? { name: frame.name } : {}),
          ...(this.#kind ? { kind: this.#kind } : {}),
          ...(frame.captureUs ? { captureUs: frame.captureUs } : {}),
          ...(frame.pixelFormat === 'rgb24' ? { pixelFormat: 'rgb24' as const } : {}),
        }
      : undefined;
    const parts = encodeImageZmq(msg, frame, fw);
    this.#seqs.set(msg, seq + 1);
    if (this.#pub) {
      await this.#pub.send(parts);
      this.stats.sent++;
      this.stats.bytes += frame.data.length;
      return undefined;
    }
    const reply = await this.#request(parts);
    if (isErrorReply(reply)) {
      this.stats.refused++;
      throw new FramewireError(
        'ERR_REMOTE',
        `${this.target} refused a frame of "${msg}": ${reply.toString()}`,
        {
          stream: msg,
          seq,
        },
      );
    }
    this.stats.sent++;
    this.stats.bytes += frame.data.length;
    return reply;
  }

  /** One request and its reply, with Lazy Pirate resends. */
  async #request(parts: Buffer[]): Promise<Buffer> {
    const until = monoMs() + this.#retryForMs;
    const onAbort = () => this.#req?.close();
    this.#signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (let attempt = 0; ; attempt++) {
        if (this.#closed || this.#signal?.aborted) throw abortedError(this.target);
        if (attempt > 0) this.stats.resends++;
        let sock = this.#req;
        if (!sock) {
          sock = this.#newRequest();
          this.#req = sock;
        }
        try {
          await sock.send(parts);
          const [reply = Buffer.alloc(0)] = await sock.receive();
          // The hub could not store it (a full disk, say): worth another try after a pause.
          if (reply.toString('latin1', 0, 17) === 'ERR_WRITE_FAILED:' && monoMs() < until) {
            await sleep(Math.min(1000, until - monoMs()), this.#signal);
            continue;
          }
          return reply;
        } catch (err) {
          if (this.#closed || this.#signal?.aborted) throw abortedError(this.target);
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          // No reply in time: this socket is stuck waiting for it (REQ allows nothing else), so it goes.
          sock.close();
          this.#req = undefined;
          if (monoMs() >= until) {
            throw new FramewireError(
              'ERR_UNREACHABLE',
              `${this.target}: no reply for ${this.#retryForMs} ms (${attempt + 1} attempt${attempt === 0 ? '' : 's'})`,
              { hint: 'is the hub running? raise --retry-for to wait longer' },
            );
          }
        }
      }
    } finally {
      this.#signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Closes the socket; a PUB first gives queued frames up to a second to go out. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#req?.close();
    this.#req = undefined;
    if (this.#pub) {
      const pub = this.#pub;
      this.#pub = undefined;
      pub.close();
    }
  }
}
