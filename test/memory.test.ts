/**
 * keepFreedMemory and noIncrementalMarking (src/memory.ts): act once, and not when the operator chose otherwise.
 * What they are for (fewer page faults, fewer collections per frame) is measured in the benchmark
 * (docs/benchmarks.md), not here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { keepFreedMemory, noIncrementalMarking } from '../src/index.js';

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

test('noIncrementalMarking: not when told no or when node was given a flag about it; otherwise once', () => {
  assert.equal(noIncrementalMarking({ FRAMEWIRE_INCREMENTAL_MARKING: '1' }, []), false);
  assert.equal(noIncrementalMarking({}, ['--incremental-marking']), false);
  assert.equal(noIncrementalMarking({}, ['--no-incremental-marking']), false);
  assert.equal(noIncrementalMarking({}, ['--trace-gc']), true);
  assert.equal(noIncrementalMarking({}, []), false, 'the second time it does nothing');
});
