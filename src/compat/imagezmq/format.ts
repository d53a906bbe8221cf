/**
 * ImageZMQ's wire format (docs/compat.md, "ImageZMQ"): every message is a ZeroMQ multipart of two parts,
 * UTF-8 JSON and the bytes. `send_jpg` sends `{"msg": TEXT}` and a JPEG; `send_image` sends
 * `{"msg": TEXT, "dtype": "uint8", "shape": [h, w, 3]}` and a C-contiguous array. Pure functions over
 * Buffers: no sockets, no files, no timers.
 *
 * framewire's own sender adds one key, `fw` (its epoch, the frame's sequence number, name, kind and
 * capture time), which ImageZMQ hubs ignore and framewire's hub uses to drop a resent duplicate.
 */
import { FramewireError } from '../../errors.js';
import { MAX_STREAM_NAME_BYTES, unsafeReason } from '../../names.js';
import type { ContentType, PixelFormat, StreamKind } from '../../protocol/constants.js';
import { STREAM_KINDS } from '../../protocol/constants.js';

/** ImageZMQ hubs answer `OK`; a framewire hub answers a refused message with `ERR_…: why`. */
export const IZMQ_OK = 'OK';
/** The default port of ImageZMQ (`tcp://127.0.0.1:5555`). */
export const IZMQ_DEFAULT_PORT = 5555;
/** Stream name given to a message whose `msg` has no usable character. */
export const IZMQ_EMPTY_NAME = 'imagezmq';
/** The epoch of streams from senders that say none (plain ImageZMQ senders). */
export const IZMQ_EPOCH = 'imagezmq';
/** Dimensions in a `shape` (numpy allows 64). */
const MAX_DIMS = 32;

/** What framewire's sender adds to the JSON part, under the key `fw`. */
export interface FwInfo {
  /** The sending run's epoch (1..64 characters). */
  epoch: string;
  /** The frame's sequence number in that run. */
  seq: number;
  /** The frame's file name, when it has one. */
  name?: string;
  kind?: StreamKind;
  /** Capture time, microseconds since the Unix epoch. */
  captureUs?: number;
  /** Raw frames: their pixel layout, where the array alone does not say it (rgb24 vs bgr24). */
  pixelFormat?: PixelFormat;
}

/** A well-formed ImageZMQ message, as the hub maps it to a frame. */
export interface ImageZmqMessage {
  /** The `msg` text as sent. */
  msg: string;
  form: 'jpg' | 'image';
  contentType: ContentType;
  pixelFormat: PixelFormat;
  width: number;
  height: number;
  dtype: string | undefined;
  shape: number[] | undefined;
  data: Buffer;
  fw: FwInfo | undefined;
}

const JPEG_MAGIC = [0xff, 0xd8, 0xff];
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

function startsWith(b: Buffer, magic: number[]): boolean {
  return b.length >= magic.length && magic.every((v, i) => b[i] === v);
}

/** Bytes per element of a numpy dtype name (`uint16`) or type string (`<u2`), or undefined if unknown. */
export function dtypeItemSize(dtype: string): number | undefined {
  const named = /^(u?int|float|complex)(8|16|32|64|128)$/.exec(dtype);
  if (named) {
    const bits = Number(named[2]);
    if (named[1] === 'complex' ? bits >= 64 : bits <= 64) return bits / 8;
    return undefined;
  }
  if (dtype === 'bool') return 1;
  const typestr = /^[<>|=]?[uifbc]([1-9]\d?)$/.exec(dtype);
  return typestr ? Number(typestr[1]) : undefined;
}

/**
 * The stream name of a `msg`: every character other than a letter, a digit, `-`, `_` or `.` becomes `_`
 * (`"pi-3|cam 0"` → `pi-3_cam_0`); a leading dot and a trailing dot become `_`; a Windows device name
 * (`con`, `nul.txt`, …) gets a leading `_`; the name is cut to 128 bytes; an empty result is `imagezmq`.
 * The result always passes checkStreamName. Two texts can map to one name; the frame's metadata keeps
 * the original text (`meta.imagezmq.msg`).
 */
