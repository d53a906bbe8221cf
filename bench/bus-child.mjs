// One end of a bus benchmark row (bench/bus.mjs): a receiver (folder sink or JetStream sink), a sender, or a
// consumer (JetStream source into a folder). Talks to the parent over IPC.
import {
  connect,
  createServer,
  FolderSink,
  JetStreamSink,
  JetStreamSource,
  keepFreedMemory,
  noIncrementalMarking,
  OnceFolderSink,
} from '../dist/index.js';
import { guard, makePool, readConfig, tell, whenParentSays } from './lib.mjs';

const cfg = readConfig();
guard(cfg.role, cfg.deadlineMs);
// Each end stands for a CLI command (serve, send, consume), and the CLI does this at start (src/memory.ts).
keepFreedMemory();
noIncrementalMarking();

/** --fsync, and --write-concurrency 1 for the rows whose sink is the bottleneck. */
function folderOptions() {
  return { fsync: !!cfg.fsync, ...(cfg.serial ? { writeConcurrency: 1 } : {}) };
}

if (cfg.role === 'receiver') {
  const sinks = [];
  if (cfg.out) sinks.push(await FolderSink.open(cfg.out, folderOptions()));
  if (cfg.bus) sinks.push(await JetStreamSink.open({ url: cfg.bus }));
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks });
  await tell({ type: 'ready', port: server.port });
  await whenParentSays('stop');
  await server.close();
  process.exit(0);
}

if (cfg.role === 'sender') {
  const pool = makePool(cfg.size, 8);
  const client = await connect(`tcp://127.0.0.1:${cfg.port}`);
  const cam = client.stream('bench');
  await tell({ type: 'ready' });
  await whenParentSays('go');
  const t0 = performance.now();
  for (let i = 0; i < cfg.frames; i++) await cam.send({ data: pool[i % pool.length] });
  const stats = await client.close();
  await tell({ type: 'done', acked: stats.framesAcked, ms: performance.now() - t0 });
  process.exit(0);
}

if (cfg.role === 'consumer') {
  const source = await JetStreamSource.open({ url: cfg.bus, group: cfg.group, from: 'first' });
  const folder = new OnceFolderSink(await FolderSink.open(cfg.out, folderOptions()));
  let n = 0;
  // The count goes to the parent at most once per turn of the event loop: a message per frame cost the
  // worker about 0.1 ms of CPU a frame (IPC serialisation and the pipe), which is the bench's, not the bus's.
  let told = false;
  const tellCount = () => {
    if (told) return;
    told = true;
    setImmediate(() => {
      told = false;
      void tell({ type: 'count', n });
    });
  };
  const ac = new AbortController();
  whenParentSays('stop').then(() => ac.abort());
  await tell({ type: 'ready' });
  await source.deliverTo([folder], {
    signal: ac.signal,
    onFrame: () => {
      n++;
      tellCount();
    },
  });
  await tell({ type: 'count', n });
  await source.close();
  await folder.close();
  process.exit(0);
}
