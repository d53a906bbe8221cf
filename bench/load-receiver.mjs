// The receiver of bench/load.mjs: a framewire server on 127.0.0.1:0 that checks every frame arrives exactly
// once and in order per stream, and measures latency, RSS and CPU.
import { setTimeout as sleep } from 'node:timers/promises';
import { guard, readConfig, rssSampler, tell } from './lib.mjs';

const cfg = readConfig();
guard('load receiver', cfg.deadlineMs);
const fw = await import('../dist/index.js');
const next = new Map();
let unique = 0;
let duplicates = 0;
let outOfOrder = 0;
const latencies = [];
let disk = Promise.resolve();
const sinks = [];
if (cfg.slowMs > 0) {
  // One simulated disk for all streams: writes queue behind each other, slowMs each.
  sinks.push({
    frame() {
      const turn = disk.then(() => sleep(cfg.slowMs));
      disk = turn;
      return turn;
    },
  });
}
// The receiver's memory bound: at most 64 MiB received and not yet stored, all senders together.
const server = await fw.createServer({
  listen: 'tcp://127.0.0.1:0',
  sinks,
  maxConnectionsPerAddress: 1000,
  maxTotalPendingBytes: 64 * 1024 * 1024,
});
let first = 0;
let last = 0;
server.on('frame', (f) => {
  const want = next.get(f.stream.name) ?? 0;
  if (f.seq < want) duplicates++;
  else {
    if (f.seq > want) outOfOrder++;
    next.set(f.stream.name, f.seq + 1);
    unique++;
  }
  latencies.push((f.receivedUs - f.captureUs) / 1000);
  last = performance.now();
  if (!first) first = last;
});
const rss = rssSampler(50);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await tell({ type: 'ready', port: server.port });
process.on('message', async (m) => {
  if (m.type !== 'report') return;
  const cpu = process.cpuUsage(cpu0);
  const wall = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
  await tell({
    type: 'report',
    unique,
    duplicates,
    outOfOrder,
    fps: unique / ((last - first) / 1000 || 1),
    latencyP50Ms: q(0.5),
    latencyP99Ms: q(0.99),
    rssPeakMB: rss.peak() / 1e6,
    cpuPct: ((cpu.user + cpu.system) / 1000 / wall) * 100,
  });
  await server.close();
  process.exit(0);
});
