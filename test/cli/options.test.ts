/**
 * The scheme/option table (src/cli/applicability.ts), the range checks (src/cli/values.ts) and the token
 * conflict of serve: every case is a usage error (exit code 2, ERR_BAD_OPTION) that names what is wrong,
 * before anything is opened. In-process through run(argv).
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let frames: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-options-'));
  frames = join(root, 'frames');
  await mkdir(frames);
  for (let i = 0; i < 3; i++) await writeFile(join(frames, `${i}.jpg`), payload(i, 2000));
});
after(async () => cleanup());

/** Runs argv; asserts a usage error with ERR_BAD_OPTION (or `code`) and no stack trace; returns stderr. */
async function usage(argv: string[], code = 'ERR_BAD_OPTION'): Promise<string> {
  const io = capture();
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 10_000);
  const rc = await run(argv, { ...io, signal: ac.signal });
  clearTimeout(timer);
  assert.equal(rc, 2, `${argv.join(' ')} → exit ${rc}: ${io.err()}`);
  assert.match(io.err(), new RegExp(`^framewire: ${code}: `), argv.join(' '));
  assert.doesNotMatch(io.err(), /\n\s+at |unexpected error/, 'no stack trace');
  return io.err();
}

test('send to legacy-tcp:// with --mtu --rate --token --resume: one usage error naming all four', async () => {
  const err = await usage([
    'send',
    frames,
    '--to',
    'legacy-tcp://127.0.0.1:9',
    '--mtu',
    '1200',
    '--rate',
    '1MB',
    '--token',
    'x',
    '--resume',
  ]);
  for (const flag of ['--mtu', '--rate', '--token', '--resume']) assert.ok(err.includes(flag), flag);
  assert.match(err, /do nothing with legacy-tcp:\/\/127\.0\.0\.1:9/);
  assert.match(err, /--mtu \(only udp:\/\/\)/);
});

test('every option that does nothing for the scheme, input or other options is refused', async () => {
  const cases: [string[], string][] = [
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--mtu', '1200'], '--mtu'],
    [['send', frames, '--to', 'tls://127.0.0.1:9', '--latency', '50'], '--latency'],
    [['send', frames, '--to', 'izmq://127.0.0.1:9', '--window-frames', '4'], '--window-frames'],
    [['send', frames, '--to', 'izmq+pub://127.0.0.1:9', '--mode', 'live'], '--mode'],
    [['send', frames, '--to', 'legacy-udp://127.0.0.1:9', '--stream', 's'], '--stream'],
    [['send', frames, '--to', 'legacy-udp://127.0.0.1:9', '--kind', 'depth'], '--kind'],
    [['send', frames, '--to', 'legacy-udp://127.0.0.1:9', '--retry-for', '3'], '--retry-for'],
    [['send', frames, '--to', 'legacy-tcp://127.0.0.1:9', '--stats'], '--stats'],
    [['send', frames, '--to', 'legacy-tcp://127.0.0.1:9', '--epoch', 'e1'], '--epoch'],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--ca', 'ca.pem'], '--ca'],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--size', '64x48'], '--size'],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--quality', '50'], '--quality'],
    [['send', 'testsrc', '--to', 'tcp://127.0.0.1:9', '--times', 't.jsonl'], '--times'],
    [['send', 'testsrc', '--to', 'tcp://127.0.0.1:9', '--resume'], '--resume'],
    [['send', 'testsrc', '--to', 'tcp://127.0.0.1:9', '--loop'], '--loop'],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--realtime'], '--realtime'],
    [['send', '/dev/video0', '--to', 'tcp://127.0.0.1:9', '--realtime'], '--realtime'],
    [['msg', '--to', 'legacy-json://127.0.0.1:9', '--token', 'x', '[1]'], '--token'],
    [['msg', '--to', 'legacy-json://127.0.0.1:9', '--retry-for', '2', '[1]'], '--retry-for'],
    [['msg', '--to', 'legacy-json://127.0.0.1:9', '--ref', 'cam:1', '[1]'], '--ref'],
    [['msg', '--to', 'tcp://127.0.0.1:9', '--cert', 'c.pem', '--key', 'k.pem', '[1]'], '--cert'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--mtu', '1200'], '--mtu'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--cert', 'c.pem', '--key', 'k.pem'], '--cert'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--fsync'], '--fsync'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--write-concurrency', '4'], '--write-concurrency'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--sync-write-max', '0'], '--sync-write-max'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--on-conflict', 'refuse'], '--on-conflict'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--tolerance', '10ms'], '--tolerance'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--max-wait', '1s'], '--max-wait'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--bus-ca', 'ca.pem'], '--bus-ca'],
    [['serve', '--listen', 'tcp://127.0.0.1:0', '--view-cert', 'c.pem'], '--view-cert'],
    [['serve', '--listen', 'legacy-tcp://127.0.0.1:0', '--no-verify-crc'], '--no-verify-crc'],
    [['serve', '--listen', 'legacy-tcp://127.0.0.1:0', '--token', 'x'], '--token'],
    [
      ['serve', '--listen', 'tcp://127.0.0.1:0', '--allow-unauthenticated-legacy'],
      '--allow-unauthenticated-legacy',
    ],
    [['consume', 'nats://127.0.0.1:9', '--fsync'], '--fsync'],
  ];
  for (const [argv, flag] of cases) {
    const err = await usage(argv);
    assert.ok(err.includes(`${flag} (only `), `${argv.join(' ')} names ${flag}: ${err}`);
  }
});

