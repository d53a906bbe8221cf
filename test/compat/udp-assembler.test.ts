/** The seed UDP picture format, reassembled without sockets: both forms, and every way it goes wrong. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkPicture } from '../../src/compat/picture.js';
import { type AssemblyEvent, PictureAssembler, readLegacyHeader } from '../../src/compat/udp-assembler.js';
import { fakeJpeg, structPackL } from './peers.js';

const MAX = 64 * 1024 * 1024;

/** The datagrams the seed client sends for `data` (header, chunks, and the empty one on a multiple of 1024). */
function seedDatagrams(data: Buffer, headerBytes: 4 | 8 = 8): Buffer[] {
  const out = [structPackL(data.length, headerBytes)];
  for (let i = 0; i < Math.floor(data.length / 1024) + 1; i++) {
    out.push(
      1024 * (i + 1) > data.length ? data.subarray(1024 * i) : data.subarray(1024 * i, 1024 * (i + 1)),
    );
  }
  return out;
}

function feed(a: PictureAssembler, datagrams: Buffer[]): AssemblyEvent[] {
  return datagrams.flatMap((d) => a.push(d));
}

const pictures = (ev: AssemblyEvent[]) =>
  ev.filter((e) => e.type === 'picture').map((e) => (e as { data: Buffer }).data);
const drops = (ev: AssemblyEvent[]) =>
  ev.filter((e) => e.type === 'drop').map((e) => (e as { reason: string }).reason);
const naks = (ev: AssemblyEvent[]) =>
  ev.filter((e) => e.type === 'nak' || (e.type === 'drop' && e.nak)).length;

test('fixtures: fakeJpeg is a whole JPEG of the asked size', () => {
  for (const size of [40, 1023, 1024, 1025, 123_000]) {
    const j = fakeJpeg(size, size);
    assert.equal(j.length, size);
    assert.deepEqual(checkPicture(j), { ok: true, contentType: 'image/jpeg' });
  }
});

test('the header is struct.pack("l", n): 8 bytes or 4, little-endian, signed', () => {
  assert.equal(readLegacyHeader(Buffer.from('39e2010000000000', 'hex')), 123_449);
  assert.equal(readLegacyHeader(Buffer.from('39e20100', 'hex')), 123_449);
  assert.equal(readLegacyHeader(Buffer.from('ffffffffffffffff', 'hex')), -1);
  assert.equal(readLegacyHeader(Buffer.alloc(5)), undefined);
});

test('chunked form, 8- and 4-byte headers, sizes around 1024: each picture whole and byte-identical', () => {
  for (const headerBytes of [8, 4] as const) {
    const a = new PictureAssembler({ maxPictureBytes: MAX });
    const sent: Buffer[] = [];
    const events: AssemblyEvent[] = [];
    for (const [i, size] of [100, 1023, 1024, 1025, 2048, 123_449].entries()) {
      const j = fakeJpeg(size, i);
      sent.push(j);
      events.push(...feed(a, seedDatagrams(j, headerBytes)));
    }
    assert.deepEqual(drops(events), []);
    const got = pictures(events);
    assert.equal(got.length, sent.length);
    for (const [i, g] of got.entries()) assert.ok(g.equals(sent[i]!), `picture ${i}`);
    // The trailing empty datagram of 1024 and 2048 is noted, not a loss.
    assert.equal(events.filter((e) => e.type === 'note' && e.what === 'empty-datagram').length, 2);
    assert.ok(a.idle);
  }
});

test('single form: one datagram, one picture; not a picture is dropped and answered', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const j = fakeJpeg(60_000, 1);
  const ev = a.push(j);
  assert.equal(pictures(ev).length, 1);
  assert.ok(pictures(ev)[0]!.equals(j));
  const bad = a.push(Buffer.alloc(5000, 7));
  assert.deepEqual(drops(bad), ['not-a-picture']);
  assert.equal(naks(bad), 1);
  // A cut single picture (the seed's recvfrom(1024) would do this) is not emitted either.
  assert.deepEqual(drops(a.push(j.subarray(0, 3000))), ['not-a-picture']);
});

