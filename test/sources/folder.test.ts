import assert from 'node:assert/strict';
import { constants as bufferConstants } from 'node:buffer';
import fs from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, FramewireError } from '../../src/errors.js';
import { contentTypeOf } from '../../src/names.js';
import { FrameBufferPool } from '../../src/protocol/frame-buffers.js';
import { folderSource, naturalCompare } from '../../src/sources/index.js';
import type { Frame } from '../../src/types.js';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'fw-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let dirCount = 0;
/** A fresh folder holding `files` (name → content; a name with '/' makes subfolders). */
async function makeDir(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(root, `d${dirCount++}`);
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, content);
  }
  return dir;
}

async function collect(source: AsyncIterable<Frame>, max = 10_000): Promise<Frame[]> {
  const out: Frame[] = [];
  for await (const f of source) {
    out.push(f);
    if (out.length >= max) break;
  }
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: string, text?: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof FramewireError, `not a FramewireError: ${String(err)}`);
    assert.equal(err.code, code);
    if (text !== undefined) assert.ok(err.message.includes(text), `${err.message} lacks ${text}`);
    return true;
  });
}

const names = (frames: Frame[]): (string | undefined)[] => frames.map((f) => f.name);

describe('naturalCompare', () => {
  it('orders digit runs as numbers, then by code units', () => {
    const list = ['frame10.png', 'frame2.png', 'frame1.png', 'Frame1.png', 'a.png', '10.png', '9.png'];
    assert.deepEqual(list.sort(naturalCompare), [
      '9.png',
      '10.png',
      'a.png',
      'Frame1.png',
      'frame1.png',
      'frame2.png',
      'frame10.png',
    ]);
    assert.equal(naturalCompare('x', 'x'), 0);
    assert.ok(naturalCompare('frame02', 'frame2') !== 0);
  });
});

