/**
 * The ffmpeg source against a real ffmpeg (the PATH's, else the npm package's): generated videos, the test
 * patterns, backpressure, abort, errors, and `framewire send` with ffmpeg inputs. Small pictures and
 * generous timeouts: this runs on a slow, busy 2-core machine; no assertion on speed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../src/cli/run.js';
import { FramewireError } from '../../src/errors.js';
import { connect, createServer, type Frame, type ReceivedFrame } from '../../src/index.js';
import { jpegSize } from '../../src/jpeg.js';
import {
  ffmpegArgs,
  ffmpegSource,
  ffmpegStreamName,
  findFfmpeg,
  isFfmpegInput,
  parseFfmpegInput,
  probeFfmpeg,
  qualityToQscale,
} from '../../src/sources/ffmpeg.js';
import { PTS_FILTERS } from '../../src/sources/ffmpeg-pts.js';
import { capture } from '../helpers/cli.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const T = { timeout: 90_000 };
let root: string;
let cleanup: () => Promise<void>;
let ffmpeg: string;
/** A 160x120 video of exactly 37 frames at 25 fps (mpeg4 in mp4: every ffmpeg build has the encoder). */
let video: string;

function exec(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 60_000 }, (err, _stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stderr),
    );
  });
}

before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-ffmpeg-'));
  ffmpeg = findFfmpeg();
  video = join(root, 'flight.mp4');
  await exec(ffmpeg, [
    ...['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25'],
    ...['-frames:v', '37', '-c:v', 'mpeg4', '-q:v', '5', video],
  ]);
});
after(async () => cleanup());

/** A whole JPEG: SOI at the start, EOI at the end, and a SOF of the expected size. */
function assertJpeg(data: Buffer, width: number, height: number, what: string): void {
  assert.equal(data[0], 0xff, `${what}: SOI`);
  assert.equal(data[1], 0xd8, `${what}: SOI`);
  assert.equal(data[data.length - 2], 0xff, `${what}: EOI`);
  assert.equal(data[data.length - 1], 0xd9, `${what}: EOI`);
  assert.deepEqual(jpegSize(data), { width, height }, `${what}: SOF size`);
}

function isAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `p`, or a failure after `ms` (an iteration that close() did not end would wait forever). */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

async function take(source: AsyncIterable<Frame>, n: number): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const f of source) {
    out.push(f);
    if (out.length >= n) break;
  }
  return out;
}

