/**
 * framewire's senders (`framewire send --to legacy-…`, `framewire msg --to legacy-json://`) against the seed
 * programs' servers themselves (Python with OpenCV and numpy, test/fixtures/seeds/: the articles' code with
 * argv for the address, a bounded loop, and the display replaced by a PNG file write): the single-datagram
 * picture server, the two-thread server (chunked pictures and JSON messages) and the TCP folder server.
 * The pictures the seed servers decode and write must be the pictures sent.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { NO_CV2, pixelDifference, pythonWithCv2, Seed, sceneJpeg } from './seed-python.js';

const skip = pythonWithCv2() ? false : NO_CV2;

// Deadlines scaled to what they wait for: a Python start with OpenCV (0.2-2 s on a busy 2-core machine), and
// per picture a decode, a PNG write and (udp_server.py) the 100 ms its waitKey waited. framewire's UDP
// client sends a picture again when no answer comes: against a seed server a resend would be read as a new
// picture, so the answer deadline is long and there are no resends (?timeout=30000&retries=0).
const START_MS = 30_000;
const END_MS = 60_000;
const UDP_OPTS = 'timeout=30000&retries=0';

let root: string;
let cleanup: () => Promise<void>;
let frames: string;
const sent: Buffer[] = [];
before(async () => {
  ({ dir: root, cleanup } = await tempDir('fw-seed-servers-'));
  frames = join(root, 'frames');
  await mkdir(frames);
  for (let i = 0; i < 3; i++) {
    sent.push(await sceneJpeg(320 + 32 * i, 240, i + 5));
    await writeFile(join(frames, `${i}.jpg`), sent[i]!);
  }
});
after(async () => cleanup());

async function cli(args: string[]): Promise<string> {
  const io = capture();
  const code = await run(args, io);
  assert.equal(code, 0, `framewire ${args.join(' ')}: ${io.err()}`);
  return io.err();
}

/** The PNGs a seed server wrote into `dir` (000000.png, …), in order, compared with the pictures sent. */
async function assertSamePictures(dir: string): Promise<void> {
  const pngs = (await readdir(dir)).filter((n) => n.endsWith('.png')).sort();
  assert.deepEqual(pngs, ['000000.png', '000001.png', '000002.png']);
  for (const [i, name] of pngs.entries()) {
    const png = await readFile(join(dir, name));
    // Two JPEG decoders (OpenCV's and sharp's) agree within rounding; another picture differs by tens.
    const d = await pixelDifference(png, sent[i]!);
    assert.ok(d < 2, `${name}: mean pixel difference ${d.toFixed(2)} from picture ${i}`);
  }
}

describe('framewire senders → the seed servers (Python)', { skip }, () => {
  test('send --to legacy-udp://…?single → udp_sever_single.py writes every picture it decoded', async () => {
    const out = join(root, 'single-out');
    await mkdir(out);
    const seed = new Seed('udp_sever_single.py', ['127.0.0.1', '0', out, '3']);
    try {
      const port = (await seed.line(/^Bind UDP on (\d+)\.\.\.$/, START_MS))[1];
      await cli([
        'send',
        frames,
        '--to',
        `legacy-udp://127.0.0.1:${port}?single&${UDP_OPTS}`,
        '--no-progress',
      ]);
      assert.equal(await seed.exit(END_MS), 0, seed.stderr);
      assert.equal(seed.lines.filter((l) => /^Received from 127\.0\.0\.1:\d+\.$/.test(l)).length, 3);
      await assertSamePictures(out);
    } finally {
      await seed.kill();
    }
  });

  test('send --to legacy-udp:// and msg --to legacy-json:// → udp_server.py, both threads', async () => {
    const out = join(root, 'two-thread-out');
    await mkdir(out);
    const seed = new Seed('udp_server.py', ['127.0.0.1', '0', '0', out, '3', '2']);
    try {
      const m = await seed.line(/^ports (\d+) (\d+)$/, START_MS);
      await seed.line(/^The program is running normally!!!$/, START_MS);
      await cli(['send', frames, '--to', `legacy-udp://127.0.0.1:${m[1]}?${UDP_OPTS}`, '--no-progress']);
      await cli(['msg', '--to', `legacy-json://127.0.0.1:${m[2]}`, '[0,0,0,1]']);
      await cli(['msg', '--to', `legacy-json://127.0.0.1:${m[2]}`, '{"boxes": [[1, 2, 3, 4]]}']);
      assert.equal(await seed.exit(END_MS), 0, seed.stderr);
      // receive_img prints each header's length and "Received"; receive_msg prints each message.
      const lengths = seed.lines.filter((l) => /^\d+$/.test(l)).map(Number);
      assert.deepEqual(
        lengths,
        sent.map((b) => b.length),
      );
      assert.equal(seed.lines.filter((l) => l === 'Received').length, 3);
      assert.ok(seed.lines.includes('[0, 0, 0, 1]'), seed.stdout);
      assert.ok(seed.lines.includes("{'boxes': [[1, 2, 3, 4]]}"), seed.stdout);
      await assertSamePictures(out);
    } finally {
      await seed.kill();
    }
  });

  test('send --to legacy-tcp:// → server.py writes FOLDER/NAME, byte-identical', async () => {
    const cwd = join(root, 'tcp-cwd');
    await mkdir(cwd);
    const seed = new Seed('server.py', ['127.0.0.1', '0', '1'], cwd);
    try {
      const port = (await seed.line(/^listening on (\d+)$/, START_MS))[1];
      await cli([
        'send',
        frames,
        '--to',
        `legacy-tcp://127.0.0.1:${port}`,
        '--kind',
        'infrared',
        '--stream',
        'run7',
        '--no-progress',
      ]);
      assert.equal(await seed.exit(END_MS), 0, seed.stderr);
      assert.ok(seed.lines.includes("b'infrared|run7'"), seed.stdout);
      assert.deepEqual((await readdir(join(cwd, 'run7'))).sort(), ['0.jpg', '1.jpg', '2.jpg']);
      for (const [i, data] of sent.entries()) {
        assert.ok((await readFile(join(cwd, 'run7', `${i}.jpg`))).equals(data), `run7/${i}.jpg`);
      }
    } finally {
      await seed.kill();
    }
  });
});
