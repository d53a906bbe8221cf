/**
 * A WebSocket client's data frames, written by framewire itself (RFC 6455 §5.2, §5.3).
 *
 * A client must mask every frame it sends with a fresh, unpredictable 4-byte key, so the payload is XORed
 * into a copy (the caller keeps its frame for a resend). `ws` copies into a freshly allocated buffer per
 * message; for a 123 KB frame most of that time is the kernel faulting in new pages, not the XOR (90 µs
 * against 3 µs into a warm buffer, docs/benchmarks.md "ws://"). Here the copy goes into a buffer from a small
 * pool, handed back once the socket has written it, so the pages stay warm.
 *
 * Only binary data messages are written here, one unfragmented frame each; `ws` still writes every control
 * frame (ping, pong, close). Both write whole frames synchronously to the same socket, so they never
 * interleave inside a frame.
 */
import { randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

type MaskFn = (source: Buffer, mask: Buffer, output: Buffer, offset: number, length: number) => void;

const requireHere = createRequire(import.meta.url);
let maskImpl: MaskFn | undefined;
/** `bufferutil`'s native mask (the one `ws` uses), else its own JavaScript fallback. */
function maskFn(): MaskFn {
  if (maskImpl) return maskImpl;
  try {
    maskImpl = (requireHere('bufferutil') as { mask: MaskFn }).mask;
  } catch {
    maskImpl = (source, mask, output, offset, length) => {
      for (let i = 0; i < length; i++) output[offset + i] = source[i]! ^ mask[i & 3]!;
    };
  }
  return maskImpl;
}

/** Random bytes for the masking keys, refilled from the CSPRNG 2,048 keys at a time (as `ws` does). */
const KEY_POOL_BYTES = 8192;
const keyPool = Buffer.alloc(KEY_POOL_BYTES);
let keyAt = KEY_POOL_BYTES;

function nextKey(into: Buffer, at: number): void {
  if (keyAt === KEY_POOL_BYTES) {
    randomFillSync(keyPool);
    keyAt = 0;
  }
  into[at] = keyPool[keyAt++]!;
  into[at + 1] = keyPool[keyAt++]!;
  into[at + 2] = keyPool[keyAt++]!;
  into[at + 3] = keyPool[keyAt++]!;
}

/** Buffers larger than this are not kept for reuse (they are rare, and would pin memory). */
const POOL_MAX_BUFFER = 16 * 1024 * 1024;
/** At most this many bytes of idle buffers are kept, in all. */
const POOL_MAX_BYTES = 16 * 1024 * 1024;
/** Messages up to this size are not pooled here. */
const SMALL_MESSAGE = 16 * 1024;
/** Sizes are rounded up to this, so frames of slightly different sizes share buffers. */
const POOL_GRAIN = 64 * 1024;

/** The header of a masked binary frame with FIN set: 2 bytes, the extended length, then the 4-byte key. */
function headerBytes(length: number): number {
  return length < 126 ? 6 : length < 65536 ? 8 : 14;
}

/** Idle buffers, shared by every writer of the process (one bound for all connections). */
const free: Buffer[] = [];
let freeBytes = 0;

/** Writes masked binary WebSocket frames (a client's) to one socket, from a pool of reused buffers. */
export class MaskedFrameWriter {
  private readonly socket: Socket;
  private readonly mask = maskFn();
  private readonly rotated = Buffer.alloc(4);

  constructor(socket: Socket) {
    this.socket = socket;
  }

  /** Writes the parts as one binary message (one frame, FIN set); returns what socket.write returned. */
  write(parts: readonly Buffer[]): boolean {
    let length = 0;
    for (const p of parts) length += p.length;
    const head = headerBytes(length);
    const total = head + length;
    const buf = this.take(total);
    buf[0] = 0x82; // FIN, opcode 2 (binary)
    if (length < 126) {
      buf[1] = 0x80 | length;
    } else if (length < 65536) {
      buf[1] = 0x80 | 126;
      buf.writeUInt16BE(length, 2);
    } else {
      buf[1] = 0x80 | 127;
      buf.writeUInt32BE(Math.floor(length / 0x100000000), 2);
      buf.writeUInt32BE(length >>> 0, 6);
    }
    const keyAt = head - 4;
    nextKey(buf, keyAt);
    const key = buf.subarray(keyAt, head);
    let at = head;
    for (const p of parts) {
      if (p.length === 0) continue;
      // The key runs on across the parts: a part starting at payload offset k uses the key rotated by k.
      const phase = (at - head) & 3;
      let k = key;
      if (phase !== 0) {
        for (let i = 0; i < 4; i++) this.rotated[i] = key[(i + phase) & 3]!;
        k = this.rotated;
      }
      this.mask(p, k, buf, at, p.length);
      at += p.length;
    }
    const view = buf.length === total ? buf : buf.subarray(0, total);
    return this.socket.write(view, () => this.give(buf));
  }

  private take(size: number): Buffer {
    // Small messages (controls, small frames) come from Node's own shared pool.
    if (size <= SMALL_MESSAGE) return Buffer.allocUnsafe(size);
    let best = -1;
    for (let i = 0; i < free.length; i++) {
      const b = free[i]!;
      if (b.length >= size && (best < 0 || b.length < free[best]!.length)) best = i;
    }
    if (best >= 0) {
      const b = free[best]!;
      free[best] = free[free.length - 1]!;
      free.pop();
      freeBytes -= b.length;
      return b;
    }
    if (size > POOL_MAX_BUFFER) return Buffer.allocUnsafeSlow(size);
    return Buffer.allocUnsafeSlow(Math.ceil(size / POOL_GRAIN) * POOL_GRAIN);
  }

  private give(buf: Buffer): void {
    if (buf.length <= SMALL_MESSAGE) return;
    if (buf.length > POOL_MAX_BUFFER || freeBytes + buf.length > POOL_MAX_BYTES) return;
    free.push(buf);
    freeBytes += buf.length;
  }
}