test('a lost chunk: the picture is dropped once, the sender answered, the next picture whole', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const p1 = fakeJpeg(10_500, 1);
  const p2 = fakeJpeg(8_000, 2);
  const d1 = seedDatagrams(p1);
  d1.splice(4, 1); // chunk 3 lost
  const ev1 = feed(a, d1);
  assert.deepEqual(drops(ev1), ['chunk-mismatch']);
  assert.equal(naks(ev1), 1, 'answered when the short last chunk shows the sender is done');
  const ev2 = feed(a, seedDatagrams(p2));
  assert.deepEqual(drops(ev2), []);
  assert.ok(pictures(ev2)[0]!.equals(p2));
});

test('a lost last chunk: the timeout drops the picture and answers; then the next one is whole', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const d = seedDatagrams(fakeJpeg(5000, 3));
  d.pop();
  assert.deepEqual(feed(a, d), []);
  assert.equal(a.idle, false);
  const ev = a.expire();
  assert.deepEqual(drops(ev), ['timeout']);
  assert.equal(naks(ev), 1);
  assert.ok(a.idle);
  const p = fakeJpeg(3000, 4);
  assert.ok(pictures(feed(a, seedDatagrams(p)))[0]!.equals(p));
});

test('a lost header: the orphan chunks are one drop, and the next picture is not mixed with them', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const p1 = fakeJpeg(5000, 5);
  const p2 = fakeJpeg(7000, 6);
  const ev = feed(a, [...seedDatagrams(p1).slice(1), ...seedDatagrams(p2)]);
  assert.deepEqual(drops(ev), ['no-header']);
  assert.equal(naks(ev), 1);
  const got = pictures(ev);
  assert.equal(got.length, 1);
  assert.ok(got[0]!.equals(p2));
});

test('a duplicate header is harmless; a duplicate chunk drops the picture once', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const p = fakeJpeg(6000, 7);
  const d = seedDatagrams(p);
  const ev = feed(a, [d[0]!, ...d]);
  assert.deepEqual(drops(ev), []);
  assert.ok(pictures(ev)[0]!.equals(p));
  assert.equal(ev.filter((e) => e.type === 'note' && e.what === 'duplicate-header').length, 1);

  const dup = seedDatagrams(p);
  dup.splice(3, 0, dup[3]!);
  const ev2 = feed(a, dup);
  assert.deepEqual(pictures(ev2), []);
  assert.deepEqual(drops(ev2), ['chunk-mismatch']);
  assert.equal(naks(ev2), 1);
  assert.ok(a.idle);
});

test('reordered chunks: the short last chunk early, or the first two swapped, drop the picture', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const p = fakeJpeg(5500, 8);
  const d = seedDatagrams(p);
  const lastEarly = [...d];
  const last = lastEarly.pop()!;
  lastEarly.splice(lastEarly.length - 1, 0, last);
  const ev = feed(a, lastEarly);
  assert.deepEqual(pictures(ev), []);
  assert.deepEqual(drops(ev), ['chunk-mismatch']);

  const swapped = [...d];
  [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
  const ev2 = feed(a, swapped);
  assert.deepEqual(pictures(ev2), []);
  assert.deepEqual(drops(ev2), ['bad-start']);
  assert.ok(a.idle);
});

test('a chunk moved into the header segments breaks the JPEG structure: dropped', () => {
  // A JPEG whose first 2.5 KiB are small segments (as a real one's tables are): a chunk swapped there is
  // caught, because a marker is expected where scan data now stands.
  const body = fakeJpeg(8000, 9);
  const segments: Buffer[] = [];
  for (let i = 0; i < 30; i++) {
    const seg = Buffer.alloc(84, i);
    seg.writeUInt16BE(0xffe2, 0);
    seg.writeUInt16BE(82, 2);
    segments.push(seg);
  }
  const p = Buffer.concat([body.subarray(0, 2), ...segments, body.subarray(2)]);
  assert.ok(checkPicture(p).ok);
  const d = seedDatagrams(p);
  [d[2], d[4]] = [d[4]!, d[2]!];
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const ev = feed(a, d);
  assert.deepEqual(pictures(ev), []);
  assert.deepEqual(drops(ev), ['bad-picture']);
  assert.equal(naks(ev), 1);
});

