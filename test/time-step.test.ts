/**
 * The wall clock follows a step of the system clock made after start (an edge board without a
 * battery-backed clock that syncs NTP late), while durations do not jump. A real node process runs
 * test/fixtures/clock/step.ts under Debian's libfaketime, whose offset file this test rewrites mid-run
 * (FAKETIME_NO_CACHE makes every clock reading read it again; DONT_FAKE_MONOTONIC leaves the monotonic
 * clock alone, as a real step of the system clock does).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { tempDir } from './helpers/tmp.js';

function libfaketime(): string | undefined {
  const dirs = ['/usr/lib'];
  try {
    for (const e of readdirSync('/usr/lib')) dirs.push(join('/usr/lib', e));
  } catch {}
  return dirs.map((d) => join(d, 'faketime', 'libfaketime.so.1')).find((p) => existsSync(p));
}
const LIB = libfaketime();
const STEP_S = 100;

interface Reading {
  wallUs: number;
  monoMs: number;
  oldUs: number;
  dateMs: number;
  wallMinusMonoMs: number;
  receivedUs: number;
  captureUs: number;
}

test('wall-clock times follow a step of the system clock; durations do not jump', {
  skip: LIB ? false : 'needs libfaketime (Debian: apt-get install faketime; .ci/run installs it)',
  timeout: 120_000,
}, async () => {
  const { dir, cleanup } = await tempDir('fw-time-step-');
  const offsetFile = join(dir, 'offset');
  await writeFile(offsetFile, '+0s\n');
  const script = new URL('./fixtures/clock/step.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      ...process.env,
      LD_PRELOAD: LIB!,
      FAKETIME_TIMESTAMP_FILE: offsetFile,
      FAKETIME_NO_CACHE: '1',
      DONT_FAKE_MONOTONIC: '1',
    },
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async (key: string): Promise<Reading> => {
    // Deadline: a node start with tsx on a busy 2-core machine, and one frame over loopback.
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      const r = await lines.next();
      assert.ok(!r.done, `step.ts ended without "${key}": ${stderr}`);
      return (JSON.parse(r.value) as Record<string, Reading>)[key]!;
    } finally {
      clearTimeout(t);
    }
  };
  try {
    const before = await next('before');
    const t0 = performance.now();
    await writeFile(offsetFile, `+${STEP_S}s\n`);
    child.stdin!.write('stepped\n');
    const after = await next('after');
    const elapsedMs = performance.now() - t0;

    // All differences are between two readings of the child, except elapsedMs, the parent's time between
    // the two lines (which, with the pipe's delays on a busy machine, may differ from the child's by a bit).
    const monoStep = after.monoMs - before.monoMs;
    // libfaketime really stepped the child's system clock (else this test shows nothing).
    const dateStep = after.dateMs - before.dateMs - monoStep;
    assert.ok(Math.abs(dateStep - STEP_S * 1000) < 50, `Date.now() moved ${dateStep} ms beside the duration`);
    // The duration across the step, on the monotonic clock, is the real one: no jump of STEP_S.
    assert.ok(
      monoStep >= 0 && monoStep < elapsedMs + 5000,
      `monoMs moved ${monoStep} ms in ${elapsedMs} real ms`,
    );
    // The wall clock moved by the step plus the real time between the readings.
    const wallJump = (after.wallUs - before.wallUs) / 1000 - monoStep;
    assert.ok(Math.abs(wallJump - STEP_S * 1000) < 50, `wallUs jumped ${wallJump} ms beside the duration`);
    assert.ok(Math.abs(after.wallMinusMonoMs - before.wallMinusMonoMs - STEP_S * 1000) < 50);
    // So did the times of the frame sent after the step: they lie between the reading before the step plus
    // the step, and the reading after it.
    const low = before.wallUs + STEP_S * 1_000_000 - 50_000;
    for (const key of ['captureUs', 'receivedUs'] as const) {
      assert.ok(
        after[key] >= low && after[key] <= after.wallUs + 1000,
        `${key} ${after[key]} within [${low}, ${after.wallUs}] (before the step: ${before[key]})`,
      );
    }
    // What the timestamps were before (performance.timeOrigin + performance.now()) never sees the step: the
    // assertions above fail for it.
    const oldJump = (after.oldUs - before.oldUs) / 1000 - monoStep;
    assert.ok(Math.abs(oldJump) < 50, `timeOrigin + now() jumped ${oldJump} ms`);
    assert.equal(await exited, 0, stderr);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await cleanup();
  }
});
