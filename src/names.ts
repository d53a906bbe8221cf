/**
 * Name checks for stream names (folder names on the receiver) and frame names (file names). A name that
 * could leave the output folder or misbehave on a file system is refused with ERR_UNSAFE_NAME.
 */
import { extname } from 'node:path';
import { FramewireError } from './errors.js';
import type { ContentType } from './protocol/constants.js';

export const MAX_STREAM_NAME_BYTES = 128;
export const MAX_FILE_NAME_BYTES = 255;
/** Prefix of the folder sink's temporary files; names may not start with a dot anyway. */
export const TEMP_PREFIX = '.fw-tmp-';
/** Files the folder sink keeps in each stream folder; a frame may not take their names. */
export const RESERVED_FILE_NAMES = new Set(['index.jsonl', 'latest.jpg']);

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what we refuse
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Returns why `name` is unsafe as one path component, or undefined when it is safe. */
export function unsafeReason(name: string, maxBytes: number): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'it is empty';
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxBytes) return `it is ${bytes} bytes long (at most ${maxBytes})`;
  if (name.includes('\u0000')) return 'it contains a NUL byte';
  if (CONTROL.test(name)) return 'it contains a control character';
  if (name.includes('/') || name.includes('\\')) return 'it contains a path separator';
  if (name === '.' || name === '..') return 'it names a parent or current folder';
  if (name.startsWith('.')) return 'it starts with a dot';
  if (/[<>:"|?*]/.test(name)) return 'it contains a character that is not allowed in file names (<>:"|?*)';
  if (/[. ]$/.test(name)) return 'it ends with a dot or a space';
  if (WINDOWS_RESERVED.test(name)) return 'it is a reserved device name';
  return undefined;
}

export function checkStreamName(name: string): string {
  const why = unsafeReason(name, MAX_STREAM_NAME_BYTES);
  if (why) {
    throw new FramewireError('ERR_UNSAFE_NAME', `stream name ${JSON.stringify(name)} is refused: ${why}`, {
      hint: 'use letters, digits, "-", "_" and "." (not first) in stream names',
      stream: name,
    });
  }
  return name;
}

export function checkFileName(name: string, stream?: string, seq?: number): string {
  let why = unsafeReason(name, MAX_FILE_NAME_BYTES);
  if (!why && RESERVED_FILE_NAMES.has(name.toLowerCase())) why = 'the receiver keeps a file of that name';
  if (why) {
    throw new FramewireError('ERR_UNSAFE_NAME', `file name ${JSON.stringify(name)} is refused: ${why}`, {
      hint: 'rename the file; names must stay inside the stream folder',
      ...(stream === undefined ? {} : { stream }),
      ...(seq === undefined ? {} : { seq }),
    });
  }
  return name;
}

/** The content type of a file, guessed from its extension (.jpg/.jpeg, .png, .raw; others are opaque bytes). */
export function contentTypeOf(fileName: string): ContentType {
  switch (extname(fileName).toLowerCase()) {
    case '.jpg':
    case '.jpeg':
      return 'image/jpeg';
    case '.png':
      return 'image/png';
    case '.raw':
      return 'raw';
    default:
      return 'application/octet-stream';
  }
}
