/**
 * Keeping freed memory for reuse: a receiver allocates a buffer for every frame (123 KB for a 1080p JPEG)
 * and frees it a moment later. glibc's malloc gives freed memory back to the kernel once more than 128 KB
 * is free at the top of its heap, so the next frame's buffer is fresh memory again, and the kernel faults
 * in each of its pages on first touch: that, not the copying, is most of what a frame's copy costs
 * (docs/benchmarks.md, "Fresh memory and glibc").
 *
 * glibc adjusts its thresholds by itself: when a block that it had mapped on its own (anything above the
 * mmap threshold, 128 KB at first, up to 32 MB) is freed, the mmap threshold becomes that block's size and
 * the trim threshold twice that. So allocating and dropping one block of 16 MB once makes malloc keep up to
 * 32 MB of freed memory at the top of its heap for reuse, as `GLIBC_TUNABLES=glibc.malloc.trim_threshold=…`
 * would, but from inside the process. Blocks up to 16 MB (frames up to 16 MB) then come from the heap: what
 * they leave free between blocks still in use is reused, not given back. Larger frames (a 4K rgb24 frame is
 * 25 MB) keep their own mapping, given back when freed. Elsewhere (musl, macOS) it is one allocation freed.
 */

import { setFlagsFromString } from 'node:v8';

const BLOCK = 16 * 1024 * 1024;
/** Settings that turn glibc's own adjustment off (mallopt's M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_*). */
const TUNABLES = /glibc\.malloc\.(mmap_threshold|trim_threshold|top_pad|mmap_max)=/;
const LEGACY = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_MMAP_MAX_'];
let done = false;

/**
 * Makes glibc keep freed memory for reuse (see above); the CLI calls it at start. Does nothing when the
 * operator set those malloc thresholds themselves (`GLIBC_TUNABLES` with `glibc.malloc.mmap_threshold`,
 * `trim_threshold`, `top_pad` or `mmap_max`, or the older `MALLOC_…_` variables), when
 * `FRAMEWIRE_KEEP_FREED_MEMORY=0`, and after a call that acted. Returns whether it acted. The block is freed,
 * and the thresholds raised, at the next garbage collection.
 */
export function keepFreedMemory(env: NodeJS.ProcessEnv = process.env): boolean {
  if (done) return false;
  if (env.FRAMEWIRE_KEEP_FREED_MEMORY === '0') return false;
  if (TUNABLES.test(env.GLIBC_TUNABLES ?? '') || LEGACY.some((v) => env[v] !== undefined)) return false;
  done = true;
  // Allocated uninitialised (malloc, not calloc): mapped by glibc on its own, and freed at the next garbage
  // collection once unreachable, which raises the thresholds.
  const block = Buffer.allocUnsafeSlow(BLOCK);
  block[0] = 0;
  return true;
}

/** Whether noIncrementalMarking() turned it off already. */
let markingOff = false;

/**
 * Turns V8's incremental marking off for this process; the CLI calls it at start. A receiver's heap is small
 * (8-20 MB) while every frame is a large buffer outside it, and with incremental marking on V8 starts a
 * marking cycle every few dozen frames: 15 Mark-Compacts per 1,000 frames of 123 KB in `serve --out`, 49
 * per 3,000 in the ImageZMQ hub, where garbage collection was 31% of its busy time. Off, V8 collects the old
 * generation only when it has to, in one short pause (a few ms on such a heap): 1-3 Mark-Compacts per 1,000
 * frames and about 20% less receiver CPU per frame (docs/benchmarks.md, "Incremental marking").
 *
 * Does nothing when `FRAMEWIRE_INCREMENTAL_MARKING=1`, when node was started with a flag about incremental
 * marking (the operator's choice), and after a call that acted. Returns whether it acted.
 */
export function noIncrementalMarking(
  env: NodeJS.ProcessEnv = process.env,
  execArgv: readonly string[] = process.execArgv,
): boolean {
  if (markingOff) return false;
  if (env.FRAMEWIRE_INCREMENTAL_MARKING === '1') return false;
  if (execArgv.some((a) => /^--(no-)?incremental[-_]marking/.test(a))) return false;
  markingOff = true;
  setFlagsFromString('--no-incremental-marking');
  return true;
}