test('FRAMEWIRE_TOKEN counts as --token: refused towards a seed endpoint', async () => {
  process.env.FRAMEWIRE_TOKEN = 'from-env';
  try {
    const err = await usage(['send', frames, '--to', 'legacy-tcp://127.0.0.1:9']);
    assert.match(err, /--token \(only tcp:\/\//);
  } finally {
    delete process.env.FRAMEWIRE_TOKEN;
  }
});

test('serve --token beside an endpoint that cannot check it refuses to start, naming the conflict', async () => {
  for (const legacy of [
    'legacy-tcp://127.0.0.1:0',
    'legacy-udp://127.0.0.1:0',
    'legacy-json://127.0.0.1:0',
    'izmq://127.0.0.1:0',
    'izmq+sub://127.0.0.1:9',
  ]) {
    const err = await usage(['serve', '--token', 'S', '--listen', 'tcp://127.0.0.1:0', '--listen', legacy]);
    assert.ok(err.includes(`${legacy} cannot check --token`), err);
    assert.match(err, /hint: .*--allow-unauthenticated-legacy/);
  }
});

test('serve --token --allow-unauthenticated-legacy starts, with a warning on stderr', async () => {
  const io = capture();
  const ac = new AbortController();
  const done = run(
    [
      'serve',
      '--token',
      'S',
      '--listen',
      'tcp://127.0.0.1:0',
      '--listen',
      'legacy-tcp://127.0.0.1:0',
      '--allow-unauthenticated-legacy',
    ],
    { ...io, signal: ac.signal },
  );
  await waitFor(() => io.err().includes('receiving on'), 15_000, 'serve to start');
  ac.abort();
  assert.equal(await done, 0);
  assert.match(
    io.err(),
    /^framewire: warning: legacy-tcp:\/\/127\.0\.0\.1:0 cannot check --token .* accept frames without authentication/,
  );
});

test('out-of-range and malformed values are usage errors that name the option', async () => {
  const cases: [string[], RegExp][] = [
    [['demo', '--size', '10x'], /--size must be WxH/],
    [['demo', '--size', '0x10'], /--size must be WxH/],
    [['demo', '--quality', '500'], /--quality must be an integer 1\.\.100/],
    [['demo', '--fps', '0'], /--fps must be a number above 0/],
    [['serve', '--max-frame-bytes', '0'], /--max-frame-bytes must be a size 1B/],
    [['serve', '--max-frame-bytes', '5GiB'], /--max-frame-bytes must be a size/],
    [['serve', '--max-meta-bytes', '70000'], /--max-meta-bytes must be a size 0\.\.65535/],
    [['serve', '--sync', 'a,b', '--tolerance', '2m'], /--tolerance: "2m" is not a duration/],
    [['send', frames, '--to', 'udp://127.0.0.1:9', '--mtu', '10'], /--mtu must be an integer 256\.\.65507/],
    [['send', frames, '--to', 'udp://127.0.0.1:9', '--mtu=-5'], /--mtu must be an integer/],
    [['send', frames, '--to', 'udp://127.0.0.1:9', '--mtu', '1200.5'], /--mtu must be an integer/],
    [['send', frames, '--to', 'udp://127.0.0.1:9', '--rate', '0'], /--rate must be a rate/],
    [
      ['send', frames, '--to', 'udp://127.0.0.1:9', '--latency', '0'],
      /--latency must be an integer 1\.\.60000/,
    ],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--window-frames', '0'], /--window-frames must be/],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--window-bytes', '0'], /--window-bytes must be a size/],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--retry-for', 'soon'], /--retry-for must be a number/],
    [['send', frames, '--to', 'tcp://127.0.0.1:9', '--fps', '1e3'], /--fps must be a number/],
    [['msg', '--to', 'tcp://127.0.0.1:9', '--retry-for', '0', '[1]'], /--retry-for must be a number above 0/],
    [['consume', 'nats://127.0.0.1:9', '--ack-wait', '0s'], /--ack-wait must be above 0/],
    [['msg', '--to', 'tcp://127.0.0.1:9', '--ref', 'cam0', '[1]'], /--ref "cam0" must look like STREAM:SEQ/],
  ];
  for (const [argv, re] of cases) assert.match(await usage(argv), re, argv.join(' '));
});

