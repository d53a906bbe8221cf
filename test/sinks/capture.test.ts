/**
 * The browser as a camera: a real headless Chromium (Debian's, driven by playwright-core) with a fake
 * camera playing an ffmpeg-made .y4m opens the viewer's /capture page, which sends JPEG frames as a
 * framewire stream over the viewer's /ws (with the receiver's token); they must land in OUT/phone/ as
 * decodable JPEGs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import { run } from '../../src/cli/run.js';
import { capture } from '../helpers/cli.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TOKEN = 'phone-secret';
let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ dir: root, cleanup } = await tempDir());
});
after(async () => cleanup());

async function jpegs(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((f) => f.endsWith('.jpg') && f !== 'latest.jpg').sort();
}

test('Chromium with a fake camera on /capture: at least 50 decodable JPEGs land in OUT/phone/', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
    return;
  }
  const y4m = join(root, 'camera.y4m');
  await promisify(execFile)('ffmpeg', [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    'testsrc=size=320x240:rate=15',
    '-t',
    '2',
    '-pix_fmt',
    'yuv420p',
    y4m,
  ]);
  const out = join(root, 'out');
  const io = capture();
  const ac = new AbortController();
  const serving = run(
    // The same secret as the viewer token: ?token= on the page load sets the viewer's cookie (for its
    // scripts and the /ws upgrade) and fills in the sender's token.
    [
      'serve',
      '--listen',
      'tcp://127.0.0.1:0',
      '--out',
      out,
      '--view',
      '127.0.0.1:0',
      '--token',
      TOKEN,
      '--view-token',
      TOKEN,
    ],
    { ...io, signal: ac.signal },
  );
  const userDataDir = join(root, 'chromium-profile');
  let browser: Awaited<ReturnType<typeof chromium.launchPersistentContext>> | undefined;
  try {
    await waitFor(() => /camera page on/.test(io.err()), 15_000, 'serve to start');
    const page = /camera page on (http\S+?),/.exec(io.err())?.[1] ?? '';
    browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--no-first-run',
        '--use-fake-ui-for-media-stream',
        '--use-fake-device-for-media-stream',
        `--use-file-for-fake-video-capture=${y4m}`,
      ],
    });
    const tab = browser.pages()[0] ?? (await browser.newPage());
    const errors: string[] = [];
    const logs: string[] = [];
    tab.on('pageerror', (e) => errors.push(e.message));
    tab.on('console', (m) => logs.push(m.text()));
    const violations: string[] = [];
    await tab.exposeFunction('fwViolation', (v: string) => violations.push(v));
    await tab.addInitScript(() => {
      const g = globalThis as unknown as {
        addEventListener(t: string, f: (e: { violatedDirective: string; blockedURI: string }) => void): void;
        fwViolation(v: string): void;
      };
      g.addEventListener('securitypolicyviolation', (e) =>
        g.fwViolation(`${e.violatedDirective} ${e.blockedURI}`),
      );
    });
    await tab.goto(
      `${page}?stream=phone&mode=reliable&fps=15&size=320x240&quality=0.7&token=${TOKEN}&autostart=1`,
    );
    await waitFor(
      () => errors.length > 0 || io.err().includes('stream phone'),
      30_000,
      'the phone stream',
    ).catch(async (e) => {
      throw new Error(`${e.message}; page: ${await tab.textContent('#stats')}; console: ${logs.join(' | ')}`);
    });
    assert.deepEqual(errors, []);
    assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    assert.deepEqual(
      logs.filter((l) => /Content Security Policy/i.test(l)),
      [],
    );
    const dir = join(out, 'phone');
    let count = 0;
    const deadline = Date.now() + 90_000;
    while (count < 50 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      count = (await jpegs(dir)).length;
    }
    assert.ok(count >= 50, `${count} JPEGs in OUT/phone after 90 s`);
    const stats = (await tab.textContent('#stats')) ?? '';
    assert.match(stats, /sending · sent \d+ · acked \d+ · [\d.]+ fps · ack latency \d+ ms/);
  } finally {
    await browser?.close();
    ac.abort();
    await serving;
  }
  assert.match(io.err(), /stream phone \(visible, reliable\) from 127\.0\.0\.1/);
  const files = await jpegs(join(out, 'phone'));
  assert.ok(files.length >= 50);
  for (const f of files.slice(0, 50)) {
    const data = await readFile(join(out, 'phone', f));
    const { info } = await sharp(data).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 320, f);
    assert.equal(info.height, 240, f);
  }
});
