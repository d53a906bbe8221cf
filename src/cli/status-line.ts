/**
 * The live status line of `framewire send --stats`: once a second, the frame rate, throughput, ack latency
 * and drops. A terminal gets one line redrawn in place; a log gets one plain line per interval.
 */
import { performance } from 'node:perf_hooks';
import { formatBytes } from './progress.js';

/** Counters read at each tick; frames and bytes are totals since the start (acknowledged ones). */
export interface StatusSample {
  frames: number;
  bytes: number;
  /** Median time from sending a frame to its acknowledgement (ms), 0 before the first. */
  ackP50Ms: number;
  /** Frames dropped so far (live: replaced by newer ones, at the sender or at the source). */
  dropped: number;
  /** This sender's clock minus the receiver's, and its error bound (ms), once measured. */
  clockOffsetMs?: number | undefined;
  clockErrorMs?: number | undefined;
}

export interface StatusLineOptions {
  stream: NodeJS.WritableStream;
  sample: () => StatusSample;
  /** Printed first, e.g. the stream name. */
  label?: string;
  /** Redraw one line (a terminal) or print lines. Default: the stream's isTTY. */
  tty?: boolean;
  /** Default 1000 ms. */
  intervalMs?: number;
  now?: () => number;
}

const CLEAR_LINE = '\r\x1b[2K';

/** `test: 29.9 fps  1.23 MB/s  ack p50 3.2 ms  dropped 0  clock +3000.1±0.2 ms  (1234 frames, 5.6 MB)` */
export function formatStatus(label: string, s: StatusSample, fps: number, bytesPerSec: number): string {
  const mb = bytesPerSec / 1e6;
  const prefix = label === '' ? '' : `${label}: `;
  return (
    `${prefix}${fps.toFixed(1)} fps  ${mb.toFixed(mb < 10 ? 2 : 1)} MB/s  ack p50 ${s.ackP50Ms.toFixed(1)} ms  ` +
    `dropped ${s.dropped}  ${formatClock(s)}(${s.frames} frames, ${formatBytes(s.bytes)})`
  );
}

/** `clock +3000.1±0.2 ms  ` (the sender's clock minus the receiver's), or '' before it is measured. */
export function formatClock(s: Pick<StatusSample, 'clockOffsetMs' | 'clockErrorMs'>): string {
  if (s.clockOffsetMs === undefined) return '';
  const sign = s.clockOffsetMs < 0 ? '-' : '+';
  const err = s.clockErrorMs === undefined ? '' : `±${s.clockErrorMs.toFixed(1)}`;
  return `clock ${sign}${Math.abs(s.clockOffsetMs).toFixed(1)}${err} ms  `;
}

export class StatusLine {
  readonly #o: Required<Omit<StatusLineOptions, 'label' | 'tty'>> & { label: string; tty: boolean };
  #timer: NodeJS.Timeout | undefined;
  #last: { t: number; frames: number; bytes: number } | undefined;
  #drawn = false;

  constructor(options: StatusLineOptions) {
    this.#o = {
      stream: options.stream,
      sample: options.sample,
      label: options.label ?? '',
      tty: options.tty ?? (options.stream as { isTTY?: boolean }).isTTY === true,
      intervalMs: options.intervalMs ?? 1000,
      now: options.now ?? (() => performance.now()),
    };
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const s = this.#o.sample();
    this.#last = { t: this.#o.now(), frames: s.frames, bytes: s.bytes };
    this.#timer = setInterval(() => this.tick(), this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Draws one status line from the counters now (the timer calls it). */
  tick(): void {
    const now = this.#o.now();
    const s = this.#o.sample();
    const last = this.#last ?? { t: now, frames: s.frames, bytes: s.bytes };
    const dt = (now - last.t) / 1000;
    const fps = dt > 0 ? (s.frames - last.frames) / dt : 0;
    const bps = dt > 0 ? (s.bytes - last.bytes) / dt : 0;
    this.#last = { t: now, frames: s.frames, bytes: s.bytes };
    let text = formatStatus(this.#o.label, s, fps, bps);
    if (this.#o.tty) {
      const columns = (this.#o.stream as { columns?: number }).columns;
      if (columns !== undefined && columns > 1 && text.length >= columns) text = text.slice(0, columns - 1);
      this.#o.stream.write(CLEAR_LINE + text);
      this.#drawn = true;
    } else {
      this.#o.stream.write(`${text}\n`);
    }
  }

  /** Stops the timer and erases the line on a terminal. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#o.tty && this.#drawn) this.#o.stream.write(CLEAR_LINE);
    this.#drawn = false;
  }
}
