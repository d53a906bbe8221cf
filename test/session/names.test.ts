/** The name checks that keep every write inside the receiver's output folder. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkFileName, checkStreamName } from '../../src/index.js';

const UNSAFE: Array<[string, RegExp]> = [
  ['', /empty/],
  ['.', /parent or current folder|starts with a dot/],
  ['..', /parent or current folder/],
  ['../x', /path separator/],
  ['a/b', /path separator/],
  ['a\\b', /path separator/],
  ['/etc/passwd', /path separator/],
  ['C:\\Windows', /path separator|not allowed/],
  ['a\u0000b', /NUL/],
  ['a\u0001b', /control character/],
  ['tab\there', /control character/],
  ['new\nline', /control character/],
  ['del\u007f', /control character/],
  ['.hidden', /starts with a dot/],
  ['trailing.', /ends with a dot or a space/],
  ['trailing ', /ends with a dot or a space/],
  ['a|b', /not allowed/],
  ['a?b', /not allowed/],
  ['a*b', /not allowed/],
  ['a:b', /not allowed/],
  ['a<b>', /not allowed/],
  ['"q"', /not allowed/],
  ['CON', /reserved device name/],
  ['nul.jpg', /reserved device name/],
  ['com1.png', /reserved device name/],
  ['LPT9', /reserved device name/],
];

test('unsafe stream and file names are refused with ERR_UNSAFE_NAME and say why', () => {
  for (const [name, why] of UNSAFE) {
    for (const check of [checkStreamName, (n: string) => checkFileName(n)]) {
      assert.throws(
        () => check(name),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, 'ERR_UNSAFE_NAME', JSON.stringify(name));
          assert.match(err.message, why, JSON.stringify(name));
          return true;
        },
      );
    }
  }
});

test('length limits: 128 bytes for streams, 255 for files, counted in UTF-8 bytes', () => {
  assert.equal(checkStreamName('s'.repeat(128)), 's'.repeat(128));
  assert.throws(() => checkStreamName('s'.repeat(129)), {
    code: 'ERR_UNSAFE_NAME',
    message: /129 bytes long/,
  });
  assert.equal(checkFileName(`${'f'.repeat(251)}.jpg`), `${'f'.repeat(251)}.jpg`);
  assert.throws(() => checkFileName(`${'f'.repeat(252)}.jpg`), { code: 'ERR_UNSAFE_NAME' });
  // 43 three-byte characters are 129 bytes.
  assert.throws(() => checkStreamName('€'.repeat(43)), { code: 'ERR_UNSAFE_NAME', message: /129 bytes/ });
});

test("the receiver's own file names are refused as frame names", () => {
  for (const n of ['index.jsonl', 'INDEX.JSONL', 'latest.jpg']) {
    assert.throws(() => checkFileName(n), { code: 'ERR_UNSAFE_NAME', message: /keeps a file of that name/ });
  }
});

test('ordinary names pass unchanged', () => {
  for (const n of ['cam0', 'front-ir', 'run_42', 'Kamera vorne', 'カメラ', 'a.b.c', 'CONSOLE', 'com10']) {
    assert.equal(checkStreamName(n), n);
  }
  for (const n of ['0.png', '000000042.jpg', 'frame 10.jpeg', 'ñandú.jpg', 'x.raw'])
    assert.equal(checkFileName(n), n);
});
