/**
 * The handshake's messages on both sides: HELLO and its checks, the token challenge-response (AUTH, over
 * auth.ts), WELCOME, and how a client reads a receiver's ERROR. The state machines that send them live in
 * reconnect.ts (the client) and receiver.ts (the receiver).
 */
import { authError, type ErrorCode, FramewireError } from '../errors.js';
import type { AuthBody, ErrorBody, HelloBody, ResumePoint, WelcomeBody } from '../protocol/messages.js';
import { VERSION } from '../version.js';
import { checkProof, isNonce, newNonce, proof } from './auth.js';

// ---- the sender's side ---------------------------------------------------------------------------------

/**
 * The sender's answer to the receiver's AUTH challenge, made only once the receiver proved the token: the
 * sender checks that proof first and, when it is wrong or malformed, gives an error and no answer, so that an
 * impostor receiver never gets the sender's proof (an HMAC it could test guessed tokens against offline).
 */
export function answerChallenge(
  token: string,
  senderNonce: string,
  body: AuthBody,
  href: string,
): { answer: { proof: string }; error: undefined } | { answer: undefined; error: FramewireError } {
  const nonce = body.nonce;
  if (!isNonce(nonce)) return { answer: undefined, error: authError(`${href} sent a malformed challenge`) };
  if (!checkProof(token, 'receiver', senderNonce, nonce, body.proof)) {
    return {
      answer: undefined,
      error: authError(`wrong token: ${href} does not prove the same token (this sender sent no proof)`),
    };
  }
  return { answer: { proof: proof(token, 'sender', senderNonce, nonce) }, error: undefined };
}

/** The receiver's ERROR as an error of the sender, with the receiver's code when it names one. */
export function remoteError(body: ErrorBody): FramewireError {
  const code =
    typeof body.code === 'string' && body.code.startsWith('ERR_') ? (body.code as ErrorCode) : 'ERR_REMOTE';
  const msg = String(body.message ?? '').replace(/^ERR_[A-Z_]+: /, '');
  return new FramewireError(code, `receiver: ${msg}`);
}

// ---- the receiver's side -------------------------------------------------------------------------------

/**
 * Checks a HELLO; throws ERR_UNSUPPORTED_VERSION or ERR_PROTOCOL. Returns the client's name, shortened for
 * the logs.
 */
export function checkHello(body: HelloBody): string {
  if (body.protocol !== 1) {
    throw new FramewireError(
      'ERR_UNSUPPORTED_VERSION',
      `client speaks protocol ${String(body.protocol)}, this server speaks 1`,
    );
  }
  if (typeof body.epoch !== 'string' || body.epoch.length === 0 || body.epoch.length > 64) {
    throw new FramewireError('ERR_PROTOCOL', 'HELLO epoch must be a string of 1..64 characters');
  }
  if (!Array.isArray(body.streams))
    throw new FramewireError('ERR_PROTOCOL', 'HELLO streams must be an array');
  // It becomes the message channel's resume point, and an ACK's seq: a fraction or a number above
  // 2^53-1 would make encoding that ACK throw, outside any handler.
  const ms = body.messageSeq;
  if (ms !== undefined && !(Number.isSafeInteger(ms) && ms >= 0)) {
    throw new FramewireError(
      'ERR_PROTOCOL',
      `HELLO messageSeq ${JSON.stringify(ms)} is not an integer in 0..2^53-1`,
    );
  }
  return typeof body.client === 'string' ? body.client.slice(0, 200) : '';
}

/**
 * The receiver's challenge to a HELLO, when it has a token: its nonce and its proof of the token. Throws
 * ERR_AUTH when the sender sent no nonce (it has no token).
 */
export function challenge(
  token: string,
  hello: HelloBody,
  remote: string,
): { receiverNonce: string; auth: AuthBody } {
  const senderNonce = hello.auth?.nonce;
  if (!isNonce(senderNonce)) {
    throw authError(`${remote} sent no token; this receiver requires one`);
  }
  const receiverNonce = newNonce();
  const auth: AuthBody = {
    nonce: receiverNonce,
    proof: proof(token, 'receiver', senderNonce, receiverNonce),
  };
  return { receiverNonce, auth };
}

/** Checks the sender's answer to the challenge; throws ERR_AUTH when its proof is wrong. */
export function checkAnswer(
  token: string,
  hello: HelloBody,
  receiverNonce: string,
  body: AuthBody,
  remote: string,
): void {
  if (!checkProof(token, 'sender', hello.auth!.nonce, receiverNonce, body.proof)) {
    throw authError(`${remote} gave a wrong token`);
  }
}

/** The receiver's WELCOME: where each stream and the message channel resume, and its limits. */
export function welcomeBody(
  session: string,
  streams: ResumePoint[],
  messageNext: number,
  limits: { maxFrameBytes: number; maxMetaBytes: number; maxMessageBytes: number },
  verifyCrc: boolean,
): WelcomeBody {
  return {
    protocol: 1,
    server: `framewire/${VERSION}`,
    session,
    streams,
    messageNext,
    limits: {
      maxFrameBytes: limits.maxFrameBytes,
      maxMetaBytes: limits.maxMetaBytes,
      maxMessageBytes: limits.maxMessageBytes,
    },
    verifyCrc,
  };
}
