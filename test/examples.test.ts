/** The examples the docs point to must run as they are. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);

test('examples/quickstart.mjs runs and stores every frame', async () => {
  const script = new URL('../examples/quickstart.mjs', import.meta.url).pathname;
  const { stdout } = await run(process.execPath, [script], { timeout: 60_000 });
  assert.match(stdout, /message \{"detections":\[\[10,20,30,40\]\]\} about \{ stream: 'front', seq: 3 \}/);
  assert.match(stdout, /acknowledged 20 frames, 1 message/);
  assert.match(stdout, /receiver stored 20 frames in .*: front front-ir messages\.jsonl/);
});
