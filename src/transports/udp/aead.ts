/**
 * Sealed datagrams: what udp:// does with a token (docs/protocol.md, "Sealed datagrams"). Every datagram
 * after the handshake is encrypted and authenticated with AES-256-GCM, one key per direction, derived with
 * HKDF-SHA256 from the token and both sides' handshake nonces, so that no two connections share a key. The
 * IV is a per-direction prefix and a 64-bit counter that goes up by one for every datagram sent (a
 * retransmission or an ACK included), so that no IV is ever used twice with one key; the receiver refuses a
 * counter it has seen (a replay) before it spends anything on the datagram.
 *
 * The sealed layout keeps the clear header a receiver dispatches on, and authenticates it:
 *
 *   0  magic "FU", version 1, type | SEALED, session id      (as unsealed, bytes 0–7)
 *   8  counter, u64                                          (in the place of the CRC, which a tag replaces)
 *   16 the body of the unsealed datagram (its bytes 12–end), encrypted
 *   .. 16-byte tag; bytes 0–15 are the additional authenticated data
 *
 * Pure functions over Buffers and one small class; no sockets, no timers.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { COMMON_BYTES, SEALED } from './datagram.js';

/** Clear header of a sealed datagram: the unsealed one's first 8 bytes and the counter. */
export const SEALED_HEADER_BYTES = 16;
export const TAG_BYTES = 16;
/** Bytes a sealed datagram has beyond the unsealed one: 4 more of header, 16 of tag. */
export const SEAL_OVERHEAD = SEALED_HEADER_BYTES + TAG_BYTES - COMMON_BYTES;
/** Counters a receiver remembers behind the highest it has seen; older ones are refused as replays. */
export const REPLAY_WINDOW = 4096;
/** Handshake nonces with a token (client nonce in HS_CONFIRM, server nonce in HS_DONE). */
export const NONCE16_BYTES = 16;
/** Bytes of a handshake proof (truncated HMAC-SHA256). */
export const PROOF_BYTES = 16;

const CIPHER = 'aes-256-gcm';
const TWO32 = 2 ** 32;
/** Counters stay exact JavaScript numbers; at a million datagrams a second this lasts 285 years. */
const MAX_COUNTER = Number.MAX_SAFE_INTEGER;

/** The key and IV prefix of one direction. */
export interface DirectionKey {
  key: Buffer;
  ivPrefix: Buffer;
}

export interface SessionKeys {
  /** Client to server. */
  c2s: DirectionKey;
  /** Server to client. */
  s2c: DirectionKey;
}

/**
 * HKDF-SHA256 with the token as input keying material and salt = client nonce || server nonce; info
 * "framewire-udp-v1 c2s" or "… s2c"; 36 bytes per direction: a 32-byte key, then a 4-byte IV prefix.
 */
export function deriveKeys(token: string, clientNonce: Buffer, serverNonce: Buffer): SessionKeys {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const one = (dir: string): DirectionKey => {
    const okm = Buffer.from(hkdfSync('sha256', token, salt, `framewire-udp-v1 ${dir}`, 36));
    return { key: okm.subarray(0, 32), ivPrefix: okm.subarray(32, 36) };
  };
  return { c2s: one('c2s'), s2c: one('s2c') };
}

function ivOf(k: DirectionKey, header: Buffer): Buffer {
  const iv = Buffer.allocUnsafe(12);
  k.ivPrefix.copy(iv, 0, 0, 4);
  header.copy(iv, 4, 8, 16);
  return iv;
}

/**
 * Seals one datagram given as parts in the unsealed layout (the first part holds the 12-byte common
 * header; its CRC field is ignored). Returns the parts of the sealed datagram: header, ciphertext, tag.
 */
export function sealDatagram(k: DirectionKey, counter: number, parts: readonly Buffer[]): Buffer[] {
  const head = parts[0]!;
  const h = Buffer.allocUnsafe(SEALED_HEADER_BYTES);
  head.copy(h, 0, 0, 8);
  h[3] = head[3]! | SEALED;
  h.writeUInt32BE(Math.floor(counter / TWO32), 8);
  h.writeUInt32BE(counter >>> 0, 12);
  const c = createCipheriv(CIPHER, k.key, ivOf(k, h), { authTagLength: TAG_BYTES });
  c.setAAD(h);
  const out = [h];
  if (head.length > COMMON_BYTES) out.push(c.update(head.subarray(COMMON_BYTES)));
  for (let i = 1; i < parts.length; i++) out.push(c.update(parts[i]!));
  const fin = c.final();
  if (fin.length > 0) out.push(fin);
  out.push(c.getAuthTag());
  return out;
}

/** The counter of a sealed datagram; undefined when it is too short to be one. */
export function sealedCounter(buf: Buffer): number | undefined {
  if (buf.length < SEALED_HEADER_BYTES + TAG_BYTES) return undefined;
  const hi = buf.readUInt32BE(8);
  if (hi > 0x1f_ffff) return undefined;
  return hi * TWO32 + buf.readUInt32BE(12);
}

