// Helpers shared by the benchmark's processes (bench/receiver.mjs, bench/sender.mjs, bench/bus.mjs, ...).
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';

/** The row configuration the parent passes as the first argument, as JSON. */
export function readConfig() {
  const raw = process.argv[2];
  if (!raw) throw new Error('missing configuration argument (run bench/run.mjs, not this file)');
  return JSON.parse(raw);
}

/** Sends one message to the parent; resolves once it is handed to the IPC channel. */
export function tell(msg) {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, () => resolve());
  });
}

/**
 * Makes a child impossible to orphan: it exits when the parent goes away, when it throws, and when its own
 * deadline passes (the parent kills it too; this is the second line).
 */
export function guard(role, deadlineMs) {
  const die = async (code, message) => {
    await tell({ type: 'error', role, message });
    process.exit(code);
  };
  process.on('disconnect', () => process.exit(2));
  process.on('uncaughtException', (err) => void die(1, err?.stack ?? String(err)));
  process.on('unhandledRejection', (err) => void die(1, err?.stack ?? String(err)));
  setTimeout(() => void die(3, `${role} passed its deadline of ${deadlineMs} ms`), deadlineMs).unref();
}

/** Samples the resident set size every `everyMs` and keeps the largest value. */
export function rssSampler(everyMs = 50) {
  let peak = process.memoryUsage.rss();
  const sample = () => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  };
  const timer = setInterval(sample, everyMs);
  timer.unref();
  return {
    /** Peak sampled RSS in bytes (takes one more sample first). */
    peak() {
      sample();
      return peak;
    },
    stop() {
      clearInterval(timer);
    },
  };
}

/** Kernel-tracked high-water mark of the RSS, in bytes (catches spikes between samples). */
export function maxRss() {
  return process.resourceUsage().maxRSS * 1024;
}

/** A point in time and in CPU time, to take differences of. */
export function mark() {
  return { t: performance.now(), cpu: process.cpuUsage() };
}

/** Wall seconds and CPU milliseconds (user, system) between two marks. */
export function since(a, b = mark()) {
  return {
    seconds: (b.t - a.t) / 1000,
    cpuUserMs: (b.cpu.user - a.cpu.user) / 1000,
    cpuSystemMs: (b.cpu.system - a.cpu.system) / 1000,
  };
}

/** `count` distinct random buffers of exactly `size` bytes, made before anything is timed. */
export function makePool(size, count) {
  return Array.from({ length: count }, () => randomBytes(size));
}

/** Resolves on the first parent message of `type`. */
export function whenParentSays(type) {
  return new Promise((resolve) => {
    const on = (msg) => {
      if (msg?.type !== type) return;
      process.off('message', on);
      resolve(msg);
    };
    process.on('message', on);
  });
}

/** A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
