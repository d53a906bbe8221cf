import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  appendFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  realpath,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FramewireError } from '../../src/errors.js';
import { FolderSink, type FolderSinkOptions } from '../../src/sinks/folder.js';
import type { ReceivedFrame, ReceivedMessage, StreamInfo } from '../../src/types.js';
import { indexSeqs } from '../helpers/folders.js';
import { receivedFrame } from '../helpers/frames.js';
import { payload } from '../helpers/tmp.js';

let tmp: string;
let dirCount = 0;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'fw-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A fresh output folder (not yet created) inside the test's temp dir. */
function outDir(): string {
  dirCount += 1;
  return join(tmp, `out${dirCount}`);
}

function streamInfo(name = 'cam0', epoch = 'e1'): StreamInfo {
  return { name, kind: 'visible', mode: 'reliable', epoch, sender: '10.0.0.2:5000' };
}

function frame(seq: number, over: Partial<ReceivedFrame> = {}): ReceivedFrame {
  return receivedFrame(seq, {
    stream: streamInfo(),
    captureUs: 1_700_000_000_000_000 + seq,
    receivedUs: 1_700_000_000_500_000 + seq,
    data: Buffer.from(`frame ${seq} \u00ff\u0000 bytes`, 'latin1'),
    crc: 1000 + seq,
    ...over,
  });
}

function message(seq: number, over: Partial<ReceivedMessage> = {}): ReceivedMessage {
  const json = { seq, boxes: [[1, 2, 3, 4]], label: 'line\nbreak' };
  return {
    sender: '10.0.0.2:5000',
    epoch: 'e1',
    seq,
    receivedUs: 1_700_000_000_000_000 + seq,
    ref: { stream: 'cam0', seq: 41 },
    json,
    text: JSON.stringify(json, null, 2),
    ...over,
  };
}

async function open(dir: string, options?: FolderSinkOptions): Promise<FolderSink> {
  return FolderSink.open(dir, options);
}

async function lines(path: string): Promise<unknown[]> {
  const text = await readFile(path, 'utf8');
  assert.ok(text.endsWith('\n'), 'every line ends with a newline');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as unknown);
}

/** The files of a folder, sorted; without latest.jpg (test/sinks/folder-latest.test.ts covers it). */
async function listing(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== 'latest.jpg').sort();
}

/** Open file descriptors of this process, where the platform shows them (Linux); else undefined. */
/** How many of this process's open file descriptors point inside `dir` (undefined where /proc is missing).
 * Counting only those keeps the check apart from sockets and pipes that the test runner opens and closes. */
