/**
 * Progress of a long transfer, as `framewire send` shows it: one redrawn line on a terminal, plain periodic
 * lines in a log, and a summary line at the end.
 */
import { performance } from 'node:perf_hooks';

export interface ProgressOptions {
  /** What the whole transfer holds; without it (a loop, a live source) no bar, percentage or ETA. */
  total?: { frames: number; bytes: number } | undefined;
  /** Where to write. Default: process.stderr. */
  stream?: NodeJS.WritableStream;
  /** Redraw one line in place (a terminal) or print lines. Default: the stream's `isTTY`. */
  tty?: boolean;
  /** Least time between two lines or redraws. Default: 200 ms on a terminal, 2000 ms otherwise. */
  intervalMs?: number;
  /** Printed before each line, e.g. the stream name. */
  label?: string;
  /** Rates are measured over this much recent time, not since the start. Default: 5000 ms. */
  windowMs?: number;
  /** Clock in milliseconds. Default: performance.now. */
  now?: () => number;
}

export interface ProgressSummary {
  frames: number;
  bytes: number;
  /** From the Progress's construction to done(). */
  seconds: number;
  /** Average over the whole transfer, MB = 1e6 bytes. */
  mbPerSec: number;
  fps: number;
}

interface Sample {
  t: number;
  frames: number;
  bytes: number;
}

const BAR_WIDTH = 20;
const CLEAR_LINE = '\r\x1b[2K';

/**
 * Reports the progress of a transfer. Call {@link tick} for each acknowledged frame, then {@link done} (or
 * {@link stop} on failure). Output is throttled inside tick(); an unref'd timer redraws during a stall so
 * that the rate drops to 0 visibly, and never keeps the process alive.
 */
export class Progress {
  readonly #total: { frames: number; bytes: number } | undefined;
  readonly #stream: NodeJS.WritableStream;
  readonly #tty: boolean;
  readonly #intervalMs: number;
  readonly #prefix: string;
  readonly #windowMs: number;
  readonly #now: () => number;
  readonly #start: number;
  /** Baselines for the windowed rates: the oldest is at or before the window's start. */
  readonly #samples: Sample[] = [];
  #frames = 0;
  #bytes = 0;
  #lastDraw: number;
  #drawn = false;
  #timer: NodeJS.Timeout | undefined;
  #summary: ProgressSummary | undefined;
  #finished = false;

  constructor(opts: ProgressOptions = {}) {
    const stream = opts.stream ?? process.stderr;
    this.#stream = stream;
    this.#tty = opts.tty ?? (stream as { isTTY?: boolean }).isTTY === true;
    this.#intervalMs = opts.intervalMs ?? (this.#tty ? 200 : 2000);
    this.#windowMs = opts.windowMs ?? 5000;
    this.#prefix = opts.label ? opts.label : '';
    const total = opts.total;
    this.#total = total && (total.frames > 0 || total.bytes > 0) ? { ...total } : undefined;
    this.#now = opts.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#lastDraw = this.#start;
    this.#samples.push({ t: this.#start, frames: 0, bytes: 0 });
  }

