// framewire throughput benchmark: `npm run bench` (builds first; measures the compiled code in dist/).
//
// Every row runs a receiver and a sender in two separate child processes (bench/receiver.mjs and
// bench/sender.mjs) over 127.0.0.1 with port 0, talking to this process over IPC. The row's frames/s and
// MB/s are counted at the receiver over a fixed window after a warm-up. The report goes to stdout as
// markdown and to bench/out/latest.json; progress and errors go to stderr.
//
// Environment:
//   BENCH_SECONDS    measured seconds per row (default 4)
//   BENCH_WARMUP     warm-up seconds per row before measuring (default 1)
//   BENCH_SIZES      comma-separated frame sizes in bytes (default 31000,123000,425000)
//   BENCH_ROWS       comma-separated row ids to run: baseline, null, null-nocrc, folder, ws, null-w512, udp, bus,
//                    izmq, folders (default: all but null-w512); the folder-to-folder rows take BENCH_FOLDER_*
//                    (bench/folders.mjs)
//   BENCH_BUS_FRAMES frames per bus row (default 1000; bench/bus.mjs)

//   BENCH_POOL       distinct random payloads per size (default 8)
//   BENCH_IZMQ_FRAMES frames per ImageZMQ row (bench/izmq.mjs; default 3000; BENCH_ROWS=…,izmq selects them)
//   BENCH_MAX_FRAMES end a row's measured window after this many frames sent (default: time only)
//   BENCH_CPU_PROF   1: run the children under --cpu-prof, profiles in bench/out/prof/
//   BENCH_TMPDIR     parent folder of the folder sink's output (default: the OS temp folder)
//   BENCH_REPEAT     run every row this many times, interleaved, and report the median by MB/s (default 1)
//   BENCH_QUIET      before each row, wait up to this many seconds for the machine to be idle (busy under
//                    25% of one core over half a second; default 0: do not wait). Linux only.
import { execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, 'out');

function envNumber(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!(n > 0)) {
    console.error(`${name} must be a positive number, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const SECONDS = envNumber('BENCH_SECONDS', 4);
const WARMUP = envNumber('BENCH_WARMUP', 1);
const POOL = Math.round(envNumber('BENCH_POOL', 8));
const MAX_FRAMES = process.env.BENCH_MAX_FRAMES ? Math.round(envNumber('BENCH_MAX_FRAMES', 1)) : null;
const CPU_PROF = process.env.BENCH_CPU_PROF === '1';
const TMP_PARENT = process.env.BENCH_TMPDIR || os.tmpdir();
const REPEAT = Math.round(envNumber('BENCH_REPEAT', 1));
const QUIET_S = process.env.BENCH_QUIET === '0' ? 0 : envNumber('BENCH_QUIET', 0);

const SIZE_NAMES = new Map([
  [31_000, '31 KB (640x480)'],
  [123_000, '123 KB (1080p)'],
  [425_000, '425 KB (4K)'],
]);
const SIZES = (process.env.BENCH_SIZES ?? '31000,123000,425000')
  .split(',')
  .map((s) => Number(s.trim()))
  .filter((n) => Number.isInteger(n) && n > 0);
if (SIZES.length === 0) {
  console.error('BENCH_SIZES names no valid size');
  process.exit(2);
}

/** The kinds of row, in the order they run for each size. */
const KINDS = [
  { id: 'baseline', label: 'baseline: net socket, length-prefixed', kind: 'baseline' },
  { id: 'null', label: 'framewire reliable, null sink', kind: 'framewire', sink: 'null' },
  {
    id: 'null-nocrc',
    label: 'framewire reliable, null sink, verifyCrc off',
    kind: 'framewire',
    sink: 'null',
    verifyCrc: false,
  },
  { id: 'folder', label: 'framewire reliable, folder sink', kind: 'framewire', sink: 'folder' },
  // The same as "null" over ws:// (WebSocket binary messages); at 1080p only unless BENCH_SIZES has no 123000
  // (its ratio to the tcp:// "null" row of the same run is printed under the table).
  {
    id: 'ws',
    label: 'framewire reliable over ws://, null sink',
    kind: 'framewire',
    sink: 'null',
    scheme: 'ws',
    onlySize: 123_000,
  },
  // Not run by default: a 4x larger window did not help at any size on the 2-core machine (throughput
  // within run-to-run noise, ack latency 4-5x higher). Ask for it with BENCH_ROWS=baseline,null,null-w512.
  {
    id: 'null-w512',
    label: 'framewire reliable, null sink, window 512 fr / 128 MiB',
    kind: 'framewire',
    sink: 'null',
    windowFrames: 512,
    windowBytes: 128 * 1024 * 1024,
    optional: true,
  },
];
const wanted = process.env.BENCH_ROWS
  ? new Set(process.env.BENCH_ROWS.split(',').map((s) => s.trim()))
  : undefined;
const rows = [];
for (const size of SIZES) {
  for (const k of KINDS) {
    if (k.onlySize && k.onlySize !== size && SIZES.includes(k.onlySize)) continue;
    if (wanted ? wanted.has(k.id) : !k.optional) rows.push({ ...k, size });
  }
}
if (
  rows.length === 0 &&
  !wanted?.has('udp') &&
  !wanted?.has('bus') &&
  !wanted?.has('izmq') &&
  !wanted?.has('folders')
) {
  console.error(
    `BENCH_ROWS selects no row; row ids are ${KINDS.map((k) => k.id).join(', ')}, udp, bus, izmq, folders`,
  );
  process.exit(2);
}

// ---- child processes: always killed, whatever happens ------------------------------------------------

const live = new Set();
const tempDirs = new Set();

function cleanup() {
  for (const p of live) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping`);
    cleanup();
    process.exit(130);
  });
}

