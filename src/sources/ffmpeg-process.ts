/**
 * One ffmpeg process and the frames read from it: spawn, pull-driven reading with backpressure or
 * newest-wins dropping, stderr tail, stall detection, stats, and exit/kill handling.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { ErrorCode, FramewireError } from '../errors.js';
import { jpegSize } from '../jpeg.js';
import { wallUs } from '../time.js';
import type { Frame } from '../types.js';
import { notFound } from './ffmpeg-binary.js';
import type { FfmpegInputKind } from './ffmpeg-input.js';
import type { FfmpegSourceOptions } from './ffmpeg-options.js';
import { PtsClock } from './ffmpeg-pts.js';
import { MpjpegSplitter } from './mpjpeg.js';

/** Debug view of the current ffmpeg process of a source; see {@link FfmpegSource.debug}. */
export interface FfmpegRunInfo {
  /** The ffmpeg process id, or undefined when it did not start. */
  readonly pid: number | undefined;
  readonly args: readonly string[];
  /** Frames read and not yet taken by the consumer. */
  readonly buffered: number;
  /** The most frames ever buffered at once. */
  readonly maxBuffered: number;
  /** Bytes held: buffered frames, unparsed input and the stdout stream's buffer. */
  readonly bufferedBytes: number;
  /** True while reading is paused because the consumer does not pull. */
  readonly paused: boolean;
  readonly frames: number;
  readonly dropped: number;
  /** Resolves when the process is gone (exited and its pipes closed). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Frames read ahead of the consumer before reading pauses (and ffmpeg blocks). */
const READ_AHEAD = 2;
/** Lines of ffmpeg's stderr kept for error messages. */
const STDERR_LINES = 12;
const KILL_GRACE_MS = 2000;

/** Live ffmpeg children, killed if the process exits without closing its sources. */
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) c.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
}

export interface RunOptions {
  dropWhenBehind: boolean;
  stallTimeoutMs: number;
  maxFrameBytes: number;
  onStats: FfmpegSourceOptions['onStats'];
}

/** One ffmpeg process and the frames read from it. */
export class FfmpegRun implements FfmpegRunInfo {
  readonly args: readonly string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #ffmpeg: string;
  readonly #input: string;
  readonly #kind: FfmpegInputKind;
  readonly #o: RunOptions;
  readonly #splitter: MpjpegSplitter;
  readonly #queue: Frame[] = [];
  #queueBytes = 0;
  #child: ChildProcess | undefined;
  #resolveExited!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
  #waiter: { resolve: (f: Frame | undefined) => void; reject: (e: unknown) => void } | undefined;
  /** Set when the run is over: undefined = still running. */
  #outcome: { error?: FramewireError } | undefined;
  #stopping = false;
  #paused = false;
  #maxBuffered = 0;
  #frames = 0;
  #dropped = 0;
  #lastChunkUs = 0;
  readonly #pts: PtsClock;
  /** performance.now() of the last frame, or of the last resume/start: the stall clock. */
  #lastProgress = 0;
  #statsFrames = 0;
  #statsAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  readonly #stderr: string[] = [];
  #stderrPartial = '';
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  #gone = false;

  constructor(ffmpeg: string, args: string[], input: string, kind: FfmpegInputKind, o: RunOptions) {
    this.#ffmpeg = ffmpeg;
    this.args = Object.freeze([...args]);
    this.#input = input;
    this.#kind = kind;
    this.#o = o;
    this.#pts = new PtsClock(kind !== 'file' || args.includes('-re'));
    this.#splitter = new MpjpegSplitter({ maxPartBytes: o.maxFrameBytes });
    this.exited = new Promise((resolve) => {
      this.#resolveExited = resolve;
    });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }
  get buffered(): number {
    return this.#queue.length;
  }
  get maxBuffered(): number {
    return this.#maxBuffered;
  }
  get bufferedBytes(): number {
    return this.#queueBytes + this.#splitter.pendingBytes + (this.#child?.stdout?.readableLength ?? 0);
  }
  get paused(): boolean {
    return this.#paused;
  }
  get frames(): number {
    return this.#frames;
  }
  get dropped(): number {
    return this.#dropped;
  }

