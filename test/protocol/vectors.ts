/**
 * Hex test vectors of protocol v1. The hex was computed once from the encoders, checked by hand against the
 * layout in docs/protocol.md (CRCs against Python's zlib.crc32), and frozen here: a change to any of these
 * bytes is a change of the wire protocol. docs/protocol.md lists the same bytes, annotated field by field.
 *
 * Each hex string is written in groups, one group per field; spaces are not part of the bytes.
 */
import { MESSAGE_CHANNEL, MessageType } from '../../src/protocol/constants.js';
import {
  type Encoded,
  encodeAck,
  encodeClock,
  encodeClockReply,
  encodeControl,
  encodeFrame,
  encodeMessage,
  encodePing,
  type HelloBody,
  type Message,
} from '../../src/protocol/messages.js';

export interface Vector {
  name: string;
  /** The exact bytes on the wire, as grouped hex. */
  hex: string;
  /** Encodes the message with the public encoders. */
  encode(): Encoded;
  /** What a Decoder delivers for these bytes. */
  message: Message;
}

/** The bytes of a vector's grouped hex. */
export function vectorBytes(v: Vector): Buffer {
  return Buffer.from(v.hex.replace(/\s+/g, ''), 'hex');
}

const helloBody: HelloBody = {
  protocol: 1,
  client: 'fw',
  epoch: 'e1',
  streams: [{ id: 1, name: 'cam0', kind: 'visible', mode: 'reliable', epoch: 'e1' }],
  messageSeq: 0,
};

const jpegPayload = Buffer.from('ffd8ffd9', 'hex');
const rawPayload = Buffer.from('80ff', 'hex');

