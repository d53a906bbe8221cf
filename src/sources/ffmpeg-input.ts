/**
 * What an ffmpeg source input names: a video file, a V4L2 camera, an RTSP or HTTP URL, or a test pattern;
 * the one `WxH` size syntax of the ffmpeg source; and the default stream name of an input.
 */
import { basename, extname } from 'node:path';

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

const PATTERN = /^(testsrc|thermal)(?::(\d{1,5}x\d{1,5})?(?:@(\d+(?:\.\d+)?))?)?$/;
const CAMERA = /^\/dev\/video\d+$/;
const URL_SCHEME = /^(rtsps?|https?):\/\//i;

/** `WxH` as the ffmpeg source writes sizes (the `size` option, `testsrc:WxH`): the numbers, unchecked. */
export function parseWxH(text: string): { width: number; height: number } | undefined {
  const m = /^(\d{1,5})x(\d{1,5})$/.exec(text);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : undefined;
}

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
    if (m[2] !== undefined) out.size = parseWxH(m[2]);
    if (m[3] !== undefined) out.fps = Number(m[3]);
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
