/**
 * docs/protocol.md lists the hex test vectors annotated field by field: check that its bytes are exactly
 * those of test/protocol/vectors.ts, so the document cannot drift from the encoders.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { VECTORS, vectorBytes } from './vectors.js';

const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('\n## Test vectors'));

/** The bytes of an annotated block: each line starts with hex (in groups), then two spaces and a note. */
function blockBytes(block: string): string {
  return block
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const hex = line.split(/\s{2,}/)[0]!;
      assert.match(hex, /^[0-9a-f ]+$/, `not a hex field: ${line}`);
      return hex.replace(/ /g, '');
    })
    .join('');
}

describe('docs/protocol.md test vectors', () => {
  it('annotate exactly the bytes of vectors.ts, in the same order', () => {
    const blocks = [...section.matchAll(/```\n([\s\S]*?)```/g)].map((m) => blockBytes(m[1]!));
    assert.deepEqual(
      blocks,
      VECTORS.map((v) => vectorBytes(v).toString('hex')),
    );
  });

  it('give the one-line hex of each vector correctly', () => {
    const lines = [...section.matchAll(/^Hex: `([0-9a-f]+)`$/gm)].map((m) => m[1]!);
    const all = new Set(VECTORS.map((v) => vectorBytes(v).toString('hex')));
    assert.ok(lines.length >= VECTORS.length - 1);
    for (const hex of lines) assert.ok(all.has(hex), hex);
  });
});
