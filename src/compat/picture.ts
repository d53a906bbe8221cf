/**
 * Checks that a reassembled legacy picture is one whole JPEG or PNG file. The seed's UDP format carries no
 * sequence numbers and no checksum, so the picture's own structure is all there is to catch a mixed,
 * truncated or reordered one. Pure functions over Buffers.
 */
import { crc32 } from 'node:zlib';
import { checkJpeg } from '../jpeg.js';
import type { ContentType } from '../protocol/constants.js';

export type PictureCheck = { ok: true; contentType: ContentType } | { ok: false; why: string };

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** True when `d` starts like a JPEG (SOI) or a PNG (signature): what a picture's first chunk must look like. */
export function looksLikePictureStart(d: Buffer): boolean {
  if (d.length >= 2 && d[0] === 0xff && d[1] === 0xd8) return true;
  return d.length >= 8 && d.subarray(0, 8).equals(PNG_SIGNATURE);
}

/** Checks a whole picture: JPEG (markers and segment structure) or PNG (chunk structure and CRCs). */
export function checkPicture(d: Buffer): PictureCheck {
  if (d.length >= 2 && d[0] === 0xff && d[1] === 0xd8) return checkJpegPicture(d);
  if (d.length >= 8 && d.subarray(0, 8).equals(PNG_SIGNATURE)) return checkPng(d);
  return { ok: false, why: 'it starts with neither a JPEG start marker (FF D8) nor a PNG signature' };
}

/** Checks a JPEG's structure (src/jpeg.ts). */
export function checkJpegPicture(d: Buffer): PictureCheck {
  const r = checkJpeg(d);
  return r.ok ? { ok: true, contentType: 'image/jpeg' } : r;
}

/** Walks a PNG's chunks, checking each chunk's CRC, up to IEND, which must end the data. */
export function checkPng(d: Buffer): PictureCheck {
  let i = 8;
  let chunks = 0;
  while (i + 12 <= d.length) {
    const len = d.readUInt32BE(i);
    if (len > d.length - i - 12) return { ok: false, why: `PNG chunk at byte ${i} runs past the end` };
    const type = d.subarray(i + 4, i + 8);
    const crc = d.readUInt32BE(i + 8 + len);
    if (crc32(d.subarray(i + 4, i + 8 + len)) !== crc) {
      return { ok: false, why: `PNG chunk ${type.toString('latin1')} at byte ${i} fails its CRC` };
    }
    chunks++;
    i += 12 + len;
    if (type.toString('latin1') === 'IEND') {
      if (i !== d.length) return { ok: false, why: `${d.length - i} bytes follow the PNG end chunk` };
      return chunks > 1 ? { ok: true, contentType: 'image/png' } : { ok: false, why: 'PNG without chunks' };
    }
  }
  return { ok: false, why: 'no PNG end chunk (IEND)' };
}
