/** One size syntax for every size option (src/sizes.ts): the CLI's sizes and the udp:// URL's alike. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { sizeOption } from '../src/cli/values.js';
import { FramewireError } from '../src/errors.js';
import { parseByteSize } from '../src/sizes.js';

test('parseByteSize reads bytes, decimal and binary units, any case, and a /s for rates', () => {
  const cases: [string, number][] = [
    ['1200', 1200],
    ['0', 0],
    ['12B', 12],
    ['64k', 64_000],
    ['64KB', 64_000],
    ['64KiB', 65_536],
    ['32M', 32_000_000],
    ['32mb', 32_000_000],
    ['8MiB', 8 * 1024 ** 2],
    ['1.5GB', 1_500_000_000],
    ['2g', 2e9],
    ['1GiB', 1024 ** 3],
    ['50MB/s', 50_000_000],
    [' 7 KiB ', 7168],
  ];
  for (const [text, want] of cases) assert.equal(parseByteSize(text, 'x'), want, text);
});

test('a malformed size is ERR_BAD_OPTION naming the option, with the syntax as hint', () => {
  for (const bad of ['', 'MB', '-1', '1e6', '12 parsecs', '1..2', '0x10', '5 TB']) {
    assert.throws(
      () => parseByteSize(bad, '--window-bytes'),
      (e: unknown) =>
        e instanceof FramewireError &&
        e.code === 'ERR_BAD_OPTION' &&
        e.message.includes('--window-bytes') &&
        /64KiB/.test(e.hint ?? ''),
      bad,
    );
  }
});

test('the CLI size options take the same syntax as --rate (32M works for both)', () => {
  const parseSize = sizeOption('--window-bytes', { min: 1, max: 2 ** 40 });
  assert.equal(parseSize('32M'), 32_000_000);
  assert.equal(parseSize('512KiB'), 512 * 1024);
  assert.throws(() => parseSize('lots'), InvalidArgumentError);
});
