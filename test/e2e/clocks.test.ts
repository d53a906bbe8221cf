/**
 * One clock for every camera, with real processes: a visible camera at 30 fps in a sender whose clock is
 * 3 s ahead (Debian's libfaketime, as `faketime -f +3s` sets it up: it shifts Date.now() and so framewire's
 * wall clock) and an
 * infrared camera at 9 fps in an unshifted sender, both `framewire send` of ffmpeg test patterns, into one
 * receiver that pairs them:
 * - the receiver reports the shifted sender's offset (+3 s) within its error bound, in /api/streams,
 *   /metrics and index.jsonl, and the sender's `--stats` reports it too;
 * - every infrared frame captured while the visible camera ran pairs with a visible frame within 20 ms;
 * - with the correction off (trust the clocks), no infrared frame pairs with the visible frame taken at the
 *   same moment.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  createServer,
  createViewer,
  FolderSink,
  type ReceivedFrame,
  type SyncGroup,
  SyncSink,
} from '../../src/index.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;
const SHIFT_MS = 3000;

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
/**
 * Debian's libfaketime, preloaded straight into node: the `faketime` command would run node as its child,
 * and a signal sent to it would not reach node.
 */
function libfaketime(): string | undefined {
  for (const dir of ['/usr/lib', ...globDirs('/usr/lib')]) {
    const p = join(dir, 'faketime', 'libfaketime.so.1');
    if (existsSync(p)) return p;
  }
  return undefined;
}
function globDirs(dir: string): string[] {
  try {
    return readdirSync(dir).map((e) => join(dir, e));
  } catch {
    return [];
  }
}
const LIBFAKETIME = libfaketime();
const skip =
  !has('faketime') || !LIBFAKETIME || !has('ffmpeg')
    ? 'needs faketime and ffmpeg (.ci/run installs them)'
    : false;

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-clocks-'));
});
after(async () => cleanup());

interface Proc {
  child: ChildProcess;
  stderr: () => string;
}

