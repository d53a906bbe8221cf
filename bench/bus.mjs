// Bus rows of the benchmark (issue 13): a sender → `serve --publish` (JetStream sink) → `consume --out`
// (JetStream source into a folder), 1,000 frames of 123 KB, against framewire's direct folder-to-folder in
// the same run; and one worker against two. bench/run.mjs calls runBusBench(); `node bench/bus.mjs` runs
// these rows alone (after `npm run build`). Needs nats-server on the PATH (the rows are skipped otherwise).
//
// Every end runs in its own child process (bench/bus-child.mjs) and the nats-server in another; a row's
// time runs from the parent's "go" to the moment the last frame is in the consumers' folder (bus rows) or
// acknowledged by the receiver, i.e. written (direct rows). Process start is not timed.
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const FRAMES = Number(process.env.BENCH_BUS_FRAMES || 1000);
const SIZE = 123_000;

export const BUS_ROWS = [
  { id: 'bus-direct', label: 'direct: sender → serve --out', kind: 'direct' },
  { id: 'bus-publish', label: 'sender → serve --publish (acknowledged by JetStream)', kind: 'publish' },
  { id: 'bus-1w', label: 'sender → serve --publish → consume --out, 1 worker', kind: 'bus', workers: 1 },
  { id: 'bus-2w', label: 'sender → serve --publish → consume --out, 2 workers', kind: 'bus', workers: 2 },
  { id: 'bus-direct-fsync', label: 'direct, --fsync', kind: 'direct', fsync: true },
  { id: 'bus-1w-fsync', label: 'bus, 1 worker, consume --fsync', kind: 'bus', workers: 1, fsync: true },
  { id: 'bus-2w-fsync', label: 'bus, 2 workers, consume --fsync', kind: 'bus', workers: 2, fsync: true },
  // A sink that is the bottleneck: one frame at a time, each flushed (--write-concurrency 1 --fsync), the way
  // a slow step per frame (an inference, a remote store) holds a worker. Here a second worker should help.
  {
    id: 'bus-direct-serial',
    label: 'direct, --fsync --write-concurrency 1',
    kind: 'direct',
    fsync: true,
    serial: true,
  },
  {
    id: 'bus-1w-serial',
    label: 'bus, 1 worker, consume --fsync --write-concurrency 1',
    kind: 'bus',
    workers: 1,
    fsync: true,
    serial: true,
  },
  {
    id: 'bus-2w-serial',
    label: 'bus, 2 workers, consume --fsync --write-concurrency 1',
    kind: 'bus',
    workers: 2,
    fsync: true,
    serial: true,
  },
];