test('a header with an absurd length is refused without allocating; its chunks are swallowed', () => {
  const a = new PictureAssembler({ maxPictureBytes: 1 << 20 });
  const p = fakeJpeg(4000, 10);
  const chunks = seedDatagrams(p).slice(1);
  const ev = feed(a, [structPackL(2 ** 40), ...chunks]);
  assert.deepEqual(drops(ev), ['too-large']);
  const e = ev.find((x) => x.type === 'drop') as { code: string; detail: string };
  assert.equal(e.code, 'ERR_FRAME_TOO_LARGE');
  assert.match(e.detail, /1099511627776 bytes, above the limit of 1048576/);
  assert.equal(naks(ev), 1);
  const neg = feed(a, [structPackL(-5), ...chunks]);
  assert.deepEqual(drops(neg), ['bad-header']);
  const q = fakeJpeg(3000, 11);
  assert.ok(pictures(feed(a, seedDatagrams(q)))[0]!.equals(q));
});

test('a new header mid-picture drops the old one (no answer: the sender moved on) and starts afresh', () => {
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const p1 = fakeJpeg(9000, 12);
  const p2 = fakeJpeg(9000, 13);
  const ev = feed(a, [...seedDatagrams(p1).slice(0, 4), ...seedDatagrams(p2)]);
  assert.deepEqual(drops(ev), ['new-header']);
  assert.equal(naks(ev), 0);
  assert.ok(pictures(ev)[0]!.equals(p2));
});

test('the memory budget for pictures in progress is respected and given back', () => {
  let held = 0;
  const a = new PictureAssembler({
    maxPictureBytes: MAX,
    reserve: (n) => {
      if (held + n > 10_000) return false;
      held += n;
      return true;
    },
    release: (n) => {
      held -= n;
    },
  });
  assert.deepEqual(drops(feed(a, seedDatagrams(fakeJpeg(20_000, 14)))), ['memory']);
  assert.equal(held, 0);
  const p = fakeJpeg(9000, 15);
  assert.ok(pictures(feed(a, seedDatagrams(p)))[0]!.equals(p));
  assert.equal(held, 0);
  feed(a, seedDatagrams(p).slice(0, 3));
  assert.equal(held, 9000);
  a.reset();
  assert.equal(held, 0);
});

test('a picture whose length is 4 or 8 bytes past a chunk: its short last chunk is not read as a header', () => {
  for (const size of [1024 + 8, 2048 + 4]) {
    const a = new PictureAssembler({ maxPictureBytes: MAX });
    const p = fakeJpeg(size, size);
    const ev = feed(a, seedDatagrams(p));
    assert.deepEqual(drops(ev), []);
    assert.ok(pictures(ev)[0]!.equals(p));
  }
});

test('PNG pictures pass in both forms (the seed decodes any image cv2 reads)', () => {
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', Buffer.alloc(13, 1)),
    pngChunk('IDAT', Buffer.alloc(3000, 2)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
  const a = new PictureAssembler({ maxPictureBytes: MAX });
  const ev = feed(a, [...seedDatagrams(png), png]);
  const got = ev.filter((e) => e.type === 'picture');
  assert.equal(got.length, 2);
  for (const g of got) assert.equal((g as { contentType: string }).contentType, 'image/png');
});

function pngChunk(type: string, data: Buffer): Buffer {
  const b = Buffer.alloc(12 + data.length);
  b.writeUInt32BE(data.length, 0);
  b.write(type, 4, 'latin1');
  data.copy(b, 8);
  b.writeUInt32BE(crc32Of(b.subarray(4, 8 + data.length)), 8 + data.length);
  return b;
}

function crc32Of(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}