function isCode(code: string, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof FramewireError, `a FramewireError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

// ---- pure parts --------------------------------------------------------------------------------------

test('isFfmpegInput and parseFfmpegInput tell ffmpeg inputs from folders and images', () => {
  for (const yes of [
    'flight.mp4',
    'a/b/clip.MKV',
    'x.avi',
    'x.mov',
    'x.webm',
    'x.ts',
    'x.flv',
    'x.mjpeg',
    'x.m4v',
    '/dev/video0',
    '/dev/video12',
    'rtsp://cam/stream',
    'rtsps://cam/stream',
    'http://cam/video.mjpg',
    'https://example.com/clip.mp4',
    'testsrc',
    'testsrc:1280x720@30',
    'testsrc:320x240',
    'testsrc:@5',
    'thermal',
    'thermal:160x120@9',
  ]) {
    assert.ok(isFfmpegInput(yes), yes);
  }
  for (const no of [
    'frames',
    'frames/*.jpg',
    'a.jpg',
    'b.png',
    '/dev/video',
    '/dev/sda',
    'testsrc:abc',
    'testsrc2',
    'ftp://x/y.mp4',
    '',
  ]) {
    assert.ok(!isFfmpegInput(no), no);
  }
  assert.deepEqual(parseFfmpegInput('testsrc:1280x720@30'), {
    kind: 'testsrc',
    input: 'testsrc',
    live: true,
    size: { width: 1280, height: 720 },
    fps: 30,
  });
  assert.equal(parseFfmpegInput('flight.mp4')?.live, false);
  assert.equal(parseFfmpegInput('https://example.com/clip.mp4')?.live, false);
  assert.equal(parseFfmpegInput('http://cam/video.cgi')?.live, true);
  assert.equal(parseFfmpegInput('/dev/video2')?.kind, 'camera');
});

test('default stream names are safe', () => {
  assert.equal(ffmpegStreamName('testsrc:640x480@30'), 'testsrc');
  assert.equal(ffmpegStreamName('thermal'), 'thermal');
  assert.equal(ffmpegStreamName('/dev/video3'), 'cam3');
  assert.equal(ffmpegStreamName('rtsp://user:pw@cam/1'), 'rtsp');
  assert.equal(ffmpegStreamName('videos/flight 2 (left).mp4'), 'flight_2_left');
  assert.equal(ffmpegStreamName('..mp4'), 'video');
  assert.equal(ffmpegStreamName('/x/.hidden.mkv'), 'hidden');
});

test('ffmpegArgs: a V4L2 camera with size, fps and quality', () => {
  const args = ffmpegArgs('/dev/video0', { size: '1280x720', fps: 30, quality: 80 });
  const i = args.indexOf('-i');
  assert.deepEqual(args.slice(i - 6, i + 2), [
    '-f',
    'v4l2',
    '-video_size',
    '1280x720',
    '-framerate',
    '30',
    '-i',
    '/dev/video0',
  ]);
  // The only filters print each frame's pts (its capture time): the camera is asked for the mode, not scaled.
  assert.equal(args[args.indexOf('-vf') + 1], PTS_FILTERS);
  assert.ok(!args.includes('-re'));
  assert.deepEqual(args.slice(args.indexOf('-q:v'), args.indexOf('-q:v') + 2), ['-q:v', '8']);
  assert.deepEqual(args.slice(-5), ['-f', 'mpjpeg', '-flush_packets', '1', 'pipe:1']);
  const plain = ffmpegArgs('/dev/video1');
  assert.ok(!plain.includes('-video_size') && !plain.includes('-framerate'));
});

test('ffmpegArgs: RTSP over TCP, HTTP, files with realtime, loop, fps and size', () => {
  const rtsp = ffmpegArgs('rtsp://10.0.0.5:554/live', { fps: 10, size: '640x360' });
  assert.deepEqual(rtsp.slice(rtsp.indexOf('-rtsp_transport'), rtsp.indexOf('-rtsp_transport') + 4), [
    '-rtsp_transport',
    'tcp',
    '-i',
    'rtsp://10.0.0.5:554/live',
  ]);
  assert.equal(rtsp[rtsp.indexOf('-vf') + 1], `fps=10,scale=640:360,${PTS_FILTERS}`);
  const file = ffmpegArgs('flight.mp4', { realtime: true, loop: true });
  const i = file.indexOf('-i');
  assert.deepEqual(file.slice(i - 3, i + 2), ['-re', '-stream_loop', '-1', '-i', 'flight.mp4']);
  assert.equal(file[file.indexOf('-vf') + 1], PTS_FILTERS);
  const fast = ffmpegArgs('flight.mp4');
  assert.ok(!fast.includes('-re') && !fast.includes('-stream_loop'));
  const http = ffmpegArgs('http://cam/video.mjpg');
  assert.equal(http[http.indexOf('-i') + 1], 'http://cam/video.mjpg');
  // Every frame once: passthrough, -fps_mode where the binary knows it.
  assert.equal(fast[fast.indexOf('-vsync') + 1], 'passthrough');
  const caps = { version: '', filters: new Set(['testsrc2']), fpsMode: true };
  assert.equal(ffmpegArgs('flight.mp4', {}, caps).includes('-fps_mode'), true);
});

test('ffmpegArgs: testsrc and thermal are realtime lavfi sources, with an overlay only when drawtext has a font', () => {
  const t = ffmpegArgs('testsrc:320x240@15');
  assert.ok(t.includes('-re'));
  assert.equal(t[t.indexOf('-f') + 1], 'lavfi');
  assert.equal(t[t.indexOf('-i') + 1], 'testsrc2=s=320x240:r=15');
  // Options override the size and rate written in the input; realtime:false generates as fast as read.
  const t2 = ffmpegArgs('testsrc:320x240@15', { size: '64x48', fps: 5, realtime: false });
  assert.equal(t2[t2.indexOf('-i') + 1], 'testsrc2=s=64x48:r=5');
  assert.ok(!t2.includes('-re'));
  assert.equal(ffmpegArgs('testsrc')[ffmpegArgs('testsrc').indexOf('-i') + 1], 'testsrc2=s=640x480:r=30');
  const withFont = {
    version: '',
    filters: new Set(['testsrc2', 'drawtext', 'geq', 'lutrgb']),
    fpsMode: false,
    fontFile: '/fonts/Sans.ttf',
  };
  const overlay = ffmpegArgs('testsrc', {}, withFont);
  assert.match(
    overlay[overlay.indexOf('-i') + 1]!,
    /^testsrc2=s=640x480:r=30,drawtext=fontfile='\/fonts\/Sans.ttf':text='%\{localtime\}/,
  );
  const th = ffmpegArgs('thermal:160x120@9', {}, withFont);
  const graph = th[th.indexOf('-i') + 1]!;
  assert.match(graph, /^nullsrc=s=40x30:r=9,format=gray,geq=lum='clip\(/);
  assert.match(graph, /scale=160:120:flags=bicubic,format=rgb24,lutrgb=r='/);
  assert.match(graph, /,drawtext=/);
  const noGeq = ffmpegArgs('thermal', {}, { version: '', filters: new Set(['testsrc2']), fpsMode: false });
  assert.match(noGeq[noGeq.indexOf('-i') + 1]!, /^testsrc2=s=640x480:r=30,format=gray,boxblur/);
});

test('ffmpegArgs and ffmpegSource refuse bad inputs and options with ERR_BAD_OPTION', () => {
  assert.equal(qualityToQscale(100), 2);
  assert.equal(qualityToQscale(1), 31);
  assert.equal(qualityToQscale(80), 8);
  for (const [input, opts] of [
    ['frames/', {}],
    ['testsrc', { size: '640' }],
    ['testsrc', { size: '0x480' }],
    ['testsrc', { fps: 0 }],
    ['testsrc', { quality: 0 }],
    ['testsrc', { quality: 101 }],
    ['testsrc', { quality: 5.5 }],
    ['testsrc', { stallTimeoutMs: -1 }],
  ] as const) {
    assert.throws(
      () => ffmpegSource(input, opts),
      isCode('ERR_BAD_OPTION'),
      `${input} ${JSON.stringify(opts)}`,
    );
  }
});

test(
  'findFfmpeg: the PATH first, then the npm package, else ERR_FFMPEG_NOT_FOUND with a hint',
  T,
  async () => {
    const { dir, cleanup: done } = await tempDir('fw-path-');
    try {
      const fake = join(dir, 'ffmpeg');
      await writeFile(fake, '#!/bin/sh\nexit 0\n');
      await chmod(fake, 0o755);
      assert.equal(findFfmpeg({ path: `/nonexistent:${dir}`, fromPackage: () => '/pkg/ffmpeg' }), fake);
      // Not on the PATH: the package's binary, when it exists.
      assert.equal(findFfmpeg({ path: '/nonexistent', fromPackage: () => fake }), fake);
      assert.throws(
        () => findFfmpeg({ path: '', fromPackage: () => undefined }),
        (e: unknown) => {
          isCode('ERR_FFMPEG_NOT_FOUND')(e);
          const hint = (e as FramewireError).hint ?? '';
          assert.match(hint, /apt-get install ffmpeg/);
          assert.match(hint, /npm install @ffmpeg-installer\/ffmpeg/);
          return true;
        },
      );
      // A package path that is not there counts as no package.
      assert.throws(
        () => findFfmpeg({ path: '', fromPackage: () => join(dir, 'missing') }),
        isCode('ERR_FFMPEG_NOT_FOUND'),
      );
    } finally {
      await done();
    }
  },
);

test('the ffmpeg found here can be probed', T, async () => {
  const caps = await probeFfmpeg(ffmpeg);
  assert.match(caps.version, /^ffmpeg version /);
  for (const f of ['testsrc2', 'geq', 'lutrgb', 'scale']) assert.ok(caps.filters.has(f), f);
  assert.equal(probeFfmpeg(ffmpeg), probeFfmpeg(ffmpeg), 'cached');
});

// ---- with ffmpeg -------------------------------------------------------------------------------------

test('a generated video sent through a real server arrives as exactly 37 whole JPEGs', T, async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const got: ReceivedFrame[] = [];
  server.on('frame', (f) => got.push(f));
  try {
    const client = await connect(`tcp://127.0.0.1:${server.port}`);
    const st = client.stream('replay', { mode: 'reliable' });
    const source = ffmpegSource(video);
    let n = 0;
    let lastUs = 0;
    for await (const frame of source) {
      assert.equal(frame.contentType, 'image/jpeg');
      assert.equal(frame.name, undefined);
      assert.deepEqual(frame.meta, { source: 'file' });
      assert.equal(frame.width, 160);
      assert.equal(frame.height, 120);
      assert.ok(frame.captureUs! >= lastUs, 'capture times do not go back');
      lastUs = frame.captureUs!;
      await st.send(frame);
      n++;
    }
    const stats = await client.close();
    assert.equal(n, 37);
    assert.equal(stats.framesAcked, 37);
    await waitFor(() => got.length === 37, 20_000, '37 frames at the server');
    got.forEach((f, i) => {
      assert.equal(f.seq, i);
      assert.equal(f.contentType, 'image/jpeg');
      assert.equal(f.width, 160);
      assertJpeg(f.data, 160, 120, `frame ${i}`);
    });
    assert.deepEqual((await source.debug!.exited).code, 0);
  } finally {
    await server.close();
  }
});

