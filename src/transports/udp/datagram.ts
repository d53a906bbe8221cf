/**
 * The datagram layout of framewire's UDP layer (docs/protocol.md, "UDP"). Pure functions over Buffers: no
 * sockets, no timers. Every datagram starts with a 12-byte common header — magic "FU", version, type,
 * session id, CRC32 — and the decoders return undefined for anything malformed, so that a receiver drops
 * junk without allocating or throwing. With a token, these layouts are sealed (aead.ts) before they are
 * sent and opened back into them when they arrive, so the decoders here see the same bytes either way.
 */
import { crc32 } from 'node:zlib';

export const UDP_MAGIC0 = 0x46; // 'F'
export const UDP_MAGIC1 = 0x55; // 'U'
export const UDP_VERSION = 1;

/** Bytes of the header every datagram starts with. */
export const COMMON_BYTES = 12;
/** Bytes of a DATA datagram's header, before the fragment. */
export const DATA_HEADER_BYTES = 36;
/** Bytes of an ACK without SACK ranges or dropped message numbers. */
export const ACK_FIXED_BYTES = 40;
/** Bytes of a handshake datagram (all four kinds; a request is padded so that no answer is larger). */
export const HANDSHAKE_BYTES = 32;
/**
 * Bytes of HS_CONFIRM and HS_DONE with a token (flag TOKEN): the 32 bytes above, a 16-byte nonce and a
 * 16-byte proof of the token (aead.ts). HS_DONE is never larger than the HS_CONFIRM it answers.
 */
export const TOKEN_HANDSHAKE_BYTES = 64;

/** Smallest and largest datagram size (`mtu`): the largest is the biggest UDP payload over IPv4. */
export const MIN_MTU = 256;
export const MAX_MTU = 65_507;
/** Fits the ordinary internet path (1280-byte IPv6 minimum, minus IP and UDP headers, minus tunnels). */
export const DEFAULT_MTU = 1200;

export const DatagramType = {
  DATA: 0x01,
  ACK: 0x02,
  NACK: 0x03,
  DROP: 0x04,
  KEEPALIVE: 0x05,
  HS_REQUEST: 0x10,
  HS_COOKIE: 0x11,
  HS_CONFIRM: 0x12,
  HS_DONE: 0x13,
  HS_REFUSED: 0x14,
  CLOSE: 0x1e,
  RESET: 0x1f,
} as const;
export type DatagramType = (typeof DatagramType)[keyof typeof DatagramType];

/** DATA flag bits. */
export const DataFlags = {
  /** The message is live: delivered whole by its deadline, or dropped. */
  LIVE: 0x01,
  /** The datagram is a retransmission. */
  RETRANSMIT: 0x02,
} as const;

/** CLOSE kinds. */
export const CloseKind = {
  /** Everything sent was acknowledged; the sender is done. */
  CLOSE: 0,
  /** Answer to a CLOSE. */
  CLOSE_ACK: 1,
  /** The sender gave up at once (an error, or destroy()). */
  ABORT: 2,
} as const;

/** KEEPALIVE flag: the sender asks for an ACK at once (it is waiting for the receive window to open). */
export const KEEPALIVE_PROBE = 0x01;

/**
 * Bit of the type byte that marks a sealed datagram (encrypted and authenticated with keys derived from the
 * token, aead.ts). Unsealed datagrams never have it.
 */
export const SEALED = 0x80;

/** Handshake flags (u16 at offset 18; 0 without a token, so that the datagrams are those of before). */
export const HandshakeFlags = {
  /** The side has a token: every datagram after the handshake is sealed. */
  TOKEN: 0x0001,
} as const;

/** Why a listener answered HS_CONFIRM with HS_REFUSED (u8 at offset 24). */
export const RefuseReason = {
  /** The listener has a token and the client has none. */
  TOKEN_REQUIRED: 1,
  /** The client has a token and the listener has none. */
  NO_TOKEN: 2,
  /** The client's proof of the token is wrong: the tokens differ. */
  BAD_PROOF: 3,
} as const;

const TWO32 = 2 ** 32;

/**
 * Turns a 32-bit sequence number from the wire into the full number nearest to `ref`, so that counters
 * wrap around after 2^32 without confusing the window.
 */
export function unwrap32(value: number, ref: number): number {
  const base = ref - (ref % TWO32);
  let n = base + value;
  if (n - ref > TWO32 / 2) n -= TWO32;
  else if (ref - n > TWO32 / 2) n += TWO32;
  return n < 0 ? value : n;
}

function wire32(n: number): number {
  return n % TWO32;
}

