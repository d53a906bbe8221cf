// The sending end of one benchmark row, in its own process. Started by bench/run.mjs.
//
//   baseline:  a plain net socket writing [4-byte big-endian length][payload], header and payload written
//              separately under cork(), waiting for 'drain' whenever write() returns false. No acks.
//   framewire: connect() + stream('bench').send() in a loop (send() waits while the window is full), then
//              client.close(), which waits until every frame is acknowledged.
//
// Messages from the parent: 'go' starts sending, 'start' and 'stop' bracket the measured window, and 'stop'
// also ends the loop; the sender then closes and answers 'done'. With cfg.maxFrames it stops by itself
// after that many frames past 'start' and says 'limit'.
import { once } from 'node:events';
import net from 'node:net';
import {
  guard,
  makePool,
  mark,
  maxRss,
  readConfig,
  rssSampler,
  since,
  tell,
  whenParentSays,
} from './lib.mjs';

const cfg = readConfig();
guard('sender', cfg.deadlineMs);

// Distinct random payloads, made before anything is timed, reused round-robin.
const pool = makePool(cfg.size, cfg.poolSize);
const maxFrames = cfg.maxFrames ?? Number.POSITIVE_INFINITY;
const rss = rssSampler(50);

let stopping = false;
let sent = 0;
let started;
let startSent = 0;
let window;
let statsAtStop;
let client;
let acks = 0;
let startAcks = 0;

const stopped = whenParentSays('stop').then(() => {
  window = { frames: sent - startSent, acks: acks - startAcks, ...since(started) };
  // Ack latency over the last 10,000 acknowledged frames, all (or nearly all) from the measured window.
  statsAtStop = client?.stats();
  stopping = true;
});
void whenParentSays('start').then(() => {
  started = mark();
  startSent = sent;
  startAcks = acks;
});

async function runBaseline() {
  const socket = net.connect({ host: '127.0.0.1', port: cfg.port });
  await once(socket, 'connect');
  socket.setNoDelay(true);
  await tell({ type: 'ready' });
  await whenParentSays('go');
  let i = 0;
  while (!stopping && !(started && sent - startSent >= maxFrames)) {
    const payload = pool[i++ % pool.length];
    const header = Buffer.allocUnsafe(4);
    header.writeUInt32BE(payload.length, 0);
    socket.cork();
    socket.write(header);
    const ok = socket.write(payload);
    socket.uncork();
    sent++;
    if (!ok) await once(socket, 'drain');
  }
  if (!stopping) {
    await tell({ type: 'limit' });
    await stopped;
  }
  socket.end();
  if (!socket.destroyed) await once(socket, 'close');
  return {};
}

async function runFramewire() {
  const { connect } = await import('../dist/index.js');
  const options = { retryForMs: 5000 };
  if (cfg.windowFrames) options.windowFrames = cfg.windowFrames;
  if (cfg.windowBytes) options.windowBytes = cfg.windowBytes;
  client = await connect(`${cfg.scheme ?? 'tcp'}://127.0.0.1:${cfg.port}`, options);
  // How often the receiver acknowledges (acks are cumulative and coalesced).
  client.on('ack', () => {
    acks++;
  });
  const stream = client.stream('bench');
  await tell({ type: 'ready' });
  await whenParentSays('go');
  let i = 0;
  while (!stopping && !(started && sent - startSent >= maxFrames)) {
    await stream.send({ data: pool[i++ % pool.length] });
    sent++;
  }
  if (!stopping) {
    await tell({ type: 'limit' });
    await stopped;
  }
  const final = await client.close();
  return {
    ackLatencyMs: statsAtStop.ackLatencyMs,
    framesAcked: final.framesAcked,
    retransmits: final.retransmits,
    reconnects: final.reconnects,
  };
}

globalThis.gc?.();
const extra = cfg.kind === 'baseline' ? await runBaseline() : await runFramewire();
await tell({
  type: 'done',
  sent,
  window,
  rssPeak: rss.peak(),
  maxRss: maxRss(),
  ...extra,
});
rss.stop();
process.exit(0);
