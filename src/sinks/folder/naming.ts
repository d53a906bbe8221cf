/**
 * How the folder sink names files. Names never depend on what happens to be on disk, except when a name is
 * taken: then the next candidate is tried, always in the same order, so that names stay predictable.
 */
import { createHash } from 'node:crypto';
import { extname } from 'node:path';
import type { ContentType } from '../../protocol/constants.js';
import type { ReceivedFrame } from '../../types.js';

/** What the folder sink does with a named frame whose file name is already taken by another frame. */
export type OnConflict = 'keep-both' | 'refuse' | 'overwrite';
export const ON_CONFLICT: readonly OnConflict[] = Object.freeze(['keep-both', 'refuse', 'overwrite']);

const EXTENSIONS: Record<ContentType, string> = {
  'image/jpeg': '.jpg',
  'image/png': '.png',
  raw: '.raw',
  'application/octet-stream': '.bin',
};

/** Candidates tried after the first one before a frame is refused with ERR_NAME_TAKEN. */
export const MAX_ALTERNATIVES = 100;

const SAFE_EPOCH = /^[A-Za-z0-9_-]{1,32}$/;
const tags = new Map<string, string>();

/**
 * The sender run's epoch as it appears in file names: the epoch itself when it is short and made of
 * letters, digits, "-" and "_" (the default epochs are 16 hex digits), else "h" and 16 hex digits of its
 * SHA-256, so that any epoch gives a safe, stable name part.
 */
export function epochTag(epoch: string): string {
  if (SAFE_EPOCH.test(epoch)) return epoch;
  let tag = tags.get(epoch);
  if (tag === undefined) {
    tag = `h${createHash('sha256').update(epoch).digest('hex').slice(0, 16)}`;
    if (tags.size >= 1024) tags.clear();
    tags.set(epoch, tag);
  }
  return tag;
}

/**
 * The first name a frame is saved under: the name it was sent with, or, for an unnamed frame (cameras,
 * video files), `<epoch>-<seq, 9 digits>.<ext>`: the (sender run, sequence number) pair names exactly one
 * frame, so a later run or a restarted sender never lands on an earlier run's file.
 */
export function firstName(f: ReceivedFrame): string {
  if (f.name !== '') return f.name;
  return `${epochTag(f.stream.epoch)}-${String(f.seq).padStart(9, '0')}${EXTENSIONS[f.contentType] ?? '.bin'}`;
}

/**
 * The i-th alternative (i >= 1) to a taken name, for `--on-conflict keep-both`: `photo.jpg` becomes
 * `photo~<epoch>.jpg`, then `photo~<epoch>-2.jpg`, `photo~<epoch>-3.jpg`, … The extension is kept so that the
 * file still opens as what it is. Undefined when no such name fits in 255 bytes (a very long extension).
 */
export function alternativeName(name: string, epoch: string, i: number): string | undefined {
  // A name like "archive.tar.gz" keeps only ".gz"; good enough, and a name without a dot keeps all of it.
  const ext = extname(name);
  const tail = `~${epochTag(epoch)}${i === 1 ? '' : `-${i}`}${ext}`;
  // Stay within the 255-byte limit of file names by shortening the stem, never the part that tells runs
  // apart, a whole character at a time (never half of a surrogate pair).
  const head = Array.from(name.slice(0, name.length - ext.length));
  let bytes = Buffer.byteLength(head.join('') + tail, 'utf8');
  while (head.length > 1 && bytes > 255) bytes -= Buffer.byteLength(head.pop()!, 'utf8');
  return bytes <= 255 ? head.join('') + tail : undefined;
}