test('size and quality: frames are scaled, and a lower quality gives smaller JPEGs', T, async () => {
  const big = await take(ffmpegSource(video, { size: '80x60', quality: 95 }), 5);
  const small = await take(ffmpegSource(video, { size: '80x60', quality: 5 }), 5);
  for (const f of [...big, ...small]) assertJpeg(f.data, 80, 60, 'scaled frame');
  const sum = (fs: Frame[]) => fs.reduce((a, f) => a + f.data.length, 0);
  assert.ok(sum(small) < sum(big), `${sum(small)} < ${sum(big)}`);
});

test('testsrc at 10 fps yields frames whose pixels change over time', T, async () => {
  const frames = await take(ffmpegSource('testsrc:160x120@10'), 10);
  assert.equal(frames.length, 10);
  for (const f of frames) assertJpeg(f.data, 160, 120, 'testsrc');
  assert.ok(!frames[0]!.data.equals(frames[9]!.data), 'frame 1 and frame 10 differ');
  assert.deepEqual(frames[0]!.meta, { source: 'testsrc' });
  // Realtime: ten frames at 10 fps span about 0.9 s of capture times (a lower bound only).
  const span = (frames[9]!.captureUs! - frames[0]!.captureUs!) / 1e6;
  assert.ok(span > 0.5, `capture times span ${span} s`);
});