export const VECTORS: readonly Vector[] = [
  {
    name: 'HELLO',
    hex:
      // magic, version, type, flags, reserved, head length 0, body length 139
      '4657 01 01 00 00 0000 0000008b ' +
      // {"protocol":1,
      '7b2270726f746f636f6c223a312c ' +
      // "client":"fw",
      '22636c69656e74223a226677222c ' +
      // "epoch":"e1",
      '2265706f6368223a226531222c ' +
      // "streams":[{"id":1,
      '2273747265616d73223a5b7b226964223a312c ' +
      // "name":"cam0",
      '226e616d65223a2263616d30222c ' +
      // "kind":"visible",
      '226b696e64223a2276697369626c65222c ' +
      // "mode":"reliable",
      '226d6f6465223a2272656c6961626c65222c ' +
      // "epoch":"e1"}],
      '2265706f6368223a226531227d5d2c ' +
      // "messageSeq":0}
      '226d657373616765536571223a307d',
    encode: () => encodeControl(MessageType.HELLO, helloBody),
    message: { type: MessageType.HELLO, body: helloBody },
  },
  {
    name: 'FRAME image/jpeg with name and metadata',
    hex:
      // magic, version, type 0x10, flags, reserved, head length 51 = 32 + 5 + 14, payload length 4
      '4657 01 10 00 00 0033 00000004 ' +
      // stream 1, content image/jpeg (1), pixel format none (0), width 0, height 0
      '0001 01 00 0000 0000 ' +
      // seq 7, captureUs 1700000000000000 (0x00060a24181e4000)
      '0000000000000007 00060a24181e4000 ' +
      // CRC32 of the payload, name length 5, metadata length 14
      '10f02a67 0005 000e ' +
      // "0.jpg", {"exposure":8}
      '302e6a7067 7b226578706f73757265223a387d ' +
      // payload
      'ffd8ffd9',
    encode: () =>
      encodeFrame({
        streamId: 1,
        seq: 7,
        captureUs: 1700000000000000,
        contentType: 'image/jpeg',
        name: '0.jpg',
        metaJson: '{"exposure":8}',
        payload: jpegPayload,
      }),
    message: {
      type: MessageType.FRAME,
      frame: {
        streamId: 1,
        seq: 7,
        captureUs: 1700000000000000,
        contentType: 'image/jpeg',
        pixelFormat: 'none',
        width: 0,
        height: 0,
        crc: 0x10f02a67,
        name: '0.jpg',
        meta: { exposure: 8 },
        payload: jpegPayload,
        flags: 0,
      },
    },
  },
  {
    name: 'FRAME raw gray8 2x1, retransmitted, no name, no metadata',
    hex:
      // magic, version, type 0x10, flags RETRANSMIT, reserved, head length 32, payload length 2
      '4657 01 10 01 00 0020 00000002 ' +
      // stream 2, content raw (3), pixel format gray8 (1), width 2, height 1
      '0002 03 01 0002 0001 ' +
      // seq 0, captureUs 1
      '0000000000000000 0000000000000001 ' +
      // CRC32 of the payload, name length 0, metadata length 0
      '57586539 0000 0000 ' +
      // payload
      '80ff',
    encode: () =>
      encodeFrame({
        streamId: 2,
        seq: 0,
        captureUs: 1,
        contentType: 'raw',
        pixelFormat: 'gray8',
        width: 2,
        height: 1,
        payload: rawPayload,
        flags: 1,
      }),
    message: {
      type: MessageType.FRAME,
      frame: {
        streamId: 2,
        seq: 0,
        captureUs: 1,
        contentType: 'raw',
        pixelFormat: 'gray8',
        width: 2,
        height: 1,
        crc: 0x57586539,
        name: '',
        meta: undefined,
        payload: rawPayload,
        flags: 1,
      },
    },
  },
  {
    name: 'MESSAGE referring to a frame',
    hex:
      // magic, version, type 0x11, flags, reserved, head length 22 = 18 + 4, body length 9
      '4657 01 11 00 00 0016 00000009 ' +
      // seq 3, referenced seq 7, referenced stream name length 4
      '0000000000000003 0000000000000007 0004 ' +
      // "cam0"
      '63616d30 ' +
      // [0,0,0,1]
      '5b302c302c302c315d',
    encode: () => encodeMessage(3, '[0,0,0,1]', { stream: 'cam0', seq: 7 }),
    message: {
      type: MessageType.MESSAGE,
      message: { seq: 3, ref: { stream: 'cam0', seq: 7 }, json: [0, 0, 0, 1], text: '[0,0,0,1]', flags: 0 },
    },
  },
  {
    name: 'MESSAGE without a frame reference',
    hex:
      // magic, version, type 0x11, flags, reserved, head length 18, body length 11
      '4657 01 11 00 00 0012 0000000b ' +
      // seq 4, referenced seq 0, referenced stream name length 0
      '0000000000000004 0000000000000000 0000 ' +
      // {"ok":true}
      '7b226f6b223a747275657d',
    encode: () => encodeMessage(4, '{"ok":true}'),
    message: {
      type: MessageType.MESSAGE,
      message: { seq: 4, ref: undefined, json: { ok: true }, text: '{"ok":true}', flags: 0 },
    },
  },
  {
    name: 'ACK stream 1 seq 7',
    hex:
      // magic, version, type 0x12, flags, reserved, head length 12, body length 0
      '4657 01 12 00 00 000c 00000000 ' +
      // stream 1, reserved, seq 7
      '0001 0000 0000000000000007',
    encode: () => encodeAck(1, 7),
    message: { type: MessageType.ACK, stream: 1, seq: 7 },
  },
  {
    name: 'ACK of the message channel, seq 2^32+5',
    hex:
      // magic, version, type 0x12, flags, reserved, head length 12, body length 0
      '4657 01 12 00 00 000c 00000000 ' +
      // stream 0xffff (message channel), reserved, seq 4294967301
      'ffff 0000 0000000100000005',
    encode: () => encodeAck(MESSAGE_CHANNEL, 2 ** 32 + 5),
    message: { type: MessageType.ACK, stream: MESSAGE_CHANNEL, seq: 2 ** 32 + 5 },
  },
  {
    name: 'PING time 1234',
    hex:
      // magic, version, type 0x30, flags, reserved, head length 8, body length 0
      '4657 01 30 00 00 0008 00000000 ' +
      // time 1234 ms
      '00000000000004d2',
    encode: () => encodePing(MessageType.PING, 1234),
    message: { type: MessageType.PING, time: 1234 },
  },
  {
    name: 'CLOCK t1 1700000000000000',
    hex:
      // magic, version, type 0x32, flags, reserved, head length 8, body length 0
      '4657 01 32 00 00 0008 00000000 ' +
      // t1 1700000000000000 µs
      '00060a24181e4000',
    encode: () => encodeClock(1_700_000_000_000_000),
    message: { type: MessageType.CLOCK, t1: 1_700_000_000_000_000 },
  },
  {
    name: 'CLOCK_REPLY from a clock 3 s ahead',
    hex:
      // magic, version, type 0x33, flags, reserved, head length 24, body length 0
      '4657 01 33 00 00 0018 00000000 ' +
      // t1 echoed, t2 1700000003000150, t3 1700000003000170
      '00060a24181e4000 00060a24184c0756 00060a24184c076a',
    encode: () => encodeClockReply(1_700_000_000_000_000, 1_700_000_003_000_150, 1_700_000_003_000_170),
    message: {
      type: MessageType.CLOCK_REPLY,
      t1: 1_700_000_000_000_000,
      t2: 1_700_000_003_000_150,
      t3: 1_700_000_003_000_170,
    },
  },
  {
    name: 'BYE',
    hex:
      // magic, version, type 0x3f, flags, reserved, head length 0, body length 17
      '4657 01 3f 00 00 0000 00000011 ' +
      // {"reason":"done"}
      '7b22726561736f6e223a22646f6e65227d',
    encode: () => encodeControl(MessageType.BYE, { reason: 'done' }),
    message: { type: MessageType.BYE, body: { reason: 'done' } },
  },
];
