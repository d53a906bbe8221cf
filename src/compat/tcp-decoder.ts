/**
 * The receiving side of the seed's TCP folder protocol as a decoder that owns no socket: `push(chunk)` with
 * whatever one read returned, get back what to do, in order. The byte sequence (docs/compat.md):
 *
 *   client: FORMAT|FOLDER            server: ok
 *   client: LENGTH|NAME              server: ok          ┐
 *   client: payload piece            server: ok          │ per frame; pieces are data[go:go+LENGTH//2]
 *   …                                                    │ (two, or three when LENGTH is odd)
 *   client: continue  (or, after the last frame: over)   ┘
 *
 * Nothing delimits the texts: the seed relies on each arriving in a read of its own, which TCP does not
 * promise. So this decoder reads them as a byte stream: a header ends where the bytes received so far end
 * (the client waits for `ok` after it), or earlier at the first byte no file name can hold (so a payload
 * that starts right behind its header, as a JPEG or PNG does, is told apart); `continue` and `over` are
 * recognised as prefixes, also when glued to the next header or split over reads; the payload is counted.
 *
 * The `ok` after each payload piece: the client sends a piece and blocks until it reads an answer, so an
 * answer must follow every piece, but an extra one lets the client run ahead of the server (it reads the
 * stale `ok` as the answer to its next send). The decoder answers at the piece boundaries the seed client
 * uses (LENGTH//2, 2·(LENGTH//2), LENGTH): exactly one `ok` per piece whatever the reads look like. A
 * client that cuts its payload elsewhere is served by the endpoint's idle answer ({@link owesReply}). The
 * last `ok` of a frame is the endpoint's to send, after the frame is stored.
 */
import { FramewireError } from '../errors.js';
import { TCP_CONTINUE, TCP_OVER } from './common.js';

export type TcpDecoderEvent =
  | { type: 'session'; format: string; folder: string }
  /** Send one `ok` now. */
  | { type: 'reply' }
  /**
   * A frame's payload is complete: store it, then send `ok` when `finalReply` (the seed server answers the
   * read that completed the payload; there is none for an empty payload). `refused` frames were not kept.
   */
  | { type: 'frame'; name: string; data: Buffer; finalReply: boolean; refused: FramewireError | undefined }
  | { type: 'over' }
  /** The peer broke the protocol: log and close. */
  | {
      type: 'fatal';
      error: FramewireError;
      reason: 'bad-session-header' | 'bad-header' | 'too-large' | 'bad-trailer';
    };

export interface TcpDecoderOptions {
  maxFrameBytes: number;
  /** Checks the session header's folder (the stream name); an error ends the session. */
  checkFolder?: (folder: string) => FramewireError | undefined;
  /** Checks a frame's name; an error refuses that frame (its payload is read and thrown away). */
  checkName?: (name: string) => FramewireError | undefined;
}

type State = 'session' | 'header' | 'payload' | 'trailer' | 'done';

interface Payload {
  name: string;
  total: number;
  got: number;
  data: Buffer | undefined;
  refused: FramewireError | undefined;
  boundaries: number[];
  next: number;
}

const PIPE = 0x7c;
const CONTINUE = Buffer.from(TCP_CONTINUE);
const OVER = Buffer.from(TCP_OVER);
/** The seed server reads a session header with recv(1024). */
const MAX_SESSION_HEADER = 1024;
const MAX_LENGTH_DIGITS = 15;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The boundaries of the seed client's pieces: data[go:go+h] with h = total//2. */
export function pieceBoundaries(total: number): number[] {
  const h = Math.floor(total / 2);
  return [...new Set([h, 2 * h, total])].filter((b) => b > 0).sort((a, b) => a - b);
}

/** Where a file name that starts at `from` ends: at the first control byte or byte that is not UTF-8. */
export function nameEnd(b: Buffer, from: number): number {
  let i = from;
  while (i < b.length) {
    const c = b[i]!;
    if (c >= 0x20 && c < 0x7f) {
      i++;
      continue;
    }
    // A UTF-8 sequence: lead byte, then 1-3 continuation bytes, all present.
    const extra = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : -1;
    if (extra < 0 || i + extra >= b.length) return i;
    for (let k = 1; k <= extra; k++) {
      const cc = b[i + k]!;
      if (cc < 0x80 || cc > 0xbf) return i;
    }
    i += extra + 1;
  }
  return i;
}

