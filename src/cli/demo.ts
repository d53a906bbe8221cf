/**
 * `framewire demo` (what `npm start` runs): a receiver with the live viewer, and two test cameras (a
 * visible test pattern and a false-colour infrared one, both from ffmpeg) sending to it over loopback, plus
 * a JSON detection message every half second that names the visible frame it describes. Everything the
 * demo needs comes with `npm install`.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import {
  type ClientStream,
  connect,
  createServer,
  type FramewireClient,
  FramewireError,
  type FramewireServer,
} from '../index.js';
import { FolderSink } from '../sinks/folder.js';
import { createViewer, type ViewerSink } from '../sinks/viewer.js';
import { ffmpegSource } from '../sources/ffmpeg.js';
import { parseSizeOption } from '../sources/ffmpeg-options.js';
import { abortPromise, type CommandContext, EXIT, line, reportError } from './common.js';
import { viewAddress } from './serve.js';
import { parseFps, parseQuality, wxhOption } from './values.js';
import { viewGuard, viewHostOption, viewTokenOption } from './view-options.js';

const DEFAULT_VIEW = { host: '127.0.0.1', port: 8080 };
const DEFAULT_LISTEN = 'tcp://127.0.0.1:7070';

interface DemoOptions {
  out?: string;
  view?: { host: string; port: number };
  viewHost?: string[];
  viewToken?: string;
  listen?: string;
  size: string;
  fps: number;
  quality: number;
  quiet?: boolean;
}

/** Adds `framewire demo` to the program. */
export function registerDemo(program: Command, ctx: CommandContext): void {
  program
    .command('demo')
    .description(
      'Run a receiver with the live viewer and two test cameras (visible and infrared) on this machine, and print the viewer URL.',
    )
    .option('-o, --out <dir>', 'save the frames here (default: a temporary folder, removed on exit)')
    .option(
      '--view <host:port>',
      'viewer address (default 127.0.0.1:8080, or a free port if busy)',
      viewAddress,
    )
    .addOption(viewHostOption())
    .addOption(viewTokenOption())
    .option('-l, --listen <url>', 'receiver endpoint (default tcp://127.0.0.1:7070, or a free port if busy)')
    .addOption(
      new Option('--size <WxH>', 'picture size of the test cameras')
        .default('640x480')
        .argParser(wxhOption('--size')),
    )
    .addOption(new Option('--fps <n>', 'frames per second of each camera').argParser(parseFps).default(15))
    .addOption(new Option('--quality <n>', 'JPEG quality 1..100').argParser(parseQuality).default(80))
    .option('-q, --quiet', 'print only the viewer URL and errors')
    .action(async (opts: DemoOptions) => {
      ctx.setExit(await demoCommand(opts, ctx));
    });
}

/** Listens with `start(preferred)`; when that address is in use and `fallback` is given, uses `fallback`. */
async function withFallback<T>(
  start: (x: string) => Promise<T>,
  preferred: string,
  fallback: string | undefined,
): Promise<T> {
  try {
    return await start(preferred);
  } catch (err) {
    if (fallback === undefined || !(err instanceof FramewireError) || err.code !== 'ERR_LISTEN_FAILED')
      throw err;
    return start(fallback);
  }
}

/** A moving, breathing detection box: where it is at time `t` (s) in a `w`×`h` picture. */
export function demoDetections(t: number, w: number, h: number): unknown {
  const bw = Math.round(w * 0.22);
  const bh = Math.round(h * 0.42);
  const x = Math.round((w - bw) * (0.5 + 0.42 * Math.sin(t * 0.9)));
  const y = Math.round((h - bh) * (0.5 + 0.35 * Math.sin(t * 0.6 + 1)));
  const sw = Math.round(w * 0.16);
  const sh = Math.round(h * 0.12);
  const sx = Math.round((w - sw) * (0.5 - 0.4 * Math.cos(t * 0.5)));
  const sy = Math.round(h * 0.78 - sh / 2);
  return {
    detections: [
      { box: [x, y, bw, bh], label: 'person', score: Math.round((0.86 + 0.1 * Math.sin(t * 2)) * 100) / 100 },
      {
        box: [sx, sy, sw, sh],
        label: 'car',
        score: Math.round((0.71 + 0.08 * Math.cos(t * 1.3)) * 100) / 100,
      },
    ],
  };
}