test(
  "capture times come from ffmpeg's pts: 9 fps frames are exactly 1/9 s apart, near the wall clock",
  T,
  async () => {
    const frames = await take(ffmpegSource('thermal:64x48@9'), 6);
    for (let i = 1; i < frames.length; i++) {
      const gap = frames[i]!.captureUs! - frames[i - 1]!.captureUs!;
      // The pts are exact; the anchor may move earlier (a faster frame), never later: gaps are 1/9 s or less,
      // but for src/time.ts re-anchoring the wall clock on Date.now() (it moves by up to 2 ms + Date.now()'s
      // 1 ms truncation when the monotonic and system clocks drift apart; seen on a busy machine).
      assert.ok(gap > 0 && gap <= 111_112 + 3_000, `gap ${gap} µs`);
    }
    const last = frames[frames.length - 1]!.captureUs!;
    assert.ok(Math.abs(Date.now() * 1000 - last) < 5_000_000, 'capture times are on the wall clock');
  },
);

test('thermal yields false-colour frames that change over time', T, async () => {
  const frames = await take(ffmpegSource('thermal:160x120@10'), 6);
  for (const f of frames) assertJpeg(f.data, 160, 120, 'thermal');
  assert.ok(!frames[0]!.data.equals(frames[5]!.data), 'the picture moves');
  assert.deepEqual(frames[0]!.meta, { source: 'thermal' });
  // Colour, not grey: decode one frame back to raw RGB with ffmpeg and look for pixels with R != B.
  const jpg = join(root, 'thermal.jpg');
  await writeFile(jpg, frames[5]!.data);
  const raw = join(root, 'thermal.rgb');
  await exec(ffmpeg, [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-i',
    jpg,
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    raw,
  ]);
  const px = await readFile(raw);
  assert.equal(px.length, 160 * 120 * 3);
  let coloured = 0;
  for (let i = 0; i < px.length; i += 3) if (Math.abs(px[i]! - px[i + 2]!) > 40) coloured++;
  assert.ok(coloured > 160 * 120 * 0.2, `${coloured} coloured pixels`);
});