function startsWith(b: Buffer, prefix: Buffer): boolean {
  return b.length >= prefix.length && b.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** True when `b` is a proper, non-empty prefix of `word` (more bytes may complete it). */
function partOf(b: Buffer, word: Buffer): boolean {
  return b.length > 0 && b.length < word.length && word.compare(b, 0, b.length, 0, b.length) === 0;
}

function preview(b: Buffer): string {
  const s = JSON.stringify(b.subarray(0, 40).toString('latin1'));
  return b.length > 40 ? `${s}…` : s;
}

export class LegacyTcpDecoder {
  readonly #opts: TcpDecoderOptions;
  #state: State = 'session';
  #pending: Buffer = Buffer.alloc(0);
  #payload: Payload | undefined;
  /** Payload bytes received since the last `ok`. */
  #sinceReply = 0;
  #frames = 0;

  constructor(options: TcpDecoderOptions) {
    this.#opts = options;
  }

  get state(): State {
    return this.#state;
  }

  /** Frames whose header was read. */
  get frames(): number {
    return this.#frames;
  }

  /** The frame being received: its name and how far it got. */
  get current(): { name: string; got: number; total: number } | undefined {
    const p = this.#payload;
    return p && this.#state === 'payload' ? { name: p.name, got: p.got, total: p.total } : undefined;
  }

  /**
   * True while a payload is incomplete and bytes came since the last `ok`: a client that cut its payload
   * where the seed client does not may be waiting for an answer. The endpoint answers once the bytes stop.
   */
  get owesReply(): boolean {
    return this.#state === 'payload' && this.#sinceReply > 0;
  }

  /** The endpoint sent an `ok` of its own (see {@link owesReply}). */
  noteReply(): void {
    this.#sinceReply = 0;
  }

  /** Feeds what one read returned. */
  push(chunk: Buffer): TcpDecoderEvent[] {
    const out: TcpDecoderEvent[] = [];
    let data = chunk;
    // Each pass consumes bytes or changes state; bounded by the chunk length plus the state changes.
    for (let guard = 0; guard < chunk.length + 64; guard++) {
      if (this.#state === 'done') break;
      if (this.#state === 'payload') {
        if (data.length === 0) break;
        data = this.#takePayload(data, out);
        continue;
      }
      if (data.length > 0) {
        this.#pending = this.#pending.length === 0 ? data : Buffer.concat([this.#pending, data]);
        data = Buffer.alloc(0);
      }
      if (this.#pending.length === 0) break;
      const rest = this.#parseText(out);
      if (rest === undefined) break;
      data = rest;
    }
    return out;
  }

  /** What the end of the connection cut short, for the log; undefined when it ended cleanly. */
  endState(): string | undefined {
    switch (this.#state) {
      case 'session':
        return 'closed before a session header';
      case 'header':
        return this.#frames === 0 ? undefined : 'closed after "continue" without the next header';
      case 'payload': {
        const p = this.#payload!;
        return `closed after ${p.got} of ${p.total} bytes of frame "${p.name}"`;
      }
      default:
        return undefined;
    }
  }

  /** Copies payload bytes; returns the bytes left over. */
  #takePayload(data: Buffer, out: TcpDecoderEvent[]): Buffer {
    const p = this.#payload!;
    const take = Math.min(data.length, p.total - p.got);
    if (p.data) data.copy(p.data, p.got, 0, take);
    p.got += take;
    this.#sinceReply += take;
    let crossed = false;
    while (p.next < p.boundaries.length && p.boundaries[p.next]! <= p.got) {
      p.next++;
      crossed = true;
    }
    if (p.got === p.total) {
      this.#finishPayload(out);
    } else if (crossed) {
      out.push({ type: 'reply' });
      this.#sinceReply = 0;
    }
    return data.subarray(take);
  }

  #finishPayload(out: TcpDecoderEvent[]): void {
    const p = this.#payload!;
    out.push({
      type: 'frame',
      name: p.name,
      data: p.data ?? Buffer.alloc(0),
      finalReply: p.total > 0,
      refused: p.refused,
    });
    this.#payload = undefined;
    this.#sinceReply = 0;
    this.#state = 'trailer';
  }

  /** Parses the text at the start of #pending; returns payload bytes that follow it, or undefined to wait. */
  #parseText(out: TcpDecoderEvent[]): Buffer | undefined {
    const b = this.#pending;
    if (this.#state === 'session') return this.#parseSession(b, out);
    if (this.#state === 'trailer') {
      if (startsWith(b, CONTINUE)) return this.#consume(CONTINUE.length, 'header');
      if (startsWith(b, OVER)) return this.#over(out);
      if (partOf(b, CONTINUE) || partOf(b, OVER)) return undefined;
      // Tolerated: the next header without "continue" before it.
      if (b[0]! >= 0x30 && b[0]! <= 0x39) return this.#consume(0, 'header');
      return this.#fatal(
        out,
        'bad-trailer',
        `expected "continue" or "over" after a frame, got ${preview(b)}`,
      );
    }
    // 'header': "continue" may come again, and "over" instead of a header (a client with nothing to send).
    if (startsWith(b, CONTINUE)) return this.#consume(CONTINUE.length, 'header');
    if (startsWith(b, OVER)) return this.#over(out);
    if (partOf(b, CONTINUE) || partOf(b, OVER)) return undefined;
    return this.#parseHeader(b, out);
  }

  #parseSession(b: Buffer, out: TcpDecoderEvent[]): Buffer | undefined {
    const pipe = b.indexOf(PIPE);
    if (pipe === -1) {
      // A header split over two reads is waited for; text with line breaks or binary is not a header.
      const text = nameEnd(b, 0) === b.length;
      if (text && b.length < MAX_SESSION_HEADER) return undefined;
      return this.#fatal(out, 'bad-session-header', `session header ${preview(b)} is not FORMAT|FOLDER`);
    }
    let header: string;
    try {
      header = utf8.decode(b);
    } catch {
      return this.#fatal(out, 'bad-session-header', `session header ${preview(b)} is not UTF-8 text`);
    }
    // As the seed: `data_format, directory_name = info.decode().split("|")` takes exactly one "|".
    const parts = header.split('|');
    if (parts.length !== 2) {
      return this.#fatal(
        out,
        'bad-session-header',
        `session header ${preview(b)} has ${parts.length - 1} "|", not 1`,
      );
    }
    const [format, folder] = parts as [string, string];
    const refused = this.#opts.checkFolder?.(folder);
    if (refused) {
      this.#state = 'done';
      this.#pending = Buffer.alloc(0);
      out.push({ type: 'fatal', error: refused, reason: 'bad-session-header' });
      return undefined;
    }
    this.#pending = Buffer.alloc(0);
    this.#state = 'header';
    out.push({ type: 'session', format, folder }, { type: 'reply' });
    return Buffer.alloc(0);
  }

  #parseHeader(b: Buffer, out: TcpDecoderEvent[]): Buffer | undefined {
    let i = 0;
    while (i < b.length && i <= MAX_LENGTH_DIGITS && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
    if (i === b.length && i <= MAX_LENGTH_DIGITS) return undefined;
    if (i === 0 || i > MAX_LENGTH_DIGITS || b[i] !== PIPE) {
      return this.#fatal(out, 'bad-header', `frame header ${preview(b)} is not LENGTH|NAME`);
    }
    const total = Number(b.toString('latin1', 0, i));
    const end = nameEnd(b, i + 1);
    if (end === i + 1) {
      if (b.length === i + 1) return undefined;
      return this.#fatal(out, 'bad-header', `frame header ${preview(b)} has no file name`);
    }
    const name = b.toString('utf8', i + 1, end);
    if (total > this.#opts.maxFrameBytes) {
      return this.#fatal(
        out,
        'too-large',
        `frame "${name}" announces ${total} bytes, above the limit of ${this.#opts.maxFrameBytes} (maxFrameBytes)`,
        'ERR_FRAME_TOO_LARGE',
      );
    }
    const refused = this.#opts.checkName?.(name);
    this.#frames++;
    this.#payload = {
      name,
      total,
      got: 0,
      data: refused ? undefined : Buffer.allocUnsafe(total),
      refused,
      boundaries: pieceBoundaries(total),
      next: 0,
    };
    this.#sinceReply = 0;
    out.push({ type: 'reply' });
    const rest = b.subarray(end);
    this.#pending = Buffer.alloc(0);
    this.#state = 'payload';
    if (total === 0) this.#finishPayload(out);
    return rest;
  }

  #consume(n: number, next: State): Buffer {
    const rest = this.#pending.subarray(n);
    this.#pending = Buffer.alloc(0);
    this.#state = next;
    return rest;
  }

  #over(out: TcpDecoderEvent[]): undefined {
    this.#state = 'done';
    this.#pending = Buffer.alloc(0);
    out.push({ type: 'over' });
    return undefined;
  }

  #fatal(
    out: TcpDecoderEvent[],
    reason: Extract<TcpDecoderEvent, { type: 'fatal' }>['reason'],
    message: string,
    code: 'ERR_LEGACY_HEADER' | 'ERR_FRAME_TOO_LARGE' = 'ERR_LEGACY_HEADER',
  ): undefined {
    this.#state = 'done';
    this.#pending = Buffer.alloc(0);
    out.push({ type: 'fatal', error: new FramewireError(code, message), reason });
    return undefined;
  }
}
