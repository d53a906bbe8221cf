import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { formatBytes, formatDuration, Progress } from '../../src/cli/progress.js';

/** A writable that keeps what is written, as a terminal or a log file would get it. */
class Sink extends Writable {
  readonly chunks: string[] = [];
  constructor(
    readonly isTTY = false,
    readonly columns?: number,
  ) {
    super({ decodeStrings: false });
  }
  override _write(chunk: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(String(chunk));
    cb();
  }
  get text(): string {
    return this.chunks.join('');
  }
  /** What a terminal would show on its last line: the text after the last \r. */
  get screen(): string {
    const lines = this.text.split('\n');
    const last = lines[lines.length - 1]!;
    return last.slice(last.lastIndexOf('\r') + 1).replace('\x1b[2K', '');
  }
}

function clock(): { now: () => number; set: (t: number) => void } {
  let t = 0;
  return {
    now: () => t,
    set: (v) => {
      t = v;
    },
  };
}

describe('Progress on a terminal', () => {
  it('redraws one line with bar, percentage, rate and ETA, throttled', () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ total: { frames: 1000, bytes: 123e6 }, stream: out, label: 'cam0', now: c.now });
    // 10 frames of 123 kB every 100 ms: 12.3 MB/s, 100 fps.
    for (let i = 1; i <= 45; i++) {
      c.set(i * 100);
      p.tick(10, 1_230_000);
    }
    assert.ok(!out.text.includes('\n'), 'a terminal line is redrawn, never ended');
    const redraws = out.text.split('\r\x1b[2K').length - 1;
    // Drawn at 100 ms (the first tick), then every 200 ms up to 4500 ms.
    assert.equal(redraws, 23);
    // At 4500 ms: the 5 s window reaches back to the start, 55.35 MB / 4.5 s = 12.3 MB/s;
    // ETA (123 - 55.35) MB / 12.3 MB/s = 5.5 s.
    assert.equal(out.screen, 'cam0 [#########-----------] 45% 450/1000 frames  12.3 MB/s  ETA 0:06');
    c.set(4600);
    p.tick(10, 1_230_000); // throttled
    assert.match(out.screen, / 450\/1000 /);
    c.set(4700);
    p.tick(10, 1_230_000);
    assert.equal(out.screen, 'cam0 [#########-----------] 47% 470/1000 frames  12.3 MB/s  ETA 0:05');
  });

  it('shows the first tick at once', () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ total: { frames: 10, bytes: 1000 }, stream: out, now: c.now });
    c.set(10);
    p.tick(1, 100);
    assert.equal(out.screen, '[##------------------] 10% 1/10 frames  0.01 MB/s  ETA 0:00');
    p.stop();
  });

  it('without totals shows frames, rate and fps', () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ stream: out, label: 'cam0', now: c.now });
    for (let i = 1; i <= 30; i++) {
      c.set(i * (1000 / 30));
      p.tick(1, 1_843_333);
    }
    c.set(1000 + 200);
    p.tick(1, 1_843_333);
    assert.match(out.screen, /^cam0 31 frames {2}47\.6 MB\/s {2}25\.8 fps$/);
  });

  it('measures rates over the recent window, not since the start', () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ total: { frames: 10_000, bytes: 0 }, stream: out, now: c.now, windowMs: 5000 });
    let t = 0;
    for (let i = 0; i < 100; i++) {
      t += 100;
      c.set(t);
      p.tick(10, 1_000_000); // 10 MB/s, 100 fps for 10 s
    }
    for (let i = 0; i < 100; i++) {
      t += 100;
      c.set(t);
      p.tick(1, 100_000); // then 1 MB/s, 10 fps for 10 s
    }
    // Since the start it would be 5.5 MB/s.
    assert.match(out.screen, / 1\.0 MB\/s /);
    // ETA by frames (no byte total): 8900 left at 10 fps.
    assert.match(out.screen, /ETA 14:50$/);
  });

  it('cuts a line wider than the terminal', () => {
    const out = new Sink(true, 30);
    const p = new Progress({
      total: { frames: 10, bytes: 10 },
      stream: out,
      label: 'a-long-label',
      now: () => 0,
    });
    p.tick(1, 1);
    assert.equal(out.screen.length, 29);
  });

  it('done() erases the bar and prints the summary', () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ total: { frames: 1000, bytes: 123e6 }, stream: out, now: c.now });
    for (let i = 1; i <= 100; i++) {
      c.set(i * 22.1);
      p.tick(10, 1_230_000);
    }
    const s = p.done();
    assert.equal(s.frames, 1000);
    assert.equal(s.bytes, 123e6);
    assert.ok(Math.abs(s.seconds - 2.21) < 1e-9);
    assert.ok(Math.abs(s.mbPerSec - 123 / 2.21) < 1e-9);
    assert.ok(Math.abs(s.fps - 1000 / 2.21) < 1e-9);
    assert.ok(out.text.endsWith('\r\x1b[2Ksent 1000 frames, 123.0 MB in 2.21 s (55.7 MB/s, 452 frames/s)\n'));
    // Once only; later ticks draw nothing.
    const length = out.text.length;
    assert.deepEqual(p.done(), s);
    p.tick(1, 1);
    p.stop();
    assert.equal(out.text.length, length);
  });

  it('stop() erases the bar without a summary', () => {
    const out = new Sink(true);
    const p = new Progress({ total: { frames: 2, bytes: 2 }, stream: out, now: () => 0 });
    p.tick(1, 1);
    p.stop();
    assert.ok(out.text.endsWith('\r\x1b[2K'));
    assert.ok(!out.text.includes('sent'));
  });

  it('redraws during a stall, from an unref’d timer', async () => {
    const out = new Sink(true);
    const c = clock();
    const p = new Progress({ stream: out, now: c.now, intervalMs: 20 });
    c.set(1000);
    p.tick(10, 10_000_000);
    assert.match(out.screen, / 10\.0 MB\/s /);
    c.set(10_000);
    await new Promise((r) => setTimeout(r, 100));
    assert.match(out.screen, / 0\.0 MB\/s /);
    p.stop();
  });
});

