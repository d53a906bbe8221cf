/**
 * Checks that a reassembled legacy picture is one whole JPEG or PNG file. The seed's UDP format carries no
 * sequence numbers and no checksum, so the picture's own structure is all there is to catch a mixed,
 * truncated or reordered one. Pure functions over Buffers.
 */
import { crc32 } from 'node:zlib';
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
  if (d.length >= 2 && d[0] === 0xff && d[1] === 0xd8) return checkJpeg(d);
  if (d.length >= 8 && d.subarray(0, 8).equals(PNG_SIGNATURE)) return checkPng(d);
  return { ok: false, why: 'it starts with neither a JPEG start marker (FF D8) nor a PNG signature' };
}

/**
 * Walks a JPEG from SOI to EOI: every segment's length must stay inside the data, the entropy-coded data
 * after each SOS may hold only stuffed bytes (FF 00), restart markers (FF D0-D7) and fill bytes, and EOI
 * (FF D9) must be the last two bytes. A chunk out of place inside segment data, or a cut anywhere, breaks
 * this walk; two whole chunks swapped inside the compressed data do not (nothing in the format can see that).
 */
export function checkJpeg(d: Buffer): PictureCheck {
  const n = d.length;
  if (n < 4 || d[0] !== 0xff || d[1] !== 0xd8) return { ok: false, why: 'no JPEG start marker (FF D8)' };
  if (d[n - 2] !== 0xff || d[n - 1] !== 0xd9)
    return { ok: false, why: 'no JPEG end marker (FF D9) at the end' };
  let i = 2;
  let scans = 0;
  // Each pass reads one marker; bounded by the data length since every pass advances i by at least 2.
  while (i < n) {
    if (d[i] !== 0xff) return { ok: false, why: `expected a marker at byte ${i}, found 0x${hex(d[i])}` };
    while (i + 1 < n && d[i + 1] === 0xff) i++;
    if (i + 1 >= n) return { ok: false, why: 'the data ends inside a marker' };
    const m = d[i + 1]!;
    i += 2;
    if (m === 0xd9) {
      if (i !== n) return { ok: false, why: `${n - i} bytes follow the end marker` };
      if (scans === 0) return { ok: false, why: 'it has no scan (SOS)' };
      return { ok: true, contentType: 'image/jpeg' };
    }
    if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) continue;
    if (m === 0xd8 || m === 0x00)
      return { ok: false, why: `marker FF ${hex(m)} at byte ${i - 2} is out of place` };
    if (i + 2 > n) return { ok: false, why: 'the data ends inside a segment length' };
    const len = d.readUInt16BE(i);
    if (len < 2 || i + len > n - 2) {
      return { ok: false, why: `segment FF ${hex(m)} at byte ${i - 2} (length ${len}) runs past the end` };
    }
    i += len;
    if (m !== 0xda) continue;
    scans++;
    // Entropy-coded data: find the marker that ends it.
    for (;;) {
      const ff = d.indexOf(0xff, i);
      if (ff === -1 || ff + 1 >= n)
        return { ok: false, why: 'the compressed data runs to the end without a marker' };
      const next = d[ff + 1]!;
      if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
        i = ff + 2;
        continue;
      }
      if (next === 0xff) {
        i = ff + 1;
        continue;
      }
      i = ff;
      break;
    }
  }
  return { ok: false, why: 'no JPEG end marker' };
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

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).toUpperCase().padStart(2, '0');
}
