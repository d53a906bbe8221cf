// Folder-to-folder rows of the benchmark: `framewire send DIR` → `framewire serve --out` against the tools
// people use to move a folder, measured in the same run on the same folder:
//   - an rsync daemon on 127.0.0.1 (`rsync -a SRC/ rsync://127.0.0.1:PORT/dst/`),
//   - `tar -c | socat` over one TCP connection into `socat | tar -x`,
//   - over UDP (--mtu 1200 and 65000): SRT's own `srt-file-transmit` with the folder as one tar, file:// to
//     an srt:// listener (Debian's srt-tools).
// Two workloads (1,000 files of 123 KB, 200 of 425 KB), each on tmpfs (/dev/shm) and on the disk (the OS
// temp folder, unless it is tmpfs too). MB/s is the folder's bytes over the sender's wall time, net of
// process start (the same program's `--version` run, subtracted). bench/run.mjs calls runFolderBench();
// `node bench/folders.mjs` runs these rows alone (after `npm run build`).
//
// Environment: BENCH_FOLDER_WORKLOADS (e.g. "1000x123000,200x425000"), BENCH_FOLDER_PLACES ("shm,disk"),
// BENCH_FOLDER_ROWS (comma-separated row ids, default all), BENCH_FOLDER_REPEAT (median of N, default 1).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CLI = process.env.BENCH_CLI || join(here, '..', 'dist', 'cli', 'main.js');
const PLAIN = join(here, 'plain-folder.mjs');

export const FOLDER_ROWS = [
  { id: 'fw-tcp', label: 'framewire send → serve --out (tcp://)', tool: 'framewire', scheme: 'tcp' },
  {
    id: 'node-plain',
    label: 'floor: plain Node socket, length|name|bytes, writeSync per piece',
    tool: 'plain',
  },
  { id: 'rsync', label: 'rsync daemon (rsync -a to rsync://127.0.0.1)', tool: 'rsync' },
  { id: 'tar-socat', label: 'tar -c | socat → socat | tar -x (one TCP connection)', tool: 'socat' },
  { id: 'fw-udp-1200', label: 'framewire udp:// --mtu 1200', tool: 'framewire', scheme: 'udp', mtu: 1200 },
  { id: 'srt-1200', label: 'srt-file-transmit, one tar (payload 1200 - 44)', tool: 'srt', mtu: 1200 },
  {
    id: 'fw-udp-65000',
    label: 'framewire udp:// --mtu 65000',
    tool: 'framewire',
    scheme: 'udp',
    mtu: 65_000,
  },
];

