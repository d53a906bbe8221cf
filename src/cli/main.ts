#!/usr/bin/env node
/** Entry point of the `framewire` command: runs the CLI and turns Ctrl-C into a clean stop. */
import { keepFreedMemory, noIncrementalMarking } from '../memory.js';
import { run } from './run.js';

// Frame buffers reuse freed memory instead of fresh pages, and V8 does not start a marking cycle every few
// dozen frames (src/memory.ts).
keepFreedMemory();
noIncrementalMarking();

const controller = new AbortController();
let interrupted = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    interrupted++;
    if (interrupted > 1) process.exit(130);
    controller.abort();
  });
}
process.exitCode = await run(process.argv.slice(2), { signal: controller.signal });
