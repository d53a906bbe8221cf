/**
 * keepFreedMemory (src/memory.ts): acts once, and not when the operator chose malloc settings or said no.
 * What it is for (fewer page faults per frame) is measured in the benchmark (docs/benchmarks.md), not here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keepFreedMemory } from '../src/index.js';

test('keepFreedMemory: not when told no or when the malloc thresholds are set; otherwise once', () => {
  assert.equal(keepFreedMemory({ FRAMEWIRE_KEEP_FREED_MEMORY: '0' }), false);
  assert.equal(keepFreedMemory({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=268435456' }), false);
  assert.equal(
    keepFreedMemory({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0' }),
    true,
    'other tunables leave it on',
  );
  assert.equal(keepFreedMemory({}), false, 'the second time it does nothing');
});
