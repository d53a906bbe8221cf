/**
 * The ffmpeg source: frames from anything ffmpeg reads (video files, V4L2 cameras, RTSP and HTTP URLs) and
 * from two built-in live patterns (`testsrc`, `thermal`). ffmpeg encodes JPEG and writes them as a
 * multipart stream (`-f mpjpeg`) on its stdout; {@link MpjpegSplitter} cuts the parts by Content-Length.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, delimiter, extname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ErrorCode, FramewireError } from '../errors.js';
import { jpegSize } from '../jpeg.js';
import { wallUs } from '../time.js';
import type { Frame } from '../types.js';
import { PTS_FILTERS, PtsClock } from './ffmpeg-pts.js';
import { MpjpegSplitter } from './mpjpeg.js';

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
  /** The ffmpeg executable; default: {@link findFfmpeg}. */
  ffmpegPath?: string;
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

/** What an input string names. */
export type FfmpegInputKind = 'file' | 'camera' | 'rtsp' | 'http' | 'testsrc' | 'thermal';

export interface ParsedFfmpegInput {
  kind: FfmpegInputKind;
  /** The input as ffmpeg gets it (the path or URL; the pattern name for testsrc/thermal). */
  input: string;
  /** Size and rate written in a `testsrc:WxH@FPS` / `thermal:WxH@FPS` input. */
  size?: { width: number; height: number };
  fps?: number;
  /** True for sources that produce frames in real time whatever the reader does. */
  live: boolean;
}

/** What an ffmpeg binary can do, as {@link probeFfmpeg} finds out. */
export interface FfmpegCapabilities {
  /** First line of `ffmpeg -version`, e.g. "ffmpeg version 5.1.9-0+deb12u1 ...". */
  version: string;
  /** Names of the filters it has. */
  filters: ReadonlySet<string>;
  /** It knows `-fps_mode` (5.1+); else `-vsync` is used. */
  fpsMode: boolean;
  /** A TrueType font for the timestamp overlay (drawtext), when one was found and drawtext exists. */
  fontFile?: string | undefined;
}

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

/** Extensions taken as video files (lower case). Anything else ffmpeg reads can be given as a URL. */
export const VIDEO_EXTENSIONS: readonly string[] = Object.freeze([
  '.mp4',
  '.m4v',
  '.mkv',
  '.webm',
  '.avi',
  '.mov',
  '.qt',
  '.ts',
  '.m2ts',
  '.mts',
  '.flv',
  '.mjpeg',
  '.mjpg',
  '.mpg',
  '.mpeg',
  '.wmv',
  '.asf',
  '.3gp',
  '.ogv',
  '.vob',
  '.mxf',
  '.dv',
  '.y4m',
  '.h264',
  '.264',
  '.h265',
  '.265',
  '.hevc',
]);

const PATTERN = /^(testsrc|thermal)(?::(?:(\d{1,5})x(\d{1,5}))?(?:@(\d+(?:\.\d+)?))?)?$/;
const CAMERA = /^\/dev\/video\d+$/;
const URL_SCHEME = /^(rtsps?|https?):\/\//i;
const DEFAULT_PATTERN_SIZE = { width: 640, height: 480 };
const DEFAULT_PATTERN_FPS = 30;
const DEFAULT_QUALITY = 80;
const DEFAULT_LIVE_STALL_MS = 10_000;
/** Frames read ahead of the consumer before reading pauses (and ffmpeg blocks). */
const READ_AHEAD = 2;
/** Lines of ffmpeg's stderr kept for error messages. */
const STDERR_LINES = 12;
const KILL_GRACE_MS = 2000;

/** Fonts tried for the timestamp overlay of the test patterns, first found wins. */
const FONT_FILES = [
  '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/TTF/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu/DejaVuSans.ttf',
  '/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf',
  '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
  '/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf',
  '/usr/share/fonts/truetype/freefont/FreeSans.ttf',
  '/System/Library/Fonts/Supplemental/Arial.ttf',
  '/Library/Fonts/Arial.ttf',
  'C:\\Windows\\Fonts\\arial.ttf',
];

