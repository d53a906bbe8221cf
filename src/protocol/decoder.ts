/**
 * A streaming decoder for protocol v1 that owns no socket: bytes go in with `write(chunk)`, whole messages
 * come out through the callback. State is kept between chunks; it slices views of the input and copies only
 * when a header, head or payload straddles chunks. Lengths are checked against the limits before anything
 * is allocated, so memory stays bounded by the limits whatever a peer announces.
 *
 * `writeLent(chunk)` takes bytes that are only lent for the call (a socket's one read buffer, reused for
 * the next read): whatever the decoder keeps of them (a frame's payload, the start of a message) is copied
 * before it returns.
 */
import { type ErrorCode, FramewireError } from '../errors.js';
import {
  ACK_HEAD,
  CLOCK_HEAD,
  CLOCK_REPLY_HEAD,
  CONTENT_TYPES,
  DEFAULT_LIMITS,
  Flags,
  FRAME_HEAD_FIXED,
  HEADER_BYTES,
  type Limits,
  MAGIC0,
  MAGIC1,
  MESSAGE_HEAD_FIXED,
  MessageType,
  messageTypeName,
  PING_HEAD,
  PIXEL_FORMATS,
  PROTOCOL_VERSION,
} from './constants.js';
import { crc32 } from './crc.js';
import type { FrameBufferPool } from './frame-buffers.js';
import { type Message, readU64 } from './messages.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/**
 * Held chunks of one unfinished message beyond which it is gathered into one buffer of its announced
 * size (already checked against the limits). Every held chunk costs about 100 bytes of heap besides its
 * data, so a peer trickling a large frame in tiny chunks would otherwise cost far more than the limits.
 */
const MAX_HELD_CHUNKS = 16;

function fail(code: ErrorCode, message: string): never {
  throw new FramewireError(code, `decoder: ${message}`);
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return fail('ERR_BAD_JSON', `${what} is not valid JSON (${(err as Error).message})`);
  }
}

function parseObject(bytes: Buffer, what: string): Record<string, unknown> {
  const v = parseJson(bytes, what);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    fail('ERR_BAD_JSON', `${what} must be a JSON object`);
  }
  return v as Record<string, unknown>;
}

function u64(buf: Buffer, offset: number, what: string): number {
  const v = readU64(buf, offset);
  if (v > MAX_SAFE) fail('ERR_BAD_HEADER', `${what} ${v} exceeds 2^53-1`);
  return v;
}

export type MessageHandler = (msg: Message) => void;

/**
 * The bound on what the decoders of one receiver hold of partly received messages, all together (bytes,
 * by each message's announced size). A decoder takes its share when a message it reads stays incomplete
 * at the end of a chunk (never for a message that arrives whole) and gives it back when the message
 * completes, or the decoder fails or is disposed.
 */
export class PartialBudget {
  /** Bytes held now. */
  used = 0;
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
}

/** What a receiver session may change of its connection's decoder (Connection.intake). */
export interface DecoderIntake {
  restrict(maxControlBytes: number, why: string): void;
  admitAll(): void;
  useBudget(budget: PartialBudget): void;
}

export interface DecoderOptions {
  /**
   * Check every frame's payload against its CRC32 (default true). A receiver may turn it off where the
   * transport guarantees integrity itself (TLS authenticates every record); frames flagged NO_CRC are
   * accepted only then.
   */
  verifyCrc?: boolean;
  /**
   * Where the buffers of messages gathered from several chunks (and of frame payloads copied out of lent
   * chunks) come from; the receiver gives a frame's buffer back once done with it. Default: a new buffer
   * each time.
   */
  frameBuffers?: FrameBufferPool | undefined;
}

export class Decoder implements DecoderIntake {
  readonly limits: Limits;
  private readonly onMessage: MessageHandler;
  private chunks: Buffer[] = [];
  private buffered = 0;
  // current message, once its header is read
  private type = -1;
  private flags = 0;
  private headLen = 0;
  private bodyLen = 0;
  private failed: FramewireError | undefined;
  // the head and body of the current message being gathered in place, once it arrived in many chunks
  private assembly: Buffer | undefined;
  private assembled = 0;
  /** While restricted (>= 0): the largest control body accepted, and no FRAME or MESSAGE at all. */
  private controlOnly = -1;
  private restrictedWhy = '';
  private budget: PartialBudget | undefined;
  /** Bytes of the current message taken from the budget. */
  private held = 0;
  /** During writeLent(): the memory of the lent chunk, which nothing may keep after the call. */
  private lent: ArrayBufferLike | undefined;

