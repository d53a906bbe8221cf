/**
 * Mutual TLS from the command line: `serve --ca` asks senders for a client certificate signed by that CA, and
 * `send`/`msg --cert --key` present one. `--ca` on the sender trusts the CA that signed the receiver.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { type TestPki, testPki } from '../helpers/ca.js';
import { capture } from '../helpers/cli.js';
import { makeFolder } from '../helpers/folders.js';
import { payload, tempDir, waitFor } from '../helpers/tmp.js';

let root: string;
let pki: TestPki;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-cli-tls-'));
  pki = await testPki(root);
});
after(async () => cleanup());

test('send and msg with --ca, --cert and --key reach a serve --ca receiver; without --cert they are refused', async () => {
  const src = await makeFolder(root, 'frames', { '0.jpg': payload(0, 3000), '1.jpg': payload(1, 3000) });
  const out = join(root, 'out');
  const srv = capture();
  const ac = new AbortController();
  const serving = run(
    [
      'serve',
      '--listen',
      'tls://127.0.0.1:0',
      '--cert',
      pki.serverCert,
      '--key',
      pki.serverKey,
      '--ca',
      pki.caCert,
      '--out',
      out,
    ],
    { ...srv, signal: ac.signal },
  );
  try {
    await waitFor(() => /receiving on tls:\/\/127\.0\.0\.1:\d+/.test(srv.err()), 15_000, 'serve');
    const url = `tls://127.0.0.1:${/receiving on tls:\/\/127\.0\.0\.1:(\d+)/.exec(srv.err())![1]}`;
    const client = ['--ca', pki.caCert, '--cert', pki.clientCert, '--key', pki.clientKey];
    const a = capture();
    assert.equal(
      await run(['send', src, '--to', url, '--stream', 'mtls', '--no-progress', ...client], a),
      0,
      a.err(),
    );
    const m = capture();
    assert.equal(await run(['msg', '--to', url, ...client, '{"mutual":true}'], m), 0, m.err());
    // The receiver asks for a certificate: a sender without one is refused at once (ERR_TLS, no retries).
    const b = capture();
    const rc = await run(
      ['send', src, '--to', url, '--ca', pki.caCert, '--retry-for', '1', '--no-progress'],
      b,
    );
    assert.equal(rc, 1, b.err());
    assert.match(b.err(), /^framewire: ERR_TLS: .*certificate required/);
    assert.match(b.err(), /hint: the receiver asks for a client certificate .* --cert FILE and --key FILE/);
    await waitFor(() => srv.out().includes('"mutual":true'), 10_000, 'the message');
  } finally {
    ac.abort();
    assert.equal(await serving, 0);
  }
  const saved = (await readdir(join(out, 'mtls'))).filter((n) => n.endsWith('.jpg') && n !== 'latest.jpg');
  assert.deepEqual(saved.sort(), ['0.jpg', '1.jpg']);
});
