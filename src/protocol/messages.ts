/**
 * Message shapes of protocol v1 and their encoders. Encoders return the header (and head) in one small
 * Buffer and leave payloads as they are, so a transport can write `[header, payload]` without copying.
 */
import { FramewireError } from '../errors.js';
import {
  ACK_HEAD,
  CLOCK_HEAD,
  CLOCK_REPLY_HEAD,
  type ContentType,
  ContentTypeCode,
  DEFAULT_LIMITS,
  Flags,
  FRAME_HEAD_FIXED,
  HEADER_BYTES,
  MAGIC0,
  MAGIC1,
  MAX_STREAM_ID,
  MESSAGE_CHANNEL,
  MESSAGE_HEAD_FIXED,
  MessageType,
  PING_HEAD,
  type PixelFormat,
  PixelFormatCode,
  PROTOCOL_VERSION,
  type StreamKind,
  type StreamMode,
} from './constants.js';
import { crc32 } from './crc.js';

/** A stream as a sender declares it in HELLO and OPEN. */
export interface StreamDecl {
  /** Connection-local id, 0..65534, used in FRAME and ACK. */
  id: number;
  /** The stream's name; also its folder name on the receiver. */
  name: string;
  kind: StreamKind;
  mode: StreamMode;
  /** Identifies one run of a sender; the receiver keeps resume points per (name, epoch). */
  epoch: string;
}

export interface HelloBody {
  protocol: number;
  /** Free text naming the client software. */
  client: string;
  /** The sender's epoch: also the epoch of its JSON message channel. */
  epoch: string;
  streams: StreamDecl[];
  /** Next message sequence number the sender will use (resume of the message channel). */
  messageSeq?: number;
  /** Present when the sender has a token: its nonce for the challenge-response (hex, 32 bytes). */
  auth?: { nonce: string };
  /** The clock exchange the sender speaks (CLOCK and CLOCK_REPLY), 1; absent in older senders. */
  clock?: number;
}

export interface ResumePoint {
  id: number;
  /** The next sequence number the receiver expects: every frame below it is held. */
  next: number;
}

export interface WelcomeBody {
  protocol: number;
  server: string;
  /** Random id of this connection on the server, for logs. */
  session: string;
  streams: ResumePoint[];
  /** Next message sequence number the receiver expects on the message channel. */
  messageNext: number;
  limits: { maxFrameBytes: number; maxMetaBytes: number; maxMessageBytes: number };
  /** False when the receiver does not check frame CRCs: senders may then send frames flagged NO_CRC. */
  verifyCrc?: boolean;
  /** 1 when the receiver speaks the clock exchange too and the sender announced it: both may send CLOCK. */
  clock?: number;
}

export type OpenBody = StreamDecl;
export type OpenedBody = ResumePoint;

export interface ErrorBody {
  code: string;
  message: string;
  /** Stream id the error concerns. */
  stream?: number;
  /** Frame sequence number the error concerns. */
  seq?: number;
  /** A fatal error ends the connection; a non-fatal one concerns one frame, message or stream. */
  fatal: boolean;
}

/**
 * AUTH, both ways. Receiver → sender: the challenge `{nonce, proof}` where proof proves the receiver knows
 * the token; sender → receiver: `{proof}`. Proofs are HMAC-SHA256 keyed with the token (see
 * src/session/auth.ts); the token itself never crosses the wire.
 */
export interface AuthBody {
  nonce?: string;
  proof: string;
}

export interface ByeBody {
  reason: string;
}

/** A frame as it travels on the wire. */
export interface WireFrame {
  streamId: number;
  seq: number;
  /** Capture time, microseconds since the Unix epoch. */
  captureUs: number;
  contentType: ContentType;
  pixelFormat: PixelFormat;
  /** Width and height in pixels; 0 when unknown. Required for raw frames. */
  width: number;
  height: number;
  /** CRC32 (zlib.crc32) of the payload. */
  crc: number;
  /** The file name, or '' when the frame has none. */
  name: string;
  /** Free JSON metadata; undefined when none was sent. */
  meta: unknown;
  payload: Buffer;
  flags: number;
}

export interface FrameRef {
  stream: string;
  seq: number;
}

export interface WireMessage {
  /** Sequence number on the sender's message channel. */
  seq: number;
  /** The frame this message describes, if any. */
  ref: FrameRef | undefined;
  /** The JSON value. */
  json: unknown;
  /** The JSON text exactly as it was sent. */
  text: string;
  flags: number;
}