  /** Whether frame payloads are checked against their CRC32; see {@link DecoderOptions.verifyCrc}. */
  readonly verifyCrc: boolean;
  private readonly pool: FrameBufferPool | undefined;

  constructor(onMessage: MessageHandler, limits: Partial<Limits> = {}, options: DecoderOptions = {}) {
    this.onMessage = onMessage;
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.verifyCrc = options.verifyCrc ?? true;
    this.pool = options.frameBuffers;
  }

  /** A buffer of `n` bytes for a message (or payload) being gathered. */
  private alloc(n: number): Buffer {
    return this.pool ? this.pool.take(n) : Buffer.allocUnsafe(n);
  }

  /**
   * Until {@link admitAll}: only control messages (and the fixed-size PING, PONG, ACK, CLOCK) with a body
   * of at most `maxControlBytes`; a FRAME or MESSAGE header fails with ERR_EARLY_DATA from its 12 bytes,
   * before anything is reserved for it. A receiver restricts a connection until its handshake is done
   * (`why` says what it waits for, for the error message).
   */
  restrict(maxControlBytes: number, why: string): void {
    this.controlOnly = Math.max(0, maxControlBytes);
    this.restrictedWhy = why;
  }

  /** Lifts {@link restrict}: the limits alone apply again. */
  admitAll(): void {
    this.controlOnly = -1;
  }

  /**
   * Shares `budget` with other decoders: a message that stays incomplete takes its announced size from it,
   * and fails with ERR_RECEIVER_BUSY when that would exceed the budget.
   */
  useBudget(budget: PartialBudget): void {
    this.releaseHeld();
    this.budget = budget;
  }

  /** Gives back what this decoder holds of the budget (the connection is gone). */
  dispose(): void {
    this.releaseHeld();
    this.chunks = [];
    this.buffered = 0;
    this.assembly = undefined;
  }

  private releaseHeld(): void {
    if (this.held !== 0 && this.budget !== undefined) this.budget.used -= this.held;
    this.held = 0;
  }

  private hold(total: number): void {
    const b = this.budget!;
    if (b.used + total > b.max) {
      fail(
        'ERR_RECEIVER_BUSY',
        `${messageTypeName(this.type)} of ${total} bytes would take the partly received messages of all connections over maxPartialBytes ${b.max} (${b.used} held); try again`,
      );
    }
    b.used += total;
    this.held = total;
  }

  /** Bytes held that do not yet form a whole message. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /**
   * Feeds bytes in. Calls the handler once per whole message, in order. Throws a FramewireError on malformed
   * input; after that the decoder stays failed and every later call throws the same error.
   */
  write(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.feed(chunk);
  }

  /**
   * As {@link write}, for bytes lent only for the call: frame payloads in `chunk` are copied before they
   * reach the handler, and the start of a message it leaves unfinished is copied (into a buffer of the
   * message's announced size, once its header is read), so nothing refers to `chunk` afterwards.
   */
  writeLent(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.lent = chunk.buffer;
    try {
      this.feed(chunk);
      if (this.buffered > 0 && this.assembly === undefined) this.keepLent();
    } finally {
      this.lent = undefined;
    }
  }

  private copyOut(b: Buffer): Buffer {
    const out = this.alloc(b.length);
    b.copy(out);
    return out;
  }

  /** Copies what is held of an unfinished message out of the lent chunk. */
  private keepLent(): void {
    if (this.chunks.every((c) => c.buffer !== this.lent)) return;
    if (this.type === -1) {
      // Less than a header: a few bytes.
      this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    } else {
      this.startAssembly(this.headLen + this.bodyLen);
    }
  }