describe('folderSource: inputs and order', () => {
  it('yields a folder in natural order with exact names and bytes', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i <= 12; i++) files[`${i}.png`] = `png-${i}-`.repeat(i + 1);
    const dir = await makeDir(files);
    const source = await folderSource(dir).open();
    const expected = Array.from({ length: 13 }, (_, i) => `${i}.png`);
    assert.deepEqual(
      source.files.map((f) => basename(f)),
      expected,
    );
    assert.ok(source.files.every((f) => f.startsWith(dir)));
    const total = Object.values(files).reduce((n, s) => n + Buffer.byteLength(s), 0);
    assert.equal(source.totalBytes, total);
    const frames = await collect(source);
    assert.deepEqual(names(frames), expected);
    for (const f of frames) {
      assert.ok(Buffer.isBuffer(f.data));
      assert.equal(f.data.toString(), files[f.name!]);
      assert.equal(f.contentType, 'image/png');
    }
    // A second iteration is a new pass over the same files.
    assert.deepEqual(names(await collect(source)), expected);
  });

  it('skips dot-files, subfolders and other extensions in a folder', async () => {
    const dir = await makeDir({
      'b.jpg': 'b',
      'a.JPG': 'a',
      'c.raw': 'c',
      'notes.txt': 't',
      'index.json': '{}',
      '.hidden.png': 'h',
      'sub/x.png': 'x',
    });
    assert.deepEqual(names(await collect(folderSource(dir))), ['a.JPG', 'b.jpg', 'c.raw']);
  });

  it('takes the given extensions, with or without a dot, any case', async () => {
    const dir = await makeDir({ 'a.txt': 'a', 'b.jpg': 'b', 'c.DAT': 'c' });
    assert.deepEqual(names(await collect(folderSource(dir, { extensions: ['txt', '.dat'] }))), [
      'a.txt',
      'c.DAT',
    ]);
  });

  it('takes explicitly named files whatever their extension, in the given order', async () => {
    const dir = await makeDir({ 'z.txt': 'z', '1.png': 'one', '.dot': 'dot' });
    const frames = await collect(folderSource([join(dir, 'z.txt'), join(dir, '1.png'), join(dir, '.dot')]));
    assert.deepEqual(names(frames), ['z.txt', '1.png', '.dot']);
    assert.deepEqual(
      frames.map((f) => f.data.toString()),
      ['z', 'one', 'dot'],
    );
  });

  it('expands glob patterns, ** included, in natural order and without dot-files', async () => {
    const dir = await makeDir({
      '10.jpg': 'a',
      '2.jpg': 'b',
      '3.png': 'c',
      '.4.jpg': 'd',
      'sub10/1.jpg': 'e',
      'sub2/1.jpg': 'f',
      'sub2/deeper/0.jpg': 'g',
    });
    const flat = await folderSource(join(dir, '*.jpg')).open();
    assert.deepEqual(
      flat.files.map((f) => f.slice(dir.length + 1)),
      ['2.jpg', '10.jpg'],
    );
    const deep = await folderSource(join(dir, '**/*.jpg')).open();
    assert.deepEqual(
      deep.files.map((f) => f.slice(dir.length + 1)),
      ['2.jpg', '10.jpg', 'sub2/1.jpg', 'sub2/deeper/0.jpg', 'sub10/1.jpg'],
    );
    assert.deepEqual(
      (await collect(deep)).map((f) => f.data.toString()),
      ['b', 'a', 'f', 'g', 'e'],
    );
  });

  it('concatenates several inputs in the given order', async () => {
    const a = await makeDir({ '2.png': 'a2', '1.png': 'a1' });
    const b = await makeDir({ 'x.jpg': 'bx', 'y.jpg': 'by' });
    const c = await makeDir({ 'only.bin': 'c' });
    const frames = await collect(folderSource([join(b, '*.jpg'), a, join(c, 'only.bin'), a]));
    assert.deepEqual(
      frames.map((f) => f.data.toString()),
      ['bx', 'by', 'a1', 'a2', 'c', 'a1', 'a2'],
    );
  });

  it('resolves relative inputs from the working directory', async () => {
    const dir = await makeDir({ '1.png': 'x' });
    const rel = relative(process.cwd(), dir);
    const source = await folderSource(rel).open();
    assert.deepEqual(source.files, [join(dir, '1.png')]);
  });

  it('guesses the content type from the extension and takes captureUs from the mtime', async () => {
    const dir = await makeDir({
      'a.jpg': '1',
      'b.jpeg': '2',
      'c.JPG': '3',
      'd.png': '4',
      'e.raw': '5',
      'f.bmp': '6',
      'g.bin': '7',
    });
    const mtime = 1_700_000_000.25; // seconds
    await utimes(join(dir, 'a.jpg'), mtime, mtime);
    const frames = await collect(folderSource(dir));
    assert.deepEqual(
      frames.map((f) => [f.name, f.contentType]),
      [
        ['a.jpg', 'image/jpeg'],
        ['b.jpeg', 'image/jpeg'],
        ['c.JPG', 'image/jpeg'],
        ['d.png', 'image/png'],
        ['e.raw', 'raw'],
        ['f.bmp', 'application/octet-stream'],
        ['g.bin', 'application/octet-stream'],
      ],
    );
    assert.equal(frames[0]!.captureUs, 1_700_000_000_250_000);
    for (const f of frames) {
      const st = await stat(join(dir, f.name!));
      assert.equal(f.captureUs, Math.round(st.mtimeMs * 1000));
    }
    assert.equal(contentTypeOf('x.tiff'), 'application/octet-stream');
  });

  it('reads ahead of the consumer within readAheadBytes', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 8; i++) files[`${i}.png`] = String(i).repeat(100);
    const dir = await makeDir(files);
    const original = fs.open;
    let opened = 0;
    // Counts the files the source opens; the named import in folder.ts follows after syncBuiltinESMExports.
    fs.open = ((...args: Parameters<typeof original>) => {
      opened++;
      return (original as (...a: unknown[]) => void)(...args);
    }) as typeof original;
    syncBuiltinESMExports();
    try {
      // 250 bytes: two files of 100 bytes fit, a third does not; 0: one file at a time; default: all of them.
      for (const [readAheadBytes, expected] of [
        [250, 2],
        [0, 1],
        [undefined, 7],
      ] as const) {
        const source = await folderSource(dir, readAheadBytes === undefined ? {} : { readAheadBytes }).open();
        opened = 0;
        let yielded = 0;
        let maxAhead = 0;
        for await (const _ of source) {
          yielded++;
          await new Promise((r) => setTimeout(r, 5)); // the consumer works; read-ahead goes on meanwhile
          maxAhead = Math.max(maxAhead, opened - yielded);
        }
        assert.equal(yielded, 8);
        assert.equal(opened, 8);
        assert.equal(maxAhead, expected, `readAheadBytes ${readAheadBytes}`);
      }
      assert.throws(
        () => folderSource(dir, { readAheadBytes: -1 }),
        (err: unknown) => err instanceof FramewireError && err.code === ErrorCode.BAD_OPTION,
      );
    } finally {
      fs.open = original;
      syncBuiltinESMExports();
    }
  });

  it('reads into frameBuffers when given: buffers given back serve later files, every file exact', async () => {
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < 40; i++) files[`${i}.jpg`] = Buffer.alloc(30_000 + i * 100, i + 1);
    const dir = await makeDir(files);
    const pool = new FrameBufferPool();
    let n = 0;
    for await (const f of await folderSource(dir, { frameBuffers: pool, readAheadBytes: 0 }).open()) {
      assert.ok(f.data.equals(files[f.name!]!), `${f.name} read exactly`);
      pool.give(f.data);
      n++;
    }
    assert.equal(n, 40);
    // Read one at a time (no read-ahead beyond the next file): a handful of buffers serve all 40 files.
    assert.ok(pool.stats.allocated <= 4, `allocated ${pool.stats.allocated}`);
    assert.ok(pool.stats.reused >= 36, `reused ${pool.stats.reused}`);
  });

  it('reads files larger than one read chunk exactly', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 7);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    const dir = await makeDir({ 'big.raw': big, 'small.raw': Buffer.from([1, 2, 3]) });
    const frames = await collect(folderSource(dir));
    assert.ok(frames[0]!.data.equals(big));
    assert.deepEqual([...frames[1]!.data], [1, 2, 3]);
  });
});

