/**
 * Splitting a message into fragments. Both sides compute the same plan from the message length and the
 * fragment count alone: fragments are `stride` bytes each, the last one shorter, so a fragment's offset is
 * `index * stride` and no offset travels on the wire. Pure functions; fragments are views, never copies.
 */
import { DATA_HEADER_BYTES } from './datagram.js';

export interface FragmentPlan {
  count: number;
  stride: number;
}

/** Fragment bytes that fit one datagram of `mtu` bytes. */
export function fragmentPayload(mtu: number): number {
  return mtu - DATA_HEADER_BYTES;
}

/** The plan for a message of `length` bytes (length ≥ 1) with at most `maxPayload` bytes per fragment. */
export function planFragments(length: number, maxPayload: number): FragmentPlan {
  const count = Math.max(1, Math.ceil(length / maxPayload));
  return { count, stride: Math.ceil(length / count) };
}

/** The stride a receiver derives from a DATA header; undefined when (length, count) cannot be a plan. */
export function strideOf(length: number, count: number): number | undefined {
  if (count < 1 || length < count) return undefined;
  const stride = Math.ceil(length / count);
  // Every fragment, the last included, must have at least one byte.
  if ((count - 1) * stride >= length) return undefined;
  return stride;
}

/** Byte range [start, end) of fragment `index`. */
export function fragmentBounds(length: number, stride: number, index: number): [number, number] {
  const start = index * stride;
  return [start, Math.min(length, start + stride)];
}

/** Views of the bytes [start, end) of a message given as consecutive parts. */
export function sliceParts(parts: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let base = 0;
  for (const p of parts) {
    const pEnd = base + p.length;
    if (pEnd > start && base < end) {
      out.push(p.subarray(Math.max(0, start - base), Math.min(p.length, end - base)));
    }
    if (pEnd >= end) break;
    base = pEnd;
  }
  return out;
}