/** Installs the Debian packages these rows need, only where their command is missing (and apt-get exists). */
function ensureTools() {
  const need = { rsync: 'rsync', socat: 'socat', 'srt-file-transmit': 'srt-tools', tar: 'tar' };
  const missing = Object.entries(need).filter(([cmd]) => !hasCommand(cmd));
  if (missing.length === 0 || !hasCommand('apt-get')) return;
  const pkgs = [...new Set(missing.map(([, p]) => p))];
  console.error(`bench: installing ${pkgs.join(' ')} (missing)`);
  try {
    const sudo = process.getuid?.() === 0 ? [] : ['sudo', '-n'];
    const run = (args) =>
      execFileSync(sudo[0] ?? args[0], [...sudo.slice(1), ...(sudo.length ? args : args.slice(1))], {
        stdio: ['ignore', 2, 2],
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    run(['apt-get', 'update', '-qq']);
    run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
  } catch (err) {
    console.error(`bench: could not install ${pkgs.join(' ')}: ${err.message}; their rows are skipped`);
  }
}

function hasCommand(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

const live = new Set();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** Starts a long-running process; resolves once `ready(stderr+stdout)` is true (or at once without one). */
function start(cmd, args, { ready, cwd, shell } = {}) {
  const child = shell
    ? spawn('sh', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'], cwd })
    : spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  live.add(child);
  let text = '';
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  exited.then(() => live.delete(child));
  const onData = (d) => {
    text += d.toString();
    if (text.length > 100_000) text = text.slice(-50_000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const proc = { child, exited, out: () => text };
  if (!ready) return Promise.resolve(proc);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd}: not ready after 20 s: ${text}`)), 20_000);
    const check = () => {
      if (ready(text)) {
        clearTimeout(t);
        resolve(proc);
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    exited.then(({ code }) => {
      clearTimeout(t);
      reject(new Error(`${cmd} exited (${code}) before it was ready: ${text}`));
    });
  });
}

/** Runs a command to its end; returns the wall time in ms. Rejects on a non-zero exit. */
async function timed(cmd, args, opts = {}) {
  const t0 = performance.now();
  const p = await start(cmd, args, opts);
  const { code, signal } = await p.exited;
  const ms = performance.now() - t0;
  if (code !== 0)
    throw new Error(`${cmd} ${(args ?? []).join(' ')} exited with ${code ?? signal}: ${p.out()}`);
  return { ms, out: p.out() };
}

async function stop(proc, signal = 'SIGTERM') {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill(signal);
  await Promise.race([proc.exited, sleep(5000)]);
  if (proc.child.exitCode === null && proc.child.signalCode === null) {
    proc.child.kill('SIGKILL');
    await proc.exited;
  }
}

/** user+system CPU ms and peak RSS (VmHWM, MB) of a running process, from /proc. */
function procUsage(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return { cpuMs: ticks * 10, hwmMB: hwm ? (Number(hwm) * 1024) / 1e6 : undefined };
  } catch {
    return undefined;
  }
}

function folderBytes(dir) {
  let n = 0;
  let files = 0;
  for (const name of readdirSync(dir)) {
    const st = statSync(join(dir, name));
    if (st.isFile()) {
      n += st.size;
      files++;
    }
  }
  return { bytes: n, files };
}

/** Checks that DST holds SRC's files, same sizes (a spot check of content: first and last file). */
function verify(src, dst) {
  const names = readdirSync(src);
  for (const n of names) {
    const a = statSync(join(src, n));
    let b;
    try {
      b = statSync(join(dst, n));
    } catch {
      throw new Error(`${n} is missing at the receiver`);
    }
    if (a.size !== b.size) throw new Error(`${n}: ${b.size} bytes at the receiver, ${a.size} sent`);
  }
  for (const n of [names[0], names[names.length - 1]]) {
    if (!readFileSync(join(src, n)).equals(readFileSync(join(dst, n)))) throw new Error(`${n} differs`);
  }
}

/** Median of three runs of a command that only starts and exits: its process start cost, in ms. */
async function startCost(cmd, args) {
  const ms = [];
  for (let i = 0; i < 3; i++) ms.push((await timed(cmd, args)).ms);
  return ms.sort((a, b) => a - b)[1];
}

// ---- the rows ----------------------------------------------------------------------------------------

async function runFramewire(row, src, dst) {
  const port = await freePort();
  const url = `${row.scheme}://127.0.0.1:${port}`;
  const mtu = row.mtu ? ['--mtu', String(row.mtu)] : [];
  const rx = await start(process.execPath, [CLI, 'serve', '--listen', url, '--out', dst, ...mtu], {
    ready: (t) => t.includes('receiving on'),
  });
  try {
    const before = procUsage(rx.child.pid);
    const { ms: wall, out } = await timed(process.execPath, [
      CLI,
      'send',
      src,
      '--to',
      url,
      '--stream',
      'cam',
      ...mtu,
    ]);
    const after = procUsage(rx.child.pid);
    // The sender's own clock: from the first frame sent (after start, connect and listing the folder) to the
    // last acknowledgement, which comes once the file and its index line are in place.
    const m = /sent \d+ frames, .* in ([\d.]+) s/.exec(out);
    const ms = m ? Number(m[1]) * 1000 : wall;
    return {
      ms,
      net: true,
      rxCpuMs: after && before ? after.cpuMs - before.cpuMs : undefined,
      rxHwmMB: after?.hwmMB,
      dstDir: join(dst, 'cam'),
    };
  } finally {
    await stop(rx);
  }
}

/** The plain-Node floor (bench/plain-folder.mjs): timed by its sender from connect to the receiver's answer. */
async function runPlain(_row, src, dst) {
  const rx = await start(process.execPath, [PLAIN, 'recv', dst], { ready: (t) => /listening \d+/.test(t) });
  try {
    const port = Number(/listening (\d+)/.exec(rx.out())[1]);
    const before = procUsage(rx.child.pid);
    const { out } = await timed(process.execPath, [PLAIN, 'send', String(port), src]);
    const after = procUsage(rx.child.pid);
    const m = /in ([\d.]+) s/.exec(out);
    if (!m) throw new Error(`plain sender: ${out}`);
    return {
      ms: Number(m[1]) * 1000,
      net: true,
      rxCpuMs: after && before ? after.cpuMs - before.cpuMs : undefined,
      rxHwmMB: after?.hwmMB,
      dstDir: dst,
    };
  } finally {
    await stop(rx);
  }
}

async function runRsync(_row, src, dst, work) {
  const port = await freePort();
  const conf = join(work, 'rsyncd.conf');
  writeFileSync(
    conf,
    `use chroot = no\nmax connections = 4\npid file = ${join(work, 'rsyncd.pid')}\n[dst]\n  path = ${dst}\n  read only = no\n  uid = ${process.getuid?.() ?? 0}\n  gid = ${process.getgid?.() ?? 0}\n`,
  );
  const rx = await start(
    'rsync',
    ['--daemon', '--no-detach', `--config=${conf}`, `--port=${port}`, '--address=127.0.0.1'],
    {},
  );
  try {
    // The daemon gives no ready line: wait for its port.
    for (let i = 0; i < 100; i++) {
      try {
        await timed('rsync', [`rsync://127.0.0.1:${port}/`]);
        break;
      } catch {
        await sleep(50);
      }
    }
    const { ms } = await timed('rsync', ['-a', `${src}/`, `rsync://127.0.0.1:${port}/dst/`]);
    return { ms, dstDir: dst };
  } finally {
    await stop(rx);
  }
}

async function runTarSocat(_row, src, dst) {
  const port = await freePort();
  const rx = await start(`socat -u TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr - | tar -x -C '${dst}'`, [], {
    shell: true,
  });
  try {
    for (let i = 0; i < 100; i++) {
      if (
        readFileSync('/proc/net/tcp', 'utf8').includes(
          `:${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`,
        )
      )
        break;
      await sleep(20);
    }
    const t0 = performance.now();
    await timed(`tar -c -C '${src}' . | socat -u - TCP:127.0.0.1:${port}`, [], { shell: true });
    // Done when the receiving tar has written everything and exited.
    const { code } = await rx.exited;
    if (code !== 0) throw new Error(`receiving tar exited with ${code}: ${rx.out()}`);
    return { ms: performance.now() - t0, dstDir: dst };
  } finally {
    await stop(rx);
  }
}

async function runSrt(row, src, dst, work) {
  // The folder as one tar, made before the clock starts; SRT's payload size is the datagram minus its
  // 16-byte header and the 28 bytes of IP and UDP.
  const tarFile = join(work, 'folder.tar');
  if (!existsSync(tarFile)) execFileSync('tar', ['-c', '-f', tarFile, '-C', src, '.']);
  const payload = row.mtu - 44;
  const port = await freePort();
  const out = join(dst, 'folder.tar');
  const rx = await start(
    'srt-file-transmit',
    [`srt://:${port}?mode=listener&payloadsize=${payload}&transtype=file`, `file://${out}`],
    {},
  );
  try {
    await sleep(300);
    const { ms } = await timed('srt-file-transmit', [
      '-chunk:' + String(payload),
      `file://${tarFile}`,
      `srt://127.0.0.1:${port}?payloadsize=${payload}&transtype=file`,
    ]);
    await Promise.race([rx.exited, sleep(10_000)]);
    const got = existsSync(out) ? statSync(out).size : 0;
    if (got !== statSync(tarFile).size)
      throw new Error(`SRT delivered ${got} of ${statSync(tarFile).size} bytes`);
    return { ms, dstDir: undefined };
  } finally {
    await stop(rx);
  }
}

const RUNNERS = {
  framewire: runFramewire,
  plain: runPlain,
  rsync: runRsync,
  socat: runTarSocat,
  srt: runSrt,
};

function placeDirs() {
  const places = (process.env.BENCH_FOLDER_PLACES ?? 'shm,disk').split(',').map((s) => s.trim());
  const out = [];
  for (const p of places) {
    if (p === 'shm' && existsSync('/dev/shm')) out.push({ id: 'shm', label: 'tmpfs', parent: '/dev/shm' });
    if (p === 'disk') {
      const parent = process.env.BENCH_DISK_DIR || os.tmpdir();
      out.push({ id: 'disk', label: `disk (${fsType(parent)})`, parent });
    }
  }
  return out;
}

function fsType(dir) {
  try {
    return execFileSync('df', ['-T', dir], { encoding: 'utf8' }).trim().split('\n').pop().split(/\s+/)[1];
  } catch {
    return 'unknown';
  }
}

function makeSource(dir, count, size) {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) {
    const b = randomBytes(size);
    // A JPEG's first and last bytes, so that the files look like what they are named.
    b[0] = 0xff;
    b[1] = 0xd8;
    b[size - 2] = 0xff;
    b[size - 1] = 0xd9;
    writeFileSync(join(dir, `${String(i).padStart(6, '0')}.jpg`), b);
  }
}

export async function runFolderBench() {
  ensureTools();
  const workloads = (process.env.BENCH_FOLDER_WORKLOADS ?? '1000x123000,200x425000').split(',').map((w) => {
    const [count, size] = w.split('x').map(Number);
    return { count, size };
  });
  const wanted = process.env.BENCH_FOLDER_ROWS
    ? new Set(process.env.BENCH_FOLDER_ROWS.split(','))
    : undefined;
  const repeat = Math.max(1, Number(process.env.BENCH_FOLDER_REPEAT) || 1);
  const tools = {
    framewire: true,
    plain: true,
    rsync: hasCommand('rsync'),
    socat: hasCommand('socat') && hasCommand('tar'),
    srt: hasCommand('srt-file-transmit'),
  };
  const rows = FOLDER_ROWS.filter((r) => (!wanted || wanted.has(r.id)) && tools[r.tool]);
  const starts = {
    framewire: 0,
    plain: 0,
    rsync: await startCost('rsync', ['--version']),
    socat: 0,
    srt: await startCost('srt-file-transmit', ['-version']).catch(() => 0),
  };
  const results = [];
  let failures = 0;
  for (const place of placeDirs()) {
    for (const w of workloads) {
      const work = mkdtempSync(join(place.parent, 'framewire-bench-folders-'));
      try {
        const src = join(work, 'src');
        makeSource(src, w.count, w.size);
        const { bytes } = folderBytes(src);
        // UDP rows on tmpfs only: they compare transports, not disks.
        const placeRows = rows.filter((row) => !((row.mtu || row.tool === 'srt') && place.id !== 'shm'));
        const runsOf = new Map(placeRows.map((row) => [row.id, { runs: [], error: undefined }]));
        // Repeats interleaved (every row once, then every row again), so that a busy spell of the machine
        // does not fall on one row's repeats only.
        for (let k = 0; k < repeat; k++) {
          for (const row of placeRows) {
            const slot = runsOf.get(row.id);
            const dst = join(work, `dst-${row.id}-${k}`);
            mkdirSync(dst);
            process.stderr.write(`  folders: ${row.label}, ${w.count} x ${w.size} B on ${place.label} ... `);
            try {
              const r = await RUNNERS[row.tool](row, src, dst, work);
              if (r.dstDir) verify(src, r.dstDir);
              const netMs = Math.max(1, r.net ? r.ms : r.ms - starts[row.tool]);
              slot.runs.push({ ...r, netMs, mbPerSec: bytes / netMs / 1000 });
              process.stderr.write(`${(bytes / netMs / 1000).toFixed(0)} MB/s\n`);
            } catch (err) {
              slot.error = err.message.split('\n')[0];
              process.stderr.write(`FAILED: ${err.message}\n`);
            } finally {
              rmSync(dst, { recursive: true, force: true });
            }
          }
        }
        for (const row of placeRows) {
          const { runs, error } = runsOf.get(row.id);
          if (runs.length === 0) {
            failures++;
            results.push({ id: row.id, label: row.label, place: place.label, ...w, error });
            continue;
          }
          const r = runs.sort((a, b) => a.mbPerSec - b.mbPerSec)[Math.floor((runs.length - 1) / 2)];
          const cpus = runs
            .map((x) => x.rxCpuMs)
            .filter((x) => x !== undefined)
            .map((x) => (x * 1000) / w.count)
            .sort((a, b) => a - b);
          results.push({
            id: row.id,
            label: row.label,
            place: place.label,
            count: w.count,
            size: w.size,
            bytes,
            wallMs: r.ms,
            netMs: r.netMs,
            mbPerSec: r.mbPerSec,
            mbPerSecRuns: runs.map((x) => x.mbPerSec).sort((a, b) => a - b),
            rxCpuUsPerFrame: cpus.length ? cpus[Math.floor((cpus.length - 1) / 2)] : undefined,
            rxCpuUsPerFrameRuns: cpus,
            rxPeakRssMB: Math.max(...runs.map((x) => x.rxHwmMB ?? 0)) || undefined,
          });
        }
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    }
  }
  for (const r of results) {
    const ref = (id) =>
      results.find((x) => x.id === id && x.place === r.place && x.count === r.count && !x.error);
    if (r.error) continue;
    r.vsRsync = ref('rsync') ? r.mbPerSec / ref('rsync').mbPerSec : undefined;
    r.vsTarSocat = ref('tar-socat') ? r.mbPerSec / ref('tar-socat').mbPerSec : undefined;
    if (r.id === 'fw-udp-1200' && ref('srt-1200')) r.vsSrt = r.mbPerSec / ref('srt-1200').mbPerSec;
  }
  return { results, failures, table: table(results, starts) };
}

function table(results, starts) {
  const f = (n, d = 0) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
  const lines = [
    '### Folder to folder (net of process start)',
    '',
    `framewire: the time \`send\` reports (first frame to last acknowledgement, after start and connect); others: wall time minus process start (rsync ${f(starts.rsync)} ms, srt-file-transmit ${f(starts.srt)} ms, measured as \`--version\` runs). ` +
      'rx CPU and RSS: the framewire receiver (serve) only.',
    '',
    '| way | files | on | MB/s (median) | MB/s (runs) | x rsync | x tar/socat | x SRT | rx CPU us/frame (median) | rx CPU us/frame (runs) | rx peak RSS MB |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const r of results) {
    const files = `${r.count} x ${Math.round(r.size / 1000)} KB`;
    if (r.error) {
      lines.push(`| ${r.label} | ${files} | ${r.place} | FAILED: ${r.error.replaceAll('|', '/')} ||||||||`);
      continue;
    }
    lines.push(
      `| ${r.label} | ${files} | ${r.place} | ${f(r.mbPerSec)} | ${r.mbPerSecRuns.map((x) => f(x)).join(', ')} | ${f(r.vsRsync, 2)} | ${f(r.vsTarSocat, 2)} | ${f(r.vsSrt, 2)} | ${f(r.rxCpuUsPerFrame)} | ${r.rxCpuUsPerFrameRuns.length ? r.rxCpuUsPerFrameRuns.map((x) => f(x)).join(', ') : '-'} | ${f(r.rxPeakRssMB)} |`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table: t, results, failures } = await runFolderBench();
  process.stdout.write(`${t}\n`);
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(join(here, 'out', 'folders.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.exit(failures > 0 ? 1 : 0);
}
