/**
 * Constants of framewire wire protocol v1 (docs/protocol.md is the normative description).
 */

/** "FW": the first two bytes of every message. */
export const MAGIC0 = 0x46;
export const MAGIC1 = 0x57;
export const PROTOCOL_VERSION = 1;

/** Size of the fixed header that starts every message. */
export const HEADER_BYTES = 12;
/** Size of the fixed part of a FRAME head (before name and metadata). */
export const FRAME_HEAD_FIXED = 32;
/** Size of the fixed part of a MESSAGE head (before the referenced stream name). */
export const MESSAGE_HEAD_FIXED = 18;
/** Size of an ACK head. */
export const ACK_HEAD = 12;
/** Size of a PING/PONG head. */
export const PING_HEAD = 8;
/** Size of a CLOCK head (t1) and of a CLOCK_REPLY head (t1, t2, t3). */
export const CLOCK_HEAD = 8;
export const CLOCK_REPLY_HEAD = 24;
/** Version of the clock exchange announced in HELLO and WELCOME (`clock`). */
export const CLOCK_VERSION = 1;

export const MessageType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  OPEN: 0x03,
  OPENED: 0x04,
  AUTH: 0x05,
  FRAME: 0x10,
  MESSAGE: 0x11,
  ACK: 0x12,
  ERROR: 0x20,
  PING: 0x30,
  PONG: 0x31,
  /** Clock exchange: only after both sides announced `clock` in HELLO and WELCOME. */
  CLOCK: 0x32,
  CLOCK_REPLY: 0x33,
  BYE: 0x3f,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const TYPE_NAMES = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, k]));
export function messageTypeName(type: number): string {
  return TYPE_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}
export function isMessageType(type: number): type is MessageType {
  return TYPE_NAMES.has(type);
}

/** Header flag bits. Receivers ignore bits they do not know. */
export const Flags = {
  /** The frame or message is sent again after a reconnect. */
  RETRANSMIT: 0x01,
  /**
   * FRAME: the frame carries no CRC (the field is 0). Sent only to a receiver that announced
   * `verifyCrc: false` in WELCOME, i.e. one that relies on the transport's own integrity (TCP, TLS).
   */
  NO_CRC: 0x02,
} as const;

/** Stream id used in ACKs for the connection's JSON message channel. */
export const MESSAGE_CHANNEL = 0xffff;
/** Largest stream id a sender may assign to a stream. */
export const MAX_STREAM_ID = 0xfffe;

export const ContentTypeCode = {
  'application/octet-stream': 0,
  'image/jpeg': 1,
  'image/png': 2,
  raw: 3,
} as const;
export type ContentType = keyof typeof ContentTypeCode;
export const CONTENT_TYPES = Object.keys(ContentTypeCode) as ContentType[];

export const PixelFormatCode = {
  none: 0,
  gray8: 1,
  gray16le: 2,
  rgb24: 3,
  bgr24: 4,
  rgba32: 5,
  bgra32: 6,
  yuv420p: 7,
  nv12: 8,
} as const;
export type PixelFormat = keyof typeof PixelFormatCode;
export const PIXEL_FORMATS = Object.keys(PixelFormatCode) as PixelFormat[];

/** Kinds of camera a stream can carry. */
export const STREAM_KINDS = ['visible', 'infrared', 'depth', 'other'] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];

/** Delivery modes. */
export const STREAM_MODES = ['reliable', 'live'] as const;
export type StreamMode = (typeof STREAM_MODES)[number];

/** Default limits. Each is an option of the decoder, the server and the client. */
export const DEFAULT_LIMITS = {
  /** Largest frame payload accepted (64 MiB). */
  maxFrameBytes: 64 * 1024 * 1024,
  /** Largest JSON metadata of one frame (16 KiB). */
  maxMetaBytes: 16 * 1024,
  /** Largest JSON message body (1 MiB). */
  maxMessageBytes: 1024 * 1024,
  /** Largest control message body: hello, welcome, open, error, bye (64 KiB). */
  maxControlBytes: 64 * 1024,
} as const;
export type Limits = { -readonly [K in keyof typeof DEFAULT_LIMITS]: number };