describe('folderSource: pacing, loop and abort', () => {
  it('paces frames at fps on an absolute schedule', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 10; i++) files[`${i}.jpg`] = String(i);
    const dir = await makeDir(files);
    const source = await folderSource(dir, { fps: 50 }).open();
    const times: number[] = [];
    // The schedule starts when the source hands out frame 0, at or after t0 and at or before the loop sees
    // it (on a busy machine the loop may see frame 0 late, so the checks are against t0, which is sure).
    const t0 = performance.now();
    for await (const _ of source) times.push(performance.now());
    assert.equal(times.length, 10);
    assert.ok(times[9]! - t0 >= 179, `10 frames at 50 fps took ${times[9]! - t0} ms`);
    assert.ok(times[9]! - times[0]! < 2000, `10 frames at 50 fps took ${times[9]! - times[0]!} ms`);
    // No frame before its slot (1 ms slack for the clock's rounding).
    for (let i = 1; i < 10; i++) assert.ok(times[i]! - t0 >= i * 20 - 1, `frame ${i} early`);
  });

  it('loops forever, keeping the file names, until the signal aborts', async () => {
    const dir = await makeDir({ '0.png': 'a', '1.png': 'b', '2.png': 'c' });
    const ac = new AbortController();
    const seen: string[] = [];
    for await (const f of folderSource(dir, { loop: true, signal: ac.signal })) {
      seen.push(f.name!);
      if (seen.length === 10) ac.abort();
      assert.ok(seen.length <= 10, 'frames after abort');
    }
    assert.deepEqual(seen, [
      '0.png',
      '1.png',
      '2.png',
      '0.png',
      '1.png',
      '2.png',
      '0.png',
      '1.png',
      '2.png',
      '0.png',
    ]);
  });

  it('stops promptly when aborted during a pacing wait', async () => {
    const dir = await makeDir({ '0.png': 'a', '1.png': 'b' });
    const ac = new AbortController();
    const source = folderSource(dir, { fps: 0.2, loop: true, signal: ac.signal }); // 5 s between frames
    let count = 0;
    let abortedAt = 0;
    for await (const _ of source) {
      count++;
      setTimeout(() => {
        abortedAt = performance.now();
        ac.abort();
      }, 50);
    }
    const late = performance.now() - abortedAt;
    assert.equal(count, 1);
    assert.ok(late < 1000, `iteration ended ${late} ms after abort`);
  });

  it('yields nothing when the signal is already aborted', async () => {
    const dir = await makeDir({ '0.png': 'a' });
    const frames = await collect(folderSource(dir, { signal: AbortSignal.abort() }));
    assert.equal(frames.length, 0);
  });

  it('ends a looping source when the consumer breaks', async () => {
    const dir = await makeDir({ '0.png': 'a', '1.png': 'b', '2.png': 'c', '3.png': 'd' });
    const frames = await collect(folderSource(dir, { loop: true }), 2);
    assert.deepEqual(names(frames), ['0.png', '1.png']);
  });
});