const FFMPEG_HINT =
  'install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg) or add the npm package: npm install @ffmpeg-installer/ffmpeg';

/**
 * True when `input` is for the ffmpeg source rather than the folder source: a video file by extension
 * ({@link VIDEO_EXTENSIONS}), a V4L2 camera `/dev/videoN`, an rtsp://, rtsps://, http:// or https:// URL,
 * or a test pattern `testsrc`, `testsrc:WxH@FPS`, `thermal`, `thermal:WxH@FPS` (size and rate optional).
 */
export function isFfmpegInput(input: string): boolean {
  return parseFfmpegInput(input) !== undefined;
}

/** What `input` names for the ffmpeg source, or undefined when it is not an ffmpeg input. */
export function parseFfmpegInput(input: string): ParsedFfmpegInput | undefined {
  if (typeof input !== 'string' || input === '') return undefined;
  const m = PATTERN.exec(input);
  if (m) {
    const kind = m[1] as 'testsrc' | 'thermal';
    const out: ParsedFfmpegInput = { kind, input: kind, live: true };
    if (m[2] !== undefined && m[3] !== undefined) out.size = { width: Number(m[2]), height: Number(m[3]) };
    if (m[4] !== undefined) out.fps = Number(m[4]);
    return out;
  }
  if (CAMERA.test(input)) return { kind: 'camera', input, live: true };
  const scheme = URL_SCHEME.exec(input)?.[1]?.toLowerCase();
  if (scheme === 'rtsp' || scheme === 'rtsps') return { kind: 'rtsp', input, live: true };
  if (scheme === 'http' || scheme === 'https') {
    // An HTTP URL of a video file is read like a file; any other (an MJPEG camera, HLS) is live.
    let path = '';
    try {
      path = new URL(input).pathname;
    } catch {
      return undefined;
    }
    return { kind: 'http', input, live: !VIDEO_EXTENSIONS.includes(extname(path).toLowerCase()) };
  }
  // Other URL schemes are not taken (a folder source then says the path does not exist).
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(input)) return undefined;
  if (VIDEO_EXTENSIONS.includes(extname(input).toLowerCase())) return { kind: 'file', input, live: false };
  return undefined;
}

/**
 * A default stream name for an ffmpeg input: `testsrc`, `thermal`, `camN` for /dev/videoN, `rtsp`, `http`,
 * or a video file's base name without extension, reduced to letters, digits, `.`, `_`, `-` (else `video`).
 */
export function ffmpegStreamName(input: string): string {
  const p = parseFfmpegInput(input);
  if (p === undefined) return 'video';
  switch (p.kind) {
    case 'testsrc':
    case 'thermal':
    case 'rtsp':
    case 'http':
      return p.kind;
    case 'camera':
      return `cam${input.slice('/dev/video'.length)}`;
    case 'file': {
      const base = basename(input, extname(input))
        .replace(/[^A-Za-z0-9._-]+/g, '_')
        .replace(/^[._-]+/, '')
        .replace(/[._-]+$/, '')
        .slice(0, 64);
      return base === '' ? 'video' : base;
    }
  }
}

export interface FindFfmpegOptions {
  /** The PATH to search. Default: process.env.PATH. */
  path?: string;
  /** The binary of the npm package @ffmpeg-installer/ffmpeg, or undefined. Default: resolved from here. */
  fromPackage?: () => string | undefined;
}

/**
 * The ffmpeg executable to run: `ffmpeg` from the PATH when there is one, else the binary of the npm
 * package `@ffmpeg-installer/ffmpeg` when it is installed.
 * @throws FramewireError ERR_FFMPEG_NOT_FOUND, with a hint saying how to get one.
 */
