// A receiver and a sender in one process: two streams, a JSON message that names a frame, and a summary.
// Run it after `npm install`:  node examples/quickstart.mjs
// (In your own project, import from 'framewire' instead of '../dist/index.js'.)
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, FolderSink } from '../dist/index.js';

const out = await mkdtemp(join(tmpdir(), 'framewire-example-'));

// The receiver: saves to OUT/<stream>/ and tells us about every stored frame and message.
const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [await FolderSink.open(out)] });
let received = 0;
server.on('frame', () => received++);
server.on('message', (m) => console.log('message', JSON.stringify(m.json), 'about', m.ref));

// The sender: one connection, two streams.
const client = await connect(`tcp://127.0.0.1:${server.port}`);
const visible = client.stream('front', { kind: 'visible' });
const infrared = client.stream('front-ir', { kind: 'infrared' });
for (let i = 0; i < 10; i++) {
  const captureUs = Date.now() * 1000; // both cameras share a capture time: pair them by it
  const seq = await visible.send({ data: Buffer.alloc(20_000, i), name: `${i}.jpg`, captureUs });
  await infrared.send({ data: Buffer.alloc(5_000, i), name: `${i}.png`, captureUs, meta: { tempC: 20 + i } });
  if (i === 3) await client.message({ detections: [[10, 20, 30, 40]] }, { ref: { stream: 'front', seq } });
}
const stats = await client.close(); // resolves when every frame and message is acknowledged
console.log(`acknowledged ${stats.framesAcked} frames, ${stats.messagesAcked} message; ack latency p50 ${stats.ackLatencyMs.p50.toFixed(2)} ms`);
await server.close();
console.log(`receiver stored ${received} frames in ${out}:`, (await readdir(out)).sort().join(' '));