test(
  'backpressure: a consumer that stops pulling for 1 s holds at most 2 frames, ffmpeg waits and goes on',
  T,
  async () => {
    // As fast as ffmpeg can: without backpressure hundreds of frames would pile up in that second.
    const source = ffmpegSource('testsrc:160x120@30', { realtime: false });
    const it = source[Symbol.asyncIterator]();
    try {
      const first = await it.next();
      assert.ok(!first.done);
      await sleep(1000);
      const d = source.debug!;
      assert.ok(isAlive(d.pid), 'ffmpeg still runs');
      assert.ok(d.buffered <= 2, `buffered ${d.buffered}`);
      assert.ok(d.maxBuffered <= 2, `max buffered ${d.maxBuffered}`);
      assert.ok(d.paused, 'reading is paused');
      // Unparsed input is bounded by the stream's buffer and a partial frame, far below a second of frames.
      assert.ok(d.bufferedBytes < 512 * 1024, `buffered bytes ${d.bufferedBytes}`);
      const before = d.frames;
      assert.ok(before < 60, `frames read while the consumer slept: ${before}`);
      for (let i = 0; i < 20; i++) assert.ok(!(await it.next()).done);
      assert.ok(d.frames >= before + 18, 'reading resumed');
      assert.ok(d.maxBuffered <= 2);
    } finally {
      await it.return?.();
    }
    assert.ok(!isAlive(source.debug!.pid), 'return() killed ffmpeg');
  },
);

test(
  'dropWhenBehind: a lagging consumer gets the newest frame, drops are counted and reported',
  T,
  async () => {
    const stats: { frames: number; dropped: number; fps: number; at: number }[] = [];
    const source = ffmpegSource('testsrc:160x120@20', {
      dropWhenBehind: true,
      onStats: (s) => stats.push({ ...s, at: performance.now() }),
    });
    const it = source[Symbol.asyncIterator]();
    try {
      assert.ok(!(await it.next()).done);
      await sleep(1500);
      const d = source.debug!;
      assert.ok(!d.paused, 'never paused');
      assert.ok(d.buffered <= 1, `buffered ${d.buffered}`);
      assert.ok(d.dropped > 0, `dropped ${d.dropped}`);
      const next = await it.next();
      assert.ok(!next.done);
      // The frame taken is recent: read within the last second, not the oldest one.
      assert.ok(Date.now() * 1000 - next.value.captureUs! < 1_000_000);
      await waitFor(
        () => stats.some((s) => s.dropped > 0) && stats.length >= 3,
        10_000,
        'onStats with drops',
      );
      // Every report counts what was read and dropped so far, and its fps is the frames read since the
      // previous report over the time since it (reports come at least 950 ms apart, synchronously).
      for (const [i, s] of stats.entries()) {
        assert.ok(s.frames >= s.dropped, `report ${i}: ${s.dropped} dropped of ${s.frames}`);
        if (i === 0) continue;
        const prev = stats[i - 1]!;
        assert.ok(s.frames >= prev.frames && s.dropped >= prev.dropped, `report ${i} counts never go back`);
        const expected = (s.frames - prev.frames) / ((s.at - prev.at) / 1000);
        assert.ok(
          Math.abs(s.fps - expected) <= 0.05 * expected + 0.5,
          `report ${i}: fps ${s.fps}, but ${s.frames - prev.frames} frames came in ${Math.round(s.at - prev.at)} ms`,
        );
      }
      assert.ok(
        stats.some((s) => s.fps > 0),
        'a running 20 fps source reports a rate above 0',
      );
    } finally {
      await it.return?.();
    }
  },
);

