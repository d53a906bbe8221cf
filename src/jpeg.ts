/**
 * JPEG inspection without decoding, for everyone who needs it (the viewer's picture size, the mpjpeg splitter,
 * the seed UDP picture check): one marker walker, so they all agree on what a segment is.
 */

/** One marker of a JPEG: where it starts, its code, and the length of its segment (0 for standalone markers). */
interface Marker {
  /** Offset of the FF that starts the marker (after any fill bytes). */
  at: number;
  code: number;
  /** The segment's length field (it counts itself), or 0 for markers without one. */
  len: number;
}

/** Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI. */
function standalone(code: number): boolean {
  return code === 0x01 || (code >= 0xd0 && code <= 0xd9);
}

/**
 * Reads the marker at offset `i`, skipping fill bytes (FF FF …). Returns a string saying what is wrong when
 * the bytes there are not a marker or its segment does not fit in `end` (exclusive).
 */
function markerAt(d: Buffer, i: number, end: number): Marker | string {
  if (i >= end) return 'the data ends before the next marker';
  if (d[i] !== 0xff) return `expected a marker at byte ${i}, found 0x${hex(d[i])}`;
  while (i + 1 < end && d[i + 1] === 0xff) i++;
  if (i + 1 >= end) return 'the data ends inside a marker';
  const code = d[i + 1]!;
  if (standalone(code)) return { at: i, code, len: 0 };
  if (code === 0x00) return `marker FF 00 at byte ${i} is out of place`;
  if (i + 4 > end) return 'the data ends inside a segment length';
  const len = d.readUInt16BE(i + 2);
  if (len < 2 || i + 2 + len > end)
    return `segment FF ${hex(code)} at byte ${i} (length ${len}) runs past the end`;
  return { at: i, code, len };
}

/** True for SOF0..SOF15, which carry the picture size; DHT (C4), JPG (C8) and DAC (CC) share the range. */
function isSof(code: number): boolean {
  return code >= 0xc0 && code <= 0xcf && code !== 0xc4 && code !== 0xc8 && code !== 0xcc;
}

/**
 * The picture size from a JPEG's SOF segment (baseline, progressive, lossless …), or undefined when the bytes
 * are not a JPEG, end before the SOF, or hold a malformed segment before it. Reads only segment headers.
 */
export function jpegSize(d: Buffer): { width: number; height: number } | undefined {
  if (d.length < 4 || d[0] !== 0xff || d[1] !== 0xd8) return undefined;
  let i = 2;
  for (;;) {
    const m = markerAt(d, i, d.length);
    if (typeof m === 'string') return undefined;
    // EOI or SOS before a SOF means there is none; a second SOI is out of place.
    if (m.code === 0xd9 || m.code === 0xda || m.code === 0xd8) return undefined;
    if (isSof(m.code)) {
      if (m.len < 7) return undefined;
      const height = d.readUInt16BE(m.at + 5);
      const width = d.readUInt16BE(m.at + 7);
      return width > 0 && height > 0 ? { width, height } : undefined;
    }
    i = m.at + 2 + m.len;
  }
}

export type JpegCheck = { ok: true } | { ok: false; why: string };

/**
 * Walks a JPEG from SOI to EOI: every segment's length must stay inside the data, the entropy-coded data
 * after each SOS may hold only stuffed bytes (FF 00), restart markers (FF D0-D7) and fill bytes, and EOI
 * (FF D9) must be the last two bytes. A piece out of place inside segment data, or a cut anywhere, breaks
 * this walk; two whole pieces swapped inside the compressed data do not (nothing in the format can see that).
 */
export function checkJpeg(d: Buffer): JpegCheck {
  const n = d.length;
  if (n < 4 || d[0] !== 0xff || d[1] !== 0xd8) return { ok: false, why: 'no JPEG start marker (FF D8)' };
  if (d[n - 2] !== 0xff || d[n - 1] !== 0xd9)
    return { ok: false, why: 'no JPEG end marker (FF D9) at the end' };
  let i = 2;
  let scans = 0;
  // Each pass reads one marker and advances i by at least 2, so the walk is bounded by the data length.
  while (i < n) {
    const m = markerAt(d, i, n);
    if (typeof m === 'string') return { ok: false, why: m };
    // A segment must end before the final EOI, which the check above already found.
    if (m.len > 0 && m.at + 2 + m.len > n - 2) {
      return {
        ok: false,
        why: `segment FF ${hex(m.code)} at byte ${m.at} (length ${m.len}) runs past the end`,
      };
    }
    i = m.at + 2 + m.len;
    if (m.code === 0xd9) {
      if (i !== n) return { ok: false, why: `${n - i} bytes follow the end marker` };
      if (scans === 0) return { ok: false, why: 'it has no scan (SOS)' };
      return { ok: true };
    }
    if (m.code === 0xd8) return { ok: false, why: `marker FF D8 at byte ${m.at} is out of place` };
    if (m.code !== 0xda) continue;
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

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).toUpperCase().padStart(2, '0');
}
