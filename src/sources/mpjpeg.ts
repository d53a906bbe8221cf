/**
 * A splitter for `multipart/x-mixed-replace` JPEG streams as ffmpeg's `mpjpeg` muxer writes them:
 *
 * ```
 * --ffmpeg\r\n
 * Content-type: image/jpeg\r\n
 * Content-length: 4296\r\n
 * \r\n
 * <4296 bytes of JPEG>\r\n
 * --ffmpeg\r\n
 * Content-type: image/jpeg\r\n
 * ...
 * ```
 *
 * ffmpeg 4.x and 5.x write a Content-length header in every part (the header name's case varies across
 * producers, so it is matched case-insensitively). A part is cut by that length, never by looking for JPEG
 * markers: FF D9 can appear inside entropy-coded data of some encoders, and the length is exact.
 *
 * Pure and socket-free: {@link MpjpegSplitter.push} takes chunks as they come and returns the whole parts
 * they complete. A body that lies inside one chunk is returned as a view of that chunk (no copy); a body
 * that straddles chunks is copied once into a buffer allocated from its announced length.
 */
import { ErrorCode, FramewireError } from '../errors.js';

export interface MpjpegSplitterOptions {
  /** Largest part accepted (bytes). Default 64 MiB. A larger Content-Length is an error. */
  maxPartBytes?: number;
  /** Longest header or boundary line accepted (bytes). Default 1024. */
  maxLineBytes?: number;
}

const CR = 0x0d;
const LF = 0x0a;

type State =
  /** Before a boundary line; empty lines (the CRLF ending the previous body) are skipped. */
  | 'boundary'
  /** Inside a part's header lines, up to the empty line. */
  | 'headers'
  /** Inside a body of known length. */
  | 'body'
  /** Inside a body without Content-Length: up to the next CRLF + boundary. */
  | 'scan'
  /** After the closing boundary (`--tag--`): everything else is ignored. */
  | 'done';

/**
 * Splits an mpjpeg byte stream into its parts. Feed bytes with {@link push} (or {@link write} and
 * {@link next} to take parts one by one, which lets a reader stop parsing while its consumer is busy);
 * call {@link end} when the input ended to get a last part that had no length (see there).
 */
export class MpjpegSplitter {
  readonly #maxPartBytes: number;
  readonly #maxLineBytes: number;
  /** Input received and not parsed yet, oldest first; `#offset` bytes of the first are consumed. */
  readonly #chunks: Buffer[] = [];
  #offset = 0;
  #state: State = 'boundary';
  /** The bytes of the line being read, when it straddles chunks. */
  #line: Buffer[] = [];
  #lineBytes = 0;
  /** The boundary tag with its leading dashes, from the first boundary line (`--ffmpeg`). */
  #boundary: string | undefined;
  /** Content-Length of the current part, or undefined when the part had none. */
  #length: number | undefined;
  /** The body being assembled, when it straddles chunks. */
  #body: Buffer | undefined;
  #bodyFilled = 0;
  /** Bytes collected so far by the scan fallback (parts without Content-Length). */
  #scan: Buffer[] = [];
  #scanBytes = 0;
  #delimiter: Buffer | undefined;
  #parts = 0;

  constructor(options: MpjpegSplitterOptions = {}) {
    this.#maxPartBytes = options.maxPartBytes ?? 64 * 1024 * 1024;
    this.#maxLineBytes = options.maxLineBytes ?? 1024;
  }

  /** Whole parts returned so far. */
  get parts(): number {
    return this.#parts;
  }

