/** The docs are part of the work: these checks keep them in step with the code. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ErrorCode } from '../src/errors.js';

const doc = (name: string) => readFile(new URL(`../docs/${name}`, import.meta.url), 'utf8');

test('docs/errors.md lists every error code', async () => {
  const text = await doc('errors.md');
  const missing = Object.values(ErrorCode).filter((c) => !text.includes(`\`${c}\``));
  assert.deepEqual(missing, [], `add these codes to docs/errors.md: ${missing.join(', ')}`);
});

test('README links only to docs that exist', async () => {
  const readme = await readFile(new URL('../README.md', import.meta.url), 'utf8');
  for (const m of readme.matchAll(/\]\((docs\/[^)#]+)\)/g)) {
    await assert.doesNotReject(readFile(new URL(`../${m[1]}`, import.meta.url)), `${m[1]} exists`);
  }
});