/** The CRC32 of a datagram given as parts: every byte except the CRC field itself (bytes 8..11). */
export function datagramCrc(parts: readonly Buffer[]): number {
  const head = parts[0]!;
  let c = crc32(head.subarray(0, 8));
  c = crc32(head.subarray(COMMON_BYTES), c);
  for (let i = 1; i < parts.length; i++) c = crc32(parts[i]!, c);
  return c;
}

function writeCommon(buf: Buffer, type: number, session: number): void {
  buf[0] = UDP_MAGIC0;
  buf[1] = UDP_MAGIC1;
  buf[2] = UDP_VERSION;
  buf[3] = type;
  buf.writeUInt32BE(session >>> 0, 4);
  buf.writeUInt32BE(0, 8);
}

/** Writes the CRC of the datagram into its first part (which holds the common header). */
function seal(parts: Buffer[]): Buffer[] {
  parts[0]!.writeUInt32BE(datagramCrc(parts), 8);
  return parts;
}

/** The common header of a datagram, or undefined when it is too short or not framewire UDP version 1. */
export interface Common {
  type: number;
  session: number;
}

/** Checks magic and version only: the cheap test a listener does before anything else. */
export function peekCommon(buf: Buffer): Common | undefined {
  if (buf.length < COMMON_BYTES || buf[0] !== UDP_MAGIC0 || buf[1] !== UDP_MAGIC1 || buf[2] !== UDP_VERSION) {
    return undefined;
  }
  return { type: buf[3]!, session: buf.readUInt32BE(4) };
}

/** True when the datagram's CRC field matches its bytes. */
export function crcOk(buf: Buffer): boolean {
  return buf.length >= COMMON_BYTES && datagramCrc([buf]) === buf.readUInt32BE(8);
}

// ---- DATA ----------------------------------------------------------------------------------------------

export interface DataHeader {
  /** Packet sequence number (low 32 bits on the wire). */
  pkt: number;
  /** Message number in its class (reliable or live; low 32 bits on the wire). */
  msg: number;
  index: number;
  count: number;
  /** Length of the whole message in bytes. */
  length: number;
  flags: number;
  /** Live messages: the latency budget in ms; 0 for reliable messages. */
  budgetMs: number;
}

export interface DataDatagram extends DataHeader {
  /** The fragment's bytes (a view into the datagram). */
  fragment: Buffer;
}

/**
 * Encodes a DATA datagram: `[header, ...fragment parts]`, the fragment parts passed through uncopied.
 * `crc` false leaves the CRC field 0: a datagram that is sealed next needs none (its tag covers it).
 */
export function encodeData(
  session: number,
  h: DataHeader,
  fragment: readonly Buffer[],
  crc = true,
): Buffer[] {
  const head = Buffer.allocUnsafe(DATA_HEADER_BYTES);
  writeCommon(head, DatagramType.DATA, session);
  head.writeUInt32BE(wire32(h.pkt), 12);
  head.writeUInt32BE(wire32(h.msg), 16);
  head.writeUInt32BE(h.index, 20);
  head.writeUInt32BE(h.count, 24);
  head.writeUInt32BE(h.length, 28);
  head[32] = h.flags;
  head[33] = 0;
  head.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.round(h.budgetMs))), 34);
  return crc ? seal([head, ...fragment]) : [head, ...fragment];
}

/** Decodes a DATA datagram (CRC already checked); undefined when its fields do not fit together. */
export function decodeData(buf: Buffer): DataDatagram | undefined {
  if (buf.length < DATA_HEADER_BYTES) return undefined;
  const index = buf.readUInt32BE(20);
  const count = buf.readUInt32BE(24);
  const length = buf.readUInt32BE(28);
  if (count === 0 || index >= count || length === 0 || count > length) return undefined;
  return {
    pkt: buf.readUInt32BE(12),
    msg: buf.readUInt32BE(16),
    index,
    count,
    length,
    flags: buf[32]!,
    budgetMs: buf.readUInt16BE(34),
    fragment: buf.subarray(DATA_HEADER_BYTES),
  };
}

// ---- ACK -----------------------------------------------------------------------------------------------

export interface Ack {
  /** Every packet below this one is received (or given up). */
  cumulative: number;
  /** Bytes the receiver can still take. */
  window: number;
  /** The packet that arrived last, and how long ago (µs) when this ACK left: for round-trip samples. */
  newest: number;
  delayUs: number;
  /** Totals since the connection started: live messages the receiver dropped, fragments repaired. */
  drops: number;
  repairs: number;
  /** Packet ranges [start, end) above `cumulative` that are received. */
  sack: Array<[number, number]>;
  /** Live message numbers the receiver dropped recently (repeated in several ACKs). */
  dropped: number[];
}

export const MAX_SACK_RANGES = 16;
export const MAX_DROPPED_REPORTED = 16;