  /** Bytes written and not yet parsed into a part (what {@link next} still has to look at). */
  get pendingBytes(): number {
    let n = -this.#offset;
    for (const c of this.#chunks) n += c.length;
    return n + this.#bodyFilled + this.#scanBytes + this.#lineBytes;
  }

  /** The boundary line seen in the stream (e.g. `--ffmpeg`), once one was read. */
  get boundary(): string | undefined {
    return this.#boundary;
  }

  /** Adds input without parsing it; take the parts with {@link next}. */
  write(chunk: Buffer): void {
    if (chunk.length > 0) this.#chunks.push(chunk);
  }

  /** Adds input and returns every part it completes, in order. */
  push(chunk: Buffer): Buffer[] {
    this.write(chunk);
    const out: Buffer[] = [];
    for (let p = this.next(); p !== undefined; p = this.next()) out.push(p);
    return out;
  }

  /**
   * The next whole part from the input written so far, or undefined when more input is needed.
   * @throws FramewireError ERR_SOURCE_READ when the stream is not mpjpeg (no boundary, an overlong line,
   *   a bad or too large Content-Length).
   */
  next(): Buffer | undefined {
    for (;;) {
      const chunk = this.#chunks[0];
      if (chunk === undefined) return undefined;
      if (this.#offset >= chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
        continue;
      }
      switch (this.#state) {
        case 'boundary':
        case 'headers': {
          const text = this.#readLine(chunk);
          if (text === undefined) continue;
          this.#onLine(text);
          break;
        }
        case 'body': {
          const part = this.#readBody(chunk);
          if (part !== undefined) return part;
          break;
        }
        case 'scan': {
          const part = this.#readScan();
          if (part !== undefined) return part;
          if (this.#chunks.length === 0) return undefined;
          break;
        }
        case 'done':
          this.#chunks.length = 0;
          this.#offset = 0;
          return undefined;
      }
    }
  }

  /**
   * The input ended: returns the parts still buffered, then the last part when it had no Content-Length and
   * was waiting for a boundary that will not come (its trailing CRLF removed). A part with a known length
   * that is incomplete is truncated output (ffmpeg killed mid-write) and is dropped. Resets the splitter for
   * a new stream.
   */
  end(): Buffer[] {
    const out: Buffer[] = [];
    for (let p = this.next(); p !== undefined; p = this.next()) out.push(p);
    if (this.#state === 'scan' && this.#scanBytes > 0) {
      let body = this.#scan.length === 1 ? this.#scan[0]! : Buffer.concat(this.#scan, this.#scanBytes);
      if (body.length >= 2 && body[body.length - 2] === CR && body[body.length - 1] === LF) {
        body = body.subarray(0, body.length - 2);
      }
      if (body.length > 0) {
        out.push(body);
        this.#parts++;
      }
    }
    this.#reset();
    return out;
  }

  #reset(): void {
    this.#chunks.length = 0;
    this.#offset = 0;
    this.#state = 'boundary';
    this.#line = [];
    this.#lineBytes = 0;
    this.#length = undefined;
    this.#body = undefined;
    this.#bodyFilled = 0;
    this.#scan = [];
    this.#scanBytes = 0;
    this.#boundary = undefined;
    this.#delimiter = undefined;
  }

  /** Reads up to LF from the first chunk; the line's text without CR LF once complete, else undefined. */
  #readLine(chunk: Buffer): string | undefined {
    const lf = chunk.indexOf(LF, this.#offset);
    const end = lf === -1 ? chunk.length : lf;
    const piece = chunk.subarray(this.#offset, end);
    this.#lineBytes += piece.length;
    if (this.#lineBytes > this.#maxLineBytes) {
      throw this.#error(
        `a ${this.#state === 'boundary' ? 'boundary' : 'header'} line exceeds ${this.#maxLineBytes} bytes`,
      );
    }
    if (lf === -1) {
      this.#line.push(piece);
      this.#offset = chunk.length;
      return undefined;
    }
    this.#offset = lf + 1;
    const bytes = this.#line.length === 0 ? piece : Buffer.concat([...this.#line, piece]);
    this.#line = [];
    this.#lineBytes = 0;
    const n = bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
    return bytes.toString('latin1', 0, n);
  }

  #onLine(text: string): void {
    if (this.#state === 'boundary') {
      if (text === '') return; // the CRLF that ends the previous body
      if (!text.startsWith('--'))
        throw this.#error(`expected a boundary line, got ${JSON.stringify(text.slice(0, 40))}`);
      const tag = text.trimEnd();
      if (this.#boundary === undefined) {
        if (tag.length <= 2) throw this.#error('empty boundary');
        this.#boundary = tag.endsWith('--') ? tag.slice(0, -2) : tag;
      }
      if (tag === `${this.#boundary}--`) {
        this.#state = 'done';
        return;
      }
      if (tag !== this.#boundary)
        throw this.#error(`expected boundary ${this.#boundary}, got ${JSON.stringify(tag.slice(0, 40))}`);
      this.#state = 'headers';
      this.#length = undefined;
      return;
    }
    // headers
    if (text === '') {
      if (this.#length === undefined) {
        this.#state = 'scan';
        this.#scan = [];
        this.#scanBytes = 0;
      } else {
        this.#state = 'body';
        this.#body = undefined;
        this.#bodyFilled = 0;
      }
      return;
    }
    const colon = text.indexOf(':');
    if (colon <= 0) throw this.#error(`bad header line ${JSON.stringify(text.slice(0, 40))}`);
    if (text.slice(0, colon).trim().toLowerCase() !== 'content-length') return;
    const value = text.slice(colon + 1).trim();
    const n = /^\d{1,12}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n))
      throw this.#error(`bad Content-Length ${JSON.stringify(value.slice(0, 20))}`);
    if (n > this.#maxPartBytes)
      throw this.#error(`part of ${n} bytes exceeds maxPartBytes ${this.#maxPartBytes}`);
    this.#length = n;
  }

