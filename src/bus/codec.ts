/**
 * How a received frame or message travels as a JetStream message: the payload is the frame's bytes (or the
 * JSON text), the headers carry everything else. Pure functions; the NATS headers come from the client, loaded by connectBus() (bus/nats.ts) before any of these run.
 */
import type { MsgHdrs } from '@nats-io/transport-node';
import { FramewireError } from '../errors.js';
import {
  CONTENT_TYPES,
  type ContentType,
  PIXEL_FORMATS,
  type PixelFormat,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
} from '../protocol/constants.js';
import type { ReceivedFrame, ReceivedMessage } from '../types.js';
import { nats } from './nats.js';

/** Header names. `Nats-Msg-Id` (the deduplication key) is set by the publish call itself. */
export const H = {
  type: 'Framewire-Type',
  stream: 'Framewire-Stream',
  kind: 'Framewire-Kind',
  mode: 'Framewire-Mode',
  epoch: 'Framewire-Epoch',
  sender: 'Framewire-Sender',
  seq: 'Framewire-Seq',
  captureUs: 'Framewire-Capture-Us',
  receivedUs: 'Framewire-Received-Us',
  contentType: 'Framewire-Content-Type',
  pixelFormat: 'Framewire-Pixel-Format',
  width: 'Framewire-Width',
  height: 'Framewire-Height',
  name: 'Framewire-Name',
  meta: 'Framewire-Meta',
  crc: 'Framewire-Crc',
  ref: 'Framewire-Ref',
  /** Set when the frame's bytes are in the object store under this object name; the payload is then empty. */
  object: 'Framewire-Object',
  bytes: 'Framewire-Bytes',
} as const;

/** The deduplication key of a frame: `<stream>:<epoch>:<seq>`. */
export function frameMsgId(f: ReceivedFrame): string {
  return `${f.stream.name}:${f.stream.epoch}:${f.seq}`;
}

/** The deduplication key of a message: `_messages:<epoch>:<seq>`. */
export function messageMsgId(m: ReceivedMessage): string {
  return `_messages:${m.epoch}:${m.seq}`;
}

/** Header values are one line of text: non-ASCII and control characters are percent-encoded. */
function enc(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we encode
  return /[%\u0000-\u001f\u007f-\uffff]/.test(s) ? `%${encodeURIComponent(s)}` : s;
}

function dec(s: string): string {
  return s.startsWith('%') ? decodeURIComponent(s.slice(1)) : s;
}

/** The headers of a frame; `object` names the object that holds its bytes when they are not the payload. */
export function frameHeaders(f: ReceivedFrame, object?: string): MsgHdrs {
  const h = nats().core.headers();
  h.set(H.type, 'frame');
  h.set(H.stream, enc(f.stream.name));
  h.set(H.kind, f.stream.kind);
  h.set(H.mode, f.stream.mode);
  h.set(H.epoch, enc(f.stream.epoch));
  h.set(H.sender, enc(f.stream.sender));
  h.set(H.seq, String(f.seq));
  h.set(H.captureUs, String(f.captureUs));
  h.set(H.receivedUs, String(f.receivedUs));
  h.set(H.contentType, f.contentType);
  h.set(H.crc, String(f.crc >>> 0));
  h.set(H.bytes, String(f.data.length));
  if (f.pixelFormat !== 'none') h.set(H.pixelFormat, f.pixelFormat);
  if (f.width !== 0) h.set(H.width, String(f.width));
  if (f.height !== 0) h.set(H.height, String(f.height));
  if (f.name !== '') h.set(H.name, enc(f.name));
  if (f.meta !== undefined) h.set(H.meta, enc(JSON.stringify(f.meta)));
  if (object !== undefined) h.set(H.object, enc(object));
  return h;
}

/** The headers of a JSON message. */
export function messageHeaders(m: ReceivedMessage): MsgHdrs {
  const h = nats().core.headers();
  h.set(H.type, 'message');
  h.set(H.epoch, enc(m.epoch));
  h.set(H.sender, enc(m.sender));
  h.set(H.seq, String(m.seq));
  h.set(H.receivedUs, String(m.receivedUs));
  if (m.ref) h.set(H.ref, enc(`${m.ref.stream}:${m.ref.seq}`));
  return h;
}