async function demoCommand(opts: DemoOptions, io: CommandContext): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  io.signal.addEventListener('abort', onAbort, { once: true });
  let outDir = opts.out ? resolve(opts.out) : undefined;
  const temporary = outDir === undefined;
  let viewer: ViewerSink | undefined;
  let server: FramewireServer | undefined;
  let client: FramewireClient | undefined;
  const loops: Promise<void>[] = [];
  let failure: unknown;
  try {
    outDir ??= await mkdtemp(join(tmpdir(), 'framewire-demo-'));
    const view = opts.view ?? DEFAULT_VIEW;
    viewer = await withFallback(
      (port) => createViewer({ host: view.host, port: Number(port), ...viewGuard(opts, true) }),
      String(view.port),
      opts.view ? undefined : '0',
    );
    const folder = await FolderSink.open(outDir, { onError: (e) => log(`warning: ${e.message}`) });
    const sinks = [viewer, folder];
    server = await withFallback(
      (listen) => createServer({ listen, sinks }),
      opts.listen ?? DEFAULT_LISTEN,
      opts.listen ? undefined : 'tcp://127.0.0.1:0',
    );
    const url = server.urls[0]!;
    client = await connect(url, { clientName: 'framewire demo', retryForMs: 5000 });
    const visible = client.stream('visible', { kind: 'visible', mode: 'live' });
    const thermal = client.stream('thermal', { kind: 'infrared', mode: 'live' });

    const { width: w, height: h } = parseSizeOption(opts.size);
    let lastVisible = -1;
    const camera = async (
      pattern: 'testsrc' | 'thermal',
      st: ClientStream,
      onSent?: (seq: number) => void,
    ) => {
      const source = ffmpegSource(`${pattern}:${opts.size}@${opts.fps}`, {
        size: opts.size,
        fps: opts.fps,
        quality: opts.quality,
        signal: stop.signal,
      });
      try {
        for await (const frame of source) {
          if (stop.signal.aborted) break;
          const seq = await st.send(frame);
          onSent?.(seq);
        }
      } catch (err) {
        if (!stop.signal.aborted) {
          failure ??= err;
          stop.abort();
        }
      } finally {
        await source.close();
      }
    };
    loops.push(
      camera('testsrc', visible, (seq) => {
        lastVisible = seq;
      }),
    );
    loops.push(camera('thermal', thermal));

    const started = performance.now();
    const detections = setInterval(() => {
      if (lastVisible < 0 || !client) return;
      const t = (performance.now() - started) / 1000;
      client
        .message(demoDetections(t, w, h), { ref: { stream: 'visible', seq: lastVisible } })
        .catch(() => {});
    }, 500);
    detections.unref();
    stop.signal.addEventListener('abort', () => clearInterval(detections), { once: true });

    line(io.stdout, `viewer: ${viewer.url}`);
    log(`framewire demo: two test cameras (visible, thermal) at ${opts.size}, ${opts.fps} fps → ${url}`);
    log(`  MJPEG:   ${viewer.url}streams/visible.mjpg`);
    log(`  streams: ${viewer.url}api/streams`);
    log(`  metrics: ${viewer.url}metrics`);
    log(
      `  saving to ${outDir}${temporary ? ' (a temporary folder, removed on exit; keep one with --out DIR)' : ''}`,
    );
    log('press Ctrl-C to stop');
    await abortPromise(stop.signal);
    log('stopping…');
  } catch (err) {
    failure ??= err;
  } finally {
    stop.abort();
    io.signal.removeEventListener('abort', onAbort);
    await Promise.all(loops);
    // Live frames not acknowledged yet are not worth waiting for.
    client?.destroy();
    await server?.close();
    await viewer?.close();
    if (temporary && outDir) await rm(outDir, { recursive: true, force: true });
  }
  if (failure !== undefined) return reportError(failure, io.stderr);
  return EXIT.OK;
}
