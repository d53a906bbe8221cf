import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FRAME_HEAD_FIXED,
  MAX_STREAM_ID,
  MESSAGE_CHANNEL,
  MessageType,
} from '../../src/protocol/constants.js';
import {
  encodeAck,
  encodeControl,
  encodeFrame,
  encodeMessage,
  encodePing,
  type FrameFields,
  readU64,
  toBytes,
  writeU64,
} from '../../src/protocol/messages.js';
import { decodeChunks, throwsCode } from './helpers.js';

const base: FrameFields = {
  streamId: 1,
  seq: 0,
  captureUs: 0,
  contentType: 'image/jpeg',
  payload: Buffer.from('x'),
};
const frame = (f: Partial<FrameFields>) => () => encodeFrame({ ...base, ...f });
const BAD_U64 = [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, Number.MAX_SAFE_INTEGER + 2];

describe('encodeFrame input checks', () => {
  it('rejects a stream id outside 0..65534 with ERR_BAD_FRAME', () => {
    for (const streamId of [-1, MAX_STREAM_ID + 1, MESSAGE_CHANNEL, 70000, 1.5, Number.NaN]) {
      throwsCode(frame({ streamId }), 'ERR_BAD_FRAME');
    }
    encodeFrame({ ...base, streamId: 0 });
    encodeFrame({ ...base, streamId: MAX_STREAM_ID });
  });

  it('rejects a negative, fractional or unsafe seq or captureUs with ERR_BAD_FRAME', () => {
    for (const v of BAD_U64) {
      throwsCode(frame({ seq: v }), 'ERR_BAD_FRAME');
      throwsCode(frame({ captureUs: v }), 'ERR_BAD_FRAME');
    }
    encodeFrame({ ...base, seq: Number.MAX_SAFE_INTEGER, captureUs: Number.MAX_SAFE_INTEGER });
  });

  it('rejects a width or height outside 0..65535 with ERR_BAD_FRAME', () => {
    for (const v of [-1, 65536, 1.5, Number.NaN]) {
      throwsCode(frame({ width: v }), 'ERR_BAD_FRAME');
      throwsCode(frame({ height: v }), 'ERR_BAD_FRAME');
    }
    encodeFrame({ ...base, width: 65535, height: 65535 });
  });

  it('rejects name and metadata that do not fit a 16-bit head length with ERR_META_TOO_LARGE', () => {
    const room = 0xffff - FRAME_HEAD_FIXED;
    throwsCode(frame({ name: 'n'.repeat(room + 1) }), 'ERR_META_TOO_LARGE');
    throwsCode(frame({ metaJson: JSON.stringify('m'.repeat(room - 1)) }), 'ERR_META_TOO_LARGE');
    throwsCode(
      frame({ name: 'n'.repeat(100), metaJson: JSON.stringify('m'.repeat(room - 101)) }),
      'ERR_META_TOO_LARGE',
    );
    // Multi-byte characters count in bytes, not characters.
    throwsCode(frame({ name: 'é'.repeat(Math.ceil((room + 1) / 2)) }), 'ERR_META_TOO_LARGE');
    const fits = toBytes(
      encodeFrame({ ...base, name: 'n'.repeat(100), metaJson: JSON.stringify('m'.repeat(room - 102)) }),
    );
    assert.equal(fits.readUInt16BE(6), 0xffff);
  });

  it('computes the CRC when not given and keeps one that is', () => {
    const b = toBytes(encodeFrame({ ...base, crc: 0xdeadbeef }));
    assert.equal(b.readUInt32BE(12 + 24), 0xdeadbeef);
    throwsCode(() => decodeChunks([b]), 'ERR_CRC_MISMATCH');
  });
});

describe('other encoders input checks', () => {
  it('encodeAck takes stream ids 0..65535 (65535 is the message channel) and safe seqs', () => {
    for (const s of [-1, 0x10000, 0.5]) throwsCode(() => encodeAck(s, 0), 'ERR_BAD_FRAME');
    for (const v of BAD_U64) throwsCode(() => encodeAck(0, v), 'ERR_BAD_FRAME');
    encodeAck(MESSAGE_CHANNEL, Number.MAX_SAFE_INTEGER);
  });

  it('encodeMessage rejects an unsafe seq, an unsafe referenced seq and an oversized stream name', () => {
    for (const v of BAD_U64) {
      throwsCode(() => encodeMessage(v, '1'), 'ERR_BAD_FRAME');
      throwsCode(() => encodeMessage(0, '1', { stream: 'cam0', seq: v }), 'ERR_BAD_FRAME');
    }
    throwsCode(() => encodeMessage(0, '1', { stream: 's'.repeat(0xffff - 18 + 1), seq: 0 }), 'ERR_BAD_FRAME');
    encodeMessage(0, '1', { stream: 's'.repeat(0xffff - 18), seq: 0 });
  });

  it('encodePing rejects an unsafe time', () => {
    for (const v of BAD_U64) {
      throwsCode(() => encodePing(MessageType.PING, v), 'ERR_BAD_FRAME');
      throwsCode(() => encodePing(MessageType.PONG, v), 'ERR_BAD_FRAME');
    }
  });

  it('encodeControl rejects a body over 64 KiB with ERR_MESSAGE_TOO_LARGE', () => {
    throwsCode(
      () => encodeControl(MessageType.BYE, { reason: 'r'.repeat(64 * 1024) }),
      'ERR_MESSAGE_TOO_LARGE',
    );
  });
});

describe('64-bit helpers', () => {
  it('write and read big-endian values up to 2^53-1', () => {
    const b = Buffer.alloc(8);
    for (const v of [
      0,
      1,
      0xffff_ffff,
      2 ** 32,
      2 ** 32 + 5,
      1_700_000_000_000_000,
      Number.MAX_SAFE_INTEGER,
    ]) {
      writeU64(b, v, 0);
      assert.equal(b.toString('hex'), v.toString(16).padStart(16, '0'));
      assert.equal(readU64(b, 0), v);
    }
  });
});
