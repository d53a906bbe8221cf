/**
 * The ffmpeg source: frames from anything ffmpeg reads (video files, V4L2 cameras, RTSP and HTTP URLs) and
 * from two built-in live patterns (`testsrc`, `thermal`). ffmpeg encodes JPEG and writes them as a
 * multipart stream (`-f mpjpeg`) on its stdout; MpjpegSplitter (mpjpeg.ts) cuts the parts by Content-Length.
 * This file owns the FfmpegSource facade (open, iterate, close); the parts live beside it: ffmpeg-input.ts
 * (what an input names), ffmpeg-options.ts (option checks), ffmpeg-binary.ts (finding and probing ffmpeg),
 * ffmpeg-args.ts (the command line), ffmpeg-process.ts (one running ffmpeg and its frames).
 */
import { stat } from 'node:fs/promises';
import { ErrorCode, FramewireError } from '../errors.js';
import type { Frame } from '../types.js';
import { ffmpegArgs } from './ffmpeg-args.js';
import {
  checkFfmpegVersion,
  FFMPEG_HINT,
  type FfmpegCapabilities,
  findFfmpeg,
  isExecutable,
  probeFfmpeg,
} from './ffmpeg-binary.js';
import type { FfmpegInputKind } from './ffmpeg-input.js';
import { checkOptions, type FfmpegSourceOptions } from './ffmpeg-options.js';
import { FfmpegRun, type FfmpegRunInfo } from './ffmpeg-process.js';

// The parts, importable from here as before the split.
export { ffmpegArgs, qualityToQscale } from './ffmpeg-args.js';
export {
  checkFfmpegVersion,
  describeFfmpeg,
  type FfmpegCapabilities,
  type FindFfmpegOptions,
  findFfmpeg,
  probeFfmpeg,
} from './ffmpeg-binary.js';
export {
  type FfmpegInputKind,
  ffmpegStreamName,
  isFfmpegInput,
  type ParsedFfmpegInput,
  parseFfmpegInput,
  VIDEO_EXTENSIONS,
} from './ffmpeg-input.js';
export type { FfmpegSourceOptions } from './ffmpeg-options.js';
export type { FfmpegRunInfo } from './ffmpeg-process.js';
export {
  FFMPEG_MIN_VERSION,
  FFMPEG_SUPPORTED,
  type FfmpegVersion,
  ffmpegTooOld,
  parseFfmpegVersion,
} from './ffmpeg-version.js';

const DEFAULT_LIVE_STALL_MS = 10_000;

/**
 * Frames from ffmpeg. Each iteration runs one ffmpeg process and yields its frames as {@link Frame}s:
 * - `data`: one JPEG; `contentType` 'image/jpeg'; no `name` (live frames have no file names);
 * - `width`/`height`: read from the JPEG's SOF marker;
 * - `captureUs`: the frame's pts (printed by ffmpeg on fd 3) plus the start time on this machine's wall
 *   clock (src/sources/ffmpeg-pts.ts): spaced exactly as the source stamped the frames. For a file read
 *   without `realtime` the start is when the first frame came out, and the rest follow the file's pts;
 * - `meta`: `{ source: kind }` (file, camera, rtsp, http, testsrc, thermal).
 *
 * Reading is pull-driven: at most two frames are read ahead of the consumer, then reading pauses and ffmpeg
 * blocks on its full pipe, which is the backpressure a reliable stream needs. With `dropWhenBehind` reading
 * never pauses and only the newest frame is kept. ffmpeg is killed when the iteration ends early (break,
 * return(), an error), on `signal`, on {@link close}, on a stall, and when the process exits.
 */
export class FfmpegSource implements AsyncIterable<Frame> {
  readonly input: string;
  readonly kind: FfmpegInputKind;
  /** True for inputs that produce frames in real time (camera, RTSP, live HTTP, testsrc, thermal). */
  readonly live: boolean;
  readonly #options: FfmpegSourceOptions;
  #opening: Promise<{ ffmpeg: string; caps: FfmpegCapabilities }> | undefined;
  readonly #runs = new Set<FfmpegRun>();
  #last: FfmpegRun | undefined;
  #closed = false;

  constructor(input: string, options: FfmpegSourceOptions = {}) {
    const parsed = checkOptions(input, options);
    this.input = input;
    this.kind = parsed.kind;
    this.live = parsed.live;
    this.#options = { ...options };
  }

