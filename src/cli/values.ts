/**
 * The CLI's value parsers: every numeric option is range-checked here, with one message shape
 * (`--mtu must be an integer 256..65507, got "10"`). A bad value is a usage error (exit code 2) that commander
 * prints as `framewire: ERR_BAD_OPTION: …` (src/cli/run.ts).
 */
import { InvalidArgumentError } from 'commander';
import { FramewireError } from '../errors.js';
import { parseByteSize, SIZE_SYNTAX } from '../sizes.js';
import { parseSizeOption } from '../sources/ffmpeg-options.js';
import { MAX_MTU, MIN_MTU } from '../transports/udp/datagram.js';

/** Plain decimal numbers only: no sign, no exponent, no hex, no spaces inside. */
const DECIMAL = /^\s*\d+(?:\.\d+)?\s*$/;

export interface NumberRange {
  min: number;
  max: number;
  /** The smallest value is excluded (`> min`), e.g. a rate or a frame rate above 0. */
  aboveMin?: boolean;
  integer?: boolean;
  /** Printed after the range, e.g. "bytes", "s". */
  unit?: string;
  /** Printed instead of the computed range, e.g. "a size 1KiB..16GiB". */
  text?: string;
}

function describe(r: NumberRange): string {
  if (r.text) return r.text;
  const kind = r.integer ? 'an integer' : 'a number';
  const range = r.aboveMin ? `above ${r.min} and at most ${r.max}` : `${r.min}..${r.max}`;
  return `${kind} ${range}${r.unit ? ` ${r.unit}` : ''}`;
}

function inRange(n: number, r: NumberRange): boolean {
  return (
    Number.isFinite(n) &&
    (r.aboveMin ? n > r.min : n >= r.min) &&
    n <= r.max &&
    (!r.integer || Number.isInteger(n))
  );
}

/** A commander parser for a number within `range`. */
export function numberOption(flag: string, range: NumberRange): (v: string) => number {
  return (v: string): number => {
    const n = DECIMAL.test(v) ? Number(v) : Number.NaN;
    if (!inRange(n, range)) throw new InvalidArgumentError(`${flag} must be ${describe(range)}, got "${v}"`);
    return n;
  };
}

/** A commander parser for a byte size or rate (src/sizes.ts syntax) within `range` (bytes). */
export function sizeOption(flag: string, range: NumberRange): (v: string) => number {
  return (v: string): number => {
    let n: number;
    try {
      n = parseByteSize(v, flag);
    } catch (err) {
      if (err instanceof FramewireError)
        throw new InvalidArgumentError(`${flag}: "${v}" is not a size (${SIZE_SYNTAX})`);
      throw err;
    }
    if (!inRange(n, range)) throw new InvalidArgumentError(`${flag} must be ${describe(range)}, got "${v}"`);
    return n;
  };
}

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?\s*$/;

/** A commander parser for a duration (`20ms`, `0.2s`, `500us`, a bare number is ms) within `range`, in µs. */
export function durationUsOption(flag: string, range: NumberRange): (v: string) => number {
  return (v: string): number => {
    const m = DURATION.exec(v);
    if (!m) throw new InvalidArgumentError(`${flag}: "${v}" is not a duration (e.g. 20ms, 0.2s, 500us)`);
    const n = Number(m[1]);
    const unit = m[2] ?? 'ms';
    const us = Math.round(unit === 's' ? n * 1e6 : unit === 'ms' ? n * 1e3 : n);
    if (!inRange(us, range)) throw new InvalidArgumentError(`${flag} must be ${describe(range)}, got "${v}"`);
    return us;
  };
}

/** `WxH` for ffmpeg inputs and the demo: one parser (src/sources/ffmpeg-options.ts), 1..16384 each way. */
export function wxhOption(flag: string): (v: string) => string {
  return (v: string): string => {
    try {
      parseSizeOption(v);
    } catch (err) {
      if (err instanceof FramewireError)
        throw new InvalidArgumentError(
          `${flag} must be WxH with each side 1..16384, e.g. 1280x720, got "${v}"`,
        );
      throw err;
    }
    return v;
  };
}

// ---- The numeric options of the commands, with their ranges (docs/cli.md lists the same) ----------------

/** Seconds before a sender gives up reconnecting: above 0, at most 1,000,000 s (timers stay in range). */
export const parseRetryFor = numberOption('--retry-for', {
  min: 0,
  max: 1_000_000,
  aboveMin: true,
  unit: 's',
});
/** Frames per second: above 0, at most 1000. */
export const parseFps = numberOption('--fps', { min: 0, max: 1000, aboveMin: true });
/** JPEG quality. */
export const parseQuality = numberOption('--quality', { min: 1, max: 100, integer: true });
export const parseWindowFrames = numberOption('--window-frames', { min: 1, max: 65_536, integer: true });
export const parseWindowBytes = sizeOption('--window-bytes', {
  min: 1024,
  max: 16 * 2 ** 30,
  text: 'a size 1KiB..16GiB',
});
/** --mtu: a datagram size in bytes. */
export const parseMtu = numberOption('--mtu', { min: MIN_MTU, max: MAX_MTU, integer: true, unit: 'bytes' });
/** --rate: bytes per second, e.g. 50MB/s, 400KB, 1000000. */
export const parseRate = sizeOption('--rate', { min: 1, max: 2 ** 40, text: 'a rate 1B/s..1TiB/s' });
/** --latency: the udp transport's live budget (the same range as `?latency=`). */
export const parseLatency = numberOption('--latency', { min: 1, max: 60_000, integer: true, unit: 'ms' });
/** The protocol's body length is a u32: no frame or message can be larger. */
const U32 = 0xffff_ffff;
export const parseMaxFrameBytes = sizeOption('--max-frame-bytes', {
  min: 1,
  max: U32,
  text: 'a size 1B..4GiB-1 (4294967295 bytes)',
});
/** Metadata lives in the frame's head, which is at most 64 KiB. */
export const parseMaxMetaBytes = sizeOption('--max-meta-bytes', {
  min: 0,
  max: 0xffff,
  text: 'a size 0..65535 bytes',
});
export const parseMaxMessageBytes = sizeOption('--max-message-bytes', {
  min: 2,
  max: U32,
  text: 'a size 2B..4GiB-1 (4294967295 bytes)',
});
export const parseTolerance = durationUsOption('--tolerance', { min: 0, max: 60e6, text: 'a time 0..60s' });
export const parseMaxWait = durationUsOption('--max-wait', { min: 0, max: 600e6, text: 'a time 0..600s' });
