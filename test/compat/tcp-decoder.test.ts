/** The seed TCP folder protocol, decoded without sockets: the exact sends, and every way reads merge or split. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  LegacyTcpDecoder,
  nameEnd,
  pieceBoundaries,
  type TcpDecoderEvent,
} from '../../src/compat/tcp-decoder.js';
import { FramewireError } from '../../src/errors.js';
import { checkFileName, checkStreamName } from '../../src/names.js';
import { payload } from '../helpers/tmp.js';
import { fakeJpeg, type SeedFile } from './peers.js';

function decoder(maxFrameBytes = 1 << 20): LegacyTcpDecoder {
  const refusal = (f: () => unknown) => {
    try {
      f();
      return undefined;
    } catch (err) {
      return err as FramewireError;
    }
  };
  return new LegacyTcpDecoder({
    maxFrameBytes,
    checkFolder: (folder) => refusal(() => checkStreamName(folder)),
    checkName: (name) => refusal(() => checkFileName(name)),
  });
}

/** What the seed client writes, one Buffer per sock.send() call, in order. */
function seedSends(format: string, folder: string, files: SeedFile[]): Buffer[] {
  const out: Buffer[] = [Buffer.from(`${format}|${folder}`)];
  files.forEach((f, i) => {
    out.push(Buffer.from(`${f.data.length}|${f.name}`));
    const h = Math.floor(f.data.length / 2);
    for (let go = 0; go < f.data.length; go += h) out.push(f.data.subarray(go, go + h));
    if (i + 1 < files.length) out.push(Buffer.from('continue'));
  });
  out.push(Buffer.from('over'));
  return out;
}

const files: SeedFile[] = [
  { name: '0.png', data: payload(0, 5000) },
  { name: '1.png', data: payload(1, 4001) },
  { name: '2.jpg', data: fakeJpeg(3000, 2) },
  { name: '3.png', data: payload(3, 2) },
  { name: '4.png', data: payload(4, 3) },
];

/** Replies the seed client reads per send: 1 for the session header, then per file 1 + one per piece. */
const expectedOks = 1 + files.reduce((n, f) => n + 1 + pieceBoundaries(f.data.length).length, 0);

function summarize(events: TcpDecoderEvent[]) {
  const frames = events.filter((e) => e.type === 'frame') as Extract<TcpDecoderEvent, { type: 'frame' }>[];
  return {
    sessions: events.filter((e) => e.type === 'session'),
    oks: events.filter((e) => e.type === 'reply').length + frames.filter((f) => f.finalReply).length,
    frames,
    over: events.some((e) => e.type === 'over'),
    fatal: events.find((e) => e.type === 'fatal') as Extract<TcpDecoderEvent, { type: 'fatal' }> | undefined,
  };
}

function checkFrames(frames: Extract<TcpDecoderEvent, { type: 'frame' }>[], want: SeedFile[]) {
  assert.deepEqual(
    frames.map((f) => f.name),
    want.map((f) => f.name),
  );
  for (const [i, f] of frames.entries())
    assert.ok(f.data.equals(want[i]!.data), `frame ${f.name} is byte-identical`);
}

test("piece boundaries are the seed client's: total//2, 2·(total//2), total", () => {
  assert.deepEqual(pieceBoundaries(5000), [2500, 5000]);
  assert.deepEqual(pieceBoundaries(4001), [2000, 4000, 4001]);
  assert.deepEqual(pieceBoundaries(3), [1, 2, 3]);
  assert.deepEqual(pieceBoundaries(2), [1, 2]);
  assert.deepEqual(pieceBoundaries(1), [1]);
  assert.deepEqual(pieceBoundaries(0), []);
});

test('the seed client\'s sends, one read each: one "ok" per send the client waits on', () => {
  const d = decoder();
  const events = seedSends('infrared', 'run42', files).flatMap((s) => d.push(s));
  const r = summarize(events);
  assert.deepEqual(r.sessions, [{ type: 'session', format: 'infrared', folder: 'run42' }]);
  checkFrames(r.frames, files);
  assert.equal(r.oks, expectedOks);
  assert.ok(r.over);
  assert.equal(d.state, 'done');
});

test('"continue" and the next header in one read, and "over" glued to the last piece', () => {
  const sends = seedSends('visible', 'cam', files);
  const merged: Buffer[] = [];
  for (let i = 0; i < sends.length; i++) {
    const s = sends[i]!;
    if (s.toString() === 'continue' || s.toString() === 'over') {
      if (s.toString() === 'over') merged[merged.length - 1] = Buffer.concat([merged[merged.length - 1]!, s]);
      else merged.push(Buffer.concat([s, sends[++i]!]));
    } else merged.push(s);
  }
  const d = decoder();
  const r = summarize(merged.flatMap((s) => d.push(s)));
  checkFrames(r.frames, files);
  assert.equal(r.oks, expectedOks);
  assert.ok(r.over);
});

