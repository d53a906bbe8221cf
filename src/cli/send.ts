/** `framewire send`: send the frames of folders, globs or files. */
import { type Command, Option } from 'commander';
import {
  connect,
  type FramewireError,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
} from '../index.js';
import { folderSource } from '../sources/folder.js';
import {
  type CommandContext,
  type CommonNet,
  defaultStreamName,
  EXIT,
  line,
  parsePositive,
  parseSize,
  reportError,
} from './common.js';
import { formatSummary, Progress } from './progress.js';

/** Adds `framewire send` to the program. */
export function registerSend(program: Command, ctx: CommandContext): void {
  program
    .command('send')
    .description('Send the frames of folders, glob patterns or files to a receiver.')
    .argument('<inputs...>', 'folders, glob patterns ("frames/*.jpg") or image files')
    .requiredOption('-t, --to <url>', 'receiver endpoint, e.g. tcp://127.0.0.1:7070')
    .option(
      '-s, --stream <name>',
      'stream name (the folder name on the receiver); default: the input folder name',
    )
    .addOption(new Option('-k, --kind <kind>', 'camera kind').choices([...STREAM_KINDS]).default('visible'))
    .addOption(
      new Option('-m, --mode <mode>', 'delivery mode').choices([...STREAM_MODES]).default('reliable'),
    )
    .option(
      '--fps <n>',
      'pace frames at N per second (default: as fast as the receiver takes them)',
      parsePositive('--fps'),
    )
    .option('--loop', 'start again after the last frame, until interrupted')
    .addOption(
      new Option('--retry-for <seconds>', 'keep reconnecting this long before giving up')
        .argParser(parsePositive('--retry-for'))
        .default(30),
    )
    .addOption(
      new Option('--window-frames <n>', 'frames in flight before waiting for acks')
        .argParser(parsePositive('--window-frames'))
        .default(128),
    )
    .addOption(
      new Option('--window-bytes <size>', 'bytes in flight before waiting for acks')
        .argParser(parseSize)
        .default(32 * 1024 * 1024, '32MiB'),
    )
    .option('--epoch <id>', 'name this run of the sender (a receiver resumes per stream and epoch)')
    .option('--no-progress', 'no progress bar or progress lines')
    .option('-q, --quiet', 'print only errors')
    .action(async (inputs: string[], opts) => {
      ctx.setExit(await sendCommand(inputs, opts, ctx));
    });
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
    log(
      `sending ${opened.files.length} files (${(opened.totalBytes / 1e6).toFixed(1)} MB) to ${opts.to} as stream ${streamName}`,
    );
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
          return {
            frames: ackedFrames,
            bytes: ackedBytes,
            seconds,
            mbPerSec: ackedBytes / 1e6 / seconds,
            fps: ackedFrames / seconds,
          };
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
