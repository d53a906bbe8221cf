/**
 * Reassembles the pictures of one sender of the seed's UDP picture protocol, in both of its forms:
 * - single: one datagram holds a whole JPEG (or PNG);
 * - chunked: a header datagram, `struct.pack('l', n)` (8 bytes little-endian from 64-bit Linux and macOS,
 *   4 bytes from Windows and 32-bit systems), then the picture in 1024-byte datagrams, the last one shorter
 *   (and, when n is a multiple of 1024, an extra empty datagram).
 *
 * No sockets and no timers: the endpoint feeds datagrams with {@link PictureAssembler.push} and calls
 * {@link PictureAssembler.expire} when the sender has been silent too long mid-picture. A picture is
 * emitted only when it has exactly its announced length, and starts, is built and ends like a picture
 * (src/compat/picture.ts); anything else is dropped whole and reported once, with a reason.
 */
import type { ErrorCode } from '../errors.js';
import type { ContentType } from '../protocol/constants.js';
import { UDP_CHUNK } from './common.js';
import { checkPicture, looksLikePictureStart } from './picture.js';

export type DropReason =
  | 'timeout'
  | 'incomplete'
  | 'new-header'
  | 'interrupted'
  | 'chunk-mismatch'
  | 'bad-start'
  | 'bad-picture'
  | 'bad-header'
  | 'too-large'
  | 'memory'
  | 'no-header'
  | 'not-a-picture';

export type AssemblyEvent =
  | { type: 'picture'; data: Buffer; contentType: ContentType; form: 'single' | 'chunked' }
  /** A picture lost. `nak`: the sender has finished sending it and waits for an answer now. */
  | { type: 'drop'; reason: DropReason; code: ErrorCode; detail: string; nak: boolean }
  /** The end of a dropped picture's datagrams: answer the waiting sender now. */
  | { type: 'nak' }
  /** Nothing lost, but worth counting. */
  | { type: 'note'; what: 'empty-datagram' | 'duplicate-header' | 'stray-datagram' };

export interface AssemblerOptions {
  /** Largest picture a header may announce. */
  maxPictureBytes: number;
  /** Asks for `n` bytes of a budget shared by all senders before a picture's buffer is allocated. */
  reserve?: (n: number) => boolean;
  /** Gives back what {@link AssemblerOptions.reserve} granted. */
  release?: (n: number) => void;
}

type State =
  | { t: 'idle' }
  | { t: 'receiving'; expected: number; buf: Buffer; got: number }
  /** Swallowing the rest of a dropped picture; `nakDue` while its sender has not been answered. */
  | { t: 'discarding'; expected: number | undefined; got: number; nakDue: boolean };

const IDLE: State = { t: 'idle' };

/** Reads a 4- or 8-byte header as the seed writes it (`struct.pack('l', n)`, little-endian, signed). */
export function readLegacyHeader(d: Buffer): number | undefined {
  // Beyond 2^53 the Number is inexact, but still far above any limit, which is all that matters then.
  if (d.length === 8) return Number(d.readBigInt64LE(0));
  if (d.length === 4) return d.readInt32LE(0);
  return undefined;
}

/** True when `d`, as the last bytes of a picture, ends it (JPEG EOI, or PNG IEND's CRC). */
function endsLikePicture(d: Buffer): boolean {
  const n = d.length;
  if (n >= 2 && d[n - 2] === 0xff && d[n - 1] === 0xd9) return true;
  return n >= 4 && d.readUInt32BE(n - 4) === 0xae426082;
}

export class PictureAssembler {
  readonly #opts: AssemblerOptions;
  #state: State = IDLE;

  constructor(options: AssemblerOptions) {
    this.#opts = options;
  }

  /** True when no picture is in progress (nothing to time out). */
  get idle(): boolean {
    return this.#state.t === 'idle';
  }

  /** Bytes received of the picture in progress, and its announced length (for messages). */
  get progress(): { got: number; expected: number | undefined } {
    const s = this.#state;
    return s.t === 'idle' ? { got: 0, expected: undefined } : { got: s.got, expected: s.expected };
  }

  /** Feeds one datagram; returns what it completed, dropped or noted, in order. */
  push(d: Buffer): AssemblyEvent[] {
    const out: AssemblyEvent[] = [];
    const s = this.#state;
    if (d.length === 0) {
      // The seed client's trailing empty datagram after a picture of a multiple of 1024 bytes: harmless when
      // the picture is complete; mid-picture it means the sender has sent everything and bytes are missing.
      if (s.t === 'idle') out.push({ type: 'note', what: 'empty-datagram' });
      else if (s.t === 'receiving')
        this.#drop(out, 'incomplete', `the sender finished after ${s.got} of ${s.expected} bytes`, true);
      else this.#endDiscard(out);
      return out;
    }
    if (s.t === 'receiving') this.#receiving(s, d, out);
    else if (s.t === 'discarding') this.#discarding(s, d, out);
    else this.#idle(d, out);
    return out;
  }

  /** The sender has been silent mid-picture for too long: drop what is in progress. */
  expire(): AssemblyEvent[] {
    const out: AssemblyEvent[] = [];
    const s = this.#state;
    if (s.t === 'receiving')
      this.#drop(out, 'timeout', `timed out after ${s.got} of ${s.expected} bytes`, true);
    else if (s.t === 'discarding') this.#endDiscard(out);
    return out;
  }

  /** Forgets the picture in progress (the sender is gone) and frees its buffer. */
  reset(): void {
    this.#setState(IDLE);
  }

