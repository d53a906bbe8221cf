/**
 * Which ffmpeg framewire runs and whether it is recent enough: the system's ffmpeg on the PATH before the
 * optional npm package's, the version line in the styles distributions and static builds print it, and the
 * ERR_FFMPEG_TOO_OLD warning for an ffmpeg older than 4.4.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import type { FramewireError } from '../../src/errors.js';
import {
  ffmpegSource,
  ffmpegTooOld,
  findFfmpeg,
  parseFfmpegVersion,
  probeFfmpeg,
} from '../../src/sources/ffmpeg.js';
import { tempDir } from '../helpers/tmp.js';

const DEBIAN = 'ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers';
const UBUNTU = 'ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright (c) 2000-2021 the FFmpeg developers';
const STATIC_RELEASE =
  'ffmpeg version 6.0-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2023 the FFmpeg developers';
// What the npm package @ffmpeg-installer/ffmpeg (linux-x64) prints: a git snapshot, no release number.
const STATIC_2018 =
  'ffmpeg version N-47683-g0e8eb07980-static https://johnvansickle.com/ffmpeg/  Copyright (c) 2000-2018 the FFmpeg developers';

/** The system's ffmpeg: the first `ffmpeg` on the PATH, as the shell finds it; undefined when none. */
function systemFfmpeg(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v ffmpeg'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The npm package's binary, when the optional dependency is installed for this platform. */
function packageFfmpeg(): string | undefined {
  try {
    return (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
  } catch {
    return undefined;
  }
}

test('parseFfmpegVersion reads Debian, Ubuntu, static-build and other styles', () => {
  assert.deepEqual(parseFfmpegVersion(DEBIAN), {
    text: '5.1.6-0+deb12u1',
    major: 5,
    minor: 1,
    patch: 6,
    year: 2024,
  });
  assert.deepEqual(parseFfmpegVersion(UBUNTU), {
    text: '4.4.2-0ubuntu0.22.04.1',
    major: 4,
    minor: 4,
    patch: 2,
    year: 2021,
  });
  assert.deepEqual(parseFfmpegVersion(STATIC_RELEASE), {
    text: '6.0-static',
    major: 6,
    minor: 0,
    year: 2023,
  });
  assert.deepEqual(parseFfmpegVersion(STATIC_2018), { text: 'N-47683-g0e8eb07980-static', year: 2018 });
  assert.deepEqual(
    parseFfmpegVersion('ffmpeg version n7.0.2 Copyright (c) 2000-2024 the FFmpeg developers'),
    {
      text: 'n7.0.2',
      major: 7,
      minor: 0,
      patch: 2,
      year: 2024,
    },
  );
  assert.deepEqual(parseFfmpegVersion('ffmpeg version 7.1'), { text: '7.1', major: 7, minor: 1 });
  assert.equal(parseFfmpegVersion('avconv version 12'), undefined);
  assert.equal(parseFfmpegVersion(''), undefined);
});

test('ffmpegTooOld: below 4.4 (by release number, or by a snapshot year before 2021) is too old', () => {
  assert.equal(ffmpegTooOld(parseFfmpegVersion(DEBIAN)), undefined);
  assert.equal(ffmpegTooOld(parseFfmpegVersion(UBUNTU)), undefined);
  assert.equal(ffmpegTooOld(parseFfmpegVersion(STATIC_RELEASE)), undefined);
  assert.equal(ffmpegTooOld(parseFfmpegVersion('ffmpeg version 4.4')), undefined);
  assert.match(
    ffmpegTooOld(parseFfmpegVersion('ffmpeg version 4.3.6-0+deb11u1 Copyright (c) 2000-2023'))!,
    /ffmpeg 4\.3\.6-0\+deb11u1 is older than 4\.4/,
  );
  assert.match(ffmpegTooOld(parseFfmpegVersion('ffmpeg version 3.4.8'))!, /older than 4\.4/);
  assert.match(ffmpegTooOld(parseFfmpegVersion(STATIC_2018))!, /a snapshot from 2018, older than 4\.4/);
  // A snapshot from a recent tree, or a version that cannot be read, gets the benefit of the doubt.
  assert.equal(
    ffmpegTooOld(parseFfmpegVersion('ffmpeg version N-113005-gabc Copyright (c) 2000-2024')),
    undefined,
  );
  assert.equal(ffmpegTooOld(parseFfmpegVersion('ffmpeg version git-master')), undefined);
  assert.equal(ffmpegTooOld(undefined), undefined);
});

test('findFfmpeg picks the system ffmpeg on the PATH, not the npm package, and it is supported', {
  skip: systemFfmpeg() ? false : 'needs ffmpeg on the PATH (apt-get install ffmpeg; .ci/run installs it)',
}, async () => {
  const system = systemFfmpeg()!;
  const chosen = findFfmpeg();
  assert.equal(chosen, system);
  const pkg = packageFfmpeg();
  if (pkg !== undefined) assert.notEqual(chosen, pkg, 'the npm package is only the fallback');
  const caps = await probeFfmpeg(chosen);
  const v = parseFfmpegVersion(caps.version);
  assert.ok(v?.major !== undefined, `a release number in "${caps.version}"`);
  assert.equal(ffmpegTooOld(v), undefined, caps.version);
});

test('the npm package fallback, when installed, is detected as too old', {
  skip: packageFfmpeg() ? false : 'the optional @ffmpeg-installer/ffmpeg is not installed here',
}, async () => {
  const caps = await probeFfmpeg(packageFfmpeg()!);
  assert.match(ffmpegTooOld(parseFfmpegVersion(caps.version)) ?? '', /older than 4\.4/, caps.version);
});

test('an ffmpeg source warns with ERR_FFMPEG_TOO_OLD for an old ffmpeg, once per binary by default', async () => {
  const { dir, cleanup } = await tempDir('fw-ffmpeg-version-');
  const fake = async (name: string, line: string) => {
    const p = join(dir, name);
    await writeFile(p, `#!/bin/sh\necho '${line}'\n`);
    await chmod(p, 0o755);
    return p;
  };
  try {
    const old = await fake('old', STATIC_2018);
    const current = await fake('current', DEBIAN);
    const warnings: FramewireError[] = [];
    await ffmpegSource('testsrc:64x48@10', { ffmpegPath: old, onWarning: (w) => warnings.push(w) }).open();
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.code, 'ERR_FFMPEG_TOO_OLD');
    assert.match(warnings[0]!.message, /N-47683-g0e8eb07980-static is a snapshot from 2018/);
    assert.ok(warnings[0]!.message.includes(old), 'the message names the binary');
    assert.match(warnings[0]!.hint ?? '', /apt-get install ffmpeg/);
    await ffmpegSource('testsrc:64x48@10', {
      ffmpegPath: current,
      onWarning: (w) => warnings.push(w),
    }).open();
    assert.equal(warnings.length, 1, 'no warning for Debian 12 ffmpeg');

    // Without onWarning: process.emitWarning, once for the same binary.
    const emitted: Error[] = [];
    const listener = (w: Error) => emitted.push(w);
    process.on('warning', listener);
    try {
      const old2 = await fake('old2', 'ffmpeg version 4.1.11-0+deb10u1 Copyright (c) 2000-2023');
      await ffmpegSource('testsrc:64x48@10', { ffmpegPath: old2 }).open();
      await ffmpegSource('thermal:64x48@10', { ffmpegPath: old2 }).open();
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', listener);
    }
    assert.equal(emitted.length, 1, emitted.map((e) => e.message).join(' / '));
    assert.equal((emitted[0] as Error & { code?: string }).code, 'ERR_FFMPEG_TOO_OLD');
    assert.match(emitted[0]!.message, /4\.1\.11-0\+deb10u1 is older than 4\.4/);
  } finally {
    await cleanup();
  }
});