test('abort kills ffmpeg and ends the iteration without error', T, async () => {
  const ac = new AbortController();
  const source = ffmpegSource('testsrc:160x120@10', { signal: ac.signal });
  let n = 0;
  const t = setTimeout(() => ac.abort(), 5000);
  for await (const _ of source) {
    n++;
    // Abort while the loop waits for the next frame.
    if (n === 2) setTimeout(() => ac.abort(), 20);
  }
  clearTimeout(t);
  assert.ok(n >= 2);
  const d = source.debug!;
  const exit = await d.exited;
  assert.ok(exit.code !== 0 || exit.signal !== null, `ffmpeg was stopped: ${JSON.stringify(exit)}`);
  assert.ok(!isAlive(d.pid));
  // An aborted source yields nothing more.
  assert.deepEqual(await take(source, 1), []);
});

test('close() stops a running source; break stops it too', T, async () => {
  const source = ffmpegSource('thermal:64x48@10');
  const it = source[Symbol.asyncIterator]();
  assert.ok(!(await it.next()).done);
  const pending = it.next();
  // What is already read may still be delivered (at most this, plus the frame `pending` took); nothing more.
  const queued = source.debug!.buffered;
  await source.close();
  const late: Frame[] = [];
  for (let r = await within(pending, 10_000); !r.done; r = await within(it.next(), 10_000)) {
    late.push(r.value);
    assert.ok(late.length <= queued + 1, `${late.length} frames after close(), ${queued} were queued`);
  }
  for (const f of late) assert.deepEqual([...f.data.subarray(0, 2)], [0xff, 0xd8], 'a whole JPEG');
  assert.equal((await it.next()).done, true, 'the iteration stays ended');
  assert.ok(!isAlive(source.debug!.pid));
  const again = ffmpegSource('testsrc:64x48@10');
  assert.equal((await take(again, 3)).length, 3);
  await again.debug!.exited;
  assert.ok(!isAlive(again.debug!.pid));
});

test('a missing ffmpeg gives ERR_FFMPEG_NOT_FOUND with the hint', T, async () => {
  const source = ffmpegSource('testsrc', { ffmpegPath: '/nonexistent/ffmpeg' });
  await assert.rejects(take(source, 1), (e: unknown) => {
    isCode('ERR_FFMPEG_NOT_FOUND', /\/nonexistent\/ffmpeg/)(e);
    assert.match((e as FramewireError).hint ?? '', /apt-get install ffmpeg/);
    return true;
  });
});

test('a missing video file gives ERR_SOURCE_NOT_FOUND before ffmpeg runs', T, async () => {
  const source = ffmpegSource(join(root, 'nope.mp4'));
  await assert.rejects(source.open(), isCode('ERR_SOURCE_NOT_FOUND', /nope\.mp4/));
  await assert.rejects(take(source, 1), isCode('ERR_SOURCE_NOT_FOUND'));
  assert.equal(source.debug, undefined, 'no ffmpeg was started');
});

test("a corrupt file gives ERR_SOURCE_READ with ffmpeg's message", T, async () => {
  const bad = join(root, 'corrupt.mp4');
  await writeFile(bad, Buffer.from('this is not a video at all '.repeat(100)));
  const source = ffmpegSource(bad);
  await assert.rejects(take(source, 1), (e: unknown) => {
    isCode('ERR_SOURCE_READ', /ffmpeg exited with code \d+ reading .*corrupt\.mp4: /)(e);
    assert.match((e as FramewireError).message, /Invalid data|moov atom|could not find/i);
    return true;
  });
  assert.ok(!isAlive(source.debug!.pid));
});

test('a source that gives no frame fails with ERR_SOURCE_STALLED and ffmpeg is killed', T, async () => {
  // A stand-in ffmpeg: answers the probe, then hangs without output like a dead camera.
  const fake = join(root, 'hang-ffmpeg');
  await writeFile(
    fake,
    [
      '#!/bin/sh',
      'if [ "$1" = "-version" ]; then echo "ffmpeg version fake"; exit 0; fi',
      'if [ "$2" = "-filters" ] || [ "$2" = "-h" ]; then exit 0; fi',
      'echo "connecting..." >&2',
      'exec sleep 30',
    ].join('\n'),
  );
  await chmod(fake, 0o755);
  const source = ffmpegSource('testsrc:64x48@10', { ffmpegPath: fake, stallTimeoutMs: 400 });
  await assert.rejects(
    take(source, 1),
    isCode('ERR_SOURCE_STALLED', /no frame from testsrc.*connecting\.\.\./),
  );
  await source.debug!.exited;
  assert.ok(!isAlive(source.debug!.pid));
});

