/** The CRC-32 the codec uses: the SIMD one where installed, always the value of zlib.crc32. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { crc32 as zlibCrc32 } from 'node:zlib';
import { crc32, crc32Native } from '../../src/protocol/crc.js';

const run = promisify(execFile);

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

test('where @node-rs/crc32 cannot be loaded, zlib.crc32 is used, with the same values', async () => {
  // The module alone in a temporary folder: there is no node_modules above it, so the require fails, as it
  // does on a platform without a prebuilt binary or an install that left optional packages out.
  const dir = await mkdtemp(join(tmpdir(), 'fw-crc-'));
  try {
    await copyFile(new URL('../../src/protocol/crc.ts', import.meta.url), join(dir, 'crc.ts'));
    await writeFile(
      join(dir, 'probe.ts'),
      "import { crc32, crc32Native } from './crc.ts';\n" +
        "console.log(JSON.stringify({ native: crc32Native, crc: crc32(Buffer.from('123456789')) }));\n",
    );
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(dir, 'probe.ts')], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    assert.deepEqual(JSON.parse(stdout), { native: false, crc: 0xcbf43926 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
