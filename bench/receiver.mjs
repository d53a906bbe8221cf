// The receiving end of one benchmark row, in its own process. Started by bench/run.mjs.
//
//   baseline:  a plain net server parsing [4-byte big-endian length][payload]; every payload is copied once
//              into its own Buffer, which is what framewire's decoder does whenever a frame straddles socket
//              reads (always at 123 KB and 425 KB with Node's 64 KiB reads, often at 31 KB).
//   framewire: createServer() on tcp://127.0.0.1:0, counting 'frame' events, with no sink (null) or a
//              FolderSink writing to cfg.folder.
//
// Messages from the parent: 'start' and 'stop' bracket the measured window (answered with 'window'),
// 'finish' waits for the sender to go, closes everything and answers 'done'.
import net from 'node:net';
import { guard, mark, maxRss, readConfig, rssSampler, since, tell } from './lib.mjs';

const cfg = readConfig();
guard('receiver', cfg.deadlineMs);
const rss = rssSampler(50);

let frames = 0;
let bytes = 0;
let senderGone;
const gone = new Promise((resolve) => {
  senderGone = resolve;
});
const warnings = [];

function countFrame(length) {
  frames++;
  bytes += length;
}

async function startBaseline() {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const header = Buffer.alloc(4);
    let headerFill = 0;
    let payload;
    let filled = 0;
    socket.on('data', (chunk) => {
      let off = 0;
      while (off < chunk.length) {
        if (payload === undefined) {
          const n = Math.min(4 - headerFill, chunk.length - off);
          chunk.copy(header, headerFill, off, off + n);
          headerFill += n;
          off += n;
          if (headerFill < 4) break;
          headerFill = 0;
          payload = Buffer.allocUnsafe(header.readUInt32BE(0));
          filled = 0;
        }
        const n = Math.min(payload.length - filled, chunk.length - off);
        chunk.copy(payload, filled, off, off + n);
        filled += n;
        off += n;
        if (filled === payload.length) {
          countFrame(payload.length);
          payload = undefined;
        }
      }
    });
    socket.on('error', (err) => warnings.push(`socket: ${err.message}`));
    socket.on('close', () => senderGone());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function startFramewire() {
  const fw = await import('../dist/index.js');
  const sinks = [];
  if (cfg.sink === 'folder') {
    // BENCH_FOLDER_OPTIONS: FolderSink options as JSON, for experiments (e.g. '{"writeConcurrency":4}').
    sinks.push(await fw.FolderSink.open(cfg.folder, JSON.parse(process.env.BENCH_FOLDER_OPTIONS || '{}')));
  }
  const server = await fw.createServer({
    listen: `${cfg.scheme ?? 'tcp'}://127.0.0.1:0`,
    sinks,
    verifyCrc: cfg.verifyCrc !== false,
  });
  server.on('frame', (f) => countFrame(f.data.length));
  server.on('warning', (err) => warnings.push(err.message));
  server.on('frame-error', (err) => warnings.push(err.message));
  server.on('disconnect', (_info, err) => {
    if (err) warnings.push(`disconnect: ${err.message}`);
    senderGone();
  });
  return { port: server.port, close: () => server.close() };
}

const endpoint = cfg.kind === 'baseline' ? await startBaseline() : await startFramewire();

let started;
let startFrames = 0;
let startBytes = 0;
process.on('message', (msg) => {
  if (msg?.type === 'start') {
    started = mark();
    startFrames = frames;
    startBytes = bytes;
  } else if (msg?.type === 'stop') {
    const w = since(started);
    void tell({ type: 'window', frames: frames - startFrames, bytes: bytes - startBytes, ...w });
  } else if (msg?.type === 'finish') {
    void finish();
  }
});

async function finish() {
  const timeout = new Promise((_, reject) =>
    setTimeout(() => reject(new Error('the sender did not disconnect within 15 s')), 15_000).unref(),
  );
  await Promise.race([gone, timeout]);
  await endpoint.close();
  await tell({
    type: 'done',
    totalFrames: frames,
    totalBytes: bytes,
    rssPeak: rss.peak(),
    maxRss: maxRss(),
    warnings: warnings.slice(0, 10),
  });
  rss.stop();
  process.exit(0);
}

globalThis.gc?.();
await tell({ type: 'ready', port: endpoint.port });