export function encodeAck(session: number, a: Ack): Buffer {
  const sack = a.sack.slice(0, MAX_SACK_RANGES);
  const dropped = a.dropped.slice(0, MAX_DROPPED_REPORTED);
  const buf = Buffer.allocUnsafe(ACK_FIXED_BYTES + sack.length * 8 + dropped.length * 4);
  writeCommon(buf, DatagramType.ACK, session);
  buf.writeUInt32BE(wire32(a.cumulative), 12);
  buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.floor(a.window))), 16);
  buf.writeUInt32BE(wire32(a.newest), 20);
  buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.round(a.delayUs))), 24);
  buf.writeUInt32BE(wire32(a.drops), 28);
  buf.writeUInt32BE(wire32(a.repairs), 32);
  buf[36] = sack.length;
  buf[37] = dropped.length;
  buf.writeUInt16BE(0, 38);
  let o = ACK_FIXED_BYTES;
  for (const [s, e] of sack) {
    buf.writeUInt32BE(wire32(s), o);
    buf.writeUInt32BE(wire32(e), o + 4);
    o += 8;
  }
  for (const d of dropped) {
    buf.writeUInt32BE(wire32(d), o);
    o += 4;
  }
  return seal([buf])[0]!;
}

export function decodeAck(buf: Buffer): Ack | undefined {
  if (buf.length < ACK_FIXED_BYTES) return undefined;
  const nSack = buf[36]!;
  const nDropped = buf[37]!;
  if (nSack > MAX_SACK_RANGES || nDropped > MAX_DROPPED_REPORTED) return undefined;
  if (buf.length !== ACK_FIXED_BYTES + nSack * 8 + nDropped * 4) return undefined;
  const sack: Array<[number, number]> = [];
  let o = ACK_FIXED_BYTES;
  for (let i = 0; i < nSack; i++, o += 8) sack.push([buf.readUInt32BE(o), buf.readUInt32BE(o + 4)]);
  const dropped: number[] = [];
  for (let i = 0; i < nDropped; i++, o += 4) dropped.push(buf.readUInt32BE(o));
  return {
    cumulative: buf.readUInt32BE(12),
    window: buf.readUInt32BE(16),
    newest: buf.readUInt32BE(20),
    delayUs: buf.readUInt32BE(24),
    drops: buf.readUInt32BE(28),
    repairs: buf.readUInt32BE(32),
    sack,
    dropped,
  };
}

// ---- NACK ----------------------------------------------------------------------------------------------

/** Ranges that fit one NACK of `mtu` bytes. */
export function nackCapacity(mtu: number): number {
  return Math.min(0xffff, Math.floor((mtu - 16) / 8));
}

/** A NACK: packet ranges [start, end) the receiver is missing. */
export function encodeNack(session: number, ranges: ReadonlyArray<readonly [number, number]>): Buffer {
  const buf = Buffer.allocUnsafe(16 + ranges.length * 8);
  writeCommon(buf, DatagramType.NACK, session);
  buf.writeUInt16BE(ranges.length, 12);
  buf.writeUInt16BE(0, 14);
  let o = 16;
  for (const [s, e] of ranges) {
    buf.writeUInt32BE(wire32(s), o);
    buf.writeUInt32BE(wire32(e), o + 4);
    o += 8;
  }
  return seal([buf])[0]!;
}

export function decodeNack(buf: Buffer): Array<[number, number]> | undefined {
  if (buf.length < 16) return undefined;
  const n = buf.readUInt16BE(12);
  if (buf.length !== 16 + n * 8) return undefined;
  const out: Array<[number, number]> = [];
  for (let i = 0, o = 16; i < n; i++, o += 8) out.push([buf.readUInt32BE(o), buf.readUInt32BE(o + 4)]);
  return out;
}

// ---- DROP ----------------------------------------------------------------------------------------------

/** DROP: the sender gave up live message `msg`, which used packets [first, end). */
export interface Drop {
  first: number;
  end: number;
  msg: number;
}

export function encodeDrop(session: number, d: Drop): Buffer {
  const buf = Buffer.allocUnsafe(24);
  writeCommon(buf, DatagramType.DROP, session);
  buf.writeUInt32BE(wire32(d.first), 12);
  buf.writeUInt32BE(wire32(d.end), 16);
  buf.writeUInt32BE(wire32(d.msg), 20);
  return seal([buf])[0]!;
}

export function decodeDrop(buf: Buffer): Drop | undefined {
  if (buf.length !== 24) return undefined;
  return { first: buf.readUInt32BE(12), end: buf.readUInt32BE(16), msg: buf.readUInt32BE(20) };
}

// ---- KEEPALIVE, CLOSE, RESET ---------------------------------------------------------------------------

