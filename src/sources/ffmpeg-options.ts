/**
 * The options of the ffmpeg source and their checks: what a caller may pass, and the ERR_BAD_OPTION
 * it gets for an input or an option that is out of range.
 */
import { ErrorCode, FramewireError } from '../errors.js';
import { type ParsedFfmpegInput, parseFfmpegInput, parseWxH } from './ffmpeg-input.js';

export interface FfmpegSourceOptions {
  /**
   * Output size `WxH`, e.g. "1280x720": the picture is scaled to exactly that (the aspect ratio is not
   * kept, nothing is cropped or padded). A camera is asked for that mode (`-video_size`) instead.
   * Default: the input's size; for `testsrc`/`thermal` the size in the input (`testsrc:WxH`), else 640x480.
   */
  size?: string;
  /**
   * Output frame rate: ffmpeg's fps filter for files and URLs, `-framerate` for a camera, the generator's
   * rate for `testsrc`/`thermal` (default 30 there). Default elsewhere: every frame of the input.
   */
  fps?: number;
  /** JPEG quality 1..100 (mapped to ffmpeg's -q:v 31..2). Default 80. */
  quality?: number;
  /**
   * Read a file (or an HTTP file URL) at its native rate (`-re`), so that pacing follows the file's
   * timestamps, as a camera would deliver it. Cameras and RTSP are live anyway; `testsrc` and `thermal` are
   * realtime unless this is `false` (then they are generated as fast as the consumer takes them).
   */
  realtime?: boolean;
  /** Loop a video file forever (`-stream_loop -1`), until aborted or closed. */
  loop?: boolean;
  /** Stops ffmpeg (SIGTERM, SIGKILL after 2 s) and ends the iteration without error. */
  signal?: AbortSignal;
  /** The ffmpeg executable; default: {@link findFfmpeg} (the PATH's, else the optional npm package's). */
  ffmpegPath?: string;
  /**
   * Called with a warning (ERR_FFMPEG_TOO_OLD) when the ffmpeg found is older than the oldest supported
   * version (4.4); the source still runs. Default: `process.emitWarning`, once per ffmpeg binary.
   */
  onWarning?: (warning: FramewireError) => void;
  /**
   * Called about once a second while ffmpeg runs, and once at the end: `frames` read from ffmpeg so far,
   * `dropped` by the source (only with `dropWhenBehind`), `fps` read over the last interval.
   */
  onStats?: (s: { frames: number; dropped: number; fps: number }) => void;
  /**
   * Never make ffmpeg wait: when the consumer lags, keep only the newest frame read and count the older ones
   * as dropped. For a live camera that must not block; without it a consumer that does not pull pauses the
   * reading and ffmpeg blocks (the backpressure a reliable stream wants). Default false.
   */
  dropWhenBehind?: boolean;
  /**
   * Fail with ERR_SOURCE_STALLED (and kill ffmpeg) when no frame came for this long while the source was
   * waiting for one (time the consumer spends not pulling does not count). 0 disables it.
   * Default: 10000 for live inputs (camera, URL, testsrc, thermal), 0 for files.
   */
  stallTimeoutMs?: number;
  /** Largest JPEG accepted from ffmpeg (bytes). Default 64 MiB. */
  maxFrameBytes?: number;
}

function validSize(s: { width: number; height: number }): boolean {
  return s.width > 0 && s.height > 0 && s.width <= 16384 && s.height <= 16384;
}

export function parseSizeOption(size: string): { width: number; height: number } {
  const s = parseWxH(size);
  if (s === undefined || !validSize(s)) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: size must be WxH (e.g. 1280x720), got ${JSON.stringify(size)}`,
    );
  }
  return s;
}

export function checkOptions(input: string, options: FfmpegSourceOptions): ParsedFfmpegInput {
  const parsed = parseFfmpegInput(input);
  if (parsed === undefined) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: ${JSON.stringify(input)} is not a video file, camera, URL or test pattern`,
      {
        hint: 'give a video file (.mp4, .mkv, .avi ...), /dev/videoN, an rtsp:// or http:// URL, testsrc or thermal',
      },
    );
  }
  const { size, fps, quality, stallTimeoutMs, maxFrameBytes } = options;
  if (size !== undefined) parseSizeOption(size);
  if (parsed.size && !validSize(parsed.size)) {
    throw new FramewireError(ErrorCode.BAD_OPTION, `ffmpeg source: bad size in ${JSON.stringify(input)}`);
  }
  for (const [name, v] of [
    ['fps', fps],
    ['fps', parsed.fps],
  ] as const) {
    if (v !== undefined && !(Number.isFinite(v) && v > 0 && v <= 1000)) {
      throw new FramewireError(
        ErrorCode.BAD_OPTION,
        `ffmpeg source: ${name} must be a number in (0, 1000], got ${v}`,
      );
    }
  }
  if (quality !== undefined && !(Number.isInteger(quality) && quality >= 1 && quality <= 100)) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: quality must be an integer 1..100, got ${quality}`,
    );
  }
  if (stallTimeoutMs !== undefined && !(Number.isFinite(stallTimeoutMs) && stallTimeoutMs >= 0)) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: stallTimeoutMs must be >= 0, got ${stallTimeoutMs}`,
    );
  }
  if (maxFrameBytes !== undefined && !(Number.isFinite(maxFrameBytes) && maxFrameBytes > 0)) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: maxFrameBytes must be > 0, got ${maxFrameBytes}`,
    );
  }
  return parsed;
}
