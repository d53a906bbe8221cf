// Summarises V8 .cpuprofile files (as written by BENCH_CPU_PROF=1 npm run bench) as text: where the time
// goes by function, self and inclusive, as a share of the samples taken while not idle.
//
//   node bench/profile-summary.mjs bench/out/prof/null-123000-receiver.cpuprofile [--top 30]
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const TOP = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 30;
if (args.length === 0) {
  console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile... [--top N]');
  process.exit(2);
}

function where(cf) {
  const url = cf.url.replace(/^file:\/\//, '');
  const short = url.startsWith('/') ? relative(process.cwd(), url) : url;
  return short ? `${short}:${cf.lineNumber + 1}` : '';
}

function summarise(file) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Time per sample from timeDeltas; a sample's time is the delta that follows it.
  const selfUs = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const key = (n) => `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame)}`.trim();
  let total = 0;
  let idle = 0;
  const self = new Map();
  const incl = new Map();
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (n.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    total += us;
    const k = key(n);
    self.set(k, (self.get(k) ?? 0) + us);
    // Inclusive: every distinct function on the stack gets the sample once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key(byId.get(cur));
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + us);
    }
  }
  const pct = (us) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const rows = (m) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(([k, us]) => `  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${k}`)
      .join('\n');
  const wall = (p.endTime - p.startTime) / 1000;
  console.log(`== ${file}`);
  console.log(
    `   ${(wall / 1000).toFixed(1)} s profiled, ${(total / 1000).toFixed(0)} ms busy, ${(idle / 1000).toFixed(0)} ms idle`,
  );
  console.log(`-- self time (share of busy)\n${rows(self)}`);
  console.log(`-- inclusive time (share of busy)\n${rows(incl)}\n`);
}

for (const f of args) summarise(f);
