/** MpjpegSplitter and jpegSize: pure, driven byte by byte and with merged and split parts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FramewireError } from '../../src/errors.js';
import { jpegSize } from '../../src/jpeg.js';
import { MpjpegSplitter } from '../../src/sources/mpjpeg.js';

/** A fake JPEG: SOI, an APP0, a SOF0 of w x h, some "entropy data" with CRLF and dashes, EOI. */
function fakeJpeg(i: number, w = 160, h = 120, extra = 50): Buffer {
  const app0 = Buffer.from([0xff, 0xe0, 0x00, 0x06, 0x4a, 0x46, 0x49, 0x46]);
  const sof = Buffer.from([
    0xff,
    0xc0,
    0x00,
    0x11,
    0x08,
    h >> 8,
    h & 0xff,
    w >> 8,
    w & 0xff,
    3,
    1,
    0x22,
    0,
    2,
    0x11,
    1,
    3,
    0x11,
    1,
  ]);
  const sos = Buffer.from([0xff, 0xda, 0x00, 0x02]);
  // Body bytes that look like a delimiter: only the Content-Length keeps them inside the part.
  const data = Buffer.concat([Buffer.from(`\r\n--ffmpeg\r\npart ${i} `), Buffer.alloc(extra, i & 0xff)]);
  return Buffer.concat([Buffer.from([0xff, 0xd8]), app0, sof, sos, data, Buffer.from([0xff, 0xd9])]);
}

/** The bytes ffmpeg's mpjpeg muxer writes for these bodies (boundary before and after every part). */
function mpjpeg(bodies: Buffer[], opts: { lengthHeader?: string | false; boundary?: string } = {}): Buffer {
  const b = opts.boundary ?? 'ffmpeg';
  const parts: Buffer[] = [Buffer.from(`--${b}\r\n`)];
  for (const body of bodies) {
    let head = 'Content-type: image/jpeg\r\n';
    if (opts.lengthHeader !== false) head += `${opts.lengthHeader ?? 'Content-length'}: ${body.length}\r\n`;
    parts.push(Buffer.from(`${head}\r\n`), body, Buffer.from(`\r\n--${b}\r\n`));
  }
  return Buffer.concat(parts);
}

function feed(s: MpjpegSplitter, bytes: Buffer, step: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += step) out.push(...s.push(bytes.subarray(i, i + step)));
  return out;
}

const bodies = [fakeJpeg(1), fakeJpeg(2, 640, 480, 3000), fakeJpeg(3, 1, 1, 0), fakeJpeg(4)];

test('mpjpeg: whole stream in one chunk gives every part', () => {
  const s = new MpjpegSplitter();
  const parts = s.push(mpjpeg(bodies));
  assert.deepEqual(parts, bodies);
  assert.equal(s.parts, 4);
  assert.equal(s.boundary, '--ffmpeg');
  // The trailing boundary line was read: nothing is left over.
  assert.equal(s.pendingBytes, 0);
});

test('mpjpeg: byte by byte, and in chunks of every size up to 40', () => {
  const stream = mpjpeg(bodies);
  for (let step = 1; step <= 40; step++) {
    const parts = feed(new MpjpegSplitter(), stream, step);
    assert.deepEqual(parts, bodies, `step ${step}`);
  }
});

test('mpjpeg: parts split across chunks at every position, and several parts in one chunk', () => {
  const stream = mpjpeg(bodies);
  for (let cut = 0; cut <= stream.length; cut++) {
    const s = new MpjpegSplitter();
    const parts = [...s.push(stream.subarray(0, cut)), ...s.push(stream.subarray(cut))];
    assert.deepEqual(parts, bodies, `cut at ${cut}`);
  }
});

test('mpjpeg: a body inside one chunk is a view of it; a straddling body is copied once', () => {
  const body = bodies[0]!;
  const stream = mpjpeg([body]);
  const at = stream.indexOf(body);
  const flip = () => {
    stream[at + 10] = stream[at + 10]! ^ 0xff;
  };
  const [view] = new MpjpegSplitter().push(stream);
  assert.deepEqual(view, body);
  flip(); // the view sees changes to the chunk
  assert.notDeepEqual(view, body);
  flip();
  const s2 = new MpjpegSplitter();
  const half = stream.length - 20;
  assert.deepEqual(s2.push(stream.subarray(0, half)), []);
  const [copied] = s2.push(stream.subarray(half));
  assert.deepEqual(copied, body);
  flip(); // the copy does not
  assert.deepEqual(copied, body);
});

test('mpjpeg: next() takes one part at a time, leaving the rest unparsed', () => {
  const s = new MpjpegSplitter();
  s.write(mpjpeg(bodies));
  assert.deepEqual(s.next(), bodies[0]);
  assert.ok(s.pendingBytes > bodies[1]!.length + bodies[2]!.length + bodies[3]!.length);
  assert.deepEqual(s.next(), bodies[1]);
  assert.deepEqual(s.next(), bodies[2]);
  assert.deepEqual(s.next(), bodies[3]);
  assert.equal(s.next(), undefined);
});

