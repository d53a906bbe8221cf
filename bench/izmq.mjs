// ImageZMQ rows of the benchmark: a Python REQ sender (pyzmq, like ImageZMQ's ImageSender.send_jpg) of
// 123 KB JPEGs into (a) a Python pyzmq REP hub that writes each file, the way ImageZMQ hubs usually do
// (open, write, close), (b) the same hub writing each file atomically (temporary file + rename, as
// framewire does), (c) the floor for any Node hub: the npm `zeromq` binding framewire uses, with nothing
// but receive, writeFileSync and reply (bench/izmq-floor-hub.mjs), and (d) `framewire serve --listen
// izmq://… --out DIR`, in the same run. One reply per
// frame (REQ/REP), so each row is the round trip plus the hub's write. The sender and the hub are separate
// processes on 127.0.0.1; the sender times N-1 frames after a first round trip (connecting is not timed).
//
// bench/run.mjs calls runIzmqBench(); `node bench/izmq.mjs` runs these rows alone (after `npm run build`).
// Environment: BENCH_IZMQ_FRAMES (default 3000), BENCH_REPEAT (runs per row, interleaved; median by MB/s),
// BENCH_TMPDIR (parent of the hubs' output folders), FRAMEWIRE_PYTHON (a python3 with zmq and numpy),
// BENCH_IZMQ_NODE_ARGS (node options for the framewire hub: --cpu-prof, --trace-gc).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const PEER = join(root, 'test', 'compat', 'imagezmq', 'peer.py');
const CLI = join(root, 'dist', 'cli', 'main.js');
const FLOOR = join(here, 'izmq-floor-hub.mjs');
const FRAME = 123_000;
/** Node options for the framewire hub, e.g. BENCH_IZMQ_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof". */
const NODE_ARGS = (process.env.BENCH_IZMQ_NODE_ARGS ?? '').split(' ').filter(Boolean);

export const IZMQ_ROWS = [
  {
    id: 'izmq-python-plain',
    label: 'baseline: Python pyzmq REP hub, open/write per file',
    hub: 'python',
    plain: true,
  },
  {
    id: 'izmq-python-atomic',
    label: 'Python pyzmq REP hub, temp file + rename',
    hub: 'python',
    plain: false,
  },
  {
    id: 'izmq-node-floor',
    label: 'floor: Node zeromq REP hub, receive + writeFileSync + reply only',
    hub: 'floor',
  },
  { id: 'izmq-framewire', label: 'framewire serve --listen izmq:// --out', hub: 'framewire' },
];

function python() {
  for (const p of [process.env.FRAMEWIRE_PYTHON, 'python3', '/usr/bin/python3']) {
    if (p && spawnSync(p, ['-c', 'import zmq, numpy'], { stdio: 'ignore' }).status === 0) return p;
  }
  return undefined;
}

/** A structurally valid JPEG (SOI … EOI) of exactly `size` bytes of random scan data. */
function fakeJpeg(size) {
  const b = randomBytes(size);
  b[0] = 0xff;
  b[1] = 0xd8;
  b[2] = 0xff;
  b[size - 2] = 0xff;
  b[size - 1] = 0xd9;
  return b;
}

