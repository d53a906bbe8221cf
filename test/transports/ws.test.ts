/** The transport contract for ws:// and wss:// (WebSocket binary messages, plain and over TLS). */
import { after, before } from 'node:test';
import { selfSignedCert } from '../helpers/certs.js';
import { tempDir } from '../helpers/tmp.js';
import { transportContract } from './contract.js';

let tls: { cert: string; key: string } | undefined;
let cleanup: () => Promise<void> = async () => {};
before(async () => {
  const t = await tempDir();
  cleanup = t.cleanup;
  tls = await selfSignedCert(t.dir);
});
after(() => cleanup());

transportContract({ scheme: 'ws' });
transportContract({
  scheme: 'wss',
  options: () => ({ tlsServer: tls, tlsClient: { ca: tls?.cert } }),
});
