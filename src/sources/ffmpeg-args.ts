/**
 * The ffmpeg command line for an input: input flags per kind, the test-pattern filter graphs (testsrc,
 * thermal, the clock overlay) and the MJPEG-over-mpjpeg output. Pure: nothing is run here.
 */
import type { FfmpegCapabilities } from './ffmpeg-binary.js';
import { checkOptions, type FfmpegSourceOptions, parseSizeOption } from './ffmpeg-options.js';
import { PTS_FILTERS } from './ffmpeg-pts.js';

const DEFAULT_PATTERN_SIZE = { width: 640, height: 480 };
const DEFAULT_PATTERN_FPS = 30;
const DEFAULT_QUALITY = 80;

/** JPEG quality 1..100 as ffmpeg's mjpeg -q:v (2 best .. 31 worst). */
export function qualityToQscale(quality: number): number {
  return Math.round(31 - ((quality - 1) * 29) / 99);
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