/** `framewire send …`, under `faketime -f +3s` when shifted. */
function sender(args: string[], shifted: boolean): Proc {
  const argv = [CLI, 'send', ...args];
  // What `faketime -f +3s` sets up; timers run on the monotonic clock: leave it alone.
  const env = shifted
    ? { ...process.env, LD_PRELOAD: LIBFAKETIME!, FAKETIME: `+${SHIFT_MS / 1000}s`, DONT_FAKE_MONOTONIC: '1' }
    : process.env;
  const child = spawn(process.execPath, argv, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return { child, stderr: () => err };
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  const exited = once(p.child, 'exit');
  p.child.kill('SIGINT');
  const t = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(t);
}

function lines<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

function metric(text: string, sample: string): number | undefined {
  for (const l of text.split('\n')) if (l.startsWith(`${sample} `)) return Number(l.slice(sample.length + 1));
  return undefined;
}

interface IndexLine {
  seq: number;
  name: string;
  captureUs: number;
  correctedUs?: number;
  clockOffsetUs?: number;
  clockErrorUs?: number;
}
interface SyncLine {
  t: number;
  spanUs: number;
  frames: Record<string, { seq: number; name: string; captureUs: number; correctedUs: number }>;
}

test('30 fps visible 3 s ahead + 9 fps infrared: offsets measured, every infrared frame paired within 20 ms', {
  skip,
  timeout: 120_000,
}, async () => {
  const out = join(root, 'out');
  const folder = await FolderSink.open(out);
  const synced = await SyncSink.open([['vis', 'ir']], out, { toleranceUs: 20_000, maxWaitUs: 300_000 });
  const trusted = await SyncSink.open([['vis', 'ir']], undefined, {
    toleranceUs: 20_000,
    maxWaitUs: 300_000,
    trustClocks: true,
  });
  const trustedGroups: SyncGroup[] = [];
  trusted.on('group', (g) => trustedGroups.push(g));
  const viewer = await createViewer({ host: '127.0.0.1', port: 0 });
  viewer.addSync(synced);
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [viewer, folder, synced, trusted],
    clockIntervalMs: 500,
  });
  const frames: ReceivedFrame[] = [];
  server.on('frame', (f) => frames.push(f));
  const to = `tcp://127.0.0.1:${server.port}`;
  const common = ['--to', to, '--mode', 'reliable', '--stats', '--no-progress'];
  const vis = sender(['testsrc:64x48@30', '--stream', 'vis', '--kind', 'visible', ...common], true);
  const ir = sender(['thermal:64x48@9', '--stream', 'ir', ...common], false);
  try {
    const count = (s: string) =>
      frames.filter((f) => f.stream.name === s && f.correctedUs !== undefined).length;
    await waitFor(() => count('ir') >= 25 && count('vis') >= 60, 60_000, '25 infrared and 60 visible frames');

    // The receiver's view of each sender's clock, in /api/streams and /metrics.
    const api = (await (await fetch(`${viewer.url}api/streams`)).json()) as {
      streams: Array<{ name: string; clockOffsetMs?: number; clockErrorMs?: number }>;
    };
    const vs = api.streams.find((s) => s.name === 'vis')!;
    const is = api.streams.find((s) => s.name === 'ir')!;
    assert.ok(vs.clockErrorMs! > 0 && vs.clockErrorMs! < 500, `error bound ${vs.clockErrorMs} ms`);
    assert.ok(
      Math.abs(vs.clockOffsetMs! - SHIFT_MS) <= vs.clockErrorMs! + 0.01,
      `vis offset ${vs.clockOffsetMs} ms ± ${vs.clockErrorMs} ms, expected ${SHIFT_MS}`,
    );
    assert.ok(Math.abs(is.clockOffsetMs!) <= is.clockErrorMs! + 0.01, `ir offset ${is.clockOffsetMs} ms`);
    const text = await (await fetch(`${viewer.url}metrics`)).text();
    const off = metric(text, 'framewire_clock_offset_seconds{stream="vis"}')!;
    const err = metric(text, 'framewire_clock_error_seconds{stream="vis"}')!;
    assert.ok(Math.abs(off - SHIFT_MS / 1000) <= err + 1e-5, `metric offset ${off} ± ${err}`);
    assert.ok(metric(text, 'framewire_sync_groups_total')! > 0, 'groups counted');
    // The viewer's sync page shows the latest pair side by side.
    assert.match(await (await fetch(`${viewer.url}sync`)).text(), /Synchronised groups/);
    const sync = (await (await fetch(`${viewer.url}api/sync`)).json()) as {
      groups: Array<{
        streams: string[];
        latest?: { spanUs: number; frames: Record<string, { seq: number }> };
      }>;
    };
    assert.deepEqual(sync.groups[0]!.streams, ['vis', 'ir']);
    assert.ok(sync.groups[0]!.latest!.spanUs <= 20_000);
    const jpg = await fetch(`${viewer.url}sync/0/ir.jpg`);
    assert.equal(jpg.headers.get('content-type'), 'image/jpeg');
    assert.equal((await jpg.arrayBuffer()).byteLength > 100, true);
    assert.equal((await fetch(`${viewer.url}sync/0/nope.jpg`)).status, 404);
  } finally {
    await stop(vis);
    await stop(ir);
    await server.close();
    await viewer.close();
  }
  // The shifted sender saw the same offset from its side.
  const m = /clock ([+-]\d+\.\d)±(\d+\.\d) ms/.exec(vis.stderr());
  assert.ok(m, `send --stats prints the clock offset: ${vis.stderr()}`);
  assert.ok(Math.abs(Number(m[1]) - SHIFT_MS) <= Number(m[2]) + 0.1, `sender says ${m[0]}`);

  // index.jsonl keeps the sender's capture time and adds the corrected one, with the offset and error used.
  const visIndex = lines<IndexLine>(await readFile(join(out, 'vis', 'index.jsonl'), 'utf8'));
  const irIndex = lines<IndexLine>(await readFile(join(out, 'ir', 'index.jsonl'), 'utf8'));
  const corrected = visIndex.filter((e) => e.correctedUs !== undefined);
  assert.ok(corrected.length >= 60);
  for (const e of corrected) {
    assert.equal(e.correctedUs, e.captureUs - e.clockOffsetUs!);
    assert.ok(Math.abs(e.clockOffsetUs! - SHIFT_MS * 1000) <= e.clockErrorUs! + 10, JSON.stringify(e));
  }

  // Every infrared frame taken while the visible camera ran is in a group, within 20 ms of its partner.
  const groups = lines<SyncLine>(await readFile(join(out, 'sync.jsonl'), 'utf8'));
  const paired = new Map(groups.map((g) => [g.frames.ir!.seq, g]));
  const first = corrected[0]!.correctedUs!;
  const last = corrected[corrected.length - 1]!.correctedUs!;
  const during = irIndex.filter(
    (e) => e.correctedUs !== undefined && e.correctedUs > first + 20_000 && e.correctedUs < last - 20_000,
  );
  assert.ok(during.length >= 20, `${during.length} infrared frames while the visible camera ran`);
  for (const e of during) {
    const g = paired.get(e.seq);
    assert.ok(g, `infrared frame ${e.seq} is paired`);
    assert.equal(g.frames.ir!.name, e.name);
    assert.ok(g.spanUs <= 20_000);
    assert.ok(Math.abs(g.frames.ir!.correctedUs - g.frames.vis!.correctedUs) <= 20_000);
    assert.equal(g.t, Math.min(g.frames.ir!.correctedUs, g.frames.vis!.correctedUs));
  }
  // Groups come out in time order, each frame at most once.
  for (let i = 1; i < groups.length; i++) {
    assert.ok(groups[i]!.frames.vis!.seq > groups[i - 1]!.frames.vis!.seq);
    assert.ok(groups[i]!.frames.ir!.seq > groups[i - 1]!.frames.ir!.seq);
  }
  // The visible frames left over are counted, by reason.
  const unpaired = synced.unpaired();
  assert.ok((unpaired.vis?.skipped ?? 0) + (unpaired.vis?.tolerance ?? 0) > 0, JSON.stringify(unpaired));
  // With the correction off, no infrared frame pairs with the visible frame taken at the same moment: the
  // first 3 s of infrared frames find no partner, and later ones pair with a visible frame taken 3 s earlier.
  assert.ok((trusted.unpaired().ir?.tolerance ?? 0) >= 20, JSON.stringify(trusted.unpaired()));
  for (const g of trustedGroups) {
    const apart = Math.abs(g.frames.vis!.frame.correctedUs! - g.frames.ir!.frame.correctedUs!);
    assert.ok(apart > SHIFT_MS * 1000 - 50_000, `a trusted-clock group pairs frames ${apart} µs apart`);
  }
});

