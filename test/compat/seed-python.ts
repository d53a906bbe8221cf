/**
 * Runs the Python seed programs of test/fixtures/seeds/ (the articles' code with OpenCV and numpy, display
 * calls replaced by file writes) as child processes: finds a python3 that imports cv2 and numpy, collects
 * their output lines, waits for a line or the exit with a deadline, and kills what is left.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { pythonWith } from '../helpers/python.js';

export const SEEDS = fileURLToPath(new URL('../fixtures/seeds/', import.meta.url));

/** A python3 that imports cv2 and numpy (test/helpers/python.ts), or null. */
export function pythonWithCv2(): string | null {
  return pythonWith(['cv2', 'numpy']);
}

export const NO_CV2 =
  'needs a python3 with OpenCV and numpy (Debian: apt-get install python3-opencv python3-numpy; .ci/run installs them)';

/** One running seed program. */
export class Seed {
  readonly child: ChildProcess;
  readonly script: string;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  #wake: (() => void) | undefined;

  constructor(script: string, args: string[], cwd?: string) {
    const py = pythonWithCv2();
    if (!py) throw new Error(NO_CV2);
    this.script = script;
    this.child = spawn(py, [`${SEEDS}${script}`, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', PYTHONWARNINGS: 'ignore::DeprecationWarning' },
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      this.#wake?.();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code) => {
        this.#wake?.();
        resolve(code);
      }),
    );
  }

  get lines(): string[] {
    return this.stdout.split('\n').filter((l) => l !== '');
  }

  /** Waits for an output line matching `re`; returns its match. */
  async line(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      for (const l of this.lines) {
        const m = re.exec(l);
        if (m) return m;
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `${this.script} ended (${this.child.exitCode}) before printing ${re}: ${this.stderr}`,
        );
      }
      const left = until - Date.now();
      if (left <= 0) {
        throw new Error(
          `${this.script} printed no ${re} within ${timeoutMs} ms; out: ${this.stdout} err: ${this.stderr}`,
        );
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  /** Waits for the program to end by itself; kills it after `timeoutMs` and throws. Returns the exit code. */
  async exit(timeoutMs: number): Promise<number | null> {
    let killed = false;
    const t = setTimeout(() => {
      killed = true;
      this.child.kill('SIGKILL');
    }, timeoutMs);
    try {
      const code = await this.exited;
      if (killed) {
        throw new Error(
          `${this.script} did not end within ${timeoutMs} ms; out: ${this.stdout} err: ${this.stderr}`,
        );
      }
      return code;
    } finally {
      clearTimeout(t);
    }
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Runs `script` to its end and returns its output; throws with its stderr on a non-zero exit. */
export async function runSeed(script: string, args: string[], timeoutMs: number): Promise<Seed> {
  const s = new Seed(script, args);
  const code = await s.exit(timeoutMs);
  if (code !== 0) throw new Error(`${script} ${args.join(' ')} exited ${code}: ${s.stderr}`);
  return s;
}

/** What cv2.imencode('.jpg', cv2.imread(file)) gives: the bytes a seed client sends for `file`. */
export function cv2Jpeg(file: string): Buffer {
  const py = pythonWithCv2();
  if (!py) throw new Error(NO_CV2);
  const r = spawnSync(
    py,
    [
      '-c',
      'import sys, cv2; sys.stdout.buffer.write(cv2.imencode(".jpg", cv2.imread(sys.argv[1]))[1].tobytes())',
      file,
    ],
    { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
  );
  if (r.status !== 0) throw new Error(`cv2.imencode of ${file} failed: ${r.stderr?.toString()}`);
  return r.stdout;
}

/**
 * A photo-like JPEG (smooth colour gradients with some grain, different per `seed`), width×height, made
 * with sharp: it compresses like a camera frame, not like a flat colour or pure noise.
 */
export async function sceneJpeg(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  let x = (seed + 1) * 2654435761;
  for (let y = 0; y < height; y++) {
    for (let c = 0; c < width; c++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      const grain = (x & 15) - 8;
      const i = (y * width + c) * 3;
      raw[i] = clamp(((c * 255) / width + seed * 40 + grain) % 256);
      raw[i + 1] = clamp(((y * 255) / height + grain) % 256);
      raw[i + 2] = clamp((((c + y) * 128) / (width + height) + seed * 17 + grain) % 256);
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

function clamp(v: number): number {
  return Math.max(0, Math.min(255, Math.round(v)));
}

/** The mean absolute difference of two pictures' RGB pixels (any formats sharp reads); they must match in size. */
export async function pixelDifference(a: Buffer, b: Buffer): Promise<number> {
  const [ra, rb] = await Promise.all(
    [a, b].map((p) => sharp(p).removeAlpha().raw().toBuffer({ resolveWithObject: true })),
  );
  if (ra!.info.width !== rb!.info.width || ra!.info.height !== rb!.info.height) {
    throw new Error(
      `sizes differ: ${ra!.info.width}x${ra!.info.height} and ${rb!.info.width}x${rb!.info.height}`,
    );
  }
  let sum = 0;
  for (let i = 0; i < ra!.data.length; i++) sum += Math.abs(ra!.data[i]! - rb!.data[i]!);
  return sum / ra!.data.length;
}