async function openFdsUnder(dir: string): Promise<number | undefined> {
  let fds: string[];
  try {
    fds = await readdir('/proc/self/fd');
  } catch {
    return undefined;
  }
  const real = await realpath(dir);
  let n = 0;
  for (const fd of fds) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(`${real}/`) || target === real) n++;
  }
  return n;
}

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof FramewireError, `expected a FramewireError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  };
}

describe('FolderSink frames', () => {
  test('saves frames byte-identical under their own names and indexes them', async () => {
    const out = outDir();
    const sink = await open(out);
    const a = frame(0, { name: 'a.jpg', width: 640, height: 480, meta: { exposure: 12 } });
    const b = frame(1, { name: 'b.png', contentType: 'image/png' });
    await sink.frame(a);
    await sink.frame(b);
    await sink.close();

    assert.deepEqual(await listing(join(out, 'cam0')), ['a.jpg', 'b.png', 'index.jsonl']);
    assert.deepEqual(await readFile(join(out, 'cam0', 'a.jpg')), a.data);
    assert.deepEqual(await readFile(join(out, 'cam0', 'b.png')), b.data);
    const text = await readFile(join(out, 'cam0', 'index.jsonl'), 'utf8');
    const [l0] = text.split('\n');
    // Key order is part of the format people grep and diff.
    assert.ok(l0?.startsWith('{"seq":0,"name":"a.jpg","bytes":'), l0);
    assert.deepEqual(await lines(join(out, 'cam0', 'index.jsonl')), [
      {
        seq: 0,
        name: 'a.jpg',
        bytes: a.data.length,
        captureUs: a.captureUs,
        receivedUs: a.receivedUs,
        contentType: 'image/jpeg',
        epoch: 'e1',
        sender: '10.0.0.2:5000',
        crc: 1000,
        width: 640,
        height: 480,
        meta: { exposure: 12 },
      },
      {
        seq: 1,
        name: 'b.png',
        bytes: b.data.length,
        captureUs: b.captureUs,
        receivedUs: b.receivedUs,
        contentType: 'image/png',
        epoch: 'e1',
        sender: '10.0.0.2:5000',
        crc: 1001,
      },
    ]);
  });

  test('names unnamed frames by epoch and sequence number with an extension from the content type', async () => {
    const out = outDir();
    const sink = await open(out);
    await sink.frame(frame(7));
    await sink.frame(frame(8, { contentType: 'image/png' }));
    await sink.frame(
      frame(9, { contentType: 'raw', pixelFormat: 'gray8', width: 4, height: 2, data: Buffer.alloc(8, 7) }),
    );
    await sink.frame(frame(1_234_567_890, { contentType: 'application/octet-stream' }));
    await sink.close();
    assert.deepEqual(await listing(join(out, 'cam0')), [
      'e1-000000007.jpg',
      'e1-000000008.png',
      'e1-000000009.raw',
      'e1-1234567890.bin',
      'index.jsonl',
    ]);
    assert.deepEqual(await readFile(join(out, 'cam0', 'e1-000000009.raw')), Buffer.alloc(8, 7));
    const index = (await lines(join(out, 'cam0', 'index.jsonl'))) as Record<string, unknown>[];
    assert.deepEqual(
      index.map((e) => e.name),
      ['e1-000000007.jpg', 'e1-000000008.png', 'e1-000000009.raw', 'e1-1234567890.bin'],
    );
    assert.equal(index[2]?.pixelFormat, 'gray8');
    assert.equal(index[0]?.pixelFormat, undefined);
    assert.ok(!('meta' in (index[0] ?? {})));
  });

  test('a later frame of the same name is kept beside the first, or replaces it with onConflict: overwrite', async () => {
    const out = outDir();
    const sink = await open(out);
    await sink.frame(frame(0, { name: 'shot.jpg', data: Buffer.from('old') }));
    await sink.frame(frame(1, { name: 'shot.jpg', data: Buffer.from('new') }));
    await sink.frame(frame(2, { name: 'shot.jpg', data: Buffer.from('newer') }));
    await sink.close();
    assert.equal(await readFile(join(out, 'cam0', 'shot.jpg'), 'utf8'), 'old');
    assert.equal(await readFile(join(out, 'cam0', 'shot~e1.jpg'), 'utf8'), 'new');
    assert.equal(await readFile(join(out, 'cam0', 'shot~e1-2.jpg'), 'utf8'), 'newer');
    const index = (await lines(join(out, 'cam0', 'index.jsonl'))) as Record<string, unknown>[];
    assert.deepEqual(
      index.map((e) => e.name),
      ['shot.jpg', 'shot~e1.jpg', 'shot~e1-2.jpg'],
    );

    const out2 = outDir();
    const sink2 = await open(out2, { onConflict: 'overwrite' });
    await sink2.frame(frame(0, { name: 'shot.jpg', data: Buffer.from('old') }));
    await sink2.frame(frame(1, { name: 'shot.jpg', data: Buffer.from('new') }));
    await sink2.close();
    assert.deepEqual(await listing(join(out2, 'cam0')), ['index.jsonl', 'shot.jpg']);
    assert.equal(await readFile(join(out2, 'cam0', 'shot.jpg'), 'utf8'), 'new');
  });

  test('concurrent first frames of one stream, and of many streams, share one setup each', async () => {
    const out = outDir();
    const sink = await open(out, { fsync: true });
    const jobs: Promise<void>[] = [];
    for (let s = 0; s < 5; s++) {
      for (let i = 0; i < 4; i++) {
        jobs.push(sink.frame(frame(i, { stream: streamInfo(`cam${s}`), name: `f${i}.jpg` })));
      }
    }
    await Promise.all(jobs);
    await sink.close();
    // A second setup of the same stream would leave an index handle that close() does not know about.
    const left = await openFdsUnder(out);
    assert.ok(left === undefined || left === 0, `${left} file handles left open under ${out}`);
    for (let s = 0; s < 5; s++) {
      assert.deepEqual(await listing(join(out, `cam${s}`)), [
        'f0.jpg',
        'f1.jpg',
        'f2.jpg',
        'f3.jpg',
        'index.jsonl',
      ]);
      const seqs = ((await lines(join(out, `cam${s}`, 'index.jsonl'))) as { seq: number }[]).map(
        (e) => e.seq,
      );
      assert.deepEqual(
        seqs.sort((x, y) => x - y),
        [0, 1, 2, 3],
      );
    }
  });

  test('the constructor alone works: the first write creates the output folder', async () => {
    const out = join(outDir(), 'deeper', 'still');
    const sink = new FolderSink(out);
    await sink.frame(frame(0));
    await sink.close();
    assert.deepEqual(await listing(join(out, 'cam0')), ['e1-000000000.jpg', 'index.jsonl']);
  });

  test('temporary files of a writer that died are removed; those of a live writer are kept', async () => {
    const out = outDir();
    await mkdir(join(out, 'cam0'), { recursive: true });
    // pid 2^22+1 is above Linux's pid_max default, so no process runs under it.
    const dead = `.fw-tmp-${2 ** 22 + 1}-abcd-1`;
    const live = `.fw-tmp-${process.pid}-beef-1`;
    await writeFile(join(out, 'cam0', dead), 'half a frame');
    await writeFile(join(out, 'cam0', live), 'being written');
    const sink = await open(out);
    await sink.frame(frame(0, { name: 'a.jpg' }));
    await sink.close();
    const names = await readdir(join(out, 'cam0'));
    assert.ok(!names.includes(dead), 'the dead writer leftover is gone');
    assert.ok(names.includes(live), 'a live writer file is kept');
  });
});

describe('FolderSink names taken', () => {
  for (const fsync of [false, true]) {
    test(`a copy left without its index line (same bytes) is taken as it is; a different file is kept${fsync ? ' (fsync: the copy is flushed)' : ''}`, async () => {
      const out = outDir();
      const sink = await open(out, { fsync });
      await sink.frame(frame(0, { name: 'first.jpg' }));
      const data = Buffer.from('the frame itself');
      // As a crash between the link and the index append leaves it.
      await writeFile(join(out, 'cam0', 'orphan.jpg'), data);
      await writeFile(join(out, 'cam0', 'foreign.jpg'), 'a file of someone else');
      await sink.frame(frame(1, { name: 'orphan.jpg', data }));
      await sink.frame(frame(2, { name: 'foreign.jpg', data: Buffer.from('frame 2') }));
      await sink.close();
      assert.deepEqual(await listing(join(out, 'cam0')), [
        'first.jpg',
        'foreign.jpg',
        'foreign~e1.jpg',
        'index.jsonl',
        'orphan.jpg',
      ]);
      assert.equal(await readFile(join(out, 'cam0', 'foreign.jpg'), 'utf8'), 'a file of someone else');
      const index = (await lines(join(out, 'cam0', 'index.jsonl'))) as Record<string, unknown>[];
      assert.deepEqual(
        index.map((e) => e.name),
        ['first.jpg', 'orphan.jpg', 'foreign~e1.jpg'],
      );
    });
  }

  test('without hard links (link() answers EPERM, as on FAT or exFAT) frames are renamed into place, never over a name', async () => {
    const saved = { linkSync: fs.linkSync, link: fs.promises.link };
    const eperm = (path: unknown) =>
      Object.assign(new Error(`EPERM: operation not permitted, link '${String(path)}'`), { code: 'EPERM' });
    fs.linkSync = ((p: string) => {
      throw eperm(p);
    }) as typeof fs.linkSync;
    fs.promises.link = (async (p: string) => {
      throw eperm(p);
    }) as typeof fs.promises.link;
    syncBuiltinESMExports();
    try {
      // The synchronous path (small frames) and the thread pool's.
      for (const syncWriteMaxBytes of [1024 * 1024, 0]) {
        const out = outDir();
        const sink = await open(out, { syncWriteMaxBytes });
        await sink.frame(frame(0));
        await sink.frame(frame(1, { name: 'shot.jpg', data: Buffer.from('one') }));
        await writeFile(join(out, 'cam0', 'taken.jpg'), 'someone else');
        await sink.frame(frame(2, { name: 'taken.jpg', data: Buffer.from('two') }));
        await sink.close();
        assert.deepEqual(await listing(join(out, 'cam0')), [
          'e1-000000000.jpg',
          'index.jsonl',
          'shot.jpg',
          'taken.jpg',
          'taken~e1.jpg',
        ]);
        assert.equal(await readFile(join(out, 'cam0', 'taken.jpg'), 'utf8'), 'someone else');
        assert.equal(await readFile(join(out, 'cam0', 'taken~e1.jpg'), 'utf8'), 'two');
        assert.deepEqual(await indexSeqs(join(out, 'cam0')), [0, 1, 2]);
      }
    } finally {
      fs.linkSync = saved.linkSync;
      fs.promises.link = saved.link;
      syncBuiltinESMExports();
    }
  });

  test("onConflict: 'refuse' rejects with ERR_NAME_TAKEN, writes nothing, and later frames go on", async () => {
    const out = outDir();
    const sink = await open(out, { onConflict: 'refuse' });
    await sink.frame(frame(0, { name: 'a.jpg', data: Buffer.from('one') }));
    const taken = sink.frame(frame(1, { name: 'a.jpg', data: Buffer.from('two') }));
    const next = sink.frame(frame(2, { name: 'b.jpg' }));
    await assert.rejects(taken, (err: unknown) => {
      isCode('ERR_NAME_TAKEN')(err);
      const e = err as FramewireError;
      assert.equal(e.seq, 1);
      assert.match(e.message, /a\.jpg/);
      return true;
    });
    await next;
    await sink.close();
    assert.deepEqual(await listing(join(out, 'cam0')), ['a.jpg', 'b.jpg', 'index.jsonl']);
    assert.equal(await readFile(join(out, 'cam0', 'a.jpg'), 'utf8'), 'one');
  });

  test('keep-both gives up with ERR_NAME_TAKEN past 100 alternatives, or when none fits in 255 bytes', async () => {
    const out = outDir();
    const sink = await open(out);
    await sink.frame(frame(0, { name: 'first.jpg' }));
    const dir = join(out, 'cam0');
    await writeFile(join(dir, 'shot.jpg'), 'other');
    for (let i = 1; i <= 100; i++)
      await writeFile(join(dir, `shot~e1${i === 1 ? '' : `-${i}`}.jpg`), 'other');
    await assert.rejects(
      sink.frame(frame(1, { name: 'shot.jpg', data: Buffer.from('mine') })),
      (err: unknown) => {
        isCode('ERR_NAME_TAKEN')(err);
        assert.match((err as Error).message, /100 alternatives/);
        return true;
      },
    );
    // An extension of 253 bytes: "a.xxx…" is a valid name, but no "a~e1.xxx…" fits.
    const long = `a.${'x'.repeat(253)}`;
    await writeFile(join(dir, long), 'other');
    await assert.rejects(sink.frame(frame(1, { name: long, data: Buffer.from('mine') })), (err: unknown) => {
      isCode('ERR_NAME_TAKEN')(err);
      assert.match((err as Error).message, /255 bytes/);
      return true;
    });
    // A long name of 4-byte characters is shortened a whole character at a time.
    const emoji = `ab${'\u{1F600}'.repeat(62)}.jpg`; // 254 bytes
    await writeFile(join(dir, emoji), 'other');
    await sink.frame(frame(1, { name: emoji, data: Buffer.from('mine') }));
    await sink.close();
    const lines = (await readFile(join(dir, 'index.jsonl'), 'utf8')).trim().split('\n');
    const saved = (JSON.parse(lines.at(-1)!) as { name: string }).name;
    assert.match(saved, /^ab(\u{1F600}){61}~e1\.jpg$/u);
    assert.ok(Buffer.byteLength(saved) <= 255);
    assert.equal(await readFile(join(dir, saved), 'utf8'), 'mine');
  });

  test('an idleCloseMs longer than a timer can wait (2^31 ms) sweeps at that bound, without a timer overflow', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const sink = await open(outDir(), { idleCloseMs: 1e10 });
      await sink.frame(frame(0));
      await sink.close();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.ok(!warnings.includes('TimeoutOverflowWarning'), warnings.join(', '));
  });

  test('bad options are refused with ERR_BAD_OPTION', () => {
    for (const bad of [
      { writeConcurrency: 0 },
      { writeConcurrency: 1.5 },
      { onConflict: 'replace' as never },
      { idleCloseMs: -1 },
      { syncWriteMaxBytes: -1 },
      { syncWriteMaxBytes: Number.NaN },
      { syncWriteSlowMs: -1 },
      { syncBackoffMs: 'soon' as never },
    ]) {
      assert.throws(() => new FolderSink(outDir(), bad), isCode('ERR_BAD_OPTION'), JSON.stringify(bad));
    }
  });

  for (const [how, sync] of [
    ['on the thread pool', 0],
    ['synchronously', undefined],
  ] as const) {
    test(`many frames of one stream at once settle in order, with index lines in order (written ${how})`, async () => {
      const out = outDir();
      // On a busy machine any write can stall for milliseconds; none may turn the synchronous path off here.
      const sink = await open(out, {
        writeConcurrency: 8,
        syncWriteSlowMs: 60_000,
        ...(sync === undefined ? {} : { syncWriteMaxBytes: sync }),
      });
      const settled: number[] = [];
      const jobs = [];
      for (let i = 0; i < 200; i++) {
        const f = frame(i, { data: payload(i, 1000 + ((i * 7919) % 20_000)) });
        jobs.push(sink.frame(f).then(() => settled.push(i)));
      }
      await Promise.all(jobs);
      await sink.close();
      assert.deepEqual(settled, [...Array(200).keys()]);
      const index = (await lines(join(out, 'cam0', 'index.jsonl'))) as { seq: number }[];
      assert.deepEqual(
        index.map((e) => e.seq),
        [...Array(200).keys()],
      );
      const w = sink.writes;
      assert.equal(sync === 0 ? w.pool : w.sync, 200, JSON.stringify(w));
    });
  }
});

describe('FolderSink resume points', () => {
  test('0 for an unknown stream, 1 + highest seq after writing, and again after a restart', async () => {
    const out = outDir();
    const sink = await open(out);
    assert.equal(await sink.resumePoint(streamInfo()), 0);
    for (let i = 0; i < 5; i++) await sink.frame(frame(i));
    assert.equal(await sink.resumePoint(streamInfo()), 5);
    await sink.close();

    const again = await open(out);
    assert.equal(await again.resumePoint(streamInfo()), 5);
    await again.frame(frame(5));
    assert.equal(await again.resumePoint(streamInfo()), 6);
    assert.equal(await again.resumePoint(streamInfo('cam1')), 0);
    await again.close();
  });

  test('resume points are per epoch', async () => {
    const out = outDir();
    const sink = await open(out);
    for (let i = 0; i < 3; i++) await sink.frame(frame(i, { stream: streamInfo('cam0', 'old') }));
    for (let i = 0; i < 10; i++) await sink.frame(frame(i, { stream: streamInfo('cam0', 'new') }));
    assert.equal(await sink.resumePoint(streamInfo('cam0', 'old')), 3);
    assert.equal(await sink.resumePoint(streamInfo('cam0', 'new')), 10);
    assert.equal(await sink.resumePoint(streamInfo('cam0', 'other')), 0);
    await sink.close();

    const again = await open(out);
    assert.equal(await again.resumePoint(streamInfo('cam0', 'old')), 3);
    assert.equal(await again.resumePoint(streamInfo('cam0', 'new')), 10);
    assert.equal(await again.resumePoint(streamInfo('cam0', 'other')), 0);
    await again.close();
  });

  test('a torn last line is ignored, and the next line starts on a fresh line', async () => {
    const out = outDir();
    const sink = await open(out);
    for (let i = 0; i < 3; i++) await sink.frame(frame(i));
    await sink.close();
    // A crash in the middle of appending the line of frame 3.
    await appendFile(join(out, 'cam0', 'index.jsonl'), '{"seq":3,"name":"000000003.jpg","by');

    const again = await open(out);
    assert.equal(await again.resumePoint(streamInfo()), 3);
    await again.frame(frame(3));
    await again.close();

    const third = await open(out);
    assert.equal(await third.resumePoint(streamInfo()), 4);
    await third.close();
    const text = await readFile(join(out, 'cam0', 'index.jsonl'), 'utf8');
    const parsed = text
      .split('\n')
      .filter((l) => l !== '')
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as { seq: number }];
        } catch {
          return [];
        }
      });
    assert.deepEqual(
      parsed.map((e) => e.seq),
      [0, 1, 2, 3],
    );
  });

  test('a frame stored while the index is being read counts in that resume point', async () => {
    const out = outDir();
    await mkdir(join(out, 'cam0'), { recursive: true });
    // An index long enough (100k lines, many reads) that a small frame is stored before it is all read.
    const n = 100_000;
    const parts: string[] = [];
    for (let i = 0; i < n; i++) {
      parts.push(
        `{"seq":${i},"name":"${String(i).padStart(9, '0')}.jpg","bytes":4,"captureUs":1700000000000000,` +
          `"receivedUs":1700000000000001,"contentType":"image/jpeg","epoch":"e1","sender":"h:1","crc":1}\n`,
      );
    }
    await writeFile(join(out, 'cam0', 'index.jsonl'), parts.join(''));
    const sink = await open(out);
    let answered = false;
    const point = sink.resumePoint(streamInfo()).finally(() => {
      answered = true;
    });
    await sink.frame(frame(n));
    assert.equal(answered, false, 'precondition: the frame was stored while the index was still being read');
    // Stored before the answer: counted, whichever of the index read and the in-memory note sees it.
    assert.equal(await point, n + 1);
    assert.equal(await sink.resumePoint(streamInfo()), n + 1);
    await sink.close();
  });

  test('a frame stored after the resume point was answered moves it on', async () => {
    const out = outDir();
    const sink = await open(out);
    for (let i = 0; i < 3; i++) await sink.frame(frame(i));
    await sink.close();
    const again = await open(out);
    assert.equal(await again.resumePoint(streamInfo()), 3);
    await again.frame(frame(3));
    assert.equal(await again.resumePoint(streamInfo()), 4);
    await again.close();
  });

  test('a large index is read quickly', async () => {
    const out = outDir();
    await mkdir(join(out, 'cam0'), { recursive: true });
    const parts: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      const epoch = i % 2 === 0 ? 'even' : 'odd';
      parts.push(
        `{"seq":${i},"name":"${String(i).padStart(9, '0')}.jpg","bytes":123456,"captureUs":1700000000000000,` +
          `"receivedUs":1700000000000001,"contentType":"image/jpeg","epoch":"${epoch}","sender":"h:1","crc":1}\n`,
      );
    }
    await writeFile(join(out, 'cam0', 'index.jsonl'), parts.join(''));
    const sink = await open(out);
    const t0 = performance.now();
    assert.equal(await sink.resumePoint(streamInfo('cam0', 'even')), 99_999);
    const ms = performance.now() - t0;
    assert.equal(await sink.resumePoint(streamInfo('cam0', 'odd')), 100_000);
    await sink.close();
    assert.ok(ms < 5000, `reading 100k index lines took ${ms.toFixed(0)} ms`);
  });
});

describe('FolderSink name safety', () => {
  const unsafe = ['..', '../x', '/etc/passwd', 'a\u0000b', 'n'.repeat(300), 'index.jsonl', '.hidden'];

  for (const name of unsafe) {
    test(`refuses the file name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…` : name)}`, async () => {
      const out = outDir();
      const sink = await open(out);
      await assert.rejects(sink.frame(frame(0, { name })), isCode('ERR_UNSAFE_NAME'));
      await sink.close();
      // Not even the stream folder is created for a refused frame.
      assert.deepEqual(await listing(out), []);
    });
  }

  for (const name of [...unsafe.filter((n) => n !== 'index.jsonl'), 'messages.jsonl']) {
    test(`refuses the stream name ${JSON.stringify(name.length > 20 ? `${name.slice(0, 8)}…` : name)}`, async () => {
      const out = outDir();
      const sink = await open(out);
      await assert.rejects(sink.frame(frame(0, { stream: streamInfo(name) })), isCode('ERR_UNSAFE_NAME'));
      await assert.rejects(sink.resumePoint(streamInfo(name)), isCode('ERR_UNSAFE_NAME'));
      await sink.close();
      assert.deepEqual(await listing(out), []);
      // '../x' would have landed next to the output folder.
      assert.ok(!(await listing(tmp)).includes('x'));
    });
  }

  test('a symlink at the target name is never written through: kept beside, or replaced on overwrite', async () => {
    const outside = join(tmp, 'outside-file');
    await mkdir(outside);
    const victim = join(outside, 'file');
    await writeFile(victim, 'precious');
    for (const onConflict of ['keep-both', 'overwrite'] as const) {
      const out = outDir();
      const sink = await open(out, { onConflict });
      await sink.frame(frame(0, { name: 'first.jpg' }));
      await symlink(victim, join(out, 'cam0', 'evil.jpg'));
      const f = frame(1, { name: 'evil.jpg', data: Buffer.from('payload') });
      await sink.frame(f);
      await sink.close();
      assert.equal(await readFile(victim, 'utf8'), 'precious');
      const saved = join(out, 'cam0', onConflict === 'overwrite' ? 'evil.jpg' : 'evil~e1.jpg');
      const st = await lstat(saved);
      assert.ok(st.isFile() && !st.isSymbolicLink());
      assert.equal(await readFile(saved, 'utf8'), 'payload');
    }
  });

  test('a stream folder that is a symlink is refused', async () => {
    const out = outDir();
    const outside = join(tmp, 'outside-dir');
    await mkdir(outside);
    await mkdir(out);
    await symlink(outside, join(out, 'cam0'));
    const sink = await open(out);
    await assert.rejects(sink.frame(frame(0)), (err: unknown) => {
      isCode('ERR_UNSAFE_NAME')(err);
      assert.match((err as Error).message, /cam0 is refused: it is a symbolic link/);
      return true;
    });
    await assert.rejects(sink.resumePoint(streamInfo()), isCode('ERR_UNSAFE_NAME'));
    // Still refused on the next frame: a refusal is not forgotten, it is checked again.
    await assert.rejects(sink.frame(frame(0)), isCode('ERR_UNSAFE_NAME'));
    await sink.close();
    assert.deepEqual(await listing(outside), []);
  });

  test('a stream folder name taken by a file is refused', async () => {
    const out = outDir();
    await mkdir(out);
    await writeFile(join(out, 'cam0'), 'not a folder');
    const sink = await open(out);
    await assert.rejects(sink.frame(frame(0)), isCode('ERR_UNSAFE_NAME'));
    await sink.close();
  });

  test('an index.jsonl that is a symlink is refused', async () => {
    const out = outDir();
    const outside = join(tmp, 'outside-index');
    await writeFile(outside, 'precious\n');
    await mkdir(join(out, 'cam0'), { recursive: true });
    await symlink(outside, join(out, 'cam0', 'index.jsonl'));
    const sink = await open(out);
    await assert.rejects(sink.frame(frame(0)), isCode('ERR_UNSAFE_NAME'));
    await assert.rejects(sink.resumePoint(streamInfo()), isCode('ERR_UNSAFE_NAME'));
    await sink.close();
    assert.equal(await readFile(outside, 'utf8'), 'precious\n');
  });
});

