/**
 * The ffmpeg executable: finding it (the system's on the PATH first; the optional npm package
 * @ffmpeg-installer/ffmpeg, a 2018 static build, only when there is none), probing what it can do (version,
 * filters, -fps_mode, a font for the overlay), warning when it is older than supported, and describing it
 * for logs.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { ErrorCode, FramewireError } from '../errors.js';
import { FFMPEG_SUPPORTED, ffmpegTooOld, parseFfmpegVersion } from './ffmpeg-version.js';

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

export const FFMPEG_HINT =
  'install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg), or, as a last resort, the npm package with an old static build: npm install @ffmpeg-installer/ffmpeg';

export interface FindFfmpegOptions {
  /** The PATH to search. Default: process.env.PATH. */
  path?: string;
  /** The binary of the npm package @ffmpeg-installer/ffmpeg, or undefined. Default: resolved from here. */
  fromPackage?: () => string | undefined;
}

/**
 * The ffmpeg executable to run: `ffmpeg` from the PATH when there is one (the system's, kept up to date by
 * its package manager), else the binary of the optional npm package `@ffmpeg-installer/ffmpeg` when it is
 * installed. (`ffmpegPath` in the source's options comes before both.)
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

export function isExecutable(file: string): boolean {
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

export function notFound(ffmpegPath: string, cause: unknown): FramewireError {
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

/** "ffmpeg 5.1.9-0+deb12u1 (/usr/bin/ffmpeg)": which ffmpeg runs, for logs. */
export function describeFfmpeg(ffmpegPath: string, caps: FfmpegCapabilities): string {
  const v = parseFfmpegVersion(caps.version)?.text ?? 'of unknown version';
  return `ffmpeg ${v} (${ffmpegPath})`;
}

const warnedOld = new Set<string>();

/**
 * The warning for an ffmpeg older than the oldest supported version, or undefined. Given to `onWarning`
 * every time; without one, printed through `process.emitWarning` once per binary.
 */
export function checkFfmpegVersion(
  ffmpegPath: string,
  caps: FfmpegCapabilities,
  onWarning?: (warning: FramewireError) => void,
): FramewireError | undefined {
  const why = ffmpegTooOld(parseFfmpegVersion(caps.version));
  if (why === undefined) return undefined;
  const warning = new FramewireError(ErrorCode.FFMPEG_TOO_OLD, `ffmpeg source: ${why} (${ffmpegPath})`, {
    hint: `framewire supports ffmpeg ${FFMPEG_SUPPORTED}; install a current one (Debian/Ubuntu: apt-get install ffmpeg) and put it first on the PATH, or pass ffmpegPath`,
  });
  if (onWarning) onWarning(warning);
  else if (!warnedOld.has(ffmpegPath)) {
    warnedOld.add(ffmpegPath);
    process.emitWarning(`${warning.message}. ${warning.hint}`, {
      type: 'FramewireWarning',
      code: warning.code,
    });
  }
  return warning;
}
