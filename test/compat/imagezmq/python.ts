/**
 * Starts the Python ImageZMQ peers of test/compat/imagezmq/peer.py (pyzmq + numpy, Debian's python3-zmq and
 * python3-numpy) as child processes, reads their JSON lines, and stops them. Every wait has a deadline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pythonWith } from '../../helpers/python.js';

export const PEER = fileURLToPath(new URL('./peer.py', import.meta.url));

/** A python3 that imports zmq and numpy (test/helpers/python.ts), or null. */
export function pythonWithZmq(): string | null {
  return pythonWith(['zmq', 'numpy']);
}

export type PlanItem =
  | { msg: string; jpg: string }
  | { msg: string; image: { dtype: string; shape: number[]; seed: number } };

export async function writePlan(dir: string, plan: PlanItem[], name = 'plan.json'): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, JSON.stringify(plan));
  return p;
}

/** One running peer: its JSON lines as they come, and its exit. */
export class Peer {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  #wake: (() => void) | undefined;

  constructor(args: string[], env: Record<string, string> = {}) {
    const py = pythonWithZmq();
    if (!py) throw new Error('no python3 with zmq and numpy (apt-get install python3-zmq python3-numpy)');
    this.child = spawn(py, [PEER, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONUNBUFFERED: '1', ...env },
    });
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        this.lines.push({ text: l });
      }
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

  /** Waits for a line with `key`; returns its value. */
  async value(key: string, timeoutMs = 20_000): Promise<unknown> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.find((x) => key in x);
      if (l) return l[key];
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(`peer.py exited (${this.child.exitCode}) before printing "${key}": ${this.stderr}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new Error(`peer.py printed no "${key}" within ${timeoutMs} ms: ${this.stderr}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }

  async port(): Promise<number> {
    return Number(await this.value('port'));
  }

  /** Waits for the exit (killing the peer after `timeoutMs`); resolves to the exit code. */
  async wait(timeoutMs = 20_000): Promise<number | null> {
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(t);
    }
  }

  /** Closes stdin (a PUB peer stops sending) and waits for the exit. */
  async end(timeoutMs = 20_000): Promise<number | null> {
    this.child.stdin?.end();
    return this.wait(timeoutMs);
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