export function findFfmpeg(options: FindFfmpegOptions = {}): string {
  const pathEnv = options.path ?? process.env.PATH ?? '';
  const names = process.platform === 'win32' ? ['ffmpeg.exe', 'ffmpeg'] : ['ffmpeg'];
  for (const dir of pathEnv.split(delimiter)) {
    if (dir === '') continue;
    for (const name of names) {
      const candidate = join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  const fromPackage = (options.fromPackage ?? packageFfmpeg)();
  if (fromPackage !== undefined && isExecutable(fromPackage)) return fromPackage;
  throw new FramewireError(
    ErrorCode.FFMPEG_NOT_FOUND,
    'ffmpeg source: no ffmpeg on the PATH and no @ffmpeg-installer/ffmpeg package',
    {
      hint: FFMPEG_HINT,
    },
  );
}

function packageFfmpeg(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    // The package throws a string when its platform binary is missing.
    const mod = require('@ffmpeg-installer/ffmpeg') as { path?: unknown };
    return typeof mod.path === 'string' ? mod.path : undefined;
  } catch {
    return undefined;
  }
}

function isExecutable(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, process.platform === 'win32' ? constants.F_OK : constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const probes = new Map<string, Promise<FfmpegCapabilities>>();

/**
 * What the ffmpeg binary at `ffmpegPath` can do (version, filters, -fps_mode), found by running it; cached
 * per path.
 * @throws FramewireError ERR_FFMPEG_NOT_FOUND when it cannot be run.
 */
export function probeFfmpeg(ffmpegPath: string): Promise<FfmpegCapabilities> {
  let p = probes.get(ffmpegPath);
  if (p === undefined) {
    p = doProbe(ffmpegPath);
    probes.set(ffmpegPath, p);
    p.catch(() => probes.delete(ffmpegPath));
  }
  return p;
}

async function doProbe(ffmpegPath: string): Promise<FfmpegCapabilities> {
  const [version, filters, help] = await Promise.all([
    runFfmpeg(ffmpegPath, ['-version']),
    runFfmpeg(ffmpegPath, ['-hide_banner', '-filters']),
    runFfmpeg(ffmpegPath, ['-hide_banner', '-h', 'long']),
  ]);
  const names = new Set<string>();
  for (const line of filters.split('\n')) {
    // " T.C drawtext          V->V       Draw text ..."
    const m = /^\s*[A-Z.|]{2,3}\s+(\w+)\s+\S+->\S+/.exec(line);
    if (m?.[1]) names.add(m[1]);
  }
  const fontFile = names.has('drawtext') ? FONT_FILES.find((f) => isReadableFile(f)) : undefined;
  return {
    version: version.split('\n', 1)[0]?.trim() ?? '',
    filters: names,
    fpsMode: /^-fps_mode\b/m.test(help),
    fontFile,
  };
}

function isReadableFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function runFfmpeg(ffmpegPath: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(ffmpegPath, args, { maxBuffer: 8 * 1024 * 1024, timeout: 30_000 }, (err, stdout) => {
      // A string code is a spawn failure (ENOENT, EACCES); some builds exit non-zero after printing help,
      // and then what they printed is what counts.
      if (err && (typeof (err as NodeJS.ErrnoException).code === 'string' || stdout === '')) {
        reject(notFound(ffmpegPath, err));
        return;
      }
      resolve(stdout);
    });
  });
}

function notFound(ffmpegPath: string, cause: unknown): FramewireError {
  const why =
    (cause as NodeJS.ErrnoException | undefined)?.code ??
    (cause instanceof Error ? cause.message : String(cause));
  return new FramewireError(
    ErrorCode.FFMPEG_NOT_FOUND,
    `ffmpeg source: cannot run ${ffmpegPath} (${String(why)})`,
    {
      hint: FFMPEG_HINT,
      cause,
    },
  );
}

/** JPEG quality 1..100 as ffmpeg's mjpeg -q:v (2 best .. 31 worst). */
export function qualityToQscale(quality: number): number {
  return Math.round(31 - ((quality - 1) * 29) / 99);
}