  #receiving(s: Extract<State, { t: 'receiving' }>, d: Buffer, out: AssemblyEvent[]): void {
    const remaining = s.expected - s.got;
    if (d.length === 4 || d.length === 8) {
      // A header, unless it is exactly the picture's last piece (a valid header never ends like a picture:
      // FF D9 or AE 42 60 82 as its top bytes would make it negative).
      const last = d.length === remaining && endsLikePicture(d);
      if (!last) {
        const v = readLegacyHeader(d)!;
        if (s.got === 0 && v === s.expected) {
          out.push({ type: 'note', what: 'duplicate-header' });
          return;
        }
        this.#drop(out, 'new-header', `a new header came after ${s.got} of ${s.expected} bytes`, false);
        this.#idle(d, out);
        return;
      }
    }
    if (d.length > UDP_CHUNK) {
      this.#drop(
        out,
        'interrupted',
        `a ${d.length}-byte datagram came after ${s.got} of ${s.expected} bytes`,
        false,
      );
      this.#idle(d, out);
      return;
    }
    const short = d.length < UDP_CHUNK;
    if (s.got === 0 && !looksLikePictureStart(d)) {
      this.#drop(out, 'bad-start', 'the first chunk does not start like a JPEG or PNG', false);
      this.#discard(out, s.expected, d.length, short);
      return;
    }
    if (d.length > remaining || (short && d.length !== remaining)) {
      const detail = `a ${d.length}-byte chunk came with ${remaining} of ${s.expected} bytes left (a chunk was lost, repeated or reordered)`;
      this.#drop(out, 'chunk-mismatch', detail, false);
      this.#discard(out, s.expected, s.got + d.length, short);
      return;
    }
    d.copy(s.buf, s.got);
    s.got += d.length;
    if (s.got < s.expected) return;
    const picture = s.buf;
    const check = checkPicture(picture);
    if (check.ok) {
      this.#setState(IDLE);
      out.push({ type: 'picture', data: picture, contentType: check.contentType, form: 'chunked' });
    } else {
      this.#drop(out, 'bad-picture', `the ${s.expected} bytes are not one whole picture: ${check.why}`, true);
    }
  }

  #discarding(s: Extract<State, { t: 'discarding' }>, d: Buffer, out: AssemblyEvent[]): void {
    const v = d.length === 4 || d.length === 8 ? readLegacyHeader(d) : undefined;
    if ((v !== undefined && v > 0 && !endsLikePicture(d)) || d.length > UDP_CHUNK) {
      // The sender moved on to its next picture: it is not waiting for an answer to the dropped one.
      this.#setState(IDLE);
      this.#idle(d, out);
      return;
    }
    s.got += d.length;
    if (d.length < UDP_CHUNK || (s.expected !== undefined && s.got >= s.expected)) this.#endDiscard(out);
  }

  #idle(d: Buffer, out: AssemblyEvent[]): void {
    if ((d.length === 4 || d.length === 8) && !endsLikePicture(d)) {
      const v = readLegacyHeader(d)!;
      const max = this.#opts.maxPictureBytes;
      if (v < 4) {
        this.#drop(
          out,
          'bad-header',
          `a ${d.length}-byte header announces ${v} bytes`,
          false,
          'ERR_LEGACY_HEADER',
        );
        this.#discard(out, undefined, 0, false);
        return;
      }
      if (v > max) {
        const detail = `a header announces ${v} bytes, above the limit of ${max} (maxFrameBytes)`;
        this.#drop(out, 'too-large', detail, false, 'ERR_FRAME_TOO_LARGE');
        this.#discard(out, v, 0, false);
        return;
      }
      if (this.#opts.reserve && !this.#opts.reserve(v)) {
        this.#drop(
          out,
          'memory',
          `no room for ${v} more bytes of pictures in progress (maxPendingBytes)`,
          false,
        );
        this.#discard(out, v, 0, false);
        return;
      }
      this.#state = { t: 'receiving', expected: v, buf: Buffer.allocUnsafe(v), got: 0 };
      return;
    }
    // Not a header: a whole picture in one datagram, or part of a picture whose header was lost.
    const check = checkPicture(d);
    if (check.ok) {
      out.push({ type: 'picture', data: d, contentType: check.contentType, form: 'single' });
      return;
    }
    if (d.length > UDP_CHUNK) {
      this.#drop(
        out,
        'not-a-picture',
        `a ${d.length}-byte datagram is not one whole picture: ${check.why}`,
        true,
      );
      return;
    }
    if (looksLikePictureStart(d)) {
      this.#drop(out, 'no-header', 'chunks came without a header (it was lost)', false);
      this.#discard(out, undefined, d.length, d.length < UDP_CHUNK);
      return;
    }
    out.push({ type: 'note', what: 'stray-datagram' });
  }

  #drop(
    out: AssemblyEvent[],
    reason: DropReason,
    detail: string,
    nak: boolean,
    code: ErrorCode = 'ERR_FRAME_DROPPED',
  ): void {
    this.#setState(IDLE);
    out.push({ type: 'drop', reason, code, detail, nak });
  }

  /** Swallows the rest of a dropped picture; `ended` when the datagram that caused the drop was its last. */
  #discard(out: AssemblyEvent[], expected: number | undefined, got: number, ended: boolean): void {
    this.#setState({ t: 'discarding', expected, got, nakDue: true });
    if (ended || (expected !== undefined && got >= expected)) this.#endDiscard(out);
  }

  #endDiscard(out: AssemblyEvent[]): void {
    const s = this.#state;
    this.#setState(IDLE);
    if (s.t === 'discarding' && s.nakDue) out.push({ type: 'nak' });
  }

  #setState(next: State): void {
    const s = this.#state;
    if (s.t === 'receiving') this.#opts.release?.(s.expected);
    this.#state = next;
  }
}