  #readBody(chunk: Buffer): Buffer | undefined {
    const length = this.#length ?? 0;
    const available = chunk.length - this.#offset;
    if (this.#body === undefined && available >= length) {
      // The whole body is inside this chunk: a view, no copy.
      const part = chunk.subarray(this.#offset, this.#offset + length);
      this.#offset += length;
      return this.#finishPart(part);
    }
    // Straddles chunks: allocate once from the announced length and copy the pieces in.
    this.#body ??= Buffer.allocUnsafe(length);
    const take = Math.min(available, length - this.#bodyFilled);
    chunk.copy(this.#body, this.#bodyFilled, this.#offset, this.#offset + take);
    this.#bodyFilled += take;
    this.#offset += take;
    if (this.#bodyFilled < length) return undefined;
    const part = this.#body;
    this.#body = undefined;
    this.#bodyFilled = 0;
    return this.#finishPart(part);
  }

  #finishPart(part: Buffer): Buffer {
    this.#state = 'boundary';
    this.#length = undefined;
    this.#parts++;
    return part;
  }

  /**
   * Fallback for a part without Content-Length: collect bytes up to the delimiter CRLF + boundary. The
   * delimiter could in principle occur inside JPEG data; with a length this cannot go wrong, which is why the
   * length is preferred. ffmpeg's mpjpeg muxer (4.x, 5.x) always writes Content-length; this path is for
   * other producers. Each piece is searched once (plus the few bytes around its junction with the previous
   * one), and the pieces are joined once, when the delimiter is found.
   */
  #readScan(): Buffer | undefined {
    this.#delimiter ??= Buffer.from(`\r\n${this.#boundary ?? '--'}`, 'latin1');
    const delimiter = this.#delimiter;
    while (this.#chunks.length > 0) {
      const chunk = this.#chunks.shift()!;
      const piece = this.#offset > 0 ? chunk.subarray(this.#offset) : chunk;
      this.#offset = 0;
      // Position of the delimiter in the part's bytes so far, or -1.
      let at = -1;
      if (this.#scanBytes > 0) {
        // A delimiter that starts in the bytes already collected and ends in this piece.
        const tail = lastBytes(this.#scan, Math.min(delimiter.length - 1, this.#scanBytes));
        const j = Buffer.concat([tail, piece.subarray(0, delimiter.length - 1)]).indexOf(delimiter);
        if (j !== -1) at = this.#scanBytes - tail.length + j;
      }
      if (at === -1) {
        const k = piece.indexOf(delimiter);
        if (k !== -1) at = this.#scanBytes + k;
      }
      this.#scan.push(piece);
      this.#scanBytes += piece.length;
      if (at === -1) {
        if (this.#scanBytes > this.#maxPartBytes) {
          throw this.#error(`part without Content-Length exceeds maxPartBytes ${this.#maxPartBytes}`);
        }
        continue;
      }
      const all = this.#scan.length === 1 ? piece : Buffer.concat(this.#scan, this.#scanBytes);
      this.#scan = [];
      this.#scanBytes = 0;
      // The rest, from the CRLF before the boundary, goes back to the input: the boundary state skips it.
      if (at < all.length) this.#chunks.unshift(all.subarray(at));
      return this.#finishPart(all.subarray(0, at));
    }
    return undefined;
  }

  #error(what: string): FramewireError {
    return new FramewireError(ErrorCode.SOURCE_READ, `mpjpeg: ${what} (after ${this.#parts} parts)`, {
      hint: 'the input is not a multipart JPEG stream as ffmpeg -f mpjpeg writes it',
    });
  }
}

/** The last `n` bytes of a list of buffers (n at most their total length). */
function lastBytes(list: readonly Buffer[], n: number): Buffer {
  const out: Buffer[] = [];
  let need = n;
  for (let i = list.length - 1; i >= 0 && need > 0; i--) {
    const b = list[i]!;
    const piece = b.length <= need ? b : b.subarray(b.length - need);
    out.unshift(piece);
    need -= piece.length;
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out);
}