describe('FolderSink write failures', () => {
  test('a failed rename rejects with ERR_WRITE_FAILED and leaves no trace', async () => {
    const out = outDir();
    // overwrite: the only policy that renames over an existing name (the others keep the folder and go on).
    const sink = await open(out, { onConflict: 'overwrite' });
    await sink.frame(frame(0, { name: 'good.jpg' }));
    const indexBefore = await readFile(join(out, 'cam0', 'index.jsonl'));
    // Renaming a file over a non-empty folder fails even for root, unlike chmod.
    await mkdir(join(out, 'cam0', 'blocked.jpg', 'inside'), { recursive: true });

    await assert.rejects(sink.frame(frame(1, { name: 'blocked.jpg' })), (err: unknown) => {
      isCode('ERR_WRITE_FAILED')(err);
      const e = err as FramewireError;
      assert.match(e.message, /blocked\.jpg/);
      assert.match(e.message, /\b(EISDIR|ENOTEMPTY|EEXIST|EPERM)\b/);
      assert.equal(e.stream, 'cam0');
      assert.equal(e.seq, 1);
      return true;
    });
    assert.deepEqual(await listing(join(out, 'cam0')), ['blocked.jpg', 'good.jpg', 'index.jsonl']);
    assert.deepEqual(await readFile(join(out, 'cam0', 'index.jsonl')), indexBefore);
    assert.deepEqual(await readFile(join(out, 'cam0', 'good.jpg')), frame(0).data);
    assert.equal(await sink.resumePoint(streamInfo()), 1);

    // The sink keeps working after the failure.
    await sink.frame(frame(1, { name: 'other.jpg' }));
    assert.equal(await sink.resumePoint(streamInfo()), 2);
    await sink.close();
  });

  test('after a failed frame, a later one handed in before it is sent again is not recorded (no hole)', async () => {
    const out = outDir();
    const sink = await open(out, { onConflict: 'overwrite', writeConcurrency: 4 });
    await mkdir(join(out, 'cam0', 'blocked.jpg', 'inside'), { recursive: true });
    const named = (seq: number, name: string) => frame(seq, { name });
    // As the receiver does: frames 0-2 under way at once; frame 3 comes once frame 0 is acknowledged, here
    // after frame 1 has already failed.
    const p0 = sink.frame(named(0, 'a.jpg'));
    const p1 = sink.frame(named(1, 'blocked.jpg'));
    const p2 = sink.frame(named(2, 'c.jpg'));
    p2.catch(() => {});
    await p0;
    await assert.rejects(p1, isCode('ERR_WRITE_FAILED'));
    await assert.rejects(sink.frame(named(3, 'd.jpg')), isCode('ERR_WRITE_FAILED'));
    await assert.rejects(p2, isCode('ERR_WRITE_FAILED'));
    assert.equal(await sink.resumePoint(streamInfo()), 1, 'frame 1 is still to be sent');
    assert.deepEqual(await indexSeqs(join(out, 'cam0')), [0]);
    // Frame 3 was not even written (frame 2, under way when frame 1 failed, may stay: under overwrite a
    // file is never removed, it may have replaced one).
    assert.ok(!(await listing(join(out, 'cam0'))).includes('d.jpg'));
    // The sender sends frame 1 again (the folder fixed): it and the frames after it are recorded.
    await rm(join(out, 'cam0', 'blocked.jpg'), { recursive: true });
    for (const [seq, name] of [
      [1, 'blocked.jpg'],
      [2, 'c.jpg'],
      [3, 'd.jpg'],
    ] as const) {
      await sink.frame(named(seq, name));
    }
    assert.equal(await sink.resumePoint(streamInfo()), 4);
    assert.deepEqual(await indexSeqs(join(out, 'cam0')), [0, 1, 2, 3]);
    await sink.close();
  });

  test('an output folder that cannot be created rejects with ERR_WRITE_FAILED', async () => {
    const file = join(tmp, 'a-file');
    await writeFile(file, '');
    await assert.rejects(FolderSink.open(join(file, 'out')), (err: unknown) => {
      isCode('ERR_WRITE_FAILED')(err);
      assert.match((err as Error).message, /ENOTDIR|EEXIST/);
      return true;
    });
  });
});