/** Rough size of the headers on the wire, to decide whether a frame fits in one message. */
export function headerBytes(h: MsgHdrs): number {
  let n = 16;
  for (const [k, v] of h) n += k.length + 4 + v.reduce((a, s) => a + s.length + 2, 0);
  return n;
}

function badMessage(subject: string, why: string): FramewireError {
  return new FramewireError('ERR_BUS_BAD_MESSAGE', `bus message on ${subject}: ${why}`, {
    hint: 'only framewire receivers (serve --publish) should publish on the framewire subjects',
  });
}

function get(h: MsgHdrs | undefined, name: string): string | undefined {
  const v = h?.get(name);
  return v === undefined || v === '' ? undefined : dec(v);
}

function int(h: MsgHdrs | undefined, name: string, subject: string, required = true): number {
  const v = get(h, name);
  if (v === undefined) {
    if (!required) return 0;
    throw badMessage(subject, `header ${name} is missing`);
  }
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw badMessage(subject, `header ${name} "${v}" is not an integer`);
  return n;
}

function oneOf<T extends string>(
  h: MsgHdrs | undefined,
  name: string,
  allowed: readonly T[],
  dflt: T,
  subject: string,
): T {
  const v = get(h, name);
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v))
    throw badMessage(subject, `header ${name} "${v}" is unknown`);
  return v as T;
}

/** What a bus message is: a frame (bytes in the payload or in an object), or a JSON message. */
export type Decoded =
  | { type: 'frame'; frame: ReceivedFrame; object: string | undefined; bytes: number }
  | { type: 'message'; message: ReceivedMessage };

/** Decodes a bus message. Throws ERR_BUS_BAD_MESSAGE when it is not one framewire published. */
export function decodeBusMessage(subject: string, h: MsgHdrs | undefined, data: Uint8Array): Decoded {
  const type = get(h, H.type);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (type === 'message') {
    const text = buf.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw badMessage(subject, 'the payload is not JSON');
    }
    const ref = get(h, H.ref);
    const i = ref?.lastIndexOf(':') ?? -1;
    return {
      type: 'message',
      message: {
        sender: get(h, H.sender) ?? '',
        epoch: get(h, H.epoch) ?? '',
        seq: int(h, H.seq, subject),
        receivedUs: int(h, H.receivedUs, subject, false),
        ref: ref && i > 0 ? { stream: ref.slice(0, i), seq: Number(ref.slice(i + 1)) } : undefined,
        json,
        text,
      },
    };
  }
  if (type !== 'frame') throw badMessage(subject, `header ${H.type} is ${JSON.stringify(type ?? null)}`);
  const stream = get(h, H.stream);
  const epoch = get(h, H.epoch);
  if (stream === undefined || epoch === undefined)
    throw badMessage(subject, 'stream or epoch header missing');
  const metaText = get(h, H.meta);
  let meta: unknown;
  if (metaText !== undefined) {
    try {
      meta = JSON.parse(metaText);
    } catch {
      throw badMessage(subject, `header ${H.meta} is not JSON`);
    }
  }
  const frame: ReceivedFrame = {
    stream: {
      name: stream,
      kind: oneOf<StreamKind>(h, H.kind, STREAM_KINDS, 'other', subject),
      mode: oneOf<StreamMode>(h, H.mode, STREAM_MODES, 'reliable', subject),
      epoch,
      sender: get(h, H.sender) ?? '',
    },
    seq: int(h, H.seq, subject),
    captureUs: int(h, H.captureUs, subject, false),
    receivedUs: int(h, H.receivedUs, subject, false),
    contentType: oneOf<ContentType>(h, H.contentType, CONTENT_TYPES, 'application/octet-stream', subject),
    pixelFormat: oneOf<PixelFormat>(h, H.pixelFormat, PIXEL_FORMATS, 'none', subject),
    width: int(h, H.width, subject, false),
    height: int(h, H.height, subject, false),
    name: get(h, H.name) ?? '',
    meta,
    data: buf,
    crc: int(h, H.crc, subject, false),
  };
  return { type: 'frame', frame, object: get(h, H.object), bytes: int(h, H.bytes, subject, false) };
}
