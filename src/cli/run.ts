/**
 * The `framewire` command. A thin layer over the public API (src/index.ts): it parses arguments with
 * commander, wires sources, the client or server and sinks, and turns errors into one line plus a hint.
 * `run(argv, io)` is what tests call; it never calls process.exit.
 */
import { basename, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  connect,
  createServer,
  FramewireError,
  type FramewireServer,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
  VERSION,
} from '../index.js';
import { FolderSink } from '../sinks/folder.js';
import { folderSource } from '../sources/folder.js';
import { formatSummary, Progress } from './progress.js';

export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  /** Aborting it stops a running command as Ctrl-C does. */
  signal?: AbortSignal;
  /** Environment variables (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** Exit codes: 0 done, 1 failed (network, files, refused frames), 2 bad usage. */
export const EXIT = { OK: 0, FAILED: 1, USAGE: 2 } as const;

class UsageError extends Error {}

function parsePositive(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };
}

/** Parses sizes like 64MB, 512KiB, 1048576. */
export function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`"${v}" is not a size (e.g. 64MB, 512KiB, 1048576)`);
  const unit = (m[2] ?? 'b').toLowerCase();
  const mult: Record<string, number> = {
    b: 1,
    kb: 1e3,
    kib: 1024,
    mb: 1e6,
    mib: 1024 ** 2,
    gb: 1e9,
    gib: 1024 ** 3,
  };
  return Math.round(Number(m[1]) * mult[unit]!);
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

function line(out: NodeJS.WritableStream, text: string): void {
  out.write(`${text}\n`);
}

/** Prints an error as one line plus a hint; returns the exit code. */
export function reportError(err: unknown, stderr: NodeJS.WritableStream): number {
  if (err instanceof FramewireError) {
    line(stderr, `framewire: ${err.message}`);
    if (err.hint) line(stderr, `  hint: ${err.hint}`);
    return err.code === 'ERR_BAD_URL' || err.code === 'ERR_UNSUPPORTED_SCHEME' || err.code === 'ERR_BAD_OPTION'
      ? EXIT.USAGE
      : EXIT.FAILED;
  }
  if (err instanceof UsageError) {
    line(stderr, `framewire: ${err.message}`);
    line(stderr, '  hint: see framewire --help');
    return EXIT.USAGE;
  }
  const e = err as NodeJS.ErrnoException;
  line(stderr, `framewire: unexpected error: ${e?.stack ?? String(err)}`);
  return EXIT.FAILED;
}