/** Children still running, killed if this process exits first (a failed or timed-out run). */
const live = new Set();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Starts a process; `line(pattern)` waits for a stdout or stderr line matching it. */
function start(cmd, args, what) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const lines = [];
  const waiters = [];
  let exitCode;
  const exited = new Promise((r) =>
    child.once('exit', (code) => {
      exitCode = code;
      for (const w of waiters.splice(0))
        w.reject(new Error(`${what} exited (${code}): ${lines.slice(-5).join(' | ')}`));
      r(code);
    }),
  );
  const onLine = (l) => {
    lines.push(l);
    for (const w of [...waiters]) {
      const m = w.re.exec(l);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  return {
    child,
    exited,
    lines,
    line(re, timeoutMs = 60_000) {
      const seen = lines.map((l) => re.exec(l)).find(Boolean);
      if (seen) return Promise.resolve(seen);
      if (exitCode !== undefined) return Promise.reject(new Error(`${what} exited (${exitCode})`));
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`${what}: no line like ${re} in ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(t);
            resolve(m);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        });
      });
    },
    kill() {
      if (exitCode === undefined) child.kill('SIGKILL');
    },
  };
}

function countFiles(dir) {
  let n = 0;
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) n += countFiles(p);
    else if (e.endsWith('.jpg') && e !== 'latest.jpg') n++;
  }
  return n;
}

async function runRow(row, py, jpgPath, frames, tmpParent) {
  const out = mkdtempSync(join(tmpParent, 'fw-bench-izmq-'));
  let hub;
  let sender;
  try {
    let port;
    if (row.hub === 'python') {
      hub = start(
        py,
        [PEER, 'rep', 'tcp://127.0.0.1:0', out, '--count', String(frames), '--plain', row.plain ? '1' : '0'],
        'python hub',
      );
      port = Number((await hub.line(/"port": (\d+)/))[1]);
    } else if (row.hub === 'floor') {
      hub = start(
        process.execPath,
        [...NODE_ARGS, FLOOR, 'tcp://127.0.0.1:0', out, String(frames)],
        'node floor hub',
      );
      port = Number((await hub.line(/"port":(\d+)/))[1]);
    } else {
      hub = start(
        process.execPath,
        [...NODE_ARGS, CLI, 'serve', '--listen', 'izmq://127.0.0.1:0', '--out', out],
        'framewire serve',
      );
      port = Number((await hub.line(/receiving on izmq:\/\/127\.0\.0\.1:(\d+)/))[1]);
    }
    sender = start(
      py,
      [PEER, 'bench-req', `tcp://127.0.0.1:${port}`, jpgPath, String(frames)],
      'python sender',
    );
    const m = await sender.line(/"seconds": ([\d.e-]+)/, 180_000);
    const seconds = Number(m[1]);
    await sender.exited;
    if (row.hub !== 'framewire') await hub.exited;
    else {
      hub.child.kill('SIGINT');
      await hub.exited;
    }
    const saved = countFiles(out);
    if (saved !== frames) throw new Error(`${row.label}: ${saved} files saved, ${frames} sent`);
    const timed = frames - 1;
    return {
      id: row.id,
      label: row.label,
      frames: timed,
      seconds,
      fps: timed / seconds,
      mbPerSec: (timed * FRAME) / 1e6 / seconds,
    };
  } finally {
    sender?.kill();
    hub?.kill();
    rmSync(out, { recursive: true, force: true });
  }
}

const fmt = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** Runs the rows; resolves to { results, table, failures }, or undefined without a python3 with zmq. */
export async function runIzmqBench({ frames = 3000, repeat = 1, tmpParent = os.tmpdir() } = {}) {
  const py = python();
  if (!py) {
    console.error(
      'bench: ImageZMQ rows skipped: no python3 with zmq and numpy (apt-get install python3-zmq python3-numpy)',
    );
    return undefined;
  }
  const work = mkdtempSync(join(os.tmpdir(), 'fw-bench-izmq-in-'));
  const jpgPath = join(work, 'frame.jpg');
  writeFileSync(jpgPath, fakeJpeg(FRAME));
  const runs = IZMQ_ROWS.map(() => []);
  let failures = 0;
  try {
    for (let rep = 1; rep <= repeat; rep++) {
      for (const [i, row] of IZMQ_ROWS.entries()) {
        process.stderr.write(
          `  ${repeat > 1 ? `[${rep}/${repeat}] ` : ''}${row.label}, ${frames} frames ... `,
        );
        try {
          const r = await runRow(row, py, jpgPath, frames, tmpParent);
          runs[i].push(r);
          process.stderr.write(`${fmt(r.mbPerSec)} MB/s\n`);
        } catch (err) {
          failures++;
          runs[i].push({ id: row.id, label: row.label, error: err?.message ?? String(err) });
          process.stderr.write(`FAILED\nbench: ${err?.stack ?? err}\n`);
        }
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const results = runs.map((rs) => {
    const ok = rs.filter((r) => !r.error).sort((a, b) => a.mbPerSec - b.mbPerSec);
    return ok.length === 0 ? rs[0] : { ...ok[Math.floor((ok.length - 1) / 2)], runs: rs.length };
  });
  const base = results.find((r) => r.id === 'izmq-python-plain' && !r.error);
  const lines = [
    `### ImageZMQ: Python REQ sender of ${fmt(FRAME)}-byte JPEGs into a hub that saves each one`,
    '',
    `- ${frames} frames per row (the first one untimed), one reply per frame; hub output under ${tmpParent}; python ${spawnSync(py, ['-c', 'import zmq,sys; print(sys.version.split()[0], "pyzmq", zmq.__version__, "libzmq", zmq.zmq_version())']).stdout.toString().trim()}${repeat > 1 ? `; median of ${repeat} interleaved runs` : ''}`,
    '',
    '| row | frames/s | MB/s | vs baseline |',
    '|---|---:|---:|---:|',
  ];
  for (const r of results) {
    if (r.error) {
      lines.push(`| ${r.label} | failed: ${r.error} | | |`);
      continue;
    }
    const ratio = base ? `${(r.mbPerSec / base.mbPerSec).toFixed(2)}x` : '';
    lines.push(`| ${r.label} | ${fmt(r.fps)} | ${fmt(r.mbPerSec)} | ${ratio} |`);
  }
  return { results, table: lines.join('\n'), failures };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const frames = Number(process.env.BENCH_IZMQ_FRAMES ?? 3000);
  const repeat = Number(process.env.BENCH_REPEAT ?? 1);
  const r = await runIzmqBench({ frames, repeat, tmpParent: process.env.BENCH_TMPDIR || os.tmpdir() });
  if (r) {
    process.stdout.write(`${r.table}\n`);
    if (r.failures > 0) process.exit(1);
  }
}