export type Message =
  | { type: typeof MessageType.HELLO; body: HelloBody }
  | { type: typeof MessageType.WELCOME; body: WelcomeBody }
  | { type: typeof MessageType.OPEN; body: OpenBody }
  | { type: typeof MessageType.OPENED; body: OpenedBody }
  | { type: typeof MessageType.FRAME; frame: WireFrame }
  | { type: typeof MessageType.MESSAGE; message: WireMessage }
  | { type: typeof MessageType.ACK; stream: number; seq: number }
  | { type: typeof MessageType.ERROR; body: ErrorBody }
  | { type: typeof MessageType.PING; time: number }
  | { type: typeof MessageType.PONG; time: number }
  | { type: typeof MessageType.CLOCK; t1: number }
  | { type: typeof MessageType.CLOCK_REPLY; t1: number; t2: number; t3: number }
  | { type: typeof MessageType.AUTH; body: AuthBody }
  | { type: typeof MessageType.BYE; body: ByeBody };

/** The parts of one encoded message, written in order (under cork) by a transport. */
export type Encoded = Buffer[];

const TWO32 = 2 ** 32;

/** Writes a non-negative safe integer as an unsigned 64-bit big-endian number. */
export function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO32), offset);
  buf.writeUInt32BE(value % TWO32, offset + 4);
}

/** Reads an unsigned 64-bit big-endian number; values above 2^53 are reported by the caller. */
export function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * TWO32 + buf.readUInt32BE(offset + 4);
}

function writeHeader(buf: Buffer, type: number, flags: number, headLen: number, bodyLen: number): void {
  buf[0] = MAGIC0;
  buf[1] = MAGIC1;
  buf[2] = PROTOCOL_VERSION;
  buf[3] = type;
  buf[4] = flags;
  buf[5] = 0;
  buf.writeUInt16BE(headLen, 6);
  buf.writeUInt32BE(bodyLen, 8);
}

function isU16(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= 0xffff;
}

function checkU64(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new FramewireError('ERR_BAD_FRAME', `${what} must be a non-negative safe integer, got ${value}`);
  }
}

/** Encodes a control message whose body is JSON (HELLO, WELCOME, OPEN, OPENED, AUTH, ERROR, BYE). */
export function encodeControl(
  type:
    | typeof MessageType.HELLO
    | typeof MessageType.WELCOME
    | typeof MessageType.OPEN
    | typeof MessageType.OPENED
    | typeof MessageType.AUTH
    | typeof MessageType.ERROR
    | typeof MessageType.BYE,
  body: object,
): Encoded {
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  if (json.length > DEFAULT_LIMITS.maxControlBytes) {
    throw new FramewireError(
      'ERR_MESSAGE_TOO_LARGE',
      `control message of ${json.length} bytes exceeds ${DEFAULT_LIMITS.maxControlBytes}`,
    );
  }
  const buf = Buffer.allocUnsafe(HEADER_BYTES + json.length);
  writeHeader(buf, type, 0, 0, json.length);
  json.copy(buf, HEADER_BYTES);
  return [buf];
}

/** Fields of a frame to encode; the CRC is computed when not given. */
export interface FrameFields {
  streamId: number;
  seq: number;
  captureUs: number;
  contentType: ContentType;
  pixelFormat?: PixelFormat;
  width?: number;
  height?: number;
  name?: string;
  /** Metadata already serialised to JSON text, or undefined for none. */
  metaJson?: string | undefined;
  payload: Buffer;
  crc?: number;
  flags?: number;
}

/**
 * Encodes a FRAME: returns `[header+head, payload]`. The payload Buffer is passed through, not copied.
 */
export function encodeFrame(f: FrameFields): Encoded {
  if (!Number.isInteger(f.streamId) || f.streamId < 0 || f.streamId > MAX_STREAM_ID) {
    throw new FramewireError('ERR_BAD_FRAME', `stream id ${f.streamId} is outside 0..${MAX_STREAM_ID}`);
  }
  checkU64('frame seq', f.seq);
  checkU64('captureUs', f.captureUs);
  const name = f.name ? Buffer.from(f.name, 'utf8') : undefined;
  const meta = f.metaJson !== undefined ? Buffer.from(f.metaJson, 'utf8') : undefined;
  const nameLen = name?.length ?? 0;
  const metaLen = meta?.length ?? 0;
  const headLen = FRAME_HEAD_FIXED + nameLen + metaLen;
  if (headLen > 0xffff) {
    throw new FramewireError(
      'ERR_META_TOO_LARGE',
      `frame name and metadata take ${nameLen + metaLen} bytes; at most ${0xffff - FRAME_HEAD_FIXED} fit`,
    );
  }
  const width = f.width ?? 0;
  const height = f.height ?? 0;
  if (!isU16(width) || !isU16(height)) {
    throw new FramewireError('ERR_BAD_FRAME', `frame size ${width}x${height} is outside 0..65535`);
  }
  const buf = Buffer.allocUnsafe(HEADER_BYTES + headLen);
  writeHeader(buf, MessageType.FRAME, f.flags ?? 0, headLen, f.payload.length);
  let o = HEADER_BYTES;
  buf.writeUInt16BE(f.streamId, o);
  buf[o + 2] = ContentTypeCode[f.contentType];
  buf[o + 3] = PixelFormatCode[f.pixelFormat ?? 'none'];
  buf.writeUInt16BE(width, o + 4);
  buf.writeUInt16BE(height, o + 6);
  writeU64(buf, f.seq, o + 8);
  writeU64(buf, f.captureUs, o + 16);
  buf.writeUInt32BE((f.flags ?? 0) & Flags.NO_CRC ? 0 : (f.crc ?? crc32(f.payload)), o + 24);
  buf.writeUInt16BE(nameLen, o + 28);
  buf.writeUInt16BE(metaLen, o + 30);
  o += FRAME_HEAD_FIXED;
  if (name) o += name.copy(buf, o);
  if (meta) meta.copy(buf, o);
  return f.payload.length > 0 ? [buf, f.payload] : [buf];
}

