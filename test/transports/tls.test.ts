/** tls:// senders: --ca adds to the system's CAs (it does not replace them), and a CA-signed receiver works. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { connect, createServer, type FramewireError } from '../../src/index.js';
import { tlsClientOptions, trustedCas } from '../../src/transports/tls.js';
import { type TestPki, testPki } from '../helpers/ca.js';
import { payload, tempDir } from '../helpers/tmp.js';

let pki: TestPki;
let cleanup: () => Promise<void>;
before(async () => {
  const t = await tempDir('fw-tls-');
  cleanup = t.cleanup;
  pki = await testPki(t.dir);
});
after(async () => cleanup());

test('--ca is added to the system root CAs: the options list every root and then the given CA', async () => {
  const ca = await readFile(pki.caCert);
  delete process.env.NODE_EXTRA_CA_CERTS;
  const opts = tlsClientOptions('recorder.lab', 7070, { ca });
  const list = opts.ca as (string | Buffer)[];
  assert.ok(Array.isArray(list), 'ca is a list, not the given CA alone');
  assert.ok(tls.rootCertificates.length > 50, 'node has its bundled roots');
  for (const root of tls.rootCertificates) assert.ok(list.includes(root), 'every system root is kept');
  assert.equal(list.at(-1), ca);
  assert.equal(list.length, tls.rootCertificates.length + 1);
  assert.equal(opts.servername, 'recorder.lab');
  assert.equal(opts.rejectUnauthorized, true);
  // Without --ca, Node's default applies (the same roots): no list is built.
  assert.equal(tlsClientOptions('127.0.0.1', 7070, {}).ca, undefined);
  assert.equal(trustedCas(undefined), undefined);
});

test('--ca keeps the CAs of NODE_EXTRA_CA_CERTS too (Node drops them once `ca` is given)', async () => {
  const ca = await readFile(pki.caCert);
  const before = process.env.NODE_EXTRA_CA_CERTS;
  process.env.NODE_EXTRA_CA_CERTS = pki.caCert;
  try {
    const list = trustedCas(Buffer.from('given')) as (string | Buffer)[];
    assert.equal(list.length, tls.rootCertificates.length + 2);
    assert.equal(list.at(-2), ca.toString('utf8'));
    assert.equal(String(list.at(-1)), 'given');
    // An unreadable file is skipped, as Node itself does (with a warning of its own at startup).
    process.env.NODE_EXTRA_CA_CERTS = '/nonexistent/extra.pem';
    assert.equal(trustedCas(Buffer.from('given'))!.length, tls.rootCertificates.length + 1);
  } finally {
    if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
    else process.env.NODE_EXTRA_CA_CERTS = before;
  }
});

for (const scheme of ['tls', 'wss'] as const)
  test(`${scheme}://: a receiver whose certificate is signed by the --ca CA is trusted; without --ca it is not`, async () => {
    const server = await createServer({
      listen: `${scheme}://127.0.0.1:0`,
      tls: { cert: await readFile(pki.serverCert), key: await readFile(pki.serverKey) },
    });
    let frames = 0;
    server.on('frame', () => frames++);
    try {
      const url = `${scheme}://127.0.0.1:${server.port}`;
      await assert.rejects(connect(url, { retryForMs: 200 }), (err: FramewireError) => {
        assert.equal(err.code, 'ERR_TLS');
        return true;
      });
      const client = await connect(url, { tls: { ca: await readFile(pki.caCert) } });
      const st = client.stream('signed');
      for (let i = 0; i < 5; i++) await st.send({ data: payload(i, 10_000) });
      await client.close();
      assert.equal(frames, 5);
    } finally {
      await server.close();
    }
  });
