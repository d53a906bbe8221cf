/** `framewire send`: send the frames of folders, globs or files, or of a video, camera, URL or test pattern. */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import {
  connect,
  type Frame,
  type FramewireError,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
} from '../index.js';
import { FrameBufferPool } from '../protocol/frame-buffers.js';
import {
  describeFfmpeg,
  type FfmpegSource,
  ffmpegSource,
  ffmpegStreamName,
  isFfmpegInput,
} from '../sources/ffmpeg.js';
import { folderSource } from '../sources/folder.js';
import { readTimesFile } from '../sources/times.js';
import { redact } from '../urls.js';
import { schemeOf } from './applicability.js';
import {
  type CommandContext,
  type CommonNet,
  clientSecurity,
  defaultStreamName,
  EXIT,
  line,
  reportError,
  tokenOption,
} from './common.js';
import { izmqSchemeOf, izmqSendCommand } from './imagezmq.js';
import { legacySchemeOf, legacySendCommand } from './legacy.js';
import { formatSummary, Progress } from './progress.js';
import { checkSendOptions } from './send-options.js';
import { formatClock, StatusLine } from './status-line.js';
import { udpLatencyMs, withUdpOptions } from './udp-options.js';
import {
  parseFps,
  parseLatency,
  parseMtu,
  parseQuality,
  parseRate,
  parseRetryFor,
  parseWindowBytes,
  parseWindowFrames,
  wxhOption,
} from './values.js';

/** Adds `framewire send` to the program. */
export function registerSend(program: Command, ctx: CommandContext): void {
  program
    .command('send')
    .description(
      'Send the frames of folders, glob patterns or image files, or of one video file, camera, URL or test pattern (through ffmpeg), to a receiver.',
    )
    .argument(
      '<inputs...>',
      'folders, glob patterns ("frames/*.jpg") or image files; or one video file (.mp4, .mkv, .avi ...), camera (/dev/video0), rtsp:// or http:// URL, testsrc[:WxH@FPS] or thermal[:WxH@FPS]',
    )
    .requiredOption(
      '-t, --to <url>',
      'receiver endpoint, e.g. tcp://127.0.0.1:7070 (also legacy-udp://, legacy-tcp://, izmq://, izmq+pub://)',
    )
    .option(
      '-s, --stream <name>',
      'stream name (the folder name on the receiver); default: the input folder name, or testsrc, thermal, camN, rtsp, the video file name',
    )
    .addOption(
      new Option('-k, --kind <kind>', 'camera kind (default: infrared for thermal, else visible)').choices([
        ...STREAM_KINDS,
      ]),
    )
    .addOption(
      new Option(
        '-m, --mode <mode>',
        'delivery mode (default: live for cameras, URLs and test patterns, reliable for folders and video files)',
      ).choices([...STREAM_MODES]),
    )
    .option(
      '--fps <n>',
      'folders: pace frames at N per second (default: as fast as the receiver takes them); ffmpeg inputs: output frame rate',
      parseFps,
    )
    .option(
      '--size <WxH>',
      'ffmpeg inputs: scale to WxH, e.g. 1280x720 (a camera is asked for that mode)',
      wxhOption('--size'),
    )
    .option('--quality <n>', 'ffmpeg inputs: JPEG quality 1..100 (default 80)', parseQuality)
    .option('--realtime', "video files: send at the file's own frame rate, as a camera would")
    .option('--loop', 'start again after the last frame (folders and video files), until interrupted')
    .option(
      '--times <file>',
      'folders: capture times from FILE, JSON lines {"name": "0001.jpg", "captureUs": µs} (default: file modification times)',
    )
    .option('--stats', 'print a status line every second: fps, MB/s, ack latency p50, drops')
    .addOption(
      new Option('--retry-for <seconds>', 'keep reconnecting this long before giving up')
        .argParser(parseRetryFor)
        .default(30),
    )
    .addOption(
      new Option('--window-frames <n>', 'frames in flight before waiting for acks')
        .argParser(parseWindowFrames)
        .default(128),
    )
    .addOption(
      new Option('--window-bytes <size>', 'bytes in flight before waiting for acks')
        .argParser(parseWindowBytes)
        .default(32 * 1024 * 1024, '32MiB'),
    )
    .option(
      '--mtu <bytes>',
      'udp://: largest datagram (default 1200; up to 65507 on loopback or jumbo frames)',
      parseMtu,
    )
    .option(
      '--rate <rate>',
      'udp://: cap the sending rate, e.g. 50MB/s (default: congestion control decides)',
      parseRate,
    )
    .addOption(
      new Option(
        '--latency <ms>',
        'live streams over udp://: a frame not delivered whole within this is dropped (1..60000, default 120)',
      ).argParser(parseLatency),
    )
    .option(
      '--resume',
      'folders: skip the frames the receiver already holds from an earlier run of the same command',
    )
    .option('--epoch <id>', 'name this run of the sender (a receiver resumes per stream and epoch)')
    .option('--no-progress', 'no progress bar or progress lines')
    .addOption(tokenOption())
    .option(
      '--ca <file>',
      "tls://, wss://: trust this CA or self-signed certificate (PEM) for the receiver's certificate, besides Node's root CAs and NODE_EXTRA_CA_CERTS",
    )
    .option(
      '--cert <file>',
      'tls://, wss://: client certificate (PEM) for a receiver that asks for one (serve --ca)',
    )
    .option('--key <file>', 'tls://, wss://: private key (PEM) of --cert')
    .option('-q, --quiet', 'print only errors')
    .action(async (inputs: string[], opts, cmd: Command) => {
      try {
        checkSendOptions(inputs, opts, cmd);
      } catch (err) {
        return ctx.setExit(reportError(err, ctx.stderr));
      }
      // legacy-udp://, legacy-tcp://: the seed programs' servers (src/compat).
      if (legacySchemeOf(opts.to)) return ctx.setExit(await legacySendCommand(inputs, opts, ctx));
      // izmq://, izmq+pub://: ImageZMQ hubs and subscribers (src/compat/imagezmq).
      if (izmqSchemeOf(opts.to)) return ctx.setExit(await izmqSendCommand(inputs, opts, ctx));
      ctx.setExit(await sendCommand(inputs, opts, ctx));
    });
}

