/**
 * Buffers for frame payloads, used again once a frame is done with: the decoders of a receiver take the
 * buffer of each large message they gather from here, and the receiver gives a frame's buffer back once its
 * sinks stored it, when nothing else can still hold it (FramewireServer.releaseFrameData: every sink borrows
 * frame data only for the call, Sink.borrowsFrameData, and no 'frame' listener or diagnostics subscriber saw
 * it).
 *
 * Why: a new buffer for every frame is fresh memory, and the kernel faults its pages in one by one when the
 * frame is copied into it. The buffers of frames still queued or being written survive V8's young
 * collections, so they are freed in bulk, late, and the next ones come from memory the process has not
 * touched yet. On the 2-core test machine the faults made the copy of a 123 KB frame cost 90-150 µs where
 * the copy itself takes about 10 (docs/benchmarks.md, "Frame buffers used again").
 *
 * Sizes come in classes, four to a doubling (16, 20, 24, 28, 32, 40 KiB, …), so that a buffer serves frames
 * up to 25% smaller than its class; a given back buffer waits in its class's list, and the lists together
 * keep at most `maxKeptBytes`. Buffers the pool did not hand out, or handed out and already took back, are
 * ignored by give(): a frame's buffer can never be handed out twice at once.
 */

/** Smallest size served from the pool: smaller buffers cost little to allocate. */
const MIN_BYTES = 16 * 1024;
/** Largest class: bigger buffers are allocated each time (they are rare, and would hold much memory). */
const MAX_BYTES = 16 * 1024 * 1024;

/** The class (capacity) of a buffer of `size` bytes: the next of 4 steps per doubling, in KiB multiples. */
export function sizeClass(size: number): number {
  if (size <= MIN_BYTES) return MIN_BYTES;
  const top = 2 ** Math.floor(Math.log2(size - 1));
  const step = top / 4;
  return Math.ceil(size / step) * step;
}

export interface FrameBufferStats {
  /** Buffers handed out from a list (used again). */
  reused: number;
  /** Buffers allocated because their class's list was empty. */
  allocated: number;
  /** Buffers given back and kept. */
  kept: number;
  /** Bytes waiting in the lists now. */
  keptBytes: number;
}

export class FrameBufferPool {
  readonly maxKeptBytes: number;
  readonly #free = new Map<number, ArrayBuffer[]>();
  /** Memory handed out and not given back yet, with its class. */
  readonly #out = new WeakMap<ArrayBufferLike, number>();
  #keptBytes = 0;
  readonly #stats = { reused: 0, allocated: 0, kept: 0 };

  constructor(maxKeptBytes = 32 * 1024 * 1024) {
    this.maxKeptBytes = maxKeptBytes;
  }

  /** A buffer of exactly `size` bytes (contents undefined): from the pool for 16 KiB to 16 MiB. */
  take(size: number): Buffer {
    if (size < MIN_BYTES || size > MAX_BYTES) return Buffer.allocUnsafe(size);
    const cls = sizeClass(size);
    const list = this.#free.get(cls);
    let mem = list?.pop();
    if (mem) {
      this.#keptBytes -= cls;
      this.#stats.reused++;
    } else {
      mem = new ArrayBuffer(cls);
      this.#stats.allocated++;
    }
    this.#out.set(mem, cls);
    return Buffer.from(mem, 0, size);
  }

  /**
   * Gives back the buffer `data` lies in (a payload is a view of it), for a later take(). The caller
   * guarantees that nothing refers to that memory any more. Ignored for memory this pool did not hand out
   * or already took back, and when the lists are full.
   */
  give(data: Uint8Array): void {
    const mem = data.buffer;
    const cls = this.#out.get(mem);
    if (cls === undefined) return;
    this.#out.delete(mem);
    if (this.#keptBytes + cls > this.maxKeptBytes) return;
    let list = this.#free.get(cls);
    if (!list) {
      list = [];
      this.#free.set(cls, list);
    }
    list.push(mem as ArrayBuffer);
    this.#keptBytes += cls;
    this.#stats.kept++;
  }

  get stats(): FrameBufferStats {
    return { ...this.#stats, keptBytes: this.#keptBytes };
  }
}