test('mpjpeg: the Content-Length header name is matched in any case; other headers are ignored', () => {
  const s = new MpjpegSplitter();
  const stream = mpjpeg(bodies, { lengthHeader: 'CONTENT-LENGTH', boundary: 'frame' });
  assert.deepEqual(feed(s, stream, 7), bodies);
  assert.equal(s.boundary, '--frame');
});

test('mpjpeg: the newer layout (boundary before each part, none after the last) works too', () => {
  const stream = Buffer.concat(
    bodies.flatMap((b) => [
      Buffer.from(`--ffmpeg\r\nContent-Type: image/jpeg\r\nContent-Length: ${b.length}\r\n\r\n`),
      b,
      Buffer.from('\r\n'),
    ]),
  );
  for (const step of [1, 3, 64, stream.length]) {
    const s = new MpjpegSplitter();
    assert.deepEqual([...feed(s, stream, step), ...s.end()], bodies, `step ${step}`);
  }
});

test('mpjpeg: parts without Content-Length fall back to the next boundary, byte by byte', () => {
  // Bodies without the fake delimiter inside: without a length the delimiter is all there is.
  const plain = [
    Buffer.from([0xff, 0xd8, 1, 2, 13, 10, 45, 0xff, 0xd9]),
    Buffer.alloc(3000, 7),
    Buffer.from('x'),
  ];
  const stream = mpjpeg(plain, { lengthHeader: false });
  for (const step of [1, 2, 5, 11, 1000, stream.length]) {
    const s = new MpjpegSplitter();
    assert.deepEqual(feed(s, stream, step), plain, `step ${step}`);
  }
  // At the end of the input, a last part without a boundary after it is returned by end().
  const s = new MpjpegSplitter();
  const tail = Buffer.concat([
    Buffer.from('--ffmpeg\r\nContent-type: image/jpeg\r\n\r\n'),
    plain[1]!,
    Buffer.from('\r\n'),
  ]);
  assert.deepEqual(s.push(tail), []);
  assert.deepEqual(s.end(), [plain[1]]);
});

test('mpjpeg: a truncated last part (ffmpeg killed mid-write) is dropped at end()', () => {
  const stream = mpjpeg(bodies);
  const s = new MpjpegSplitter();
  const parts = s.push(stream.subarray(0, stream.length - 40));
  assert.deepEqual(parts, bodies.slice(0, 3));
  assert.deepEqual(s.end(), []);
});

test('mpjpeg: the closing boundary ends the stream; what follows is ignored', () => {
  const stream = Buffer.concat([mpjpeg([bodies[0]!]).subarray(0, -2), Buffer.from('--\r\ngarbage')]);
  const s = new MpjpegSplitter();
  assert.deepEqual(s.push(stream), [bodies[0]]);
  assert.deepEqual(s.push(Buffer.from('more garbage')), []);
});

test('mpjpeg: input that is not mpjpeg is an ERR_SOURCE_READ error', () => {
  const bad =
    (bytes: string | Buffer, opts = {}) =>
    () =>
      new MpjpegSplitter(opts).push(Buffer.from(bytes));
  const isRead = (e: unknown) =>
    e instanceof FramewireError && e.code === 'ERR_SOURCE_READ' && /mpjpeg/.test(e.message);
  assert.throws(bad('hello\r\n'), isRead);
  assert.throws(bad('--ffmpeg\r\nno colon here\r\n'), isRead);
  assert.throws(bad('--ffmpeg\r\nContent-Length: -5\r\n'), isRead);
  assert.throws(bad('--ffmpeg\r\nContent-Length: 12ab\r\n'), isRead);
  assert.throws(bad('--ffmpeg\r\nContent-Length: 1000\r\n', { maxPartBytes: 999 }), isRead);
  assert.throws(bad(`--ffmpeg\r\nX: ${'a'.repeat(2000)}`), isRead);
  assert.throws(bad('--ffmpeg\r\nContent-Length: 1\r\n\r\nx\r\n--other\r\n'), isRead);
});

test('jpegSize reads the SOF, skipping segments, and gives undefined for non-JPEG or a missing SOF', () => {
  assert.deepEqual(jpegSize(fakeJpeg(1, 1280, 720)), { width: 1280, height: 720 });
  assert.deepEqual(jpegSize(fakeJpeg(1, 1, 65535)), { width: 1, height: 65535 });
  // A progressive SOF2 after a DHT (C4, which is not a SOF).
  const progressive = Buffer.from([
    0xff, 0xd8, 0xff, 0xc4, 0x00, 0x03, 0x00, 0xff, 0xc2, 0x00, 0x0b, 8, 0, 10, 0, 20, 1, 1, 0x11, 0,
  ]);
  assert.deepEqual(jpegSize(progressive), { width: 20, height: 10 });
  assert.equal(jpegSize(Buffer.from('not a jpeg')), undefined);
  assert.equal(jpegSize(Buffer.from([0xff, 0xd8, 0xff, 0xda, 0, 2])), undefined);
  assert.equal(jpegSize(fakeJpeg(1).subarray(0, 14)), undefined);
  assert.equal(jpegSize(Buffer.alloc(0)), undefined);
});
