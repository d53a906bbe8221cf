/**
 * Which ffmpeg versions framewire supports, and reading the version from the first line of `ffmpeg
 * -version`, in the styles distributions and static builds print it.
 */

/** The oldest ffmpeg release framewire supports (Ubuntu 22.04 ships 4.4; Debian 12 ships 5.1). */
export const FFMPEG_MIN_VERSION = { major: 4, minor: 4 } as const;
/** The supported versions, as the docs state them. */
export const FFMPEG_SUPPORTED = '4.4 to 7.x (tested with 5.1, Debian 12)';
/**
 * ffmpeg 4.4 came out in April 2021: a git snapshot (which has no release number) built from a tree whose
 * copyright line ends before 2021 is older than the minimum.
 */
const MIN_YEAR = 2021;

export interface FfmpegVersion {
  /** The version word as printed: "5.1.6-0+deb12u1", "N-47683-g0e8eb07980-static", "7.1", "n6.1.1". */
  text: string;
  /** The release number, when the version word has one (not for git snapshots like "N-47683-g…"). */
  major?: number;
  minor?: number;
  patch?: number;
  /** The last year of the copyright line ("Copyright (c) 2000-2018"), when printed. */
  year?: number;
}

/**
 * Reads the first line of `ffmpeg -version`:
 * - Debian/Ubuntu: `ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers`;
 * - release static builds: `ffmpeg version 6.0-static https://johnvansickle.com/ffmpeg/ Copyright …`;
 * - git snapshot static builds (the npm package @ffmpeg-installer/ffmpeg): `ffmpeg version
 *   N-47683-g0e8eb07980-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2018 …`;
 * - Arch, Homebrew and others: `ffmpeg version n7.0.2 …`, `ffmpeg version 7.1 …`.
 * Returns undefined when the line is not an ffmpeg version line.
 */
export function parseFfmpegVersion(line: string): FfmpegVersion | undefined {
  const m = /^\s*ffmpeg version (\S+)/.exec(line);
  if (!m) return undefined;
  const text = m[1]!;
  const v: FfmpegVersion = { text };
  const n = /^n?(\d+)\.(\d+)(?:\.(\d+))?(?![\d.])/.exec(text);
  if (n) {
    v.major = Number(n[1]);
    v.minor = Number(n[2]);
    if (n[3] !== undefined) v.patch = Number(n[3]);
  }
  const y = /Copyright \(c\) (?:\d{4}-)?(\d{4})/.exec(line);
  if (y) v.year = Number(y[1]);
  return v;
}

/**
 * Why this ffmpeg is older than {@link FFMPEG_MIN_VERSION}, or undefined when it is not (or cannot be
 * told: an unknown version is given the benefit of the doubt).
 */
export function ffmpegTooOld(v: FfmpegVersion | undefined): string | undefined {
  if (!v) return undefined;
  const min = `${FFMPEG_MIN_VERSION.major}.${FFMPEG_MIN_VERSION.minor}`;
  if (v.major !== undefined && v.minor !== undefined) {
    const old =
      v.major < FFMPEG_MIN_VERSION.major ||
      (v.major === FFMPEG_MIN_VERSION.major && v.minor < FFMPEG_MIN_VERSION.minor);
    return old ? `ffmpeg ${v.text} is older than ${min}, the oldest version framewire supports` : undefined;
  }
  if (v.year !== undefined && v.year < MIN_YEAR) {
    return `ffmpeg ${v.text} is a snapshot from ${v.year}, older than ${min} (${MIN_YEAR}), the oldest version framewire supports`;
  }
  return undefined;
}