  /**
   * Finds ffmpeg, checks that a file input exists and probes what ffmpeg can do; iteration calls it when it
   * was not called. Calling it again returns the same promise.
   * @throws FramewireError ERR_FFMPEG_NOT_FOUND, ERR_SOURCE_NOT_FOUND (a missing file or camera),
   *   ERR_SOURCE_READ (a path that is not a file).
   */
  open(): Promise<{ ffmpeg: string; caps: FfmpegCapabilities }> {
    this.#opening ??= this.#open();
    return this.#opening;
  }

  async #open(): Promise<{ ffmpeg: string; caps: FfmpegCapabilities }> {
    let ffmpeg = this.#options.ffmpegPath;
    if (ffmpeg === undefined) ffmpeg = findFfmpeg();
    else if (!isExecutable(ffmpeg)) {
      throw new FramewireError(
        ErrorCode.FFMPEG_NOT_FOUND,
        `ffmpeg source: ${ffmpeg} is not an executable file`,
        {
          hint: `check ffmpegPath, or leave it out to use the ffmpeg on the PATH; ${FFMPEG_HINT}`,
        },
      );
    }
    if (this.kind === 'file' || this.kind === 'camera') {
      try {
        const st = await stat(this.input);
        if (this.kind === 'file' && !st.isFile()) {
          throw new FramewireError(ErrorCode.SOURCE_READ, `ffmpeg source: ${this.input} is not a file`);
        }
      } catch (err) {
        if (err instanceof FramewireError) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') {
          throw new FramewireError(
            ErrorCode.SOURCE_NOT_FOUND,
            `ffmpeg source: ${this.kind === 'camera' ? 'no camera at' : 'video file'} ${this.input}${this.kind === 'camera' ? '' : ' does not exist'}`,
            {
              hint:
                this.kind === 'camera'
                  ? 'list cameras with: ls /dev/video*  (v4l2-ctl --list-devices names them)'
                  : `relative paths start at ${process.cwd()}`,
              cause: err,
            },
          );
        }
        throw new FramewireError(
          ErrorCode.SOURCE_READ,
          `ffmpeg source: cannot access ${this.input} (${code ?? String(err)})`,
          {
            cause: err,
          },
        );
      }
    }
    const caps = await probeFfmpeg(ffmpeg);
    checkFfmpegVersion(ffmpeg, caps, this.#options.onWarning);
    return { ffmpeg, caps };
  }

  /** The command line of the last (or current) run, without the executable; undefined before the first. */
  get args(): readonly string[] | undefined {
    return this.#last?.args;
  }

  /** Debug view of the last (or current) ffmpeg process: buffered frames, pid, exit. For tests and diagnostics. */
  get debug(): FfmpegRunInfo | undefined {
    return this.#last;
  }

  /** Stops every running ffmpeg of this source and ends their iterations; later iterations yield nothing. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#runs].map((r) => r.stop()));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Frame> {
    const options = this.#options;
    const signal = options.signal;
    if (this.#closed || signal?.aborted) return;
    const { ffmpeg, caps } = await this.open();
    if (this.#closed || signal?.aborted) return;
    const args = ffmpegArgs(this.input, options, caps);
    const run = new FfmpegRun(ffmpeg, args, this.input, this.kind, {
      dropWhenBehind: options.dropWhenBehind === true,
      stallTimeoutMs: options.stallTimeoutMs ?? (this.live ? DEFAULT_LIVE_STALL_MS : 0),
      maxFrameBytes: options.maxFrameBytes ?? 64 * 1024 * 1024,
      onStats: options.onStats,
    });
    this.#runs.add(run);
    this.#last = run;
    const onAbort = () => void run.stop();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      run.start();
      for (;;) {
        const frame = await run.next();
        if (frame === undefined) return;
        yield frame;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#runs.delete(run);
      await run.stop();
    }
  }
}

/**
 * Frames from ffmpeg: a video file, a camera (`/dev/videoN`), an RTSP or HTTP URL, or a test pattern
 * (`testsrc[:WxH@FPS]`, `thermal[:WxH@FPS]`). See {@link FfmpegSource}.
 * @throws FramewireError ERR_BAD_OPTION for an input that is none of these or a bad option.
 */
export function ffmpegSource(input: string, options?: FfmpegSourceOptions): FfmpegSource {
  return new FfmpegSource(input, options);
}