/** The same frames, the first one already read (its errors thrown here). */
async function primed(source: AsyncIterable<Frame>): Promise<AsyncIterable<Frame>> {
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  return {
    async *[Symbol.asyncIterator]() {
      try {
        if (first.done) return;
        yield first.value;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      } finally {
        await it.return?.();
      }
    },
  };
}

// ---- send ---------------------------------------------------------------------------------------------

async function sendCommand(
  inputs: string[],
  opts: CommonNet & {
    to: string;
    stream?: string;
    kind?: StreamKind;
    mode?: StreamMode;
    fps?: number;
    size?: string;
    quality?: number;
    realtime?: boolean;
    loop?: boolean;
    stats?: boolean;
    times?: string;
    windowFrames: number;
    windowBytes: number;
    mtu?: number;
    rate?: number;
    latency?: number;
    epoch?: string;
    resume?: boolean;
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
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  let progress: Progress | undefined;
  let status: StatusLine | undefined;
  try {
    // One video, camera, URL or test pattern goes through ffmpeg; anything else is read as image files.
    const first = inputs[0] ?? '';
    // Checked by checkSendOptions(): one ffmpeg input alone, or image files; options that fit them.
    const viaFfmpeg = inputs.length === 1 && isFfmpegInput(first);
    let frames: AsyncIterable<Frame>;
    let video: FfmpegSource | undefined;
    let streamName: string;
    let mode: StreamMode;
    let total: { frames: number; bytes: number } | undefined;
    let what: string;
    let files: readonly string[] | undefined;
    // Files sent reliably over tcp:// or tls:// are read into buffers used again: the client keeps a frame
    // until the receiver acknowledged it (to send it again after a reconnect) and drops it then, so an
    // acknowledged frame's buffer goes back for a later file (below, on 'ack'). Other transports and live
    // streams keep a new buffer per file.
    const readBuffers =
      !viaFfmpeg && (opts.mode ?? 'reliable') === 'reliable' && ['tcp', 'tls'].includes(schemeOf(opts.to))
        ? new FrameBufferPool()
        : undefined;
    /** Buffers of frames sent and not acknowledged yet, by sequence number, in sending order. */
    const unacked = new Map<number, Buffer>();
    if (viaFfmpeg) {
      video = ffmpegSource(first, {
        ...(opts.size === undefined ? {} : { size: opts.size }),
        ...(opts.fps === undefined ? {} : { fps: opts.fps }),
        ...(opts.quality === undefined ? {} : { quality: opts.quality }),
        ...(opts.realtime ? { realtime: true } : {}),
        loop: !!opts.loop,
        signal: stop.signal,
      });
      const { ffmpeg, caps } = await video.open();
      // A video file is read up to its first frame before connecting, so that a file ffmpeg cannot read
      // fails at once; live inputs start once connected, so that their first frame is fresh.
      frames = video.live ? video : await primed(video);
      streamName = opts.stream ?? ffmpegStreamName(first);
      mode = opts.mode ?? (video.live ? 'live' : 'reliable');
      what = `${first} through ${describeFfmpeg(ffmpeg, caps)}`;
    } else {
      const opened = await folderSource(inputs, {
        ...(opts.times ? { times: await readTimesFile(opts.times) } : {}),
        fps: opts.fps,
        loop: !!opts.loop,
        signal: stop.signal,
        frameBuffers: readBuffers,
      }).open();
      frames = opened;
      files = opened.files;
      streamName = opts.stream ?? defaultStreamName(inputs);
      mode = opts.mode ?? 'reliable';
      total = opts.loop ? undefined : { frames: opened.files.length, bytes: opened.totalBytes };
      what = `${opened.files.length} files (${(opened.totalBytes / 1e6).toFixed(1)} MB)`;
    }
    const kind = opts.kind ?? (video?.kind === 'thermal' ? 'infrared' : 'visible');
    // Ctrl-C while still connecting stops at once; once connected it stops the source and flushes instead.
    const connecting = new AbortController();
    const abortConnecting = () => connecting.abort();
    io.signal.addEventListener('abort', abortConnecting, { once: true });
    try {
      // --mtu, --rate and --latency travel in the udp:// URL, where the transport and the client read them.
      client = await connect(withUdpOptions(opts.to, opts), {
        retryForMs: opts.retryFor * 1000,
        windowFrames: opts.windowFrames,
        windowBytes: opts.windowBytes,
        signal: connecting.signal,
        ...clientSecurity(opts),
        ...(opts.epoch ? { epoch: opts.epoch } : {}),
        ...(opts.resume ? { epoch: resumeEpoch(streamName, inputs) } : {}),
      });
    } finally {
      io.signal.removeEventListener('abort', abortConnecting);
    }
    const c = client;
    c.on('reconnecting', ({ attempt, delayMs, error }) =>
      log(`connection lost (${error.detail}); retry ${attempt} in ${delayMs} ms`),
    );
    c.on('connected', ({ reconnect }) => {
      if (reconnect) log(`reconnected to ${redact(opts.to)}; resending unacknowledged frames`);
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
    const st = c.stream(streamName, { kind, mode });
    if (opts.resume && files) {
      // The same command again: same epoch, so the receiver says how many frames of this run it holds.
      const held = await st.ready();
      if (held > 0) {
        const rest = files.slice(held);
        log(`resuming: the receiver holds ${Math.min(held, files.length)} of ${files.length} frames`);
        frames =
          rest.length > 0
            ? await folderSource(rest, {
                fps: opts.fps,
                signal: stop.signal,
                frameBuffers: readBuffers,
              }).open()
            : (async function* () {})();
        total = total && { frames: rest.length, bytes: await sizeOf(rest) };
        what = `${rest.length} remaining files`;
      }
    }
    // Over udp:// a live frame has a latency budget: --latency or the URL's ?latency= (one setting).
    const budget =
      mode === 'live' && schemeOf(opts.to) === 'udp'
        ? `, frames not delivered within ${opts.latency ?? udpLatencyMs(opts.to)} ms are dropped`
        : '';
    log(`sending ${what} to ${redact(opts.to)} as stream ${streamName} (${mode}${budget})`);
    // The status line replaces the progress display; the summary is printed either way.
    const showProgress = opts.progress && !opts.quiet && !opts.stats;
    progress = showProgress ? new Progress({ total, stream: io.stderr, label: streamName }) : undefined;
    const p = progress;
    let ackedFrames = 0;
    let ackedBytes = 0;
    const started = performance.now();
    c.on('ack', (a) => {
      ackedFrames += a.frames;
      ackedBytes += a.bytes;
      p?.tick(a.frames, a.bytes);
      if (readBuffers && a.stream === streamName) {
        for (const [seq, data] of unacked) {
          if (seq > a.seq) break;
          unacked.delete(seq);
          readBuffers.give(data);
        }
      }
    });
    const dropped = () => c.stats().framesDropped + (video?.debug?.dropped ?? 0);
    if (opts.stats) {
      status = new StatusLine({
        stream: io.stderr,
        label: streamName,
        sample: () => ({
          frames: ackedFrames,
          bytes: ackedBytes,
          ackP50Ms: c.stats().ackLatencyMs.p50,
          dropped: dropped(),
          clockOffsetMs: c.stats().clockOffsetMs,
          clockErrorMs: c.stats().clockErrorMs,
        }),
      });
      status.start();
    }
    for await (const frame of frames) {
      const seq = await st.send(frame);
      if (readBuffers) unacked.set(seq, frame.data);
      if (stop.signal.aborted) break;
    }
    if (streamError) throw streamError;
    await c.close();
    status?.stop();
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
    const clock = formatClock(c.stats());
    if (opts.stats && clock !== '')
      line(io.stderr, `${clock.trim()} (this sender's clock minus the receiver's)`);
    const drops = dropped();
    if (drops > 0)
      log(`dropped ${drops} frame(s): a live stream sends the newest frame and skips older unsent ones`);
    if (refused.length > 0) {
      line(io.stderr, `framewire: ${refused.length} frame(s) refused by the receiver`);
      return EXIT.FAILED;
    }
    return EXIT.OK;
  } catch (err) {
    progress?.stop();
    status?.stop();
    client?.destroy();
    return reportError(err, io.stderr);
  } finally {
    io.signal.removeEventListener('abort', onAbort);
  }
}

/**
 * The epoch of `send --resume`: the same for the same stream and inputs, so that a receiver's resume point
 * from an earlier run applies. It assumes the inputs only grew at the end (in natural order) since then.
 */
export function resumeEpoch(stream: string, inputs: readonly string[]): string {
  const h = createHash('sha256').update(`framewire-resume\n${stream}`);
  for (const i of inputs) h.update(`\n${resolve(i)}`);
  return `r-${h.digest('hex').slice(0, 30)}`;
}

async function sizeOf(files: readonly string[]): Promise<number> {
  let n = 0;
  for (const f of files) n += (await stat(f)).size;
  return n;
}
