/**
 * Real nats-server processes for the JetStream tests: each test starts its own servers on free ports with a
 * temporary store folder and stops them. No mock of the bus.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** True when a nats-server binary is on the PATH (tests skip with a reason when it is not). */
export const HAVE_NATS = spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;

import { freePort } from './net.js';

export interface NatsOptions {
  /** Client port; a free one when absent. Kept across restarts. */
  port?: number;
  /** Store folder; a fresh temporary one when absent. Kept across restarts. */
  storeDir?: string;
  /** Start with JetStream (default true). */
  jetstream?: boolean;
  /** A configuration file's text (written next to the store), for auth and limits. */
  config?: string;
  /** Cluster membership: this node's route port, the cluster name and the other nodes' route ports. */
  cluster?: { name: string; port: number; routes: number[]; serverName: string };
}

/** One nats-server process that can be stopped, killed and started again on the same port and store. */
export class NatsServer {
  readonly port: number;
  readonly storeDir: string;
  readonly url: string;
  #proc: ChildProcess | undefined;
  #log = '';
  readonly #opts: NatsOptions;
  readonly #ownDir: boolean;

  private constructor(port: number, storeDir: string, ownDir: boolean, opts: NatsOptions) {
    this.port = port;
    this.storeDir = storeDir;
    this.url = `nats://127.0.0.1:${port}`;
    this.#opts = opts;
    this.#ownDir = ownDir;
  }

  static async start(opts: NatsOptions = {}): Promise<NatsServer> {
    const port = opts.port ?? (await freePort());
    const own = !opts.storeDir;
    const dir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), 'fw-nats-')));
    const s = new NatsServer(port, dir, own, opts);
    await s.startAgain();
    return s;
  }

  get log(): string {
    return this.#log;
  }

  get running(): boolean {
    return this.#proc !== undefined && this.#proc.exitCode === null && this.#proc.signalCode === null;
  }

  /** Starts the process (again) and waits until it accepts clients. */
  async startAgain(): Promise<void> {
    const o = this.#opts;
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-sd', this.storeDir];
    if (o.jetstream !== false) args.push('-js');
    if (o.config !== undefined) {
      const conf = join(this.storeDir, 'nats.conf');
      await writeFile(conf, o.config);
      args.push('-c', conf);
    }
    if (o.cluster) {
      args.push(
        '--name',
        o.cluster.serverName,
        '--cluster_name',
        o.cluster.name,
        '--cluster',
        `nats://127.0.0.1:${o.cluster.port}`,
        '--routes',
        o.cluster.routes.map((p) => `nats://127.0.0.1:${p}`).join(','),
      );
    }
    this.#log = '';
    const proc = spawn('nats-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.#proc = proc;
    proc.stderr?.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`nats-server did not start within 15 s:\n${this.#log}`));
      }, 15_000);
      proc.stderr?.on('data', (d: string) => {
        this.#log = (this.#log + d).slice(-20_000);
        if (this.#log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited with ${code}:\n${this.#log}`));
      });
    });
  }

  /** Stops the process with `signal` (SIGTERM: a clean stop; SIGKILL: a crash) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(signal);
    const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  }

  /** Stops the process and removes the store folder when this helper made it. */
  async close(): Promise<void> {
    await this.stop('SIGKILL');
    if (this.#ownDir) await rm(this.storeDir, { recursive: true, force: true });
  }
}

/** Three nats-server processes clustered on 127.0.0.1, JetStream on each. */
export async function startCluster(n = 3): Promise<NatsServer[]> {
  const routePorts: number[] = [];
  for (let i = 0; i < n; i++) routePorts.push(await freePort());
  return Promise.all(
    routePorts.map((port, i) =>
      NatsServer.start({
        cluster: {
          name: 'fwtest',
          port,
          routes: routePorts.filter((p) => p !== port),
          serverName: `n${i}`,
        },
      }),
    ),
  );
}