  start(): void {
    let child: ChildProcess;
    try {
      child = spawn(this.#ffmpeg, this.args as string[], {
        stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (err) {
      this.#finish({ error: notFound(this.#ffmpeg, err) });
      this.#resolveExited({ code: null, signal: null });
      return;
    }
    this.#child = child;
    track(child);
    this.#lastProgress = performance.now();
    this.#statsAt = this.#lastProgress;
    const stdout = child.stdout!;
    const stderr = child.stderr!;
    stdout.on('data', (chunk: Buffer) => {
      if (this.#outcome !== undefined || this.#stopping) return;
      this.#lastChunkUs = wallUs();
      this.#splitter.write(chunk);
      this.#pump();
    });
    stdout.on('end', () => {
      if (this.#outcome !== undefined || this.#stopping) return;
      try {
        // A last part without Content-Length, if any; a truncated part with one is dropped.
        for (const part of this.#splitter.end()) this.#enqueue(part, true);
      } catch (err) {
        this.#fail(err as FramewireError);
      }
    });
    stdout.on('error', () => {
      // Destroyed by stop(), or a broken pipe: the exit tells what happened.
    });
    const ptsPipe = child.stdio[3] as NodeJS.ReadableStream | undefined;
    ptsPipe?.setEncoding('utf8');
    ptsPipe?.on('data', (text: string) => this.#pts.write(text));
    ptsPipe?.on('error', () => {});
    stderr.setEncoding('utf8');
    stderr.on('data', (text: string) => this.#onStderr(text));
    stderr.on('error', () => {});
    child.on('error', (err) => {
      // Spawn failures (ENOENT, EACCES) come here; 'close' may not follow.
      this.#fail(notFound(this.#ffmpeg, err));
      this.#onGone(null, null);
    });
    child.on('exit', (code, sig) => {
      this.#exit = { code, signal: sig };
    });
    child.on('close', (code, sig) => this.#onGone(code, sig));
    const tickMs =
      this.#o.stallTimeoutMs > 0 ? Math.min(1000, Math.max(50, this.#o.stallTimeoutMs / 4)) : 1000;
    if (this.#o.stallTimeoutMs > 0 || this.#o.onStats) {
      this.#timer = setInterval(() => this.#tick(), tickMs);
      this.#timer.unref();
    }
  }

  /** The next frame, or undefined when ffmpeg ended normally or was stopped. */
  next(): Promise<Frame | undefined> {
    const frame = this.#queue.shift();
    if (frame !== undefined) {
      this.#queueBytes -= frame.data.length;
      this.#pump();
      return Promise.resolve(frame);
    }
    if (this.#outcome !== undefined) {
      return this.#outcome.error ? Promise.reject(this.#outcome.error) : Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      this.#pump();
    });
  }

  /** Kills ffmpeg (SIGTERM, SIGKILL after 2 s) and ends the run without error; resolves once it is gone. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!this.#stopping) {
      this.#stopping = true;
      this.#finish({});
      if (child && this.#exit === undefined && child.exitCode === null && child.signalCode === null) {
        // Closing the pipe first: ffmpeg blocked writing to a full pipe then fails with EPIPE at once.
        child.stdout?.destroy();
        this.#kill(child);
      } else {
        child?.stdout?.destroy();
      }
    }
    await this.exited;
  }

  /** SIGTERM now, SIGKILL after the grace time unless the process is gone by then. */
  #kill(child: ChildProcess): void {
    child.kill('SIGTERM');
    if (this.#killTimer === undefined) {
      this.#killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      this.#killTimer.unref();
    }
  }

  /** Parses buffered input into frames while the consumer has room; pauses or resumes stdout. */
  #pump(): void {
    if (this.#outcome !== undefined || this.#stopping) return;
    try {
      if (this.#o.dropWhenBehind) {
        for (let p = this.#splitter.next(); p !== undefined; p = this.#splitter.next())
          this.#enqueue(p, false);
      } else {
        while (this.#queue.length < READ_AHEAD) {
          const p = this.#splitter.next();
          if (p === undefined) break;
          this.#enqueue(p, false);
        }
      }
    } catch (err) {
      this.#fail(err as FramewireError);
      return;
    }
    const stdout = this.#child?.stdout;
    if (!stdout) return;
    // Pause only while READ_AHEAD frames wait; then the splitter may still hold whole parts, and the rest
    // waits in the pipe, where ffmpeg blocks on it.
    const full = !this.#o.dropWhenBehind && this.#queue.length >= READ_AHEAD;
    if (full && !this.#paused) {
      this.#paused = true;
      stdout.pause();
    } else if (!full && this.#paused) {
      this.#paused = false;
      this.#lastProgress = performance.now();
      stdout.resume();
    }
  }

  #enqueue(data: Buffer, atEnd: boolean): void {
    this.#frames++;
    this.#lastProgress = performance.now();
    const size = jpegSize(data);
    const frame: Frame = {
      data,
      contentType: 'image/jpeg',
      captureUs: this.#pts.next(this.#lastChunkUs || wallUs()),
      meta: { source: this.#kind },
    };
    if (size) {
      frame.width = size.width;
      frame.height = size.height;
    }
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve(frame);
      return;
    }
    if (this.#o.dropWhenBehind && !atEnd) {
      // Newest wins: what the consumer did not take yet is replaced.
      while (this.#queue.length > 0) {
        const old = this.#queue.shift()!;
        this.#queueBytes -= old.data.length;
        this.#dropped++;
      }
    }
    this.#queue.push(frame);
    this.#queueBytes += data.length;
    if (this.#queue.length > this.#maxBuffered) this.#maxBuffered = this.#queue.length;
  }

  #onStderr(text: string): void {
    const lines = (this.#stderrPartial + text).split(/\r?\n|\r/);
    this.#stderrPartial = (lines.pop() ?? '').slice(-2000);
    for (const l of lines) {
      const t = l.trim();
      if (t === '') continue;
      this.#stderr.push(t.length > 500 ? `${t.slice(0, 500)}...` : t);
      if (this.#stderr.length > STDERR_LINES) this.#stderr.shift();
    }
  }

  #stderrTail(): string {
    const lines = [...this.#stderr];
    if (this.#stderrPartial.trim() !== '') lines.push(this.#stderrPartial.trim());
    return lines.slice(-5).join(' | ');
  }

  #tick(): void {
    const now = performance.now();
    if (this.#o.onStats && now - this.#statsAt >= 950) this.#reportStats(now);
    if (this.#outcome !== undefined || this.#stopping || this.#o.stallTimeoutMs <= 0) return;
    // Time the consumer keeps us paused is not a stall of ffmpeg.
    if (this.#paused) return;
    if (now - this.#lastProgress > this.#o.stallTimeoutMs) {
      const tail = this.#stderrTail();
      this.#fail(
        new FramewireError(
          ErrorCode.SOURCE_STALLED,
          `ffmpeg source: no frame from ${this.#input} for ${Math.round(this.#o.stallTimeoutMs / 1000)} s${tail ? `: ${tail}` : ''}`,
          { hint: stallHint(this.#kind) },
        ),
      );
    }
  }

  #reportStats(now: number): void {
    const dt = (now - this.#statsAt) / 1000;
    const fps = dt > 0 ? (this.#frames - this.#statsFrames) / dt : 0;
    this.#statsAt = now;
    this.#statsFrames = this.#frames;
    try {
      this.#o.onStats?.({ frames: this.#frames, dropped: this.#dropped, fps });
    } catch {
      // A throwing callback must not break the source.
    }
  }

  /** Ends the run with an error: kills ffmpeg, rejects a waiting next(). */
  #fail(error: FramewireError): void {
    if (this.#outcome !== undefined) return;
    this.#finish({ error });
    const child = this.#child;
    if (child && this.#exit === undefined) {
      child.stdout?.destroy();
      this.#kill(child);
    }
  }

  #finish(outcome: { error?: FramewireError }): void {
    if (this.#outcome !== undefined) return;
    this.#outcome = outcome;
    if (outcome.error) {
      // Frames read before a failure are not delivered after it: the error is what the consumer must see.
      this.#queue.length = 0;
      this.#queueBytes = 0;
    }
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (waiter) {
      if (outcome.error) waiter.reject(outcome.error);
      else waiter.resolve(undefined);
    }
  }

  /** The process exited and its pipes closed. */
  #onGone(code: number | null, sig: NodeJS.Signals | null): void {
    if (this.#gone) return;
    this.#gone = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
    this.#killTimer = undefined;
    if (this.#child) liveChildren.delete(this.#child);
    if (this.#o.onStats && this.#child) this.#reportStats(performance.now());
    if (this.#outcome === undefined && !this.#stopping) {
      if (code === 0) {
        this.#outcome = {};
        const waiter = this.#waiter;
        this.#waiter = undefined;
        // Frames still queued are delivered first; next() ends the run after them.
        waiter?.resolve(undefined);
      } else {
        const tail = this.#stderrTail();
        const how = code === null ? `was killed by ${sig ?? 'a signal'}` : `exited with code ${code}`;
        const error = new FramewireError(
          ErrorCode.SOURCE_READ,
          `ffmpeg source: ffmpeg ${how} reading ${this.#input}${tail ? `: ${tail}` : ' (no message)'}`,
          { hint: readHint(this.#kind) },
        );
        // Frames read before the failure were whole; deliver them, then the error.
        this.#outcome = { error };
        const waiter = this.#waiter;
        this.#waiter = undefined;
        waiter?.reject(error);
      }
    }
    this.#resolveExited(this.#exit ?? { code, signal: sig });
  }
}

function readHint(kind: FfmpegInputKind): string {
  switch (kind) {
    case 'file':
      return 'check that the file is a video that ffmpeg can read (ffmpeg -i <file> shows what it finds)';
    case 'camera':
      return 'check that the camera exists and no other program uses it; ffmpeg -f v4l2 -list_formats all -i /dev/videoN lists its modes';
    case 'rtsp':
    case 'http':
      return 'check the URL, the credentials and that the server is reachable (ffplay <url> shows what ffmpeg gets)';
    default:
      return 'check that this ffmpeg has the testsrc2, geq, lutrgb and scale filters (ffmpeg -filters lists them)';
  }
}

function stallHint(kind: FfmpegInputKind): string {
  switch (kind) {
    case 'camera':
      return 'the camera stopped delivering frames; check its cable and that no other program took it';
    case 'rtsp':
    case 'http':
      return 'the stream stopped sending; check the camera or server, or raise stallTimeoutMs';
    default:
      return 'raise stallTimeoutMs (0 disables the check) if the input is slow to start';
  }
}