/**
 * Opens a sealed datagram: the datagram in the unsealed layout (type without SEALED, CRC field 0), or
 * undefined when the tag does not match (forged, changed, another key).
 */
export function openDatagram(k: DirectionKey, buf: Buffer): Buffer | undefined {
  if (buf.length < SEALED_HEADER_BYTES + TAG_BYTES) return undefined;
  const header = buf.subarray(0, SEALED_HEADER_BYTES);
  const d = createDecipheriv(CIPHER, k.key, ivOf(k, header), { authTagLength: TAG_BYTES });
  d.setAAD(header);
  d.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
  const body = d.update(buf.subarray(SEALED_HEADER_BYTES, buf.length - TAG_BYTES));
  try {
    d.final();
  } catch {
    return undefined;
  }
  const out = Buffer.allocUnsafe(COMMON_BYTES + body.length);
  buf.copy(out, 0, 0, 8);
  out[3] = out[3]! & ~SEALED;
  out.writeUInt32BE(0, 8);
  body.copy(out, COMMON_BYTES);
  return out;
}

/**
 * Which counters were seen: the highest, and a bitmap of the REPLAY_WINDOW counters up to it. A counter
 * above the highest is new; one at least REPLAY_WINDOW below it is refused (it cannot be told from a
 * replay); one in between is new when its bit is clear.
 */
export class ReplayWindow {
  private highest = -1;
  private readonly bits: Uint32Array;

  constructor(private readonly size = REPLAY_WINDOW) {
    this.bits = new Uint32Array(size / 32);
  }

  /** True when the counter was not seen and is recent enough to tell. */
  fresh(n: number): boolean {
    if (n > this.highest) return true;
    if (this.highest - n >= this.size) return false;
    const i = n % this.size;
    return (this.bits[i >>> 5]! & (1 << (i & 31))) === 0;
  }

  /** Records a counter (only once its datagram proved authentic: a forgery must not move the window). */
  mark(n: number): void {
    if (n > this.highest) {
      if (n - this.highest >= this.size) this.bits.fill(0);
      else {
        for (let m = this.highest + 1; m < n; m++) {
          const i = m % this.size;
          this.bits[i >>> 5]! &= ~(1 << (i & 31));
        }
      }
      this.highest = n;
    }
    const i = n % this.size;
    this.bits[i >>> 5]! |= 1 << (i & 31);
  }
}

/** What `open` found wrong. */
export const REPLAYED = 'replayed';
export const UNAUTHENTIC = 'unauthentic';

/** One connection's sealing: its send counter, its two keys and the replay window of what it receives. */
export class DatagramCrypto {
  private counter = 0;
  private readonly window = new ReplayWindow();

  constructor(
    private readonly tx: DirectionKey,
    private readonly rx: DirectionKey,
  ) {}

  /** The side of a connection: the client sends with c2s, the server with s2c. */
  static forSide(keys: SessionKeys, side: 'client' | 'server'): DatagramCrypto {
    return side === 'client'
      ? new DatagramCrypto(keys.c2s, keys.s2c)
      : new DatagramCrypto(keys.s2c, keys.c2s);
  }

  /** Datagrams sealed so far (the next counter). */
  get sent(): number {
    return this.counter;
  }

  /** Seals with the next counter; undefined once the counters ran out (never reused). */
  seal(parts: readonly Buffer[]): Buffer[] | undefined {
    if (this.counter >= MAX_COUNTER) return undefined;
    return sealDatagram(this.tx, this.counter++, parts);
  }

  /** Checks the counter (cheap), then the tag; the opened datagram, or why it was refused. */
  open(buf: Buffer): Buffer | typeof REPLAYED | typeof UNAUTHENTIC {
    const n = sealedCounter(buf);
    if (n === undefined) return UNAUTHENTIC;
    if (!this.window.fresh(n)) return REPLAYED;
    const out = openDatagram(this.rx, buf);
    if (!out) return UNAUTHENTIC;
    this.window.mark(n);
    return out;
  }
}

// ---- handshake proofs ----------------------------------------------------------------------------------

export type ProofLabel = 'confirm' | 'done';

/**
 * HMAC-SHA256(token, "framewire-udp-v1 <label>\n" || covered bytes [|| client nonce]), first 16 bytes.
 * HS_CONFIRM's covers the cookie, the client's nonces, mtu, flags and rcvbuf; HS_DONE's the server nonce
 * and the rest of HS_DONE, and the client nonce, so that it answers that one HS_CONFIRM.
 */
export function handshakeProof(
  token: string,
  label: ProofLabel,
  covered: readonly Buffer[],
  clientNonce?: Buffer,
): Buffer {
  const h = createHmac('sha256', token).update(`framewire-udp-v1 ${label}\n`);
  for (const b of covered) h.update(b);
  if (clientNonce) h.update(clientNonce);
  return h.digest().subarray(0, PROOF_BYTES);
}

/** Compares a proof in constant time. */
export function proofOk(want: Buffer, given: Buffer | undefined): boolean {
  return given !== undefined && given.length === want.length && timingSafeEqual(want, given);
}
