import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { MessageType } from '../../src/protocol/constants.js';
import { toBytes } from '../../src/protocol/messages.js';
import { bytewise, decodeChunks } from './helpers.js';
import { VECTORS, vectorBytes } from './vectors.js';

describe('hex test vectors', () => {
  for (const v of VECTORS) {
    describe(v.name, () => {
      it('encodes to the frozen bytes', () => {
        assert.equal(toBytes(v.encode()).toString('hex'), vectorBytes(v).toString('hex'));
      });

      it('decodes from the frozen bytes', () => {
        assert.deepStrictEqual(decodeChunks([vectorBytes(v)]), [v.message]);
        assert.deepStrictEqual(decodeChunks(bytewise(vectorBytes(v))), [v.message]);
      });
    });
  }

  it('carry CRCs that zlib.crc32 agrees with', () => {
    for (const v of VECTORS) {
      if (v.message.type !== MessageType.FRAME) continue;
      assert.equal(crc32(v.message.frame.payload), v.message.frame.crc, v.name);
    }
  });

  it('spell the header of every vector as magic "FW" and version 1', () => {
    for (const v of VECTORS) {
      const b = vectorBytes(v);
      assert.equal(b.subarray(0, 3).toString('latin1'), 'FW\x01', v.name);
      assert.equal(b.readUInt16BE(6) + b.readUInt32BE(8) + 12, b.length, `${v.name}: lengths add up`);
    }
  });
});