/** Encodes a JSON MESSAGE. `text` must be valid JSON. */
export function encodeMessage(seq: number, text: string, ref?: FrameRef, flags = 0): Encoded {
  checkU64('message seq', seq);
  const refName = ref ? Buffer.from(ref.stream, 'utf8') : undefined;
  if (refName && refName.length > 0xffff - MESSAGE_HEAD_FIXED) {
    throw new FramewireError('ERR_BAD_FRAME', 'referenced stream name is too long');
  }
  if (ref) checkU64('referenced frame seq', ref.seq);
  const body = Buffer.from(text, 'utf8');
  const headLen = MESSAGE_HEAD_FIXED + (refName?.length ?? 0);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + headLen + body.length);
  writeHeader(buf, MessageType.MESSAGE, flags, headLen, body.length);
  let o = HEADER_BYTES;
  writeU64(buf, seq, o);
  writeU64(buf, ref ? ref.seq : 0, o + 8);
  buf.writeUInt16BE(refName?.length ?? 0, o + 16);
  o += MESSAGE_HEAD_FIXED;
  if (refName) o += refName.copy(buf, o);
  body.copy(buf, o);
  return [buf];
}

/** Encodes an ACK: every frame of `stream` up to and including `seq` is held by the receiver. */
export function encodeAck(stream: number, seq: number): Encoded {
  if (!Number.isInteger(stream) || stream < 0 || stream > MESSAGE_CHANNEL) {
    throw new FramewireError('ERR_BAD_FRAME', `ack stream id ${stream} is outside 0..${MESSAGE_CHANNEL}`);
  }
  checkU64('ack seq', seq);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + ACK_HEAD);
  writeHeader(buf, MessageType.ACK, 0, ACK_HEAD, 0);
  buf.writeUInt16BE(stream, HEADER_BYTES);
  buf.writeUInt16BE(0, HEADER_BYTES + 2);
  writeU64(buf, seq, HEADER_BYTES + 4);
  return [buf];
}

/** Encodes a PING or PONG carrying a time in milliseconds (echoed back by PONG). */
export function encodePing(type: typeof MessageType.PING | typeof MessageType.PONG, time: number): Encoded {
  checkU64('ping time', time);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + PING_HEAD);
  writeHeader(buf, type, 0, PING_HEAD, 0);
  writeU64(buf, time, HEADER_BYTES);
  return [buf];
}

/** Encodes a CLOCK request: `t1`, the requester's wall clock at sending, µs since the Unix epoch. */
export function encodeClock(t1: number): Encoded {
  checkU64('clock t1', t1);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + CLOCK_HEAD);
  writeHeader(buf, MessageType.CLOCK, 0, CLOCK_HEAD, 0);
  writeU64(buf, t1, HEADER_BYTES);
  return [buf];
}

/**
 * Encodes a CLOCK_REPLY: `t1` echoed from the CLOCK, `t2` and `t3` the replier's wall clock (µs) when the
 * CLOCK arrived and when the reply left.
 */
export function encodeClockReply(t1: number, t2: number, t3: number): Encoded {
  checkU64('clock t1', t1);
  checkU64('clock t2', t2);
  checkU64('clock t3', t3);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + CLOCK_REPLY_HEAD);
  writeHeader(buf, MessageType.CLOCK_REPLY, 0, CLOCK_REPLY_HEAD, 0);
  writeU64(buf, t1, HEADER_BYTES);
  writeU64(buf, t2, HEADER_BYTES + 8);
  writeU64(buf, t3, HEADER_BYTES + 16);
  return [buf];
}

/** Concatenates the parts of an encoded message: for tests, vectors and datagram transports. */
export function toBytes(parts: Encoded): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
