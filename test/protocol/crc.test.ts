/** The CRC-32 the codec uses: the SIMD one where installed, always the value of zlib.crc32. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32, crc32Native } from '../../src/protocol/crc.js';

test('crc32 gives the value of zlib.crc32 for every length, views included', () => {
  const big = randomBytes(300_000);
  for (const n of [0, 1, 7, 8, 15, 16, 63, 64, 65, 1000, 123_000, 300_000]) {
    const b = big.subarray(0, n);
    assert.equal(crc32(b), zlibCrc32(b), `length ${n}`);
    const view = big.subarray(3, 3 + Math.max(0, n - 3));
    assert.equal(crc32(view), zlibCrc32(view), `view of length ${view.length}`);
  }
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

test('the SIMD implementation (@node-rs/crc32) is in use on linux x64', {
  skip: !(process.platform === 'linux' && process.arch === 'x64'),
}, () => {
  assert.equal(crc32Native, true);
});