describe('Progress in a log', () => {
  it('prints plain lines every interval', () => {
    const out = new Sink(false);
    const c = clock();
    const p = new Progress({ total: { frames: 1000, bytes: 123e6 }, stream: out, label: 'cam0', now: c.now });
    for (let i = 1; i <= 45; i++) {
      c.set(i * 100);
      p.tick(10, 1_230_000);
    }
    assert.ok(!out.text.includes('\r'));
    assert.deepEqual(out.text.split('\n'), [
      'cam0: 200/1000 frames (20%), 24.6 MB (12.3 MB/s), ETA 8s',
      'cam0: 400/1000 frames (40%), 49.2 MB (12.3 MB/s), ETA 6s',
      '',
    ]);
    c.set(4510);
    const s = p.done();
    assert.equal(s.frames, 450);
    assert.ok(out.text.endsWith('\ncam0: sent 450 frames, 55.4 MB in 4.51 s (12.3 MB/s, 100 frames/s)\n'));
  });

  it('without totals prints frames, bytes, rate and fps', () => {
    const out = new Sink(false);
    const c = clock();
    const p = new Progress({ stream: out, now: c.now, intervalMs: 1000 });
    for (let i = 1; i <= 10; i++) {
      c.set(i * 100);
      p.tick(3, 300_000);
    }
    assert.equal(out.text, '30 frames, 3.0 MB (3.0 MB/s, 30.0 fps)\n');
    p.stop();
  });

  it('defaults: stderr-like streams that are not terminals get lines', () => {
    const out = new Sink(false);
    const p = new Progress({ stream: out });
    p.tick(1, 1);
    assert.equal(out.text, '');
    const s = p.done();
    assert.equal(s.frames, 1);
    assert.match(out.text, /^sent 1 frames, 1 B in \d+\.\d\d s /);
  });
});

describe('formatting helpers', () => {
  it('formatBytes uses decimal units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(999), '999 B');
    assert.equal(formatBytes(1500), '1.5 kB');
    assert.equal(formatBytes(55_300_000), '55.3 MB');
    assert.equal(formatBytes(123e6), '123.0 MB');
    assert.equal(formatBytes(1.234e9), '1.2 GB');
  });

  it('formatDuration as a clock or short', () => {
    assert.equal(formatDuration(12), '0:12');
    assert.equal(formatDuration(725), '12:05');
    assert.equal(formatDuration(3723), '1:02:03');
    assert.equal(formatDuration(Number.NaN), '--:--');
    assert.equal(formatDuration(12, 'short'), '12s');
    assert.equal(formatDuration(125, 'short'), '2m05s');
    assert.equal(formatDuration(3723, 'short'), '1h02m');
    assert.equal(formatDuration(Number.POSITIVE_INFINITY, 'short'), '?');
  });
});