function validSize(s: { width: number; height: number }): boolean {
  return s.width > 0 && s.height > 0 && s.width <= 16384 && s.height <= 16384;
}

function parseSizeOption(size: string): { width: number; height: number } {
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(size);
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (!m || !validSize({ width, height })) {
    throw new FramewireError(
      ErrorCode.BAD_OPTION,
      `ffmpeg source: size must be WxH (e.g. 1280x720), got ${JSON.stringify(size)}`,
    );
  }
  return { width, height };
}

function checkOptions(input: string, options: FfmpegSourceOptions): ParsedFfmpegInput {
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

/** Capabilities assumed when none are given: what both ffmpeg 4.x (npm) and Debian's 5.x have. */
const BASELINE_CAPS: FfmpegCapabilities = {
  version: '',
  filters: new Set(['testsrc', 'testsrc2', 'geq', 'lutrgb', 'scale', 'format', 'fps']),
  fpsMode: false,
};

/**
 * The ffmpeg command line (without the executable) for `input`: pure, so that the arguments for a camera
 * or URL can be checked without one. `caps` says what the binary has (from {@link probeFfmpeg}); without
 * it no timestamp overlay is drawn and `-vsync` is used.
 */
export function ffmpegArgs(
  input: string,
  options: FfmpegSourceOptions = {},
  caps: FfmpegCapabilities = BASELINE_CAPS,
): string[] {
  const parsed = checkOptions(input, options);
  const size = options.size === undefined ? undefined : parseSizeOption(options.size);
  const q = qualityToQscale(options.quality ?? DEFAULT_QUALITY);
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error'];
  const filters: string[] = [];
  switch (parsed.kind) {
    case 'testsrc':
    case 'thermal': {
      const s = size ?? parsed.size ?? DEFAULT_PATTERN_SIZE;
      const fps = options.fps ?? parsed.fps ?? DEFAULT_PATTERN_FPS;
      // lavfi generates as fast as it is read; -re makes it a live source.
      if (options.realtime !== false) args.push('-re');
      const graph = parsed.kind === 'testsrc' ? testsrcGraph(s, fps, caps) : thermalGraph(s, fps, caps);
      args.push('-f', 'lavfi', '-i', graph);
      break;
    }
    case 'camera':
      args.push('-f', 'v4l2');
      if (size) args.push('-video_size', `${size.width}x${size.height}`);
      if (options.fps !== undefined) args.push('-framerate', String(options.fps));
      args.push('-i', parsed.input);
      break;
    case 'rtsp':
      // TCP: UDP RTP loses packets on a busy link and shows as smeared frames.
      args.push('-rtsp_transport', 'tcp', '-i', parsed.input);
      break;
    case 'http':
    case 'file':
      if (options.realtime === true) args.push('-re');
      if (options.loop === true) args.push('-stream_loop', '-1');
      args.push('-i', parsed.input);
      break;
  }
  if (parsed.kind === 'file' || parsed.kind === 'http' || parsed.kind === 'rtsp') {
    if (options.fps !== undefined) filters.push(`fps=${options.fps}`);
    if (size) filters.push(`scale=${size.width}:${size.height}`);
  }
  args.push('-an', '-sn', '-dn');
  // Each frame's pts on fd 3, for its capture time (src/sources/ffmpeg-pts.ts).
  filters.push(PTS_FILTERS);
  if (filters.length > 0) args.push('-vf', filters.join(','));
  // Passthrough: every decoded (or filtered) frame once, neither duplicated nor dropped to a constant rate.
  args.push(caps.fpsMode ? '-fps_mode' : '-vsync', 'passthrough');
  args.push('-c:v', 'mjpeg', '-pix_fmt', 'yuvj420p', '-q:v', String(q));
  // One write per frame, so that a frame leaves ffmpeg as soon as it is encoded.
  args.push('-f', 'mpjpeg', '-flush_packets', '1', 'pipe:1');
  return args;
}

function testsrcGraph(s: { width: number; height: number }, fps: number, caps: FfmpegCapabilities): string {
  const gen = caps.filters.has('testsrc2') || !caps.filters.has('testsrc') ? 'testsrc2' : 'testsrc';
  return `${gen}=s=${s.width}x${s.height}:r=${fps}${clockOverlay(s, caps)}`;
}

/**
 * A false-colour picture that looks like an infrared camera: two warm bodies moving over a cooler
 * background with a gradient, rendered small (thermal sensors are low resolution, and geq is per pixel),
 * scaled up smoothly, and coloured with an "ironbow" palette (black, purple, red, orange, yellow, white).
 * Built from filters that ffmpeg 4.x has (geq, lutrgb); `gradients` and `pseudocolor` presets are 4.4+/5.x.
 */
function thermalGraph(s: { width: number; height: number }, fps: number, caps: FfmpegCapabilities): string {
  const w = Math.max(8, Math.round(s.width / 4));
  const h = Math.max(8, Math.round(s.height / 4));
  const body = (cx: string, cy: string, r: string, heat: number) =>
    `${heat}*exp(-(pow(X-W*(${cx}),2)+pow(Y-H*(${cy}),2))/(2*pow(W/${r},2)))`;
  const lum = [
    '35+50*Y/H+20*sin(X/W*6.28+T*0.3)',
    body('0.5+0.3*sin(T*0.9)', '0.55+0.25*cos(T*0.7)', '10', 200),
    body('0.5+0.35*cos(T*0.5)', '0.4+0.3*sin(T*1.3)', '16', 140),
  ].join('+');
  const palette =
    "r='clip(1.7*val-10,0,255)':g='clip(2.3*(val-120),0,255)':b='clip(170*sin(PI*min(val/150,1))+5*max(val-200,0),0,255)'";
  const picture = caps.filters.has('geq')
    ? `nullsrc=s=${w}x${h}:r=${fps},format=gray,geq=lum='clip(${lum},0,255)',scale=${s.width}:${s.height}:flags=bicubic`
    : `testsrc2=s=${s.width}x${s.height}:r=${fps},format=gray,boxblur=8`;
  return `${picture},format=rgb24,lutrgb=${palette}${clockOverlay(s, caps)}`;
}

/** The wall-clock time and frame number in the bottom-left corner, when drawtext and a font exist. */
function clockOverlay(s: { width: number; height: number }, caps: FfmpegCapabilities): string {
  const font = caps.fontFile;
  if (
    !caps.filters.has('drawtext') ||
    font === undefined ||
    /['\\:]/.test(font.replace(/^[A-Za-z]:\\/, ''))
  ) {
    return '';
  }
  const size = Math.max(8, Math.round(s.height / 18));
  const pad = Math.max(2, Math.round(size / 3));
  return (
    `,drawtext=fontfile='${font}':text='%{localtime} #%{n}':x=${pad}:y=h-th-${pad}:fontsize=${size}` +
    `:fontcolor=white:box=1:boxcolor=black@0.6:boxborderw=${Math.max(1, Math.round(pad / 2))}`
  );
}

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

interface RunOptions {
  dropWhenBehind: boolean;
  stallTimeoutMs: number;
  maxFrameBytes: number;
  onStats: FfmpegSourceOptions['onStats'];
}

/** One ffmpeg process and the frames read from it. */
class FfmpegRun implements FfmpegRunInfo {
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

/** "ffmpeg 5.1.9-0+deb12u1 (/usr/bin/ffmpeg)": which ffmpeg runs, for logs. */
export function describeFfmpeg(ffmpegPath: string, caps: FfmpegCapabilities): string {
  const v = /^ffmpeg version (\S+)/.exec(caps.version)?.[1] ?? 'of unknown version';
  return `ffmpeg ${v} (${ffmpegPath})`;
}
