/**
 * One error tree for all of framewire. Every error thrown or emitted by the library is a
 * {@link FramewireError} with a stable `code` (`ERR_*`); messages name the layer and the value.
 * The codes are part of the public API and are listed in docs/errors.md.
 */

export const ErrorCode = {
  // protocol (decoder)
  BAD_MAGIC: 'ERR_BAD_MAGIC',
  UNSUPPORTED_VERSION: 'ERR_UNSUPPORTED_VERSION',
  UNKNOWN_TYPE: 'ERR_UNKNOWN_TYPE',
  BAD_HEADER: 'ERR_BAD_HEADER',
  FRAME_TOO_LARGE: 'ERR_FRAME_TOO_LARGE',
  META_TOO_LARGE: 'ERR_META_TOO_LARGE',
  MESSAGE_TOO_LARGE: 'ERR_MESSAGE_TOO_LARGE',
  CRC_MISMATCH: 'ERR_CRC_MISMATCH',
  TRUNCATED: 'ERR_TRUNCATED',
  BAD_JSON: 'ERR_BAD_JSON',
  // session
  PROTOCOL: 'ERR_PROTOCOL',
  SEQUENCE_GAP: 'ERR_SEQUENCE_GAP',
  UNKNOWN_STREAM: 'ERR_UNKNOWN_STREAM',
  FRAME_DROPPED: 'ERR_FRAME_DROPPED',
  STREAM_FAILED: 'ERR_STREAM_FAILED',
  STREAM_BUSY: 'ERR_STREAM_BUSY',
  TOO_MANY_STREAMS: 'ERR_TOO_MANY_STREAMS',
  HANDSHAKE_TIMEOUT: 'ERR_HANDSHAKE_TIMEOUT',
  PEER_TIMEOUT: 'ERR_PEER_TIMEOUT',
  CLOSED: 'ERR_CLOSED',
  AUTH: 'ERR_AUTH',
  TLS: 'ERR_TLS',
  TOO_MANY_CONNECTIONS: 'ERR_TOO_MANY_CONNECTIONS',
  EARLY_DATA: 'ERR_EARLY_DATA',
  RECEIVER_BUSY: 'ERR_RECEIVER_BUSY',
  // names and files
  UNSAFE_NAME: 'ERR_UNSAFE_NAME',
  WRITE_FAILED: 'ERR_WRITE_FAILED',
  NAME_TAKEN: 'ERR_NAME_TAKEN',
  // network and configuration
  BAD_URL: 'ERR_BAD_URL',
  UNSUPPORTED_SCHEME: 'ERR_UNSUPPORTED_SCHEME',
  UNREACHABLE: 'ERR_UNREACHABLE',
  LISTEN_FAILED: 'ERR_LISTEN_FAILED',
  BAD_OPTION: 'ERR_BAD_OPTION',
  BAD_FRAME: 'ERR_BAD_FRAME',
  // sources
  SOURCE_NOT_FOUND: 'ERR_SOURCE_NOT_FOUND',
  SOURCE_EMPTY: 'ERR_SOURCE_EMPTY',
  SOURCE_READ: 'ERR_SOURCE_READ',
  // remote
  REMOTE: 'ERR_REMOTE',
  // the seed programs' wire formats (src/compat)
  LEGACY_HEADER: 'ERR_LEGACY_HEADER',
  REPLY_TIMEOUT: 'ERR_REPLY_TIMEOUT',
  PICTURE_TOO_LARGE: 'ERR_PICTURE_TOO_LARGE',
  // ImageZMQ messages (src/compat/imagezmq)
  IZMQ_PARTS: 'ERR_IZMQ_PARTS',
  IZMQ_JSON: 'ERR_IZMQ_JSON',
  IZMQ_NO_MSG: 'ERR_IZMQ_NO_MSG',
  IZMQ_SHAPE: 'ERR_IZMQ_SHAPE',
  // ffmpeg sources (src/sources/ffmpeg.ts)
  FFMPEG_NOT_FOUND: 'ERR_FFMPEG_NOT_FOUND',
  FFMPEG_TOO_OLD: 'ERR_FFMPEG_TOO_OLD',
  SOURCE_STALLED: 'ERR_SOURCE_STALLED',
  // the UDP transport (src/transports/udp)
  REASSEMBLY_LIMIT: 'ERR_REASSEMBLY_LIMIT',
  DATAGRAM_TOO_LARGE: 'ERR_DATAGRAM_TOO_LARGE',
  // the NATS JetStream bus (src/bus, sinks/jetstream.ts, sources/jetstream.ts)
  BUS_UNREACHABLE: 'ERR_BUS_UNREACHABLE',
  BUS_REFUSED: 'ERR_BUS_REFUSED',
  BUS_BAD_MESSAGE: 'ERR_BUS_BAD_MESSAGE',
  // the WebSocket transport (src/transports/ws.ts)
  WS_TEXT: 'ERR_WS_TEXT',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const ALL_CODES = new Set<string>(Object.values(ErrorCode));

/**
 * True for the codes a sink answers a frame it will never take, whatever the retries (an unsafe name, a name
 * taken under --on-conflict refuse): the frame is refused, not left to be sent again.
 */
export function isRefusal(code: string): boolean {
  return code === ErrorCode.UNSAFE_NAME || code === ErrorCode.NAME_TAKEN;
}

/** True when `code` is one of framewire's own error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && ALL_CODES.has(code);
}

export interface FramewireErrorDetails {
  /** A short suggestion printed by the CLI below the error line. */
  hint?: string;
  /** Stream name the error concerns, when there is one. */
  stream?: string;
  /** Frame sequence number the error concerns, when there is one. */
  seq?: number;
  /** The error that caused this one. */
  cause?: unknown;
}

/** The one error class of framewire. `message` starts with the code, e.g. `ERR_FRAME_TOO_LARGE: ...`. */
export class FramewireError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly stream: string | undefined;
  readonly seq: number | undefined;

  constructor(code: ErrorCode, message: string, details: FramewireErrorDetails = {}) {
    super(`${code}: ${message}`, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'FramewireError';
    this.code = code;
    this.hint = details.hint;
    this.stream = details.stream;
    this.seq = details.seq;
  }

  /** The message without the leading code. */
  get detail(): string {
    return this.message.slice(this.code.length + 2);
  }
}

/** Wraps anything thrown into a FramewireError, keeping FramewireErrors as they are. */
export function toFramewireError(err: unknown, code: ErrorCode, context: string): FramewireError {
  if (err instanceof FramewireError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new FramewireError(code, `${context}: ${msg}`, { cause: err });
}

/** The one ERR_AUTH error of every layer (handshake, UDP sealing), with the hint that fixes it. */
export function authError(message: string): FramewireError {
  return new FramewireError('ERR_AUTH', message, {
    hint: 'give both sides the same --token (or FRAMEWIRE_TOKEN)',
  });
}