test('--cert and --key go together (send, msg, serve); serve --ca needs --cert', async () => {
  await usage(['send', frames, '--to', 'tls://127.0.0.1:9', '--cert', 'c.pem']);
  await usage(['msg', '--to', 'tls://127.0.0.1:9', '--key', 'k.pem', '[1]']);
  await usage(['serve', '--listen', 'tls://127.0.0.1:0', '--cert', 'c.pem']);
  const err = await usage(['serve', '--listen', 'tls://127.0.0.1:0', '--ca', 'ca.pem']);
  assert.match(err, /--ca .* needs --cert/);
});

test('?latency= of a udp:// URL: checked before connecting, one setting with --latency, and used', async () => {
  assert.match(
    await usage(['send', frames, '--to', 'udp://127.0.0.1:9?latency=abc']),
    /latency=abc must be an integer 1\.\.60000/,
  );
  assert.match(
    await usage(['send', frames, '--to', 'udp://127.0.0.1:9?latency=50', '--latency', '30']),
    /--latency and \?latency= .* set the same thing/,
  );
  const out = join(root, 'udp-out');
  const srv = capture();
  const ac = new AbortController();
  const serving = run(['serve', '--listen', 'udp://127.0.0.1:0', '--out', out], {
    ...srv,
    signal: ac.signal,
  });
  try {
    await waitFor(() => /receiving on udp:\/\/127\.0\.0\.1:\d+/.test(srv.err()), 15_000, 'serve');
    const port = /receiving on udp:\/\/127\.0\.0\.1:(\d+)/.exec(srv.err())![1];
    const io = capture();
    const rc = await run(
      ['send', frames, '--to', `udp://127.0.0.1:${port}?latency=5000`, '--mode', 'live', '--stream', 'l'],
      io,
    );
    assert.equal(rc, 0, io.err());
    assert.match(io.err(), /\(live, frames not delivered within 5000 ms are dropped\)/);
  } finally {
    ac.abort();
    await serving;
  }
  assert.ok((await readdir(join(out, 'l'))).length > 0);
});

test('docs/cli.md lists the same options per command as the table in src/cli/applicability.ts', async () => {
  const { OPTION_RULES } = await import('../../src/cli/applicability.js');
  const md = await readFile(new URL('../../docs/cli.md', import.meta.url), 'utf8');
  const section = md.slice(md.indexOf('## Which options apply where'));
  const documented = new Map<string, Set<string>>();
  for (const row of section.matchAll(/^\| `(\w+)` \| (.+?) \| .+ \|$/gm)) {
    const flags = [...row[2]!.matchAll(/`(--[a-z-]+)`/g)].map((m) => m[1]!);
    const set = documented.get(row[1]!) ?? new Set<string>();
    for (const f of flags) set.add(f);
    documented.set(row[1]!, set);
  }
  for (const [command, rules] of Object.entries(OPTION_RULES)) {
    assert.deepEqual(
      [...(documented.get(command) ?? [])].sort(),
      rules.map((r) => r.flag).sort(),
      `docs/cli.md table for ${command}`,
    );
  }
});