test('a sender whose clock steps by +2 s mid-stream (NTP answering late): the receiver follows within a period', {
  skip,
  timeout: 120_000,
}, async () => {
  // libfaketime re-reads its offset from this file at every clock reading (FAKETIME_NO_CACHE).
  const offsetFile = join(root, 'faketime-offset');
  await writeFile(offsetFile, '+0s\n');
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', clockIntervalMs: 300 });
  const frames: ReceivedFrame[] = [];
  server.on('frame', (f) => frames.push(f));
  const child = spawn(
    process.execPath,
    [
      CLI,
      'send',
      'testsrc:64x48@30',
      '--stream',
      'cam',
      '--mode',
      'reliable',
      '--no-progress',
      '--to',
      `tcp://127.0.0.1:${server.port}`,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        LD_PRELOAD: LIBFAKETIME!,
        FAKETIME_TIMESTAMP_FILE: offsetFile,
        FAKETIME_NO_CACHE: '1',
        DONT_FAKE_MONOTONIC: '1',
      },
    },
  );
  const p: Proc = { child, stderr: () => '' };
  child.stderr!.resume();
  try {
    const near = (f: ReceivedFrame, ms: number) =>
      f.clockOffsetUs !== undefined && Math.abs(f.clockOffsetUs - ms * 1000) <= f.clockErrorUs! + 10;
    await waitFor(() => frames.filter((f) => near(f, 0)).length >= 10, 60_000, 'frames at offset 0');
    const before = frames.length;
    await writeFile(offsetFile, '+2s\n');
    await waitFor(
      () => frames.slice(before).filter((f) => near(f, 2000)).length >= 10,
      30_000,
      'offset +2 s',
    );
    const after = frames.slice(before);
    const firstNew = after.findIndex((f) => near(f, 2000));
    // Once the step was noticed, every frame is back on the receiver's clock: no 2 s jump in correctedUs.
    for (const f of [...frames.slice(0, before).filter((f) => near(f, 0)), ...after.slice(firstNew)]) {
      assert.ok(Math.abs(f.correctedUs! - f.receivedUs) < 1_000_000, `frame ${f.seq} corrected within 1 s`);
    }
    // The capture times themselves moved with the sender's clock.
    assert.ok(after[after.length - 1]!.captureUs - after[after.length - 1]!.receivedUs > 1_500_000);
  } finally {
    await stop(p);
    await server.close();
  }
});