function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function defaultStreamName(inputs: string[]): string {
  const first = inputs[0];
  if (!first || /[*?[{]/.test(first)) return 'cam0';
  const b = basename(resolve(first)).replace(/\.[^.]*$/, '');
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(b) ? b : 'cam0';
}

interface CommonNet {
  retryFor: number;
  quiet?: boolean;
}

/** Runs the CLI with `argv` (without the node and script names). Resolves to the exit code. */
export async function run(argv: string[], io: Partial<CliIO> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  const signal = io.signal ?? new AbortController().signal;
  let exitCode: number = EXIT.OK;

  const program = new Command('framewire')
    .description('Move camera frames, still images and JSON messages between machines.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(see framewire <command> --help)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
    });

  program
    .command('serve')
    .description('Receive frames and messages; save them in a folder and print messages as JSON lines.')
    .option('-l, --listen <url>', 'endpoint to listen on (repeatable), e.g. tcp://0.0.0.0:7070', collect)
    .option('-o, --out <dir>', 'save frames to DIR/<stream>/ and messages to DIR/messages.jsonl')
    .addOption(new Option('--max-frame-bytes <size>', 'largest frame accepted').argParser(parseSize).default(64 * 1024 * 1024, '64MiB'))
    .addOption(new Option('--max-meta-bytes <size>', 'largest frame metadata accepted').argParser(parseSize).default(16 * 1024, '16KiB'))
    .addOption(new Option('--max-message-bytes <size>', 'largest JSON message accepted').argParser(parseSize).default(1024 * 1024, '1MiB'))
    .option('--fsync', 'flush every frame to disk before acknowledging it (slower; survives power loss)')
    .option('-q, --quiet', 'print only messages and errors')
    .action(async (opts) => {
      exitCode = await serveCommand(opts, { stdout, stderr, signal });
    });

  program
    .command('send')
    .description('Send the frames of folders, glob patterns or files to a receiver.')
    .argument('<inputs...>', 'folders, glob patterns ("frames/*.jpg") or image files')
    .requiredOption('-t, --to <url>', 'receiver endpoint, e.g. tcp://127.0.0.1:7070')
    .option('-s, --stream <name>', 'stream name (the folder name on the receiver); default: the input folder name')
    .addOption(new Option('-k, --kind <kind>', 'camera kind').choices([...STREAM_KINDS]).default('visible'))
    .addOption(new Option('-m, --mode <mode>', 'delivery mode').choices([...STREAM_MODES]).default('reliable'))
    .option('--fps <n>', 'pace frames at N per second (default: as fast as the receiver takes them)', parsePositive('--fps'))
    .option('--loop', 'start again after the last frame, until interrupted')
    .addOption(new Option('--retry-for <seconds>', 'keep reconnecting this long before giving up').argParser(parsePositive('--retry-for')).default(30))
    .addOption(new Option('--window-frames <n>', 'frames in flight before waiting for acks').argParser(parsePositive('--window-frames')).default(128))
    .addOption(new Option('--window-bytes <size>', 'bytes in flight before waiting for acks').argParser(parseSize).default(32 * 1024 * 1024, '32MiB'))
    .option('--epoch <id>', 'name this run of the sender (a receiver resumes per stream and epoch)')
    .option('--no-progress', 'no progress bar or progress lines')
    .option('-q, --quiet', 'print only errors')
    .action(async (inputs: string[], opts) => {
      exitCode = await sendCommand(inputs, opts, { stdout, stderr, signal });
    });

  program
    .command('msg')
    .description('Send JSON messages: the JSON argument, or one JSON value per line on standard input.')
    .argument('[json]', 'the JSON text, e.g. \'{"detections":[[10,20,30,40]]}\'')
    .requiredOption('-t, --to <url>', 'receiver endpoint, e.g. tcp://127.0.0.1:7070')
    .option('-r, --ref <stream:seq>', 'the frame the message describes, e.g. cam0:41')
    .addOption(new Option('--retry-for <seconds>', 'keep reconnecting this long before giving up').argParser(parsePositive('--retry-for')).default(30))
    .option('-q, --quiet', 'print only errors')
    .action(async (json: string | undefined, opts) => {
      exitCode = await msgCommand(json, opts, { stdout, stderr, stdin, signal });
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return EXIT.OK;
      if (err.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    return reportError(err, stderr);
  }
  return exitCode;
}

// ---- serve ----------------------------------------------------------------------------------------------

async function serveCommand(
  opts: {
    listen?: string[];
    out?: string;
    maxFrameBytes: number;
    maxMetaBytes: number;
    maxMessageBytes: number;
    fsync?: boolean;
    quiet?: boolean;
  },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; signal: AbortSignal },
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  let server: FramewireServer | undefined;
  try {
    const sinks = [];
    if (opts.out) {
      sinks.push(await FolderSink.open(resolve(opts.out), { fsync: !!opts.fsync, onError: (e) => line(io.stderr, `framewire: ${e.message}`) }));
    }
    server = await createServer({
      listen: opts.listen ?? ['tcp://0.0.0.0:7070'],
      sinks,
      limits: { maxFrameBytes: opts.maxFrameBytes, maxMetaBytes: opts.maxMetaBytes, maxMessageBytes: opts.maxMessageBytes },
    });
    const counts = new Map<string, number>();
    server.on('connection', (c) => log(`connected: ${c.remote} (${c.client})`));
    server.on('disconnect', (c, err) => log(`disconnected: ${c.remote}${err ? ` (${err.message})` : ''}`));
    server.on('stream', (s, { next }) =>
      log(`stream ${s.name} (${s.kind}, ${s.mode}) from ${s.sender}${next > 0 ? `, resuming at frame ${next}` : ''}`),
    );
    server.on('frame', (f) => counts.set(f.stream.name, (counts.get(f.stream.name) ?? 0) + 1));
    server.on('frame-error', (e) => log(`refused: ${e.message}`));
    server.on('warning', (e) => log(`warning: ${e.message}`));
    server.on('message', (m) => {
      line(io.stdout, JSON.stringify({ sender: m.sender, receivedUs: m.receivedUs, ref: m.ref, json: m.json }));
    });
    log(`framewire ${VERSION} receiving on ${server.urls.join(', ')}${opts.out ? `, saving to ${resolve(opts.out)}` : ''}`);
    await abortPromise(io.signal);
    log('stopping…');
    await server.close();
    const total = [...counts.entries()].map(([k, v]) => `${k}: ${v}`).join(', ');
    log(`received ${total || 'no frames'}`);
    return EXIT.OK;
  } catch (err) {
    await server?.close();
    return reportError(err, io.stderr);
  }
}

// ---- send ---------------------------------------------------------------------------------------------

async function sendCommand(
  inputs: string[],
  opts: CommonNet & {
    to: string;
    stream?: string;
    kind: StreamKind;
    mode: StreamMode;
    fps?: number;
    loop?: boolean;
    windowFrames: number;
    windowBytes: number;
    epoch?: string;
    progress: boolean;
  },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; signal: AbortSignal },
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  io.signal.addEventListener('abort', onAbort, { once: true });
  const source = folderSource(inputs, { fps: opts.fps, loop: !!opts.loop, signal: stop.signal });
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  let progress: Progress | undefined;
  try {
    const opened = await source.open();
    const streamName = opts.stream ?? defaultStreamName(inputs);
    client = await connect(opts.to, {
      retryForMs: opts.retryFor * 1000,
      windowFrames: opts.windowFrames,
      windowBytes: opts.windowBytes,
      ...(opts.epoch ? { epoch: opts.epoch } : {}),
    });
    const c = client;
    c.on('reconnecting', ({ attempt, delayMs, error }) =>
      log(`connection lost (${error.detail}); retry ${attempt} in ${delayMs} ms`),
    );
    c.on('connected', ({ reconnect }) => {
      if (reconnect) log(`reconnected to ${opts.to}; resending unacknowledged frames`);
    });
    const refused: FramewireError[] = [];
    c.on('frame-error', (e) => {
      refused.push(e);
      line(io.stderr, `framewire: ${e.message}`);
    });
    let streamError: FramewireError | undefined;
    c.on('stream-error', (e) => {
      streamError = e;
      stop.abort();
    });
    const st = c.stream(streamName, { kind: opts.kind, mode: opts.mode });
    log(`sending ${opened.files.length} files (${(opened.totalBytes / 1e6).toFixed(1)} MB) to ${opts.to} as stream ${streamName}`);
    const showProgress = opts.progress && !opts.quiet;
    progress = showProgress
      ? new Progress({
          total: opts.loop ? undefined : { frames: opened.files.length, bytes: opened.totalBytes },
          stream: io.stderr,
          label: streamName,
        })
      : undefined;
    const p = progress;
    let ackedFrames = 0;
    let ackedBytes = 0;
    const started = performance.now();
    c.on('ack', (a) => {
      ackedFrames += a.frames;
      ackedBytes += a.bytes;
      p?.tick(a.frames, a.bytes);
    });
    for await (const frame of opened) {
      await st.send(frame);
      if (stop.signal.aborted) break;
    }
    if (streamError) throw streamError;
    await c.close();
    const summary = p
      ? p.done()
      : (() => {
          const seconds = (performance.now() - started) / 1000;
          return { frames: ackedFrames, bytes: ackedBytes, seconds, mbPerSec: ackedBytes / 1e6 / seconds, fps: ackedFrames / seconds };
        })();
    if (!p && !opts.quiet) line(io.stderr, formatSummary(summary));
    if (refused.length > 0) {
      line(io.stderr, `framewire: ${refused.length} frame(s) refused by the receiver`);
      return EXIT.FAILED;
    }
    return EXIT.OK;
  } catch (err) {
    progress?.stop();
    client?.destroy();
    return reportError(err, io.stderr);
  } finally {
    io.signal.removeEventListener('abort', onAbort);
  }
}

// ---- msg ----------------------------------------------------------------------------------------------

async function msgCommand(
  json: string | undefined,
  opts: CommonNet & { to: string; ref?: string },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; stdin: NodeJS.ReadableStream; signal: AbortSignal },
): Promise<number> {
  let ref: { stream: string; seq: number } | undefined;
  if (opts.ref !== undefined) {
    const m = /^(.+):(\d+)$/.exec(opts.ref);
    if (!m) throw new UsageError(`--ref "${opts.ref}" must look like STREAM:SEQ, e.g. cam0:41`);
    ref = { stream: m[1]!, seq: Number(m[2]) };
  }
  // Check the argument before connecting, so a typo fails at once.
  if (json !== undefined) {
    try {
      JSON.parse(json);
    } catch (err) {
      throw new FramewireError('ERR_BAD_JSON', `the message is not valid JSON: ${(err as Error).message}`, {
        hint: `quote it for the shell, e.g. framewire msg --to URL '{"detections":[[10,20,30,40]]}'`,
      });
    }
  }
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect(opts.to, { retryForMs: opts.retryFor * 1000 });
    let n = 0;
    if (json !== undefined) {
      await client.message(json, { raw: true, ...(ref ? { ref } : {}) });
      n = 1;
    } else {
      const rl = createInterface({ input: io.stdin, crlfDelay: Infinity });
      let lineNo = 0;
      for await (const l of rl) {
        lineNo++;
        const text = l.trim();
        if (text === '') continue;
        try {
          await client.message(text, { raw: true, ...(ref ? { ref } : {}) });
          n++;
        } catch (err) {
          if (err instanceof FramewireError && err.code === 'ERR_BAD_JSON') {
            line(io.stderr, `framewire: line ${lineNo}: ${err.message} (skipped)`);
            continue;
          }
          throw err;
        }
      }
    }
    await client.close();
    if (!opts.quiet) line(io.stderr, `sent ${n} message${n === 1 ? '' : 's'} to ${opts.to}`);
    return EXIT.OK;
  } catch (err) {
    client?.destroy();
    return reportError(err, io.stderr);
  }
}
