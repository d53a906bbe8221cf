#!/usr/bin/env node
// The long fuzz campaign: the properties of test/fuzz/*.test.ts (the ones `npm test` runs briefly, with a
// fixed seed) with many more runs and a random seed, within a time budget.
//
// Usage: npm run fuzz [-- test/fuzz/session.test.ts ...]
//   FUZZ_RUNS     runs per property (default 20000; properties whose runs are expensive scale it down)
//   FUZZ_SEED     the seed (default: random, printed; give it again to replay a campaign)
//   FUZZ_SECONDS  the whole campaign's budget (default 300); each property gets its share and stops
//                 there, counting the runs it did as passed; the campaign is killed 60 s past the budget
// A failure prints fast-check's counterexample and the command that replays it (FUZZ_SEED, FUZZ_PATH).
// At the end it prints the peak RSS of each test process (sampled from /proc each second; Linux).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'test', 'fuzz');
const args = process.argv.slice(2);
// The regressions replay fixed inputs: `npm test` runs them; nothing random to run longer.
const files = (
  args.length > 0
    ? args
    : readdirSync(dir)
        .filter((f) => f.endsWith('.test.ts') && f !== 'regressions.test.ts')
        .map((f) => relative(root, join(dir, f)))
).sort();
if (files.length === 0) {
  console.error('no fuzz test files');
  process.exit(1);
}

const seconds = Number(process.env.FUZZ_SECONDS || 300);
const runs = Number(process.env.FUZZ_RUNS || 20000);
const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
if (!(seconds > 0) || !(runs > 0) || !Number.isInteger(seed)) {
  console.error('FUZZ_SECONDS and FUZZ_RUNS must be positive numbers, FUZZ_SEED an integer');
  process.exit(2);
}

// Every property runs through check()/checkAsync() of test/fuzz/harness.ts with its name first: count them
// to give each its share of the budget. Files run one at a time, so the shares add up.
let properties = 0;
for (const f of files) {
  properties += (readFileSync(join(root, f), 'utf8').match(/(?<![.\w])check(?:Async)?\(\s*['`]/g) ?? [])
    .length;
}
// session.test.ts and handshake.test.ts run their one property twice (without and with a token).
properties += files.filter((f) => /(session|handshake)\.test\.ts$/.test(f)).length;
properties = Math.max(1, properties);
// Kept back for starting processes, compiling, health checks, cleanup: 10 s per file, and a tenth.
const overheadMs = files.length * 10_000 + seconds * 100;
const propertyMs = Math.max(1000, Math.floor((seconds * 1000 - overheadMs) / properties));

console.log(
  `fuzz: ${files.length} files, ${properties} properties, FUZZ_SEED=${seed} FUZZ_RUNS=${runs} ` +
    `FUZZ_SECONDS=${seconds} (at most ${(propertyMs / 1000).toFixed(1)} s per property)`,
);
const started = Date.now();
const child = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    `--test-timeout=${(seconds + 30) * 1000}`,
    '--test-reporter=spec',
    ...files,
  ],
  {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: {
      ...process.env,
      FUZZ_RUNS: String(runs),
      FUZZ_SEED: String(seed),
      FUZZ_PROPERTY_MS: String(propertyMs),
      // However the shares work out, every property stops in time for the campaign to end by its budget.
      FUZZ_DEADLINE: String(Date.now() + seconds * 1000 - 15_000),
    },
  },
);
const summary = [];
let carry = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  const text = carry + chunk.toString('utf8');
  const lines = text.split('\n');
  carry = lines.pop() ?? '';
  for (const l of lines) {
    const m = /fuzz: (.*)$/.exec(l);
    if (m && !l.includes('properties, FUZZ_SEED')) summary.push(m[1]);
  }
});
// Memory: the peak RSS (VmHWM) of every test process (the runner's children, one per file), sampled each
// second from /proc (Linux), printed at the end.
const peaks = new Map();
function sampleMemory() {
  let pids;
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]);
      if (ppid !== child.pid && Number(pid) !== child.pid) continue;
      const hwm = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const file =
        Number(pid) === child.pid ? 'the test runner' : (cmd.find((a) => a.endsWith('.test.ts')) ?? pid);
      peaks.set(file, Math.max(peaks.get(file) ?? 0, hwm));
    } catch {
      /* gone meanwhile */
    }
  }
}
const sampler = setInterval(sampleMemory, 1000);
const killer = setTimeout(
  () => {
    console.error(`fuzz: still running ${seconds + 60} s after the start: killing it`);
    child.kill('SIGKILL');
  },
  (seconds + 60) * 1000,
);
child.on('close', (code, signal) => {
  clearTimeout(killer);
  clearInterval(sampler);
  const took = ((Date.now() - started) / 1000).toFixed(0);
  console.log(`\nfuzz campaign, FUZZ_SEED=${seed}, ${took} s:`);
  for (const s of summary) console.log(`  ${s}`);
  for (const [file, hwm] of [...peaks].sort()) {
    console.log(`  peak RSS ${(hwm / 1048576).toFixed(0)} MB: ${relative(root, file) || file}`);
  }
  if (code === 0) console.log('fuzz: every property held');
  else
    console.log(
      `fuzz: FAILED (${signal ?? `exit code ${code}`}); replay with FUZZ_SEED=${seed} and the FUZZ_PATH printed above`,
    );
  process.exit(code === 0 ? 0 : 1);
});