const ROW_BUDGET_S = WARMUP + SECONDS + QUIET_S + 45;
// The UDP, bus, ImageZMQ and folder-to-folder rows (bench/udp.mjs, bus.mjs, izmq.mjs, folders.mjs) keep
// their own per-row deadlines; this adds room for them.
const RUN_BUDGET_S =
  rows.length * REPEAT * ROW_BUDGET_S + 1800 + (!wanted || wanted.has('folders') ? 1800 : 0);
const globalTimer = setTimeout(() => {
  console.error(`bench: the whole run exceeded ${RUN_BUDGET_S} s; killing everything`);
  cleanup();
  process.exit(1);
}, RUN_BUDGET_S * 1000);
globalTimer.unref();

/** A forked child with a typed inbox: next(type) waits for a message, and fails fast when the child dies. */
class Child {
  constructor(role, script, cfg) {
    this.role = role;
    this.inbox = [];
    this.waiters = [];
    this.expectExit = false;
    const execArgv = [...process.execArgv];
    if (CPU_PROF) {
      execArgv.push(
        '--cpu-prof',
        `--cpu-prof-dir=${join(outDir, 'prof')}`,
        `--cpu-prof-name=${cfg.tag}-${role}.cpuprofile`,
      );
    }
    this.proc = fork(join(here, script), [JSON.stringify(cfg)], { execArgv, stdio: ['ignore', 2, 2, 'ipc'] });
    live.add(this.proc);
    let failNow;
    this.failed = new Promise((_, reject) => {
      failNow = reject;
    });
    this.failed.catch(() => {});
    const fail = (err) => {
      failNow(err);
      for (const w of this.waiters.splice(0)) w.reject(err);
    };
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        live.delete(this.proc);
        resolve();
        if (!this.expectExit || code !== 0) {
          fail(
            new Error(
              `${role} exited unexpectedly (code ${code}, signal ${signal})${this.error ? `: ${this.error}` : ''}`,
            ),
          );
        }
      });
    });
    this.proc.on('error', (err) => fail(new Error(`${role}: ${err.message}`)));
    this.proc.on('message', (msg) => {
      if (msg?.type === 'error') {
        this.error = msg.message;
        fail(new Error(`${role} failed: ${msg.message}`));
        return;
      }
      if (msg?.type === 'done') this.expectExit = true;
      const i = this.waiters.findIndex((w) => w.type === msg?.type);
      if (i >= 0) this.waiters.splice(i, 1)[0].resolve(msg);
      else this.inbox.push(msg);
    });
  }

  send(msg) {
    if (this.proc.connected) this.proc.send(msg);
  }

  next(type, timeoutMs) {
    const i = this.inbox.findIndex((m) => m?.type === type);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`${this.role} sent no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (f) => (v) => {
        clearTimeout(timer);
        f(v);
      };
      this.waiters.push({ type, resolve: done(resolve), reject: done(reject) });
    });
  }

  /** Waits for the child to exit by itself, then kills it. */
  async stop(graceMs = 3000) {
    if (!live.has(this.proc)) return;
    await Promise.race([this.exited, sleep(graceMs)]);
    if (live.has(this.proc)) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

/** Busy CPU time of the whole machine so far (ms, all cores), from /proc/stat; undefined elsewhere. */
function machineBusyMs() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    // user nice system idle iowait irq softirq steal, in USER_HZ (100 per second) ticks. Steal counts as
    // busy: it is time a neighbour of this virtual machine took from it.
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
    return (user + nice + system + irq + softirq + steal) * 10;
  } catch {
    return undefined;
  }
}

/** Waits until the machine looks idle, for at most QUIET_S seconds; returns the seconds waited. */
async function waitForQuiet() {
  if (QUIET_S === 0 || machineBusyMs() === undefined) return 0;
  const t0 = performance.now();
  while (performance.now() - t0 < QUIET_S * 1000) {
    const b0 = machineBusyMs();
    await sleep(500);
    if ((machineBusyMs() - b0) / 5 < 25) break;
  }
  return (performance.now() - t0) / 1000;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- one row -----------------------------------------------------------------------------------------

async function runRow(row) {
  const tag = `${row.id}-${row.size}`;
  const deadlineMs = ROW_BUDGET_S * 1000;
  let folder;
  if (row.sink === 'folder') {
    folder = mkdtempSync(join(TMP_PARENT, 'framewire-bench-'));
    tempDirs.add(folder);
  }
  let rx;
  let tx;
  const quietWaitS = await waitForQuiet();
  try {
    rx = new Child('receiver', 'receiver.mjs', {
      tag,
      kind: row.kind,
      sink: row.sink,
      folder,
      deadlineMs,
      verifyCrc: row.verifyCrc !== false,
      scheme: row.scheme ?? 'tcp',
    });
    const ready = await Promise.race([rx.next('ready', 15_000), rx.failed]);
    tx = new Child('sender', 'sender.mjs', {
      tag,
      kind: row.kind,
      port: ready.port,
      size: row.size,
      poolSize: POOL,
      maxFrames: MAX_FRAMES,
      windowFrames: row.windowFrames,
      windowBytes: row.windowBytes,
      deadlineMs,
      scheme: row.scheme ?? 'tcp',
    });
    const failed = Promise.race([rx.failed, tx.failed]);
    await Promise.race([tx.next('ready', 15_000), failed]);
    tx.send({ type: 'go' });
    await Promise.race([sleep(WARMUP * 1000), failed]);
    rx.send({ type: 'start' });
    tx.send({ type: 'start' });
    const busy0 = machineBusyMs();
    const t0 = performance.now();
    await Promise.race([
      sleep(SECONDS * 1000),
      tx.next('limit', (SECONDS + 1) * 1000).catch(() => {}),
      failed,
    ]);
    rx.send({ type: 'stop' });
    tx.send({ type: 'stop' });
    const busy1 = machineBusyMs();
    const machinePct = busy0 === undefined ? undefined : ((busy1 - busy0) / (performance.now() - t0)) * 100;
    const win = await Promise.race([rx.next('window', 10_000), failed]);
    const txDone = await Promise.race([tx.next('done', 30_000), failed]);
    rx.send({ type: 'finish' });
    const rxDone = await Promise.race([rx.next('done', 30_000), failed]);
    if (rxDone.totalFrames !== txDone.sent) {
      throw new Error(`the receiver counted ${rxDone.totalFrames} frames but the sender sent ${txDone.sent}`);
    }
    if (win.frames === 0) throw new Error('no frame arrived in the measured window');
    const cpuPct = (w) => (w ? (w.cpuUserMs + w.cpuSystemMs) / 10 / w.seconds : undefined);
    const cpuUsPerFrame = (w) => (w?.frames ? ((w.cpuUserMs + w.cpuSystemMs) * 1000) / w.frames : undefined);
    const rxCpuPct = cpuPct(win);
    const txCpuPct = cpuPct(txDone.window);
    return {
      id: row.id,
      label: row.label,
      size: row.size,
      windowFrames: row.windowFrames ?? (row.kind === 'framewire' ? 128 : undefined),
      windowBytes: row.windowBytes ?? (row.kind === 'framewire' ? 32 * 1024 * 1024 : undefined),
      seconds: win.seconds,
      frames: win.frames,
      bytes: win.bytes,
      framesPerSec: win.frames / win.seconds,
      mbPerSec: win.bytes / win.seconds / 1e6,
      ackP50Ms: txDone.ackLatencyMs?.p50,
      ackP99Ms: txDone.ackLatencyMs?.p99,
      ackMaxMs: txDone.ackLatencyMs?.max,
      ackSamples: txDone.ackLatencyMs?.samples,
      rxRssPeakMB: rxDone.rssPeak / 1e6,
      rxMaxRssMB: rxDone.maxRss / 1e6,
      txRssPeakMB: txDone.rssPeak / 1e6,
      txMaxRssMB: txDone.maxRss / 1e6,
      rxCpuPct,
      txCpuPct,
      // Everything else the machine did meanwhile (other programs, kernel threads, this parent): when it is
      // large, the row was measured on a busy machine.
      otherCpuPct:
        machinePct === undefined ? undefined : Math.max(0, machinePct - rxCpuPct - (txCpuPct ?? 0)),
      quietWaitS,
      rxCpuUsPerFrame: cpuUsPerFrame(win),
      txCpuUsPerFrame: cpuUsPerFrame(txDone.window),
      rxCpu: { userMs: win.cpuUserMs, systemMs: win.cpuSystemMs },
      txCpu: txDone.window
        ? { userMs: txDone.window.cpuUserMs, systemMs: txDone.window.cpuSystemMs }
        : undefined,
      acksPerSec: row.kind === 'framewire' ? txDone.window.acks / txDone.window.seconds : undefined,
      totalFrames: txDone.sent,
      retransmits: txDone.retransmits,
      reconnects: txDone.reconnects,
      warnings: rxDone.warnings,
    };
  } finally {
    await Promise.all([tx?.stop(), rx?.stop()]);
    if (folder) {
      rmSync(folder, { recursive: true, force: true });
      tempDirs.delete(folder);
    }
  }
}

// ---- report ------------------------------------------------------------------------------------------

function fsTypeOf(dir) {
  try {
    const out = execFileSync('df', ['-T', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim().split('\n').pop().split(/\s+/)[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const fmt = {
  int: (n) => (n === undefined ? '-' : Math.round(n).toLocaleString('en-US')),
  f1: (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(1)),
  f2: (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(2)),
};

function table(results) {
  const head = [
    'row',
    'frame',
    'frames/s',
    'MB/s',
    'x baseline',
    'ack p50 ms',
    'ack p99 ms',
    'rx RSS MB',
    'tx RSS MB',
    'rx CPU %',
    'tx CPU %',
    'other CPU %',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of results) {
    const size = SIZE_NAMES.get(r.size) ?? `${r.size} B`;
    if (r.error) {
      lines.push(
        `| ${r.label} | ${size} | FAILED: ${r.error.replaceAll('|', '/').split('\n')[0]} ||||||||||`,
      );
      continue;
    }
    lines.push(
      `| ${[
        r.label,
        size,
        fmt.int(r.framesPerSec),
        fmt.int(r.mbPerSec),
        fmt.f2(r.ratio),
        fmt.f2(r.ackP50Ms),
        fmt.f2(r.ackP99Ms),
        fmt.int(r.rxRssPeakMB),
        fmt.int(r.txRssPeakMB),
        fmt.int(r.rxCpuPct),
        fmt.int(r.txCpuPct),
        fmt.int(r.otherCpuPct),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

const meta = {
  date: new Date().toISOString(),
  node: process.version,
  v8: process.versions.v8,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memoryGB: Math.round(os.totalmem() / 1e9),
  seconds: SECONDS,
  warmupSeconds: WARMUP,
  poolBuffers: POOL,
  repeat: REPEAT,
  quietWaitSeconds: QUIET_S,
  loadAverage: os.loadavg(),
  maxFrames: MAX_FRAMES,
  folderSinkDir: TMP_PARENT,
  folderSinkFs: fsTypeOf(TMP_PARENT),
  cpuProfiles: CPU_PROF ? join(outDir, 'prof') : undefined,
};

function header() {
  return [
    '## framewire benchmark',
    '',
    `- date: ${meta.date}`,
    `- node ${meta.node} (V8 ${meta.v8}), ${meta.platform}`,
    `- cpu: ${meta.cpu}, ${meta.cores} cores, ${meta.memoryGB} GB RAM`,
    `- loopback 127.0.0.1, port 0; sender and receiver in two separate processes (child_process.fork), sharing the ${meta.cores} cores`,
    `- each row: ${meta.warmupSeconds} s warm-up, then ${meta.seconds} s measured at the receiver; random payloads of exactly the row's size, a pool of ${meta.poolBuffers} distinct buffers reused${meta.maxFrames ? `; at most ${meta.maxFrames} frames` : ''}`,
    '- framewire rows: reliable mode, one stream, client window 128 frames / 32 MiB (the defaults) unless the row says otherwise; ack latency from client.stats() at the end of the window (the last 10,000 acknowledged frames)',
    `- folder sink writes to ${meta.folderSinkDir} (${meta.folderSinkFs}), deleted after each row`,
    '- MB = 1e6 bytes; RSS = peak of process.memoryUsage().rss sampled every 50 ms; CPU % = user+system time over the window, 100 = one core; other CPU % = what the rest of the machine used meanwhile (from /proc/stat), a sign of a noisy run',
    ...(meta.quietWaitSeconds > 0
      ? [`- before each row the bench waited up to ${meta.quietWaitSeconds} s for the machine to be idle`]
      : []),
    `- ${meta.repeat > 1 ? `each row run ${meta.repeat} times, interleaved; the table shows the median run by MB/s` : 'each row run once (BENCH_REPEAT=3 for medians)'}`,
  ].join('\n');
}

console.error(
  `bench: ${rows.length} rows x ${REPEAT}, about ${Math.ceil((rows.length * REPEAT * (WARMUP + SECONDS + 1.5)) / 10) * 10} s`,
);
const runs = rows.map(() => []);
let failures = 0;
for (let rep = 1; rep <= REPEAT; rep++) {
  for (const [i, row] of rows.entries()) {
    const t0 = performance.now();
    process.stderr.write(`  ${REPEAT > 1 ? `[${rep}/${REPEAT}] ` : ''}${row.label}, ${row.size} bytes ... `);
    try {
      const r = await runRow(row);
      runs[i].push(r);
      process.stderr.write(
        `${fmt.int(r.mbPerSec)} MB/s (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
      );
    } catch (err) {
      failures++;
      runs[i].push({ id: row.id, label: row.label, size: row.size, error: err?.message ?? String(err) });
      process.stderr.write(`FAILED\nbench: ${row.label}, ${row.size} bytes: ${err?.stack ?? err}\n`);
    }
  }
}
/** The median repetition by MB/s (the lower middle one for an even count); a failure when all failed. */
const results = runs.map((rs) => {
  const ok = rs.filter((r) => !r.error).sort((a, b) => a.mbPerSec - b.mbPerSec);
  if (ok.length === 0) return rs[0];
  const pick = { ...ok[Math.floor((ok.length - 1) / 2)] };
  if (rs.length > 1) {
    pick.repeats = rs.map((r) =>
      r.error ? { error: r.error } : { mbPerSec: r.mbPerSec, otherCpuPct: r.otherCpuPct },
    );
  }
  return pick;
});
for (const r of results) {
  const base = results.find((b) => b.id === 'baseline' && b.size === r.size && !b.error);
  if (!r.error && base) r.ratio = r.mbPerSec / base.mbPerSec;
  const tcp = results.find((b) => b.id === 'null' && b.size === r.size && !b.error);
  if (r.id === 'ws' && !r.error && tcp) r.ratioToTcp = r.mbPerSec / tcp.mbPerSec;
}

/** ws:// against tcp:// (the "null" row) at the same frame size, same run. */
function wsLines(results) {
  return results
    .filter((r) => r.ratioToTcp !== undefined)
    .map(
      (r) =>
        `ws:// / tcp:// at ${SIZE_NAMES.get(r.size) ?? `${r.size} B`}: ${fmt.f2(r.ratioToTcp)} (target 0.70 or more)`,
    )
    .join('\n');
}

/** CPU per frame is less sensitive to a busy machine than MB/s: the number to compare across runs. */
function cpuTable(results) {
  const lines = ['| row | frame | rx CPU us/frame | tx CPU us/frame | acks/s |', '|---|---|---:|---:|---:|'];
  for (const r of results) {
    if (r.error) continue;
    const size = SIZE_NAMES.get(r.size) ?? `${r.size} B`;
    lines.push(
      `| ${r.label} | ${size} | ${fmt.f1(r.rxCpuUsPerFrame)} | ${fmt.f1(r.txCpuUsPerFrame)} | ${fmt.int(r.acksPerSec)} |`,
    );
  }
  return lines.join('\n');
}

// UDP rows (bench/udp.mjs, with their own plain node:dgram baseline); BENCH_ROWS without "udp" skips them.
const udp =
  wanted && !wanted.has('udp')
    ? undefined
    : await (await import('./udp.mjs')).runUdpBench({ seconds: SECONDS, warmup: WARMUP });
if (udp) failures += udp.failures;
// Bus rows (bench/bus.mjs: NATS JetStream, skipped without nats-server); BENCH_ROWS without "bus" skips them.
const bus =
  wanted && !wanted.has('bus')
    ? undefined
    : await (await import('./bus.mjs')).runBusBench({ tmpParent: TMP_PARENT });
if (bus) failures += bus.failures;
// ImageZMQ rows (bench/izmq.mjs: Python REQ sender into a Python hub and into framewire serve --listen izmq://);
// BENCH_ROWS without "izmq" skips them; they need a python3 with zmq and numpy.
const izmq =
  wanted && !wanted.has('izmq')
    ? undefined
    : await (await import('./izmq.mjs')).runIzmqBench({
        frames: Math.round(envNumber('BENCH_IZMQ_FRAMES', 3000)),
        repeat: REPEAT,
        tmpParent: TMP_PARENT,
      });
if (izmq) failures += izmq.failures;
// Folder-to-folder rows (bench/folders.mjs: rsync daemon, tar | socat, SRT); BENCH_ROWS without "folders"
// skips them.
const folders =
  wanted && !wanted.has('folders') ? undefined : await (await import('./folders.mjs')).runFolderBench();
if (folders) failures += folders.failures;
const wsLine = wsLines(results);
const report = `${header()}\n\n${table(results)}\n${wsLine ? `\n${wsLine}\n` : ''}\n${cpuTable(results)}\n${udp ? `\n${udp.table}\n` : ''}${bus ? `\n${bus.table}\n` : ''}${izmq ? `\n${izmq.table}\n` : ''}${folders ? `\n${folders.table}\n` : ''}`;
process.stdout.write(report);
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'latest.json'),
  `${JSON.stringify({ meta, rows: results, udpRows: udp?.results, busRows: bus?.results, izmqRows: izmq?.results, folderRows: folders?.results }, null, 2)}\n`,
);
console.error(`bench: wrote ${join(outDir, 'latest.json')}`);
clearTimeout(globalTimer);
if (failures > 0) {
  console.error(`bench: ${failures} row(s) failed`);
  process.exit(1);
}
