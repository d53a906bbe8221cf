// One frame at a time into a FolderSink, the way a REQ/REP ImageZMQ sender drives the hub: µs per frame
// with nothing else in the process (no socket, no ZeroMQ), to tell the sink's share of the hub's round trip.
//   node bench/lockstep-folder.mjs [DIR] [N]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FolderSink } from '../dist/index.js';
import { crc32 } from '../dist/protocol/crc.js';

const parent = process.argv[2] ?? '/dev/shm';
const n = Number(process.argv[3] ?? 3000);
const dir = mkdtempSync(join(parent, 'fw-lockstep-'));
const data = randomBytes(123_000);
const sink = new FolderSink(dir);
await sink.start?.();
const stream = { name: 'cam', kind: 'visible', mode: 'reliable', epoch: 'e1', sender: 'bench' };
await sink.streamStart?.(stream);
const frame = (seq) => ({
  stream,
  seq,
  captureUs: 0,
  receivedUs: 0,
  contentType: 'image/jpeg',
  name: '',
  meta: {},
  data,
  crc: crc32(data),
});
for (let i = 0; i < 200; i++) await sink.frame(frame(i));
const t0 = process.hrtime.bigint();
for (let i = 200; i < 200 + n; i++) await sink.frame(frame(i));
const us = Number(process.hrtime.bigint() - t0) / 1e3 / n;
await sink.close?.();
rmSync(dir, { recursive: true, force: true });
console.log(`${parent}: ${us.toFixed(1)} us per frame, one at a time`);