  private feed(chunk: Buffer): void {
    try {
      let rest = chunk;
      if (this.assembly !== undefined) {
        const a = this.assembly;
        const n = rest.copy(a, this.assembled);
        this.assembled += n;
        this.buffered += n;
        if (this.assembled < a.length) return;
        // Complete: drain() takes the head and the body as views of the assembly.
        this.assembly = undefined;
        this.chunks = [a];
        rest = rest.subarray(n);
      }
      if (rest.length > 0) {
        this.chunks.push(rest);
        this.buffered += rest.length;
      }
      this.drain();
    } catch (err) {
      this.failed =
        err instanceof FramewireError
          ? err
          : new FramewireError('ERR_PROTOCOL', `decoder: ${String(err)}`, { cause: err });
      this.dispose();
      throw this.failed;
    }
  }

  /** Declares the end of input: throws ERR_TRUNCATED when a message was cut short. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.buffered > 0 || this.type !== -1) {
      const what = this.type === -1 ? 'header' : `${messageTypeName(this.type)} message`;
      this.failed = new FramewireError(
        'ERR_TRUNCATED',
        `decoder: input ended inside a ${what} (${this.buffered} bytes left over)`,
      );
      this.dispose();
      throw this.failed;
    }
  }

  private drain(): void {
    for (;;) {
      if (this.type === -1) {
        // Check the magic as soon as the first bytes arrive, so garbage fails fast.
        // The second byte may sit in the next chunk when input arrives byte by byte.
        const first = this.chunks[0]!;
        const second = first.length > 1 ? first[1] : this.chunks[1]?.[0];
        if (first[0] !== MAGIC0 || (second !== undefined && second !== MAGIC1)) {
          this.badMagic(second === undefined ? first : Buffer.from([first[0]!, second]));
        }
        if (this.buffered < HEADER_BYTES) return;
        this.readHeader(this.take(HEADER_BYTES));
      }
      const total = this.headLen + this.bodyLen;
      if (this.buffered < total) {
        if (this.held === 0 && this.budget !== undefined) this.hold(total);
        if (this.chunks.length > MAX_HELD_CHUNKS) this.startAssembly(total);
        return;
      }
      if (this.held !== 0) this.releaseHeld();
      const head = this.take(this.headLen);
      const body = this.take(this.bodyLen);
      const type = this.type;
      const flags = this.flags;
      this.type = -1;
      this.onMessage(this.parse(type, flags, head, body));
      if (this.buffered === 0) return;
    }
  }

  /** Moves the held bytes of the current message (all of them: it is incomplete) into one buffer (owned). */
  private startAssembly(total: number): void {
    const a = this.alloc(total);
    let filled = 0;
    for (const c of this.chunks) filled += c.copy(a, filled);
    this.chunks = [];
    this.assembly = a;
    this.assembled = filled;
  }

  private badMagic(first: Buffer): never {
    const shown = first.subarray(0, 2).toString('hex');
    return fail('ERR_BAD_MAGIC', `expected magic 4657 ("FW"), got ${shown}`);
  }