function child(config, deadlineMs) {
  const proc = fork(join(here, 'bus-child.mjs'), [JSON.stringify({ ...config, deadlineMs })], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiters = [];
  proc.on('message', (m) => {
    if (m?.type === 'error')
      for (const w of waiters.splice(0)) w.reject(new Error(`${config.role}: ${m.message}`));
    for (const w of [...waiters]) {
      if (w.test(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
    proc.emit('fw-message', m);
  });
  proc.on('exit', (code) => {
    if (code) for (const w of waiters.splice(0)) w.reject(new Error(`${config.role} exited with ${code}`));
  });
  return {
    proc,
    when: (test) => new Promise((resolve, reject) => waiters.push({ test, resolve, reject })),
    send: (m) => proc.connected && proc.send(m),
  };
}

async function startNats(dir) {
  const port = await freePort();
  const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`nats-server did not start:\n${log}`)), 15_000);
    proc.stderr.on('data', (d) => {
      log += d;
      if (log.includes('Server is ready')) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.once('exit', (c) => reject(new Error(`nats-server exited with ${c}:\n${log}`)));
  });
  return { port, proc };
}

async function runRow(row, natsPort, tmp) {
  const deadlineMs = 120_000;
  const out = mkdtempSync(join(tmp, `${row.id}-`));
  const bus = `nats://127.0.0.1:${natsPort}?stream=${row.id.replace(/-/g, '_')}&prefix=${row.id}`;
  const kids = [];
  try {
    const receiver = child(
      {
        role: 'receiver',
        ...(row.kind === 'direct' ? { out, fsync: !!row.fsync, serial: !!row.serial } : { bus }),
      },
      deadlineMs,
    );
    kids.push(receiver);
    const { port } = await receiver.when((m) => m.type === 'ready');
    const consumers = [];
    const counts = [];
    for (let i = 0; row.kind === 'bus' && i < row.workers; i++) {
      const c = child(
        { role: 'consumer', bus, group: 'bench', out, fsync: !!row.fsync, serial: !!row.serial },
        deadlineMs,
      );
      kids.push(c);
      counts.push(0);
      c.proc.on('fw-message', (m) => {
        if (m?.type === 'count') counts[i] = m.n;
      });
      consumers.push(c);
    }
    await Promise.all(consumers.map((c) => c.when((m) => m.type === 'ready')));
    const sender = child({ role: 'sender', port, size: SIZE, frames: FRAMES }, deadlineMs);
    kids.push(sender);
    await sender.when((m) => m.type === 'ready');
    const t0 = performance.now();
    sender.send({ type: 'go' });
    let allIn;
    if (consumers.length > 0) {
      allIn = new Promise((resolve) => {
        for (const c of consumers) {
          c.proc.on('fw-message', () => {
            if (counts.reduce((a, b) => a + b, 0) >= FRAMES) resolve(performance.now());
          });
        }
      });
    }
    const done = await sender.when((m) => m.type === 'done');
    const sentMs = performance.now() - t0;
    if (done.acked !== FRAMES) throw new Error(`sender: ${done.acked} of ${FRAMES} frames acknowledged`);
    const endMs = allIn ? (await allIn) - t0 : sentMs;
    const mb = (FRAMES * SIZE) / 1e6;
    return {
      id: row.id,
      label: row.label,
      frames: FRAMES,
      size: SIZE,
      seconds: endMs / 1000,
      mbPerSec: mb / (endMs / 1000),
      framesPerSec: FRAMES / (endMs / 1000),
      perWorker: counts.length > 1 ? counts : undefined,
    };
  } finally {
    for (const k of kids) k.send({ type: 'stop' });
    await new Promise((r) => setTimeout(r, 300));
    for (const k of kids) k.proc.kill('SIGKILL');
    rmSync(out, { recursive: true, force: true });
  }
}

/** Runs the bus rows; returns the markdown table and the results. Skips (with a note) without nats-server. */
export async function runBusBench({ tmpParent = os.tmpdir() } = {}) {
  if (spawnSync('nats-server', ['--version']).status !== 0) {
    return { table: '### Bus rows\n\nskipped: nats-server is not installed', results: [], failures: 0 };
  }
  const tmp = mkdtempSync(join(tmpParent, 'fw-busbench-'));
  const nats = await startNats(join(tmp, 'jetstream'));
  const results = [];
  let failures = 0;
  try {
    for (const row of BUS_ROWS) {
      process.stderr.write(`  ${row.label}, ${FRAMES} x ${SIZE} bytes ... `);
      try {
        const r = await runRow(row, nats.port, tmp);
        results.push(r);
        process.stderr.write(`${r.mbPerSec.toFixed(0)} MB/s (${r.seconds.toFixed(2)} s)\n`);
      } catch (err) {
        failures++;
        results.push({ id: row.id, label: row.label, error: err?.message ?? String(err) });
        process.stderr.write(`FAILED\nbench: ${row.label}: ${err?.stack ?? err}\n`);
      }
    }
  } finally {
    nats.proc.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  }
  const byId = new Map(results.map((r) => [r.id, r]));
  const lines = [
    `### Bus rows: ${FRAMES} frames of ${SIZE / 1000} KB through NATS JetStream (nats-server ${natsVersion()}, file store on ${tmpParent})`,
    '',
    '| row | seconds | frames/s | MB/s | x direct |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    if (r.error) {
      lines.push(`| ${r.label} | FAILED: ${r.error} | | | |`);
      continue;
    }
    const direct = byId.get(
      r.id.endsWith('-serial')
        ? 'bus-direct-serial'
        : r.id.endsWith('-fsync')
          ? 'bus-direct-fsync'
          : 'bus-direct',
    );
    const ratio = direct && !direct.error ? (r.mbPerSec / direct.mbPerSec).toFixed(2) : '';
    const split = r.perWorker ? ` (${r.perWorker.join(' + ')})` : '';
    lines.push(
      `| ${r.label}${split} | ${r.seconds.toFixed(2)} | ${r.framesPerSec.toFixed(0)} | ${r.mbPerSec.toFixed(0)} | ${ratio} |`,
    );
  }
  return { table: lines.join('\n'), results, failures };
}

function natsVersion() {
  const r = spawnSync('nats-server', ['--version'], { encoding: 'utf8' });
  return (r.stdout || '').trim().replace(/^nats-server:\s*v?/, '');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table, failures } = await runBusBench({ tmpParent: process.env.BENCH_TMPDIR || os.tmpdir() });
  process.stdout.write(`${table}\n`);
  process.exit(failures > 0 ? 1 : 0);
}
