#!/usr/bin/env node
// Takes docs/viewer.png: runs `framewire demo` (from dist/, so build first: `npm run screenshot` does),
// opens the viewer in headless Chromium and saves a screenshot once both cameras and a few messages show.
// Usage: node scripts/screenshot.mjs [out.png]   Chromium: $CHROMIUM_PATH, else /usr/bin/chromium.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ?? join(root, 'docs', 'viewer.png');
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
if (!existsSync(executablePath)) {
  console.error(`no Chromium at ${executablePath}: apt-get install chromium, or set CHROMIUM_PATH`);
  process.exit(1);
}
const main = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error('dist/cli/main.js is missing: run npm run build first (npm run screenshot does)');
  process.exit(1);
}

const demo = spawn(
  process.execPath,
  [main, 'demo', '--view', '127.0.0.1:0', '--listen', 'tcp://127.0.0.1:0', '--quiet'],
  { stdio: ['ignore', 'pipe', 'inherit'] },
);
const exited = new Promise((resolve) => demo.on('exit', resolve));
const deadline = (ms, what) =>
  new Promise((_, reject) =>
    setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms).unref(),
  );

const userDataDir = await mkdtemp(join(tmpdir(), 'fw-chromium-'));
let browser;
try {
  const url = await Promise.race([
    new Promise((resolve) => {
      createInterface({ input: demo.stdout }).on('line', (l) => {
        const m = /^viewer: (http\S+)/.exec(l);
        if (m) resolve(m[1]);
      });
    }),
    exited.then((code) => {
      throw new Error(`the demo exited (${code}) before printing its URL`);
    }),
    deadline(30_000, 'the demo to print its URL'),
  ]);
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1440, height: 640 },
    deviceScaleFactor: 1,
  });
  browser = context;
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(url);
  await page.waitForFunction(
    () => {
      const fw = window.framewire;
      return fw && (fw.shown.visible ?? 0) > 30 && (fw.shown.thermal ?? 0) > 30 && fw.messages >= 6;
    },
    undefined,
    { timeout: 60_000, polling: 250 },
  );
  // Let a stats update arrive after the last frame counts, so the footers are filled in.
  await page.waitForTimeout(1200);
  await page.screenshot({ path: out });
  console.log(`saved ${out}`);
} finally {
  await browser?.close().catch(() => {});
  demo.kill('SIGINT');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (demo.exitCode === null) demo.kill('SIGKILL');
  await rm(userDataDir, { recursive: true, force: true });
}