test('the payload in more reads than pieces (byte by byte) and in fewer (one read): same frames, one "ok" per piece', () => {
  const sends = seedSends('visible', 'cam', files);
  // Texts whole, payload bytes one read each.
  const d = decoder();
  const events: TcpDecoderEvent[] = [];
  for (const s of sends) {
    const text = /^(\d+\||continue|over|visible\|)/.test(s.toString('latin1'));
    if (text) events.push(...d.push(s));
    else for (let i = 0; i < s.length; i++) events.push(...d.push(s.subarray(i, i + 1)));
  }
  const r = summarize(events);
  checkFrames(r.frames, files);
  assert.equal(r.oks, expectedOks, 'boundaries, not reads, decide the answers');

  // A client that sends each payload whole and waits once: one "ok" for it (the final one).
  const d2 = decoder();
  const e2: TcpDecoderEvent[] = [];
  e2.push(...d2.push(Buffer.from('visible|cam')));
  for (const [i, f] of files.entries()) {
    if (i > 0) e2.push(...d2.push(Buffer.from('continue')));
    e2.push(...d2.push(Buffer.from(`${f.data.length}|${f.name}`)));
    e2.push(...d2.push(f.data));
  }
  e2.push(...d2.push(Buffer.from('over')));
  const r2 = summarize(e2);
  checkFrames(r2.frames, files);
  assert.equal(r2.oks, 1 + files.length * 2);
});

test('texts split over reads: "visi"+"ble|cam", "cont"+"inue", "o"+"ver", "12"+"|name"', () => {
  const d = decoder();
  const f = files[0]!;
  const h = f.data.length / 2;
  const ev = [
    'visi',
    'ble|cam',
    `${f.data.length}|${f.name}`,
    f.data.subarray(0, h),
    f.data.subarray(h),
    'cont',
    'inue',
    '50',
    '00|x.png',
    f.data,
    'o',
    'ver',
  ].flatMap((s) => d.push(Buffer.isBuffer(s) ? s : Buffer.from(s)));
  const r = summarize(ev);
  assert.equal(r.sessions.length, 1);
  checkFrames(r.frames, [f, { name: 'x.png', data: f.data }]);
  assert.ok(r.over);
});

test('a header with its payload in the same read (a client that ran ahead): the JPEG or PNG start ends the name', () => {
  const d = decoder();
  const jpg = fakeJpeg(4000, 1);
  const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), payload(9, 992)]);
  const ev = [
    Buffer.from('visible|cam'),
    Buffer.concat([Buffer.from(`${jpg.length}|frame 1 été.jpg`), jpg]),
    Buffer.concat([Buffer.from(`continue${png.length}|2.png`), png.subarray(0, 10)]),
    png.subarray(10),
    Buffer.from('over'),
  ].flatMap((b) => d.push(b));
  const r = summarize(ev);
  checkFrames(r.frames, [
    { name: 'frame 1 été.jpg', data: jpg },
    { name: '2.png', data: png },
  ]);
});

test('a zero-length file: no payload, and no "ok" after it (the seed server reads nothing)', () => {
  const d = decoder();
  const ev = ['visible|cam', '0|empty.png', 'continue', '4|a.png', 'ab', 'cd', 'over'].flatMap((s) =>
    d.push(Buffer.from(s)),
  );
  const r = summarize(ev);
  assert.deepEqual(
    r.frames.map((f) => [f.name, f.data.length, f.finalReply]),
    [
      ['empty.png', 0, false],
      ['a.png', 4, true],
    ],
  );
  assert.equal(r.oks, 1 + 1 + 1 + 2);
});

test('a header naming ../x: the frame is refused, its payload read and thrown away, the session goes on', () => {
  const d = decoder();
  const ev = ['visible|cam', '6|../x', 'abc', 'def', 'continue6|ok.png', 'abc', 'def', 'over'].flatMap((s) =>
    d.push(Buffer.from(s)),
  );
  const r = summarize(ev);
  assert.equal(r.frames.length, 2);
  const [bad, good] = r.frames as [
    Extract<TcpDecoderEvent, { type: 'frame' }>,
    Extract<TcpDecoderEvent, { type: 'frame' }>,
  ];
  assert.ok(bad.refused instanceof FramewireError);
  assert.equal(bad.refused.code, 'ERR_UNSAFE_NAME');
  assert.equal(bad.data.length, 0);
  assert.equal(bad.finalReply, true, 'the client still gets its last "ok" and goes on');
  assert.equal(good.refused, undefined);
  assert.equal(good.data.toString(), 'abcdef');
  assert.ok(r.over);
});

