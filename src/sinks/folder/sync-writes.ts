/**
 * When the folder sink writes a frame with synchronous calls on the event loop rather than on libuv's thread
 * pool: frames up to a size, while the synchronous writes stay fast on average. A file system that turns slow
 * (a saturated disk, a network share) sends the frames to the thread pool for a while, so that a blocked
 * event loop never holds up the acknowledgements, pings and viewers of every stream.
 */
import { monoMs } from '../../time.js';

/** Weight of the newest synchronous write in the moving average of their durations. */
const AVERAGE_WEIGHT = 0.05;

export class SyncWrites {
  readonly #maxBytes: number;
  readonly #slowMs: number;
  readonly #backoffMs: number;
  /** monoMs() until which frames go to the thread pool (0: not backed off). */
  #offUntil = 0;
  /** Moving average of the synchronous writes' durations, ms. */
  #averageMs = 0;
  readonly #counts = { sync: 0, pool: 0, slowSync: 0 };

  /** `maxBytes` 0: never synchronous. */
  constructor(maxBytes: number, slowMs: number, backoffMs: number) {
    this.#maxBytes = maxBytes;
    this.#slowMs = slowMs;
    this.#backoffMs = backoffMs;
  }

  /** Whether a frame of `bytes` is written synchronously now; counts the answer. */
  use(bytes: number): boolean {
    const sync =
      this.#maxBytes > 0 && bytes <= this.#maxBytes && (this.#offUntil === 0 || monoMs() >= this.#offUntil);
    if (sync) this.#counts.sync++;
    else this.#counts.pool++;
    return sync;
  }

  /** Whether index lines may be appended with a synchronous call. */
  index(): boolean {
    return this.#maxBytes > 0 && this.#offUntil === 0;
  }

  /** A synchronous write took `ms`. */
  took(ms: number): void {
    this.#averageMs += (ms - this.#averageMs) * AVERAGE_WEIGHT;
    if (this.#averageMs > this.#slowMs) {
      this.#counts.slowSync++;
      this.#offUntil = monoMs() + this.#backoffMs;
      this.#averageMs = 0;
    } else if (this.#offUntil !== 0 && monoMs() >= this.#offUntil) {
      this.#offUntil = 0;
    }
  }

  get counts(): { sync: number; pool: number; slowSync: number } {
    return { ...this.#counts };
  }
}
