/**
 * The one size syntax of every size and rate option (CLI flags, URL parameters, API strings):
 * a number, optionally with a decimal part, then an optional unit, then an optional `/s` for rates.
 * Units, case-insensitive: `B`; decimal `k`/`KB` (1000), `M`/`MB` (10^6), `G`/`GB` (10^9); binary `KiB`
 * (1024), `MiB` (1024^2), `GiB` (1024^3). Examples: `1200`, `64KiB`, `32M`, `1.5GB`, `50MB/s`.
 */
import { FramewireError } from './errors.js';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

/** How the syntax is shown in error hints and docs. */
export const SIZE_SYNTAX = 'a number of bytes with an optional unit: 1200, 64KiB, 32M, 1.5GB, 50MB/s';

/**
 * Parses a byte size or rate such as `1200`, `50MB`, `50MB/s`, `8MiB` into a whole number of bytes.
 * `what` names the option in the error (ERR_BAD_OPTION).
 */
export function parseByteSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:\/s)?\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new FramewireError('ERR_BAD_OPTION', `${what} "${text}" is not a size`, {
      hint: `write ${SIZE_SYNTAX}`,
    });
  }
  return Math.round(Number(m[1]) * unit);
}