test('bad session headers are fatal: no "|", two "|", HTTP, an unsafe folder; a split one is waited for', () => {
  for (const [bytes, reason, pattern] of [
    ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', 'bad-session-header', /not FORMAT\|FOLDER/],
    ['a|b|c', 'bad-session-header', /has 2 "\|", not 1/],
    ['visible|../etc', 'bad-session-header', /stream name "..\/etc" is refused/],
    ['x'.repeat(1100), 'bad-session-header', /not FORMAT\|FOLDER/],
  ] as const) {
    const d = decoder();
    const r = summarize(d.push(Buffer.from(bytes)));
    assert.equal(r.fatal?.reason, reason, bytes);
    assert.match(r.fatal!.error.message, pattern);
    assert.equal(d.state, 'done');
    assert.deepEqual(d.push(Buffer.from('5|a.png')), [], 'nothing is read after a fatal error');
  }
  const d = decoder();
  assert.deepEqual(d.push(Buffer.from('visible')), []);
  assert.equal(summarize(d.push(Buffer.from('|cam'))).sessions.length, 1);
});

test('an absurd length, a header that is not LENGTH|NAME, garbage instead of continue: fatal, with the value named', () => {
  const d = decoder(1000);
  d.push(Buffer.from('visible|cam'));
  const r = summarize(d.push(Buffer.from('99999999999|big.png')));
  assert.equal(r.fatal?.reason, 'too-large');
  assert.equal(r.fatal?.error.code, 'ERR_FRAME_TOO_LARGE');
  assert.match(r.fatal!.error.message, /announces 99999999999 bytes, above the limit of 1000/);

  const d2 = decoder();
  d2.push(Buffer.from('visible|cam'));
  assert.equal(summarize(d2.push(Buffer.from('abc|x.png'))).fatal?.reason, 'bad-header');

  const d3 = decoder();
  for (const s of ['visible|cam', '2|a.png', 'x', 'y']) d3.push(Buffer.from(s));
  assert.equal(summarize(d3.push(Buffer.from('GARBAGE'))).fatal?.reason, 'bad-trailer');
});

test('tolerated: "over" instead of a header (an empty folder), a header without "continue", "continue" twice', () => {
  const d = decoder();
  const r = summarize(['visible|cam', 'over'].flatMap((s) => d.push(Buffer.from(s))));
  assert.ok(r.over);
  assert.equal(r.frames.length, 0);
  const d2 = decoder();
  const r2 = summarize(
    [
      'visible|cam',
      '2|a.png',
      'x',
      'y',
      '2|b.png',
      'x',
      'y',
      'continuecontinue',
      '2|c.png',
      'xy',
      'over',
    ].flatMap((s) => d2.push(Buffer.from(s))),
  );
  assert.deepEqual(
    r2.frames.map((f) => f.name),
    ['a.png', 'b.png', 'c.png'],
  );
});

test('owesReply: a payload stopped short of a boundary owes the client an "ok"; endState names what was cut', () => {
  const d = decoder();
  d.push(Buffer.from('visible|cam'));
  d.push(Buffer.from('10000|a.png'));
  assert.equal(d.owesReply, false);
  d.push(Buffer.alloc(1024));
  assert.equal(d.owesReply, true);
  d.noteReply();
  assert.equal(d.owesReply, false);
  assert.equal(summarize(d.push(Buffer.alloc(4000))).oks, 1, 'boundary 5000 crossed');
  assert.equal(d.owesReply, false);
  d.push(Buffer.alloc(10));
  assert.equal(d.endState(), 'closed after 5034 of 10000 bytes of frame "a.png"');
});

test('nameEnd stops at control bytes and at bytes that cannot be UTF-8', () => {
  const b = (s: string) => Buffer.from(s, 'latin1');
  assert.equal(nameEnd(Buffer.from('abc.png'), 0), 7);
  assert.equal(nameEnd(Buffer.concat([Buffer.from('é.png'), Buffer.from([0xff, 0xd8])]), 0), 6);
  assert.equal(nameEnd(b('a.png\r\n'), 0), 5);
  assert.equal(nameEnd(Buffer.from([0x61, 0xc3]), 0), 1, 'a cut UTF-8 sequence');
});