  /** Removes n bytes from the front: a view when they lie in one chunk, a copy otherwise. */
  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = this.alloc(n);
    let filled = 0;
    // Chunks used up are dropped with one splice at the end: a shift() per chunk is quadratic when a
    // large frame arrives in many small chunks.
    let used = 0;
    while (filled < n) {
      const c = this.chunks[used]!;
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        used++;
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[used] = c.subarray(want);
        filled = n;
      }
    }
    this.chunks.splice(0, used);
    return out;
  }

  private readHeader(h: Buffer): void {
    if (h[0] !== MAGIC0 || h[1] !== MAGIC1) this.badMagic(h);
    const version = h[2]!;
    if (version !== PROTOCOL_VERSION) {
      fail('ERR_UNSUPPORTED_VERSION', `protocol version ${version} is not supported (this side speaks 1)`);
    }
    const type = h[3]!;
    const reserved = h[5]!;
    const headLen = h.readUInt16BE(6);
    const bodyLen = h.readUInt32BE(8);
    if (reserved !== 0) fail('ERR_BAD_HEADER', `reserved byte is ${reserved}, must be 0`);
    const L = this.limits;
    switch (type) {
      case MessageType.HELLO:
      case MessageType.WELCOME:
      case MessageType.OPEN:
      case MessageType.OPENED:
      case MessageType.AUTH:
      case MessageType.ERROR:
      case MessageType.BYE:
        if (headLen !== 0) {
          fail('ERR_BAD_HEADER', `${messageTypeName(type)} has head length ${headLen}, must be 0`);
        }
        if (bodyLen > L.maxControlBytes || (this.controlOnly >= 0 && bodyLen > this.controlOnly)) {
          const max =
            this.controlOnly >= 0 ? Math.min(this.controlOnly, L.maxControlBytes) : L.maxControlBytes;
          fail(
            'ERR_MESSAGE_TOO_LARGE',
            `${messageTypeName(type)} of ${bodyLen} bytes exceeds maxControlBytes ${max}`,
          );
        }
        break;
      case MessageType.FRAME:
        if (this.controlOnly >= 0) this.early(type, bodyLen);
        if (headLen < FRAME_HEAD_FIXED) {
          fail('ERR_BAD_HEADER', `FRAME head length ${headLen} is below ${FRAME_HEAD_FIXED}`);
        }
        if (headLen - FRAME_HEAD_FIXED > L.maxMetaBytes + 1024) {
          fail('ERR_META_TOO_LARGE', `frame head of ${headLen} bytes exceeds maxMetaBytes ${L.maxMetaBytes}`);
        }
        if (bodyLen > L.maxFrameBytes) {
          fail('ERR_FRAME_TOO_LARGE', `frame of ${bodyLen} bytes exceeds maxFrameBytes ${L.maxFrameBytes}`);
        }
        break;
      case MessageType.MESSAGE:
        if (this.controlOnly >= 0) this.early(type, bodyLen);
        if (headLen < MESSAGE_HEAD_FIXED) {
          fail('ERR_BAD_HEADER', `MESSAGE head length ${headLen} is below ${MESSAGE_HEAD_FIXED}`);
        }
        if (bodyLen > L.maxMessageBytes) {
          fail(
            'ERR_MESSAGE_TOO_LARGE',
            `message of ${bodyLen} bytes exceeds maxMessageBytes ${L.maxMessageBytes}`,
          );
        }
        break;
      case MessageType.ACK:
        if (headLen !== ACK_HEAD || bodyLen !== 0) {
          fail(
            'ERR_BAD_HEADER',
            `ACK must have head length ${ACK_HEAD} and no body, got ${headLen}/${bodyLen}`,
          );
        }
        break;
      case MessageType.PING:
      case MessageType.PONG:
        if (headLen !== PING_HEAD || bodyLen !== 0) {
          fail('ERR_BAD_HEADER', `${messageTypeName(type)} must have head length ${PING_HEAD} and no body`);
        }
        break;
      case MessageType.CLOCK:
      case MessageType.CLOCK_REPLY: {
        const want = type === MessageType.CLOCK ? CLOCK_HEAD : CLOCK_REPLY_HEAD;
        if (headLen !== want || bodyLen !== 0) {
          fail('ERR_BAD_HEADER', `${messageTypeName(type)} must have head length ${want} and no body`);
        }
        break;
      }
      default:
        fail('ERR_UNKNOWN_TYPE', `unknown message type 0x${type.toString(16).padStart(2, '0')}`);
    }
    this.type = type;
    this.flags = h[4]!;
    this.headLen = headLen;
    this.bodyLen = bodyLen;
  }

  private early(type: number, bodyLen: number): never {
    return fail(
      'ERR_EARLY_DATA',
      `${messageTypeName(type)} of ${bodyLen} bytes before ${this.restrictedWhy || 'the handshake is done'}; refused unread`,
    );
  }

  private parse(type: number, flags: number, head: Buffer, body: Buffer): Message {
    switch (type) {
      case MessageType.HELLO:
        return { type, body: parseObject(body, 'HELLO body') as never };
      case MessageType.WELCOME:
        return { type, body: parseObject(body, 'WELCOME body') as never };
      case MessageType.OPEN:
        return { type, body: parseObject(body, 'OPEN body') as never };
      case MessageType.OPENED:
        return { type, body: parseObject(body, 'OPENED body') as never };
      case MessageType.AUTH:
        return { type, body: parseObject(body, 'AUTH body') as never };
      case MessageType.ERROR:
        return { type, body: parseObject(body, 'ERROR body') as never };
      case MessageType.BYE:
        return { type, body: parseObject(body, 'BYE body') as never };
      case MessageType.FRAME:
        // A payload in a lent chunk is copied: the handler and the sinks may keep it.
        return {
          type,
          frame: this.parseFrame(flags, head, body.buffer === this.lent ? this.copyOut(body) : body),
        };
      case MessageType.MESSAGE: {
        const seq = u64(head, 0, 'message seq');
        const refSeq = u64(head, 8, 'referenced seq');
        const refLen = head.readUInt16BE(16);
        if (MESSAGE_HEAD_FIXED + refLen !== head.length) {
          fail('ERR_BAD_HEADER', `MESSAGE head is ${head.length} bytes but names ${refLen} bytes of stream`);
        }
        const ref =
          refLen > 0 ? { stream: head.toString('utf8', MESSAGE_HEAD_FIXED), seq: refSeq } : undefined;
        const text = body.toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch (err) {
          fail('ERR_BAD_JSON', `message body is not valid JSON (${(err as Error).message})`);
        }
        return { type, message: { seq, ref, json, text, flags } };
      }
      case MessageType.ACK:
        return { type, stream: head.readUInt16BE(0), seq: u64(head, 4, 'ack seq') };
      case MessageType.PING:
      case MessageType.PONG:
        return { type, time: u64(head, 0, 'ping time') };
      case MessageType.CLOCK:
        return { type, t1: u64(head, 0, 'clock t1') };
      case MessageType.CLOCK_REPLY:
        return {
          type,
          t1: u64(head, 0, 'clock t1'),
          t2: u64(head, 8, 'clock t2'),
          t3: u64(head, 16, 'clock t3'),
        };
      default:
        return fail('ERR_UNKNOWN_TYPE', `unknown message type ${type}`);
    }
  }

  private parseFrame(flags: number, head: Buffer, payload: Buffer) {
    const ct = CONTENT_TYPES[head[2]!];
    if (ct === undefined) fail('ERR_BAD_HEADER', `unknown content type code ${head[2]}`);
    const pf = PIXEL_FORMATS[head[3]!];
    if (pf === undefined) fail('ERR_BAD_HEADER', `unknown pixel format code ${head[3]}`);
    const nameLen = head.readUInt16BE(28);
    const metaLen = head.readUInt16BE(30);
    if (FRAME_HEAD_FIXED + nameLen + metaLen !== head.length) {
      fail(
        'ERR_BAD_HEADER',
        `FRAME head is ${head.length} bytes but declares name ${nameLen} and metadata ${metaLen}`,
      );
    }
    if (metaLen > this.limits.maxMetaBytes) {
      fail(
        'ERR_META_TOO_LARGE',
        `frame metadata of ${metaLen} bytes exceeds maxMetaBytes ${this.limits.maxMetaBytes}`,
      );
    }
    const crc = head.readUInt32BE(24);
    const seq = u64(head, 8, 'frame seq');
    if (this.verifyCrc) {
      if (flags & Flags.NO_CRC) {
        fail('ERR_BAD_HEADER', `frame ${seq} carries no CRC, but this side verifies CRCs`);
      }
      const actual = crc32(payload);
      if (actual !== crc) {
        fail(
          'ERR_CRC_MISMATCH',
          `frame ${seq} of stream ${head.readUInt16BE(0)}: payload CRC32 is ${hex32(actual)}, header says ${hex32(crc)}`,
        );
      }
    }
    const name = nameLen > 0 ? head.toString('utf8', FRAME_HEAD_FIXED, FRAME_HEAD_FIXED + nameLen) : '';
    const meta =
      metaLen > 0
        ? parseJson(head.subarray(FRAME_HEAD_FIXED + nameLen), `metadata of frame ${seq}`)
        : undefined;
    return {
      streamId: head.readUInt16BE(0),
      contentType: ct,
      pixelFormat: pf,
      width: head.readUInt16BE(4),
      height: head.readUInt16BE(6),
      seq,
      captureUs: u64(head, 16, 'capture time'),
      crc,
      name,
      meta,
      payload,
      flags,
    };
  }
}

function hex32(n: number): string {
  return n.toString(16).padStart(8, '0');
}
