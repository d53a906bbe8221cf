// The senders of bench/load.mjs: N reliable clients in one process, each a camera producing `fps` frames of
// `size` bytes per second for `seconds`, paced on an absolute schedule; a frame produced while send() still
// waits for window space (backpressure) is sent late, never skipped: reliable frames are never dropped.
import { randomBytes } from 'node:crypto';
import { guard, readConfig, tell } from './lib.mjs';

const cfg = readConfig();
guard('load senders', cfg.deadlineMs);
const fw = await import('../dist/index.js');
const payloads = Array.from({ length: 8 }, () => randomBytes(cfg.size));
const url = `tcp://127.0.0.1:${cfg.port}`;
const clients = await Promise.all(
  Array.from({ length: cfg.senders }, () => fw.connect(url, { retryForMs: 20_000 })),
);
let sent = 0;
const waits = [];
const start = performance.now();
const endAt = start + cfg.seconds * 1000;
await Promise.all(
  clients.map(async (c, i) => {
    const st = c.stream(`cam${i}`, { kind: 'visible', mode: 'reliable' });
    // Stagger the cameras over one frame interval, as real ones are.
    const period = 1000 / cfg.fps;
    let due = start + (period * i) / cfg.senders;
    for (let n = 0; due < endAt; n++) {
      const delay = due - performance.now();
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const t = performance.now();
      await st.send({
        data: payloads[n % payloads.length],
        captureUs: Math.round((performance.timeOrigin + t) * 1000),
      });
      waits.push(performance.now() - t);
      sent++;
      due += period;
    }
  }),
);
const produced = performance.now() - start;
const stats = await Promise.all(clients.map((c) => c.close()));
waits.sort((a, b) => a - b);
await tell({
  type: 'done',
  sent,
  acked: stats.reduce((n, s) => n + s.framesAcked, 0),
  offeredFps: sent / (produced / 1000),
  sendWaitP99Ms: waits[Math.floor(0.99 * waits.length)] ?? 0,
});
process.exit(0);
