/**
 * `send --times FILE`: capture times of a folder's files, from a JSON-lines file written by whatever took
 * the pictures. Each line is `{"name": "<file name>", "captureUs": <µs since the Unix epoch>}` or
 * `{"name": …, "time": "<ISO 8601 date>"}`; blank lines are skipped. See docs/sync.md.
 */
import { readFile } from 'node:fs/promises';
import { ErrorCode, FramewireError } from '../errors.js';

/** Parses the text of a times file into file name → capture time (µs). Throws ERR_BAD_OPTION. */
export function parseTimes(text: string, what = 'times file'): Map<string, number> {
  const times = new Map<string, number>();
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const bad = (why: string) =>
      new FramewireError(ErrorCode.BAD_OPTION, `${what} line ${i + 1}: ${why}`, {
        hint: 'each line is {"name": "0001.jpg", "captureUs": 1700000000000000} or {"name": …, "time": "<ISO date>"}',
      });
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      throw bad('not JSON');
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('not a JSON object');
    const { name, captureUs, time } = v as Record<string, unknown>;
    if (typeof name !== 'string' || name === '') throw bad('no "name"');
    let us: number;
    if (captureUs !== undefined) {
      if (typeof captureUs !== 'number' || !Number.isSafeInteger(captureUs) || captureUs < 0) {
        throw bad('"captureUs" must be a non-negative integer (µs since the Unix epoch)');
      }
      us = captureUs;
    } else if (typeof time === 'string' && Number.isFinite(Date.parse(time))) {
      us = Date.parse(time) * 1000;
    } else throw bad('no "captureUs" nor a valid "time"');
    times.set(name, us);
  });
  return times;
}

/** Reads and parses a times file. Throws ERR_SOURCE_NOT_FOUND (no file) or ERR_BAD_OPTION. */
export async function readTimesFile(path: string): Promise<Map<string, number>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FramewireError(ErrorCode.SOURCE_NOT_FOUND, `cannot read times file ${path}`, { cause: err });
  }
  return parseTimes(text, path);
}
