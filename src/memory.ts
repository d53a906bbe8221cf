/**
 * Keeping freed memory for reuse: a receiver allocates a buffer for every frame (123 KB for a 1080p JPEG)
 * and frees it a moment later. glibc's malloc gives freed memory back to the kernel once more than 128 KB
 * is free at the top of its heap, so the next frame's buffer is fresh memory again, and the kernel faults
 * in each of its pages on first touch: that, not the copying, is most of what a frame's copy costs
 * (docs/benchmarks.md, "Fresh memory and glibc").
 *
 * glibc adjusts its thresholds by itself: when a block that it had mapped on its own (anything above the
 * mmap threshold, 128 KB at first, up to 32 MB) is freed, the mmap threshold becomes that block's size and
 * the trim threshold twice that. So allocating and dropping one block of 30 MB once makes malloc keep up to
 * 60 MB of freed memory for reuse, as `GLIBC_TUNABLES=glibc.malloc.trim_threshold=…` would, but from inside
 * the process. Elsewhere (musl, macOS) it is one allocation freed, nothing more.
 */

const BLOCK = 30 * 1024 * 1024;
let done = false;

/**
 * Makes glibc keep freed memory for reuse (see above); the CLI calls it at start. Does nothing when the
 * operator set malloc tunables (`GLIBC_TUNABLES` naming `glibc.malloc.`, which also turn glibc's own
 * adjustment off) or `FRAMEWIRE_KEEP_FREED_MEMORY=0`, and after the first call. Returns whether it acted.
 * The cost: the process keeps up to 60 MB of freed memory rather than giving it back.
 */
export function keepFreedMemory(env: NodeJS.ProcessEnv = process.env): boolean {
  if (done) return false;
  if (env.FRAMEWIRE_KEEP_FREED_MEMORY === '0') return false;
  if (env.GLIBC_TUNABLES?.includes('glibc.malloc.')) return false;
  done = true;
  // Allocated uninitialised (malloc, not calloc): mapped by glibc on its own, and freed at the next garbage
  // collection once unreachable, which raises the thresholds.
  const block = Buffer.allocUnsafeSlow(BLOCK);
  block[0] = 0;
  return true;
}