export function encodeKeepalive(session: number, flags = 0): Buffer {
  const buf = Buffer.allocUnsafe(16);
  writeCommon(buf, DatagramType.KEEPALIVE, session);
  buf[12] = flags;
  buf.fill(0, 13, 16);
  return seal([buf])[0]!;
}

export function decodeKeepalive(buf: Buffer): { flags: number } | undefined {
  return buf.length === 16 ? { flags: buf[12]! } : undefined;
}

export function encodeClose(session: number, kind: number): Buffer {
  const buf = Buffer.allocUnsafe(16);
  writeCommon(buf, DatagramType.CLOSE, session);
  buf[12] = kind;
  buf.fill(0, 13, 16);
  return seal([buf])[0]!;
}

export function decodeClose(buf: Buffer): { kind: number } | undefined {
  return buf.length === 16 && buf[12]! <= CloseKind.ABORT ? { kind: buf[12]! } : undefined;
}

/** RESET: "I know no session with this id" (a restarted or closed receiver). Carries the session id. */
export function encodeReset(session: number): Buffer {
  const buf = Buffer.allocUnsafe(COMMON_BYTES);
  writeCommon(buf, DatagramType.RESET, session);
  return seal([buf])[0]!;
}

// ---- handshake -----------------------------------------------------------------------------------------

export interface Handshake {
  /** Random, chosen by the client, echoed in every answer. */
  nonce: number;
  /** Largest datagram the side sends and accepts (after negotiation: the smaller of both). */
  mtu: number;
  /** The side's socket receive buffer in bytes, as the OS reports it. */
  rcvbuf: number;
}

export type HandshakeType =
  | typeof DatagramType.HS_REQUEST
  | typeof DatagramType.HS_COOKIE
  | typeof DatagramType.HS_CONFIRM
  | typeof DatagramType.HS_DONE
  | typeof DatagramType.HS_REFUSED;

/** The token part of a handshake datagram; absent (all 0) without a token. */
export interface HandshakeExtra {
  /** HandshakeFlags. */
  flags?: number;
  /** HS_REFUSED: a RefuseReason. */
  reason?: number;
  /**
   * HS_CONFIRM and HS_DONE with flag TOKEN: the side's 16-byte nonce (client nonce, server nonce). The
   * datagram is then 64 bytes, and `prove` gives the 16-byte proof of the bytes it covers (all but the
   * CRC field and the proof itself).
   */
  nonce16?: Buffer;
  prove?: (covered: readonly Buffer[]) => Buffer;
}

export function encodeHandshake(
  type: HandshakeType,
  session: number,
  h: Handshake,
  x?: HandshakeExtra,
): Buffer {
  const buf = Buffer.alloc(x?.nonce16 ? TOKEN_HANDSHAKE_BYTES : HANDSHAKE_BYTES);
  writeCommon(buf, type, session);
  buf.writeUInt32BE(h.nonce >>> 0, 12);
  buf.writeUInt16BE(Math.min(0xffff, h.mtu), 16);
  buf.writeUInt16BE(x?.flags ?? 0, 18);
  buf.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.floor(h.rcvbuf))), 20);
  buf[24] = x?.reason ?? 0;
  if (x?.nonce16) {
    x.nonce16.copy(buf, 32, 0, 16);
    if (x.prove) x.prove(handshakeCovered(buf)).copy(buf, 48, 0, 16);
  }
  return seal([buf])[0]!;
}

/** The bytes a handshake proof covers: all but the CRC field (8–11) and the proof (48–63). */
export function handshakeCovered(buf: Buffer): Buffer[] {
  return [buf.subarray(0, 8), buf.subarray(COMMON_BYTES, 48)];
}

/** Decodes a handshake datagram (CRC already checked): 32 bytes, or 64 with flag TOKEN. */
export function decodeHandshake(buf: Buffer): Handshake | undefined {
  if (buf.length !== HANDSHAKE_BYTES) {
    if (buf.length !== TOKEN_HANDSHAKE_BYTES || (buf.readUInt16BE(18) & HandshakeFlags.TOKEN) === 0) {
      return undefined;
    }
  }
  const mtu = buf.readUInt16BE(16);
  if (mtu < MIN_MTU) return undefined;
  return { nonce: buf.readUInt32BE(12), mtu, rcvbuf: buf.readUInt32BE(20) };
}

/** The token part of a handshake datagram that decodeHandshake accepted. */
export function decodeHandshakeExtra(buf: Buffer): {
  flags: number;
  reason: number;
  nonce16?: Buffer;
  proof?: Buffer;
} {
  const flags = buf.readUInt16BE(18);
  const reason = buf[24]!;
  if (buf.length < TOKEN_HANDSHAKE_BYTES) return { flags, reason };
  return { flags, reason, nonce16: buf.subarray(32, 48), proof: buf.subarray(48, 64) };
}