// ---- the CLI -----------------------------------------------------------------------------------------

test('framewire send <video> --realtime paces the frames at the file rate and sends all 37', T, async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const got: ReceivedFrame[] = [];
  server.on('frame', (f) => got.push(f));
  try {
    const io = capture();
    const started = performance.now();
    const code = await run(
      ['send', video, '--to', `tcp://127.0.0.1:${server.port}`, '--stream', 'replay', '--realtime'],
      io,
    );
    const seconds = (performance.now() - started) / 1000;
    assert.equal(code, 0, io.err());
    assert.equal(got.length, 37);
    assert.equal(got[0]!.stream.name, 'replay');
    assert.equal(got[0]!.stream.mode, 'reliable', 'a video file is reliable by default');
    // 37 frames at 25 fps take 1.44 s of file time: realtime cannot be faster (lower bound only).
    assert.ok(seconds >= 1.2, `took ${seconds} s`);
    const span = (got[36]!.captureUs - got[0]!.captureUs) / 1e6;
    assert.ok(span >= 1.2, `capture times span ${span} s`);
    assert.match(io.err(), /sending .*flight\.mp4 through ffmpeg .* as stream replay \(reliable\)/);
    assert.match(io.err(), /sent 37 frames/);
  } finally {
    await server.close();
  }
});

test(
  'framewire send testsrc / thermal: live by default, default names, --stats lines, Ctrl-C ends it',
  T,
  async () => {
    const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
    const got: ReceivedFrame[] = [];
    server.on('frame', (f) => got.push(f));
    try {
      const io = capture();
      const ac = new AbortController();
      const done = run(
        [
          'send',
          'testsrc:160x120@10',
          '--to',
          `tcp://127.0.0.1:${server.port}`,
          '--stats',
          '--quality',
          '50',
        ],
        { ...io, signal: ac.signal },
      );
      await waitFor(
        () => got.length >= 15 && /fps .* MB\/s .*ack p50/.test(io.err()),
        30_000,
        'frames and a stats line',
      );
      ac.abort();
      assert.equal(await done, 0, io.err());
      assert.equal(got[0]!.stream.name, 'testsrc');
      assert.equal(got[0]!.stream.mode, 'live');
      assert.equal(got[0]!.stream.kind, 'visible');
      assert.match(io.err(), /^testsrc: [\d.]+ fps {2}[\d.]+ MB\/s {2}ack p50 [\d.]+ ms {2}dropped \d+/m);
      assert.match(io.err(), /sent \d+ frames/);

      const io2 = capture();
      const ac2 = new AbortController();
      const done2 = run(['send', 'thermal:64x48@10', '--to', `tcp://127.0.0.1:${server.port}`, '-q'], {
        ...io2,
        signal: ac2.signal,
      });
      await waitFor(() => got.some((f) => f.stream.name === 'thermal'), 30_000, 'a thermal frame');
      ac2.abort();
      assert.equal(await done2, 0, io2.err());
      const th = got.find((f) => f.stream.name === 'thermal')!;
      assert.equal(th.stream.kind, 'infrared');
      assert.equal(th.stream.mode, 'live');
    } finally {
      await server.close();
    }
  },
);

test(
  'framewire send: usage errors for mixed inputs and ffmpeg-only options on folders; missing file',
  T,
  async () => {
    const io = capture();
    assert.equal(await run(['send', video, root, '--to', 'tcp://127.0.0.1:9'], io), 2);
    assert.match(io.err(), /must be the only input/);
    const io2 = capture();
    assert.equal(await run(['send', root, '--to', 'tcp://127.0.0.1:9', '--size', '64x48'], io2), 2);
    assert.match(io2.err(), /ERR_BAD_OPTION: .*--size \(only video files/);
    const io3 = capture();
    assert.equal(await run(['send', 'testsrc', '--to', 'tcp://127.0.0.1:9', '--quality', '0'], io3), 2);
    const io4 = capture();
    assert.equal(await run(['send', join(root, 'missing.mkv'), '--to', 'tcp://127.0.0.1:9'], io4), 1);
    assert.match(io4.err(), /ERR_SOURCE_NOT_FOUND/);
  },
);
