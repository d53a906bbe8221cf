// UDP rows of the benchmark: framewire's udp:// (reliable and live, 1200-byte and 65000-byte datagrams, and
// reliable through a relay losing 1% of datagrams each way) against a plain node:dgram sender/receiver
// measured in the same run. bench/run.mjs calls runUdpBench(); `node bench/udp.mjs` runs these rows alone
// (after `npm run build`).
//
// Every row runs its ends (and the relay) in separate child processes (bench/udp-child.mjs) on 127.0.0.1,
// port 0. MB/s and frames/s are counted at the receiver over the measured window; latency is receivedUs -
// captureUs of each frame (one machine, one clock): queueing in the sender's window included.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const FRAME = 123_000;

export const UDP_ROWS = [
  { id: 'udp-dgram-1200', label: 'baseline: node:dgram blast, no repair', kind: 'dgram', datagram: 1200 },
  { id: 'udp-reliable-1200', label: 'framewire udp reliable', kind: 'fw', mode: 'reliable', mtu: 1200 },
  { id: 'udp-live-1200', label: 'framewire udp live', kind: 'fw', mode: 'live', mtu: 1200 },
  { id: 'udp-dgram-65000', label: 'baseline: node:dgram blast, no repair', kind: 'dgram', datagram: 65_000 },
  { id: 'udp-reliable-65000', label: 'framewire udp reliable', kind: 'fw', mode: 'reliable', mtu: 65_000 },
  {
    id: 'udp-reliable-65000-token',
    label: 'framewire udp reliable, token (AES-GCM)',
    kind: 'fw',
    mode: 'reliable',
    mtu: 65_000,
    token: 'bench-token-0123456789abcdef',
  },
  { id: 'udp-live-65000', label: 'framewire udp live', kind: 'fw', mode: 'live', mtu: 65_000 },
  {
    id: 'udp-reliable-1200-loss1',
    label: 'framewire udp reliable, relay losing 1% each way',
    kind: 'fw',
    mode: 'reliable',
    mtu: 1200,
    loss: 0.01,
    baseline: 'udp-dgram-1200',
  },
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Child {
  constructor(cfg) {
    this.role = cfg.role;
    this.inbox = [];
    this.waiters = [];
    this.proc = fork(join(here, 'udp-child.mjs'), [JSON.stringify(cfg)], {
      execArgv: process.execArgv,
      stdio: ['ignore', 2, 2, 'ipc'],
    });
    this.exited = new Promise((r) => this.proc.once('exit', r));
    this.failed = new Promise((_, reject) => {
      this.proc.once('exit', (code) => {
        if (!this.done)
          reject(
            new Error(`${cfg.role} exited unexpectedly (code ${code})${this.error ? `: ${this.error}` : ''}`),
          );
      });
    });
    this.failed.catch(() => {});
    this.proc.on('message', (msg) => {
      if (msg?.type === 'error') this.error = msg.message;
      if (msg?.type === 'done') this.done = true;
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
    const waited = new Promise((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`${this.role} sent no '${type}' within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        type,
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
      });
    });
    return Promise.race([waited, this.failed]);
  }
  async stop() {
    await Promise.race([this.exited, sleep(3000)]);
    if (this.proc.exitCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}

async function runRow(row, { seconds, warmup, deadlineMs }) {
  const children = [];
  const start = (cfg) => {
    const c = new Child({ ...cfg, deadlineMs });
    children.push(c);
    return c;
  };
  try {
    const rx = start({ role: row.kind === 'dgram' ? 'dgram-rx' : 'fw-rx', token: row.token });
    let port = (await rx.next('ready', 15_000)).port;
    let relay;
    if (row.loss) {
      relay = start({ role: 'proxy', target: port, loss: row.loss, seed: 20_251_121 });
      port = (await relay.next('ready', 15_000)).port;
    }
    const tx = start(
      row.kind === 'dgram'
        ? { role: 'dgram-tx', port, datagram: row.datagram }
        : { role: 'fw-tx', port, mtu: row.mtu, mode: row.mode, size: FRAME, token: row.token },
    );
    await tx.next('ready', 15_000);
    tx.send({ type: 'go' });
    await sleep(warmup * 1000);
    rx.send({ type: 'start' });
    await sleep(seconds * 1000);
    rx.send({ type: 'stop' });
    const win = await rx.next('window', 10_000);
    tx.send({ type: 'stop' });
    const txDone = await tx.next('done', 60_000);
    rx.send({ type: 'finish' });
    const rxDone = await rx.next('done', 30_000);
    relay?.send({ type: 'finish' });
    const relayDone = relay ? await relay.next('done', 10_000) : undefined;
    if (row.kind === 'fw' && row.mode === 'reliable' && rxDone.received !== txDone.sent) {
      throw new Error(`the receiver got ${rxDone.received} frames but the sender sent ${txDone.sent}`);
    }
    const mbPerSec = win.bytes / win.seconds / 1e6;
    const base = {
      id: row.id,
      label: row.label,
      seconds: win.seconds,
      mbPerSec,
      rxCpuPct: (win.cpuUserMs + win.cpuSystemMs) / 10 / win.seconds,
    };
    if (row.kind === 'dgram') {
      return {
        ...base,
        datagram: row.datagram,
        datagramsPerSec: win.count / win.seconds,
        sent: txDone.sent,
        received: rxDone.received,
        lossPct: txDone.sent > 0 ? (100 * (txDone.sent - rxDone.received)) / txDone.sent : 0,
      };
    }
    return {
      ...base,
      datagram: row.mtu,
      mode: row.mode,
      loss: row.loss,
      frame: FRAME,
      framesPerSec: win.count / win.seconds,
      latencyP50Ms: win.p50,
      latencyP99Ms: win.p99,
      sent: txDone.sent,
      received: rxDone.received,
      retransmits: txDone.retransmits,
      datagramsSent: txDone.datagramsSent,
      // Live frames given up by the transport (too late, or dropped by the receiver), and frames replaced
      // unsent at the sender by a newer one (newest wins: the source makes more than the link carries).
      drops: txDone.liveAbandoned,
      replaced: row.mode === 'live' ? Math.max(0, txDone.sent - rxDone.received - txDone.liveAbandoned) : 0,
      srttMs: txDone.srttMs,
      relay: relayDone,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

const fmt = {
  int: (n) => (n === undefined || Number.isNaN(n) ? '-' : Math.round(n).toLocaleString('en-US')),
  f1: (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(1)),
  f2: (n) => (n === undefined || Number.isNaN(n) ? '-' : n.toFixed(2)),
};

export function udpTable(results) {
  const head = [
    'row',
    'datagram',
    'frames/s',
    'MB/s',
    'x dgram',
    'latency p50 ms',
    'latency p99 ms',
    'retransmits',
    'drops (late)',
    'replaced unsent',
    'rx CPU %',
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`];
  for (const r of results) {
    const dg = `${r.datagram ?? '?'} B`;
    if (r.error) {
      lines.push(`| ${r.label} | ${dg} | FAILED: ${r.error.replaceAll('|', '/').split('\n')[0]} ||||||||`);
      continue;
    }
    const isDgram = r.framesPerSec === undefined;
    lines.push(
      `| ${[
        r.label,
        dg,
        isDgram ? `(${fmt.int(r.datagramsPerSec)} datagrams/s)` : fmt.int(r.framesPerSec),
        fmt.int(r.mbPerSec),
        fmt.f2(r.ratio),
        fmt.f1(r.latencyP50Ms),
        fmt.f1(r.latencyP99Ms),
        fmt.int(r.retransmits),
        isDgram ? `${fmt.int(r.sent - r.received)} lost (${fmt.f1(r.lossPct)}%)` : fmt.int(r.drops),
        isDgram ? '-' : fmt.int(r.replaced),
        fmt.int(r.rxCpuPct),
      ].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** Runs the UDP rows; returns the results and their markdown table. */
export async function runUdpBench({ seconds = 4, warmup = 1, rows = UDP_ROWS } = {}) {
  const deadlineMs = (warmup + seconds + 90) * 1000;
  const results = [];
  for (const row of rows) {
    const t0 = performance.now();
    process.stderr.write(
      `  ${row.label}, ${row.kind === 'dgram' ? row.datagram : row.mtu}-byte datagrams ... `,
    );
    try {
      const r = await runRow(row, { seconds, warmup, deadlineMs });
      results.push(r);
      process.stderr.write(
        `${fmt.int(r.mbPerSec)} MB/s (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`,
      );
    } catch (err) {
      results.push({
        id: row.id,
        label: row.label,
        datagram: row.datagram ?? row.mtu,
        error: err?.message ?? String(err),
      });
      process.stderr.write(`FAILED\nbench: ${row.id}: ${err?.stack ?? err}\n`);
    }
  }
  for (const r of results) {
    const row = rows.find((x) => x.id === r.id);
    const baseId = row?.baseline ?? `udp-dgram-${r.datagram}`;
    const base = results.find((b) => b.id === baseId && !b.error);
    if (!r.error && base) r.ratio = r.mbPerSec / base.mbPerSec;
  }
  const table = [
    `UDP on loopback: ${(FRAME / 1000).toFixed(0)} KB frames (1080p JPEG size); baseline = plain node:dgram socket blasting datagrams of the same size, counted at a plain receiving socket, no numbering or repair; latency = capture to delivery at the receiver; retransmits counted at the sender; drops (late) = live frames the transport gave up whole; replaced unsent = live frames a newer one replaced before they left (newest wins: the live rows send as fast as the sender can make frames)`,
    '',
    udpTable(results),
  ].join('\n');
  return { results, table, failures: results.filter((r) => r.error).length };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const seconds = Number(process.env.BENCH_SECONDS) || 4;
  const warmup = Number(process.env.BENCH_WARMUP) || 1;
  const only = process.env.BENCH_UDP_ROWS?.split(',').map((s) => s.trim());
  const rows = only ? UDP_ROWS.filter((r) => only.includes(r.id)) : UDP_ROWS;
  console.error(`bench udp: ${rows.length} rows, about ${rows.length * (seconds + warmup + 2)} s`);
  const { results, table, failures } = await runUdpBench({ seconds, warmup, rows });
  process.stdout.write(
    `## framewire UDP benchmark\n\n- date: ${new Date().toISOString()}\n- node ${process.version}, ${os.platform()} ${os.release()}, ${os.cpus()[0]?.model}, ${os.cpus().length} cores\n\n${table}\n`,
  );
  mkdirSync(join(here, 'out'), { recursive: true });
  writeFileSync(
    join(here, 'out', 'udp.json'),
    `${JSON.stringify({ date: new Date().toISOString(), rows: results }, null, 2)}\n`,
  );
  process.exit(failures > 0 ? 1 : 0);
}
