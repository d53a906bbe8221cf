/**
 * Token authentication by challenge-response. Both sides know a shared token; neither sends it. The sender
 * puts a random nonce in HELLO; the receiver answers AUTH {nonce, proof} with its own nonce and a proof that
 * it knows the token; the sender checks that proof and answers AUTH {proof}; the receiver checks it before
 * anything else happens. Proofs are HMAC-SHA256(token, label | sender nonce | receiver nonce), with
 * different labels per direction so that one side's proof can never be replayed as the other's.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FramewireError } from '../errors.js';

export const NONCE_BYTES = 32;

export function newNonce(): string {
  return randomBytes(NONCE_BYTES).toString('hex');
}

export type ProofRole = 'receiver' | 'sender';

export function proof(token: string, role: ProofRole, senderNonce: string, receiverNonce: string): string {
  return createHmac('sha256', token)
    .update(`framewire-auth-v1\n${role}\n${senderNonce}\n${receiverNonce}`)
    .digest('hex');
}

/** Compares a proof in constant time; false for anything malformed. */
export function checkProof(
  token: string,
  role: ProofRole,
  senderNonce: string,
  receiverNonce: string,
  given: unknown,
): boolean {
  if (typeof given !== 'string' || !/^[0-9a-f]{64}$/.test(given)) return false;
  const want = Buffer.from(proof(token, role, senderNonce, receiverNonce), 'hex');
  return timingSafeEqual(want, Buffer.from(given, 'hex'));
}

export function isNonce(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
}

/** Checks a token option: non-empty, at most 1024 bytes. */
export function checkToken(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || token.length === 0 || Buffer.byteLength(token) > 1024) {
    throw new FramewireError('ERR_BAD_OPTION', 'token must be a non-empty string of at most 1024 bytes');
  }
  return token;
}