describe('folderSource: errors', () => {
  it('ERR_SOURCE_NOT_FOUND for a missing path, at open, naming it with a hint', async () => {
    const missing = join(root, 'no-such-folder');
    const source = folderSource(missing);
    await rejectsWith(source.open(), ErrorCode.SOURCE_NOT_FOUND, missing);
    await source.open().catch((err: FramewireError) => assert.ok(err.hint && err.hint.length > 0));
    const dir = await makeDir({ '1.png': 'x' });
    // Iterating opens too; a missing input among good ones fails before any frame.
    let frames = 0;
    await rejectsWith(
      (async () => {
        for await (const _ of folderSource([dir, join(dir, '2.png')])) frames++;
      })(),
      ErrorCode.SOURCE_NOT_FOUND,
      '2.png',
    );
    assert.equal(frames, 0);
  });

  it('ERR_SOURCE_EMPTY for a folder or a pattern without matching files', async () => {
    const dir = await makeDir({ 'notes.txt': 'x', '.hidden.png': 'h' });
    await rejectsWith(folderSource(dir).open(), ErrorCode.SOURCE_EMPTY, dir);
    await rejectsWith(folderSource(join(dir, '*.png')).open(), ErrorCode.SOURCE_EMPTY, '*.png');
    await rejectsWith(folderSource(join(root, 'nowhere', '*.png')).open(), ErrorCode.SOURCE_EMPTY);
    await rejectsWith(folderSource(dir, { extensions: [] }).open(), ErrorCode.SOURCE_EMPTY);
  });

  it('ERR_SOURCE_READ for a file that disappears before it is read, naming it', async () => {
    const dir = await makeDir({ '0.png': 'a', '1.png': 'b', '2.png': 'c' });
    const source = await folderSource(dir).open();
    await rm(join(dir, '2.png'));
    const seen: string[] = [];
    await rejectsWith(
      (async () => {
        for await (const f of source) seen.push(f.name!);
      })(),
      ErrorCode.SOURCE_READ,
      join(dir, '2.png'),
    );
    assert.deepEqual(seen, ['0.png', '1.png']);
  });

  it('ERR_SOURCE_READ for a file larger than a Buffer can hold (a sparse file), not a crash', async () => {
    const dir = await makeDir({ '0.png': 'a' });
    const big = join(dir, '1.png');
    await writeFile(big, '');
    await truncate(big, bufferConstants.MAX_LENGTH + 1);
    const seen: string[] = [];
    await rejectsWith(
      (async () => {
        for await (const f of await folderSource(dir).open()) seen.push(f.name!);
      })(),
      ErrorCode.SOURCE_READ,
      big,
    );
    assert.deepEqual(seen, ['0.png']);
  });

  it('ERR_SOURCE_READ for a path that is not a file or a folder', async () => {
    await rejectsWith(folderSource('/dev/null').open(), ErrorCode.SOURCE_READ, '/dev/null');
  });

  it('ERR_SOURCE_READ at open for an unreadable file', { skip: process.getuid?.() === 0 }, async () => {
    const dir = await makeDir({ 'locked.png': 'x' });
    const file = join(dir, 'locked.png');
    await chmod(file, 0o000);
    try {
      await rejectsWith(folderSource(dir).open(), ErrorCode.SOURCE_READ, file);
    } finally {
      await chmod(file, 0o644);
    }
  });

  it('ERR_BAD_OPTION for a bad fps, extension or input list, at creation', () => {
    for (const fps of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => folderSource('x', { fps }),
        (err: unknown) => err instanceof FramewireError && err.code === ErrorCode.BAD_OPTION,
        `fps ${fps}`,
      );
    }
    for (const bad of [
      () => folderSource([]),
      () => folderSource(''),
      () => folderSource('x', { extensions: ['.'] }),
    ]) {
      assert.throws(
        bad,
        (err: unknown) => err instanceof FramewireError && err.code === ErrorCode.BAD_OPTION,
      );
    }
  });

  it('files and totalBytes are unknown before open', () => {
    const source = folderSource('x');
    assert.equal(source.files, undefined);
    assert.equal(source.totalBytes, undefined);
  });
});
