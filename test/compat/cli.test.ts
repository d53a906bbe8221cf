/** The CLI with legacy endpoints: one `serve` with the seed's two-port arrangement beside a native endpoint. */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { makeFolder } from '../helpers/folders.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';
import { fakeJpeg, PyUdp, seedSendChunked, seedTcpClient } from './peers.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-legacy-cli-'));
});
after(async () => cleanup());

async function serve(args: string[]) {
  const io = capture();
  const ac = new AbortController();
  const done = run(['serve', ...args], { ...io, signal: ac.signal });
  await waitFor(() => io.err().includes('receiving on'), 20_000, 'serve to start');
  const m = /receiving on (.*?)(, saving to .*)?$/m.exec(io.err());
  const urls = m![1]!.split(', ');
  const port = (scheme: string) => Number(new URL(urls.find((u) => u.startsWith(`${scheme}://`))!).port);
  return {
    io,
    port,
    stop: async () => {
      ac.abort();
      return done;
    },
  };
}

test('serve with legacy-udp, legacy-json, legacy-tcp and tcp at once; send and msg reach them all', async () => {
  const out = join(root, 'received');
  const srv = await serve([
    '--out',
    out,
    '--listen',
    'legacy-udp://127.0.0.1:0',
    '--listen',
    'legacy-json://127.0.0.1:0',
    '--listen',
    'legacy-tcp://127.0.0.1:0',
    '--listen',
    'tcp://127.0.0.1:0',
  ]);
  try {
    const pics = { '0.jpg': fakeJpeg(123_000, 0), '1.jpg': fakeJpeg(2048, 1), '2.jpg': fakeJpeg(70_000, 2) };
    const dir = await makeFolder(root, 'frames', pics);

    const a = capture();
    assert.equal(
      await run(
        ['send', dir, '--to', `legacy-udp://127.0.0.1:${srv.port('legacy-udp')}`, '--no-progress'],
        a,
      ),
      0,
      a.err(),
    );
    const b = capture();
    const tcpArgs = ['send', dir, '--to', `legacy-tcp://127.0.0.1:${srv.port('legacy-tcp')}`];
    assert.equal(
      await run([...tcpArgs, '--kind', 'infrared', '--stream', 'run42', '--no-progress'], b),
      0,
      b.err(),
    );
    const c = capture();
    assert.equal(
      await run(['msg', '--to', `legacy-json://127.0.0.1:${srv.port('legacy-json')}`, '[0,0,0,1]'], c),
      0,
      c.err(),
    );
    assert.match(c.err(), /sent 1 message to legacy-json:\/\/127\.0\.0\.1:\d+/);
    const d = capture();
    assert.equal(
      await run(
        ['send', dir, '--to', `tcp://127.0.0.1:${srv.port('tcp')}`, '--stream', 'native', '--no-progress'],
        d,
      ),
      0,
      d.err(),
    );

    // The seed's own programs, unchanged, against the same serve.
    const s = new PyUdp();
    await s.bind();
    seedSendChunked(s, fakeJpeg(5000, 9), srv.port('legacy-udp'));
    assert.equal((await s.recvfrom(1024))[0].toString(), 'get message!!!');
    s.sendto('{"detections": [[1, 2, 3, 4]]}', srv.port('legacy-json'));
    assert.equal((await s.recvfrom(1024))[0].toString(), 'get the msg');
    await s.close();
    const seed = await seedTcpClient(srv.port('legacy-tcp'), 'visible', 'seedrun', [
      { name: '0.png', data: payload(0, 999) },
    ]);
    assert.ok(seed.replies.every((r) => r === 'ok'));

    await waitFor(
      () => srv.io.out().split('\n').filter(Boolean).length === 2,
      20_000,
      'two messages on stdout',
    );
    assert.equal(await srv.stop(), 0);

    for (const [n, data] of Object.entries(pics)) {
      assert.ok((await readFile(join(out, 'run42', n))).equals(data), `run42/${n}`);
      assert.ok((await readFile(join(out, 'native', n))).equals(data), `native/${n}`);
    }
    const udpStreams = (await readdir(out)).filter((n) => n.startsWith('udp-127.0.0.1-'));
    assert.equal(udpStreams.length, 2, 'one stream per sender address');
    const cliStream = [];
    for (const u of udpStreams) {
      const files = (await readdir(join(out, u))).filter((n) => /^legacy-udp-\d+\.jpg$/.test(n)).sort();
      if (files.length === 3) cliStream.push(u);
    }
    assert.equal(cliStream.length, 1);
    for (const [i, data] of Object.values(pics).entries()) {
      const name = `legacy-udp-${String(i).padStart(9, '0')}.jpg`;
      assert.ok((await readFile(join(out, cliStream[0]!, name))).equals(data), name);
    }
    assert.ok((await readFile(join(out, 'seedrun', '0.png'))).equals(payload(0, 999)));
    const stdout = srv.io
      .out()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      stdout.map((m) => m.json),
      [[0, 0, 0, 1], { detections: [[1, 2, 3, 4]] }],
    );
    const messages = (await readFile(join(out, 'messages.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(messages.length, 2);
    assert.match(srv.io.err(), /stream run42 \(infrared, reliable\) from 127\.0\.0\.1:\d+/);
  } finally {
    await srv.stop();
  }
});

test('wrong pairings and impossible options are one clear line with a hint', async () => {
  const dir = await makeFolder(root, 'one', { '0.jpg': fakeJpeg(70_000, 0) });
  const a = capture();
  assert.equal(await run(['send', dir, '--to', 'legacy-json://127.0.0.1:6666'], a), 2);
  assert.match(
    a.err(),
    /^framewire: ERR_UNSUPPORTED_SCHEME: legacy-json:\/\/127\.0\.0\.1:6666 is a JSON message port/,
  );
  assert.match(a.err(), /hint: send frames to legacy-udp:\/\/ or legacy-tcp:\/\//);
  const b = capture();
  assert.equal(await run(['msg', '--to', 'legacy-udp://127.0.0.1:9999', '[1]'], b), 2);
  assert.match(b.err(), /ERR_UNSUPPORTED_SCHEME: .* takes pictures or frames, not JSON messages/);
  assert.match(b.err(), /hint: .*legacy-json:\/\/HOST:6666/);
  const c = capture();
  assert.equal(await run(['msg', '--to', 'legacy-json://127.0.0.1:6666', '--ref', 'cam:1', '[1]'], c), 2);
  assert.match(
    c.err(),
    /ERR_BAD_OPTION: an option does nothing with legacy-json:\/\/\S+: --ref \(only tcp:\/\//,
  );
  const d = capture();
  assert.equal(await run(['send', dir, '--to', 'legacy-udp://127.0.0.1:9?single', '--no-progress'], d), 1);
  assert.match(
    d.err(),
    /ERR_PICTURE_TOO_LARGE: 0\.jpg is 70000 bytes; one UDP datagram carries at most 65507/,
  );
  const e = capture();
  assert.equal(await run(['msg', '--to', 'legacy-json://127.0.0.1:6666', '[1,'], e), 1);
  assert.match(e.err(), /ERR_BAD_JSON/);
});