describe('FolderSink messages and close', () => {
  test('appends one JSON line per message to messages.jsonl', async () => {
    const out = outDir();
    const sink = await open(out);
    await Promise.all([sink.message(message(0)), sink.message(message(1, { ref: undefined }))]);
    await sink.message(message(2, { json: 'just a string' }));
    await sink.close();
    const text = await readFile(join(out, 'messages.jsonl'), 'utf8');
    assert.equal(text.split('\n').length, 4, 'three lines, each ending with a newline');
    assert.ok(text.startsWith('{"receivedUs":'));
    assert.deepEqual(await lines(join(out, 'messages.jsonl')), [
      {
        receivedUs: 1_700_000_000_000_000,
        sender: '10.0.0.2:5000',
        epoch: 'e1',
        seq: 0,
        ref: { stream: 'cam0', seq: 41 },
        json: message(0).json,
      },
      {
        receivedUs: 1_700_000_000_000_001,
        sender: '10.0.0.2:5000',
        epoch: 'e1',
        seq: 1,
        json: message(1).json,
      },
      {
        receivedUs: 1_700_000_000_000_002,
        sender: '10.0.0.2:5000',
        epoch: 'e1',
        seq: 2,
        ref: { stream: 'cam0', seq: 41 },
        json: 'just a string',
      },
    ]);
  });

  test('close() is idempotent and later writes reject with ERR_CLOSED', async () => {
    const out = outDir();
    const sink = await open(out);
    const pending = sink.frame(frame(0));
    const closing = sink.close();
    await pending;
    await closing;
    await sink.close();
    await Promise.all([sink.close(), sink.close()]);
    await assert.rejects(sink.frame(frame(1)), isCode('ERR_CLOSED'));
    await assert.rejects(sink.message(message(0)), isCode('ERR_CLOSED'));
    assert.deepEqual(await listing(join(out, 'cam0')), ['e1-000000000.jpg', 'index.jsonl']);
  });

  test('close() on a sink that never wrote anything', async () => {
    const sink = new FolderSink(outDir());
    await sink.close();
    await sink.close();
  });
});