  /** Counts `frames` more frames of `bytes` more bytes, and redraws when the interval has passed. */
  tick(frames: number, bytes: number): void {
    if (this.#finished) return;
    this.#frames += frames;
    this.#bytes += bytes;
    const now = this.#now();
    const last = this.#samples[this.#samples.length - 1]!;
    // One baseline per 1/50 of the window keeps the sample list short at any frame rate.
    if (now - last.t >= this.#windowMs / 50) {
      this.#samples.push({ t: now, frames: this.#frames, bytes: this.#bytes });
    }
    // A terminal shows the first tick at once; a log waits for the first interval.
    if ((this.#tty && !this.#drawn) || now - this.#lastDraw >= this.#intervalMs) this.#draw(now);
  }

  /** Ends the report: erases the bar, prints the summary line and returns the totals. */
  done(): ProgressSummary {
    const first = this.#summary === undefined;
    const summary = this.#finish();
    if (first) this.#stream.write(`${this.#label()}${formatSummary(summary)}\n`);
    return summary;
  }

  /** Ends the report without a summary (e.g. before an error is printed); erases the bar. */
  stop(): void {
    this.#finish();
  }

  #finish(): ProgressSummary {
    if (this.#summary === undefined) {
      this.#finished = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#tty && this.#drawn) this.#stream.write(CLEAR_LINE);
      const seconds = Math.max(0, (this.#now() - this.#start) / 1000);
      this.#summary = {
        frames: this.#frames,
        bytes: this.#bytes,
        seconds,
        mbPerSec: seconds > 0 ? this.#bytes / 1e6 / seconds : 0,
        fps: seconds > 0 ? this.#frames / seconds : 0,
      };
    }
    return this.#summary;
  }

  #label(): string {
    return this.#prefix === '' ? '' : `${this.#prefix}: `;
  }

  /** Bytes and frames per second over the window ending at `now`. */
  #rates(now: number): { bytesPerSec: number; fps: number } {
    const s = this.#samples;
    while (s.length > 1 && s[1]!.t <= now - this.#windowMs) s.shift();
    const base = s[0]!;
    const dt = (now - base.t) / 1000;
    if (dt <= 0) return { bytesPerSec: 0, fps: 0 };
    return { bytesPerSec: (this.#bytes - base.bytes) / dt, fps: (this.#frames - base.frames) / dt };
  }

  #draw(now: number): void {
    this.#lastDraw = now;
    this.#drawn = true;
    const { bytesPerSec, fps } = this.#rates(now);
    const rate = formatRate(bytesPerSec);
    const total = this.#total;
    let line: string;
    if (this.#tty) {
      const label = this.#prefix === '' ? '' : `${this.#prefix} `;
      if (total) {
        const p = this.#fraction(total);
        const filled = Math.floor(p * BAR_WIDTH);
        const bar = '#'.repeat(filled) + '-'.repeat(BAR_WIDTH - filled);
        const eta = formatDuration(this.#eta(total, bytesPerSec, fps), 'clock');
        line = `${label}[${bar}] ${percent(p)} ${this.#frames}/${total.frames} frames  ${rate}  ETA ${eta}`;
      } else {
        line = `${label}${this.#frames} frames  ${rate}  ${fps.toFixed(1)} fps`;
      }
      // A line wider than the terminal wraps, and \r would then redraw only its last part.
      const columns = (this.#stream as { columns?: number }).columns;
      if (columns !== undefined && columns > 1 && line.length >= columns) line = line.slice(0, columns - 1);
      this.#stream.write(CLEAR_LINE + line);
    } else {
      const sent = formatBytes(this.#bytes);
      if (total) {
        const p = this.#fraction(total);
        const eta = formatDuration(this.#eta(total, bytesPerSec, fps), 'short');
        line = `${this.#frames}/${total.frames} frames (${percent(p)}), ${sent} (${rate}), ETA ${eta}`;
      } else {
        line = `${this.#frames} frames, ${sent} (${rate}, ${fps.toFixed(1)} fps)`;
      }
      this.#stream.write(`${this.#label()}${line}\n`);
    }
    this.#arm();
  }

  /** Redraws after a quiet interval so that a stalled transfer shows as stalled. */
  #arm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#finished) return;
      const now = this.#now();
      if (now - this.#lastDraw >= this.#intervalMs) this.#draw(now);
      else this.#arm();
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Done share in [0, 1], by frames when their total is known, else by bytes. */
  #fraction(total: { frames: number; bytes: number }): number {
    const p = total.frames > 0 ? this.#frames / total.frames : this.#bytes / total.bytes;
    return Math.min(1, Math.max(0, p));
  }

  /** Seconds left at the current rate, by bytes when their total is known; NaN when unknown. */
  #eta(total: { frames: number; bytes: number }, bytesPerSec: number, fps: number): number {
    if (total.bytes > 0 && bytesPerSec > 0) return Math.max(0, total.bytes - this.#bytes) / bytesPerSec;
    if (total.frames > 0 && fps > 0) return Math.max(0, total.frames - this.#frames) / fps;
    return Number.NaN;
  }
}

/** `45%`, rounded down so that 100% means all of it. */
function percent(p: number): string {
  return `${Math.floor(p * 100)}%`;
}

/** A rate in MB/s (MB = 1e6 bytes), with one decimal, two below 1 MB/s. */
function formatRate(bytesPerSec: number): string {
  const mb = bytesPerSec / 1e6;
  return `${mb.toFixed(mb > 0 && mb < 1 ? 2 : 1)} MB/s`;
}

/** `sent 1000 frames, 123.0 MB in 2.21 s (55.6 MB/s, 452 frames/s)` */
export function formatSummary(s: ProgressSummary): string {
  return (
    `sent ${s.frames} frames, ${formatBytes(s.bytes)} in ${s.seconds.toFixed(2)} s ` +
    `(${formatRate(s.mbPerSec * 1e6)}, ${Math.round(s.fps)} frames/s)`
  );
}

/** Decimal units, one decimal: `512 B`, `1.5 kB`, `55.3 MB`, `1.2 GB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '? B';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'] as const;
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(1)} ${units[u]}`;
}

/**
 * A duration in seconds. `clock`: `0:12`, `12:05`, `1:02:03`; `short`: `12s`, `2m05s`, `1h02m`.
 * An unknown (NaN or infinite) duration is `--:--` or `?`.
 */
export function formatDuration(seconds: number, style: 'clock' | 'short' = 'clock'): string {
  if (!Number.isFinite(seconds) || seconds < 0) return style === 'clock' ? '--:--' : '?';
  const total = Math.round(seconds);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  if (style === 'clock') return h > 0 ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  if (h > 0) return `${h}h${pad(m)}m`;
  if (m > 0) return `${m}m${pad(s)}s`;
  return `${s}s`;
}