export function izmqStreamName(msg: string): string {
  let name = msg.replace(/[^\p{L}\p{N}_.-]/gu, '_');
  if (name.startsWith('.')) name = `_${name.slice(1)}`;
  while (Buffer.byteLength(name, 'utf8') > MAX_STREAM_NAME_BYTES) name = [...name].slice(0, -1).join('');
  if (name.endsWith('.')) name = `${name.slice(0, -1)}_`;
  if (name === '') return IZMQ_EMPTY_NAME;
  if (unsafeReason(name, MAX_STREAM_NAME_BYTES)) {
    name = `_${name}`;
    while (Buffer.byteLength(name, 'utf8') > MAX_STREAM_NAME_BYTES) name = [...name].slice(0, -1).join('');
    if (name.endsWith('.')) name = `${name.slice(0, -1)}_`;
  }
  return unsafeReason(name, MAX_STREAM_NAME_BYTES) ? IZMQ_EMPTY_NAME : name;
}

export interface ParseLimits {
  maxFrameBytes: number;
  maxMetaBytes: number;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Checks one received multipart message and maps it. Throws ERR_IZMQ_PARTS (not two parts),
 * ERR_META_TOO_LARGE (JSON part over maxMetaBytes), ERR_IZMQ_JSON (not a JSON object), ERR_IZMQ_NO_MSG,
 * ERR_IZMQ_SHAPE (dtype or shape missing or malformed, or a size that does not match the bytes) or
 * ERR_FRAME_TOO_LARGE (bytes over maxFrameBytes).
 */
export function parseImageZmq(parts: readonly Buffer[], limits: ParseLimits): ImageZmqMessage {
  if (parts.length !== 2) {
    throw new FramewireError(
      'ERR_IZMQ_PARTS',
      `message of ${parts.length} part${parts.length === 1 ? '' : 's'}; ImageZMQ sends 2 (JSON, then the bytes)`,
    );
  }
  const [head, data] = parts as [Buffer, Buffer];
  if (data.length > limits.maxFrameBytes) {
    throw new FramewireError(
      'ERR_FRAME_TOO_LARGE',
      `image of ${data.length} bytes exceeds maxFrameBytes ${limits.maxFrameBytes}`,
      { hint: 'raise the receiver limit with --max-frame-bytes' },
    );
  }
  if (head.length > limits.maxMetaBytes) {
    throw new FramewireError(
      'ERR_META_TOO_LARGE',
      `JSON part of ${head.length} bytes exceeds maxMetaBytes ${limits.maxMetaBytes}`,
    );
  }
  let md: unknown;
  try {
    md = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(head));
  } catch (err) {
    throw new FramewireError('ERR_IZMQ_JSON', `the first part is not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (!isObject(md)) throw new FramewireError('ERR_IZMQ_JSON', 'the first part is JSON but not an object');
  const msg = md.msg;
  if (typeof msg !== 'string') {
    throw new FramewireError(
      'ERR_IZMQ_NO_MSG',
      msg === undefined ? 'the JSON part has no "msg"' : `"msg" is ${typeof msg}, not text`,
    );
  }
  const fw = parseFw(md.fw);
  const hasDtype = md.dtype !== undefined;
  const hasShape = md.shape !== undefined;
  if (!hasDtype && !hasShape) {
    const contentType: ContentType = startsWith(data, JPEG_MAGIC)
      ? 'image/jpeg'
      : startsWith(data, PNG_MAGIC)
        ? 'image/png'
        : 'application/octet-stream';
    return {
      msg,
      form: 'jpg',
      contentType,
      pixelFormat: 'none',
      width: 0,
      height: 0,
      dtype: undefined,
      shape: undefined,
      data,
      fw,
    };
  }
  if (!hasDtype || !hasShape) {
    throw new FramewireError(
      'ERR_IZMQ_SHAPE',
      `the JSON part has "${hasDtype ? 'dtype' : 'shape'}" without "${hasDtype ? 'shape' : 'dtype'}"`,
    );
  }
  const { dtype, shape } = md;
  if (typeof dtype !== 'string' || dtype.length === 0 || dtype.length > 32) {
    throw new FramewireError('ERR_IZMQ_SHAPE', `"dtype" ${JSON.stringify(dtype)} is not a numpy type name`);
  }
  if (
    !Array.isArray(shape) ||
    shape.length > MAX_DIMS ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  ) {
    throw new FramewireError(
      'ERR_IZMQ_SHAPE',
      `"shape" ${JSON.stringify(shape).slice(0, 80)} is not a list of at most ${MAX_DIMS} whole numbers`,
    );
  }
  const dims = shape as number[];
  const item = dtypeItemSize(dtype);
  if (item !== undefined) {
    let want = item;
    for (const d of dims) want *= d;
    if (want !== data.length) {
      throw new FramewireError(
        'ERR_IZMQ_SHAPE',
        `shape [${dims.join(', ')}] of ${dtype} is ${want} bytes, but ${data.length} bytes came`,
      );
    }
  }
  const [h = 0, w = 0, c] = dims;
  let pixelFormat: PixelFormat = 'none';
  if (dtype === 'uint8' && dims.length === 3 && c === 3) pixelFormat = 'bgr24';
  else if (dtype === 'uint8' && dims.length === 2) pixelFormat = 'gray8';
  else if (dtype === 'uint16' && dims.length === 2) pixelFormat = 'gray16le';
  // A framewire sender says rgb24 where the bytes are not OpenCV's BGR.
  if (pixelFormat === 'bgr24' && fw?.pixelFormat === 'rgb24') pixelFormat = 'rgb24';
  const raw = pixelFormat !== 'none' && h > 0 && w > 0;
  return {
    msg,
    form: 'image',
    contentType: raw ? 'raw' : 'application/octet-stream',
    pixelFormat: raw ? pixelFormat : 'none',
    width: raw ? w : 0,
    height: raw ? h : 0,
    dtype,
    shape: dims,
    data,
    fw,
  };
}

/** Reads framewire's `fw` key; anything malformed is ignored (a hub must not refuse over an extra key). */
function parseFw(v: unknown): FwInfo | undefined {
  if (!isObject(v)) return undefined;
  const { epoch, seq, name, kind, captureUs, pixelFormat } = v;
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) return undefined;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  const fw: FwInfo = { epoch, seq };
  if (typeof name === 'string' && name !== '') fw.name = name;
  if (typeof kind === 'string' && STREAM_KINDS.includes(kind as StreamKind)) fw.kind = kind as StreamKind;
  if (typeof captureUs === 'number' && Number.isSafeInteger(captureUs) && captureUs > 0)
    fw.captureUs = captureUs;
  if (pixelFormat === 'rgb24' || pixelFormat === 'bgr24') fw.pixelFormat = pixelFormat;
  return fw;
}

/** numpy's view of a raw framewire frame: dtype and shape, or undefined for a layout numpy cannot hold. */
export function arrayOf(
  pixelFormat: PixelFormat,
  width: number,
  height: number,
): { dtype: string; shape: number[] } | undefined {
  switch (pixelFormat) {
    case 'bgr24':
    case 'rgb24':
      return { dtype: 'uint8', shape: [height, width, 3] };
    case 'bgra32':
    case 'rgba32':
      return { dtype: 'uint8', shape: [height, width, 4] };
    case 'gray8':
      return { dtype: 'uint8', shape: [height, width] };
    case 'gray16le':
      return { dtype: 'uint16', shape: [height, width] };
    default:
      return undefined;
  }
}

/**
 * The two parts of one message: the JSON (with `fw` when given) and the bytes, sent as they are.
 * JPEG and other encoded frames take the `send_jpg` form; raw frames with a numpy layout the `send_image`
 * form. Throws ERR_BAD_FRAME for a raw frame whose size does not match its layout.
 */
export function encodeImageZmq(
  msg: string,
  frame: {
    data: Buffer;
    contentType?: ContentType;
    pixelFormat?: PixelFormat;
    width?: number;
    height?: number;
  },
  fw?: FwInfo,
): [Buffer, Buffer] {
  const md: Record<string, unknown> = { msg };
  if (frame.contentType === 'raw') {
    const a = arrayOf(frame.pixelFormat ?? 'none', frame.width ?? 0, frame.height ?? 0);
    if (!a) {
      throw new FramewireError(
        'ERR_BAD_FRAME',
        `a raw ${frame.pixelFormat ?? 'none'} frame has no numpy layout for ImageZMQ's send_image form`,
      );
    }
    const item = dtypeItemSize(a.dtype) ?? 1;
    const want = a.shape.reduce((x, y) => x * y, item);
    if (want !== frame.data.length) {
      throw new FramewireError(
        'ERR_BAD_FRAME',
        `raw ${frame.pixelFormat} ${frame.width}x${frame.height} is ${want} bytes, the frame has ${frame.data.length}`,
      );
    }
    md.dtype = a.dtype;
    md.shape = a.shape;
  }
  if (fw) md.fw = fw;
  return [Buffer.from(JSON.stringify(md)), frame.data];
}

/** The reply text of a refused message: `ERR_…: why`. Replies that start with `ERR_` are refusals. */
export function errorReply(err: FramewireError): Buffer {
  return Buffer.from(err.message.slice(0, 1000));
}

export function isErrorReply(reply: Buffer): boolean {
  return reply.length >= 4 && reply.toString('latin1', 0, 4) === 'ERR_';
}
