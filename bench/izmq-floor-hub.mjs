// The floor of the ImageZMQ rows (bench/izmq.mjs): the least a Node hub can do with the ZeroMQ binding that
// framewire uses (the npm package `zeromq`). It binds REP, and for each message receives the two parts,
// parses the JSON, writes the bytes to OUT/<msg>/<n>.jpg with one writeFileSync (open, write, close), and
// answers OK; nothing else: no temporary file, no index, no CRC, no checks. framewire's hub cannot beat
// this row, so where it stays below the Python hub, the binding's cost per message is why.
//
//   node bench/izmq-floor-hub.mjs tcp://127.0.0.1:0 OUT COUNT    prints {"port": N}; exits after COUNT files
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [url, out, countArg] = process.argv.slice(2);
const count = Number(countArg);
const { Reply } = createRequire(import.meta.url)('zeromq');
const sock = new Reply({ linger: 0 });
await sock.bind(url);
console.log(JSON.stringify({ port: Number(sock.lastEndpoint.split(':').pop()) }));
const folders = new Set();
for (let n = 0; n < count; n++) {
  const [md, data] = await sock.receive();
  const dir = join(out, String(JSON.parse(md.toString()).msg));
  if (!folders.has(dir)) {
    mkdirSync(dir, { recursive: true });
    folders.add(dir);
  }
  writeFileSync(join(dir, `${n}.jpg`), data);
  await sock.send('OK');
}
sock.close();
