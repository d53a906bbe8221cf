// Load benchmark (issue: 50 senders). Run by `npm run bench` after the throughput rows, or alone:
//   node bench/load.mjs            (after npm run build)
// Scenario 1: LOAD_SENDERS (50) reliable senders, each a camera at LOAD_FPS (30) frames/s of 31 KB, for
//   LOAD_SECONDS (30) s, into one receiver with no sink: every frame must arrive, exactly once, in order.
// Scenario 2: the same senders into a receiver whose "disk" is slow (a sink that stores one frame at a time
//   for all streams, LOAD_SLOW_MS = 2 ms each, i.e. at most 500 frames/s in all, a third of what arrives), for
//   LOAD_SLOW_SECONDS (15) s: senders must be slowed by backpressure, the receiver's memory stays bounded.
//   The slow disk is simulated (a timer per write) so that the run measures framewire, not this machine's disk.
// Receiver and senders run in separate processes; the table reports the receiver's peak RSS and CPU, and the
// end-to-end latency (receive time - capture time, same clock) at p50/p99.
import { fork } from 'node:child_process';
import os from 'node:os';

const N = Number(process.env.LOAD_SENDERS ?? 50);
const FPS = Number(process.env.LOAD_FPS ?? 30);
const SIZE = Number(process.env.LOAD_SIZE ?? 31_000);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 30);
const SLOW_SECONDS = Number(process.env.LOAD_SLOW_SECONDS ?? 15);
const SLOW_MS = Number(process.env.LOAD_SLOW_MS ?? 2);
const here = new URL('.', import.meta.url).pathname;

function child(script, cfg) {
  const p = fork(`${here}${script}`, [JSON.stringify(cfg)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const messages = [];
  const waiters = [];
  p.on('message', (m) => {
    const w = waiters.findIndex((x) => x.type === m.type);
    if (w >= 0) waiters.splice(w, 1)[0].resolve(m);
    else messages.push(m);
  });
  const dead = new Promise((_, reject) =>
    p.on('exit', (code) => reject(new Error(`${script} exited with ${code}`))),
  );
  dead.catch(() => {});
  return {
    p,
    next(type, timeoutMs) {
      const i = messages.findIndex((m) => m.type === type || m.type === 'error');
      if (i >= 0) {
        const m = messages.splice(i, 1)[0];
        return m.type === 'error' ? Promise.reject(new Error(m.message)) : Promise.resolve(m);
      }
      return Promise.race([
        new Promise((resolve, reject) => {
          waiters.push({ type, resolve });
          waiters.push({ type: 'error', resolve: (m) => reject(new Error(m.message)) });
        }),
        dead,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error(`${script}: no ${type} in ${timeoutMs} ms`)), timeoutMs).unref(),
        ),
      ]);
    },
    send: (m) => p.send(m),
    kill: () => p.kill('SIGKILL'),
  };
}

async function scenario(name, seconds, slowMs) {
  const deadline = (seconds + 60) * 1000;
  const rx = child('load-receiver.mjs', { slowMs, deadlineMs: deadline });
  let tx;
  try {
    const { port } = await rx.next('ready', 20_000);
    tx = child('load-senders.mjs', { port, senders: N, fps: FPS, size: SIZE, seconds, deadlineMs: deadline });
    const sent = await tx.next('done', deadline);
    rx.send({ type: 'report' });
    const got = await rx.next('report', 20_000);
    return { name, seconds, slowMs, sent, got };
  } finally {
    tx?.kill();
    rx.kill();
  }
}

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const int = (x) => Math.round(x).toLocaleString('en-US');
function row(r) {
  const s = r.sent;
  const g = r.got;
  const lost = s.acked - g.unique;
  const ok = lost === 0 && g.duplicates === 0 && g.outOfOrder === 0 && s.acked === s.sent;
  return `| ${r.name} | ${N} × ${FPS} fps × ${int(SIZE / 1000)} KB | ${r.seconds} | ${int(s.sent)} | ${int(s.acked)} | ${int(g.unique)} | ${ok ? 'none' : `LOST ${lost}, dup ${g.duplicates}, disorder ${g.outOfOrder}`} | ${f1(s.offeredFps)} | ${f1(g.fps)} | ${f1(g.latencyP50Ms)} | ${f1(g.latencyP99Ms)} | ${f1(g.rssPeakMB)} | ${f1(g.cpuPct)} | ${f1(s.sendWaitP99Ms)} |`;
}

const results = [];
let failed = false;
for (const [name, secs, slow] of [
  ['no sink', SECONDS, 0],
  [`slow disk (${SLOW_MS} ms/frame, serial)`, SLOW_SECONDS, SLOW_MS],
]) {
  process.stderr.write(`load: ${name}, ${secs} s ... `);
  try {
    const r = await scenario(name, secs, slow);
    results.push(r);
    process.stderr.write(`${int(r.got.unique)} frames\n`);
    if (r.sent.acked !== r.got.unique || r.got.duplicates || r.got.outOfOrder || r.sent.acked !== r.sent.sent)
      failed = true;
  } catch (err) {
    failed = true;
    process.stderr.write(`FAILED: ${err.message}\n`);
  }
}
const lines = [
  '## framewire load benchmark',
  '',
  `- ${new Date().toISOString()}, node ${process.version}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores; loopback`,
  `- ${N} reliable senders (one process, one connection each) and one receiver (another process)`,
  '- offered fps: frames the senders produced per second in all; received fps: frames stored per second',
  '- latency: receive time minus capture time (same clock), p50/p99 over every frame; send wait p99: the longest',
  '  waits of send() for window space (backpressure), p99 over frames',
  '',
  '| scenario | load | s | sent | acked | received | lost | offered fps | received fps | latency p50 ms | latency p99 ms | rx peak RSS MB | rx CPU % | send wait p99 ms |',
  '|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map(row),
];
process.stdout.write(`\n${lines.join('\n')}\n`);
process.exit(failed ? 1 : 0);
