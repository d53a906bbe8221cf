/** `framewire serve`: receive frames and messages. */
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isRefusal } from '../errors.js';
import { createServer, FramewireError, type FramewireServer, VERSION, webSocketSenders } from '../index.js';
import {
  DEFAULT_SYNC_WRITE_MAX_BYTES,
  DEFAULT_WRITE_CONCURRENCY,
  FolderSink,
  type OnConflict,
} from '../sinks/folder.js';
import { createFoxglove, type FoxgloveSink } from '../sinks/foxglove.js';
import { JetStreamSink } from '../sinks/jetstream.js';
import { SyncSink } from '../sinks/sync.js';
import { createViewer, parseHostPort, type ViewerSink } from '../sinks/viewer.js';
import { parseSyncStreams } from '../sync/frames.js';
import type { ReceivedFrame } from '../types.js';
import { given, schemeOf } from './applicability.js';
import {
  abortPromise,
  type CommandContext,
  collect,
  EXIT,
  line,
  readPem,
  reportError,
  tokenOption,
} from './common.js';
import { checkServeOptions, DEFAULT_LISTEN } from './serve-options.js';
import { udpListenOptions } from './udp-options.js';
import {
  numberOption,
  parseMaxFrameBytes,
  parseMaxMessageBytes,
  parseMaxMetaBytes,
  parseMaxWait,
  parseMtu,
  parseTolerance,
  sizeOption,
} from './values.js';
import { viewGuard, viewHostOption, viewTokenOption, viewTokenTyped } from './view-options.js';

/** Adds `framewire serve` to the program. */
export function registerServe(program: Command, ctx: CommandContext): void {
  program
    .command('serve')
    .description('Receive frames and messages; save them in a folder and print messages as JSON lines.')
    .option(
      '-l, --listen <url>',
      'endpoint to listen on (repeatable), e.g. tcp://0.0.0.0:7070, ws://0.0.0.0:7071/PATH',
      collect,
    )
    .option('-o, --out <dir>', 'save frames to DIR/<stream>/ and messages to DIR/messages.jsonl')
    .addOption(
      new Option('--max-frame-bytes <size>', 'largest frame accepted (1B..4GiB-1)')
        .argParser(parseMaxFrameBytes)
        .default(64 * 1024 * 1024, '64MiB'),
    )
    .addOption(
      new Option('--max-meta-bytes <size>', 'largest frame metadata accepted (0..65535 bytes)')
        .argParser(parseMaxMetaBytes)
        .default(16 * 1024, '16KiB'),
    )
    .addOption(
      new Option('--max-message-bytes <size>', 'largest JSON message accepted (2B..4GiB-1)')
        .argParser(parseMaxMessageBytes)
        .default(1024 * 1024, '1MiB'),
    )
    .option(
      '--mtu <bytes>',
      'udp:// endpoints: largest datagram accepted and sent (default 65507: the sender chooses)',
      parseMtu,
    )
    .option(
      '--no-verify-crc',
      "trust the transport's integrity (TCP checksum, TLS) instead of checking each frame's CRC32; senders then skip it too",
    )
    .option('--fsync', 'flush every frame to disk before acknowledging it (slower; survives power loss)')
    .addOption(
      new Option('--write-concurrency <n>', 'frames written to --out at once, all streams together')
        .argParser(parseConcurrency)
        .default(DEFAULT_WRITE_CONCURRENCY),
    )
    .addOption(
      new Option(
        '--sync-write-max <size>',
        'frames up to SIZE are written to --out with synchronous calls while the disk keeps up (0: all on the thread pool)',
      )
        .argParser(parseSyncWriteMax)
        .default(DEFAULT_SYNC_WRITE_MAX_BYTES, '1MiB'),
    )
    .addOption(
      new Option('--on-conflict <what>', 'a frame whose file name is taken by another frame in --out')
        .choices(['keep-both', 'refuse', 'overwrite'])
        .default('keep-both'),
    )
    .option(
      '--view <host:port>',
      'serve the live viewer page, MJPEG (/streams/NAME.mjpg), /api/streams, /metrics, the camera page /capture and framewire senders at ws://HOST:PORT/ws, e.g. 127.0.0.1:8080',
      viewAddress,
    )
    .option(
      '--publish <url>',
      'publish every frame and message to NATS JetStream, e.g. nats://host:4222?replicas=3&max-age=24h (docs/scale.md)',
    )
    .option(
      '--bus-ca <file>',
      'with --publish: CA (PEM) that signs the bus server certificate (TLS to the bus)',
    )
    .option('--bus-cert <file>', 'with --publish: client certificate (PEM) for the bus')
    .option('--bus-key <file>', 'with --publish: client private key (PEM) for the bus')
    .option(
      '--foxglove <host:port>',
      'serve the streams and messages to Foxglove or Lichtblick (Foxglove WebSocket protocol), e.g. 127.0.0.1:8765',
      viewAddress,
    )
    .option(
      '--view-cert <file>',
      'serve the viewer over https with this certificate (PEM): phones need it for /capture',
    )
    .option('--view-key <file>', 'private key (PEM) of --view-cert')
    .addOption(viewHostOption())
    .addOption(viewTokenOption())
    .addOption(tokenOption())
    .option('--cert <file>', 'TLS certificate (PEM) for tls:// and wss:// endpoints')
    .option('--key <file>', 'TLS private key (PEM) for tls:// and wss:// endpoints')
    .option('--ca <file>', 'with --cert: require senders to present a certificate signed by this CA')
    .option(
      '--allow-unauthenticated-legacy',
      'with --token: still listen on legacy-*:// and izmq*:// endpoints, which cannot check it (a warning is printed)',
    )
    .option(
      '--sync <streams>',
      'group frames of these streams (A,B[,…]) taken at the same moment into OUT/sync.jsonl (repeatable: several groups)',
      collect,
    )
    .addOption(
      new Option('--tolerance <time>', 'with --sync: largest span of a group, e.g. 20ms')
        .argParser(parseTolerance)
        .default(20_000, '20ms'),
    )
    .addOption(
      new Option('--max-wait <time>', 'with --sync: how long to wait for a late frame, e.g. 200ms')
        .argParser(parseMaxWait)
        .default(200_000, '200ms'),
    )
    .option(
      '--trust-clocks',
      "take senders' capture times as they are (PTP or chrony keep the clocks together): no clock correction",
    )
    .option('-q, --quiet', 'print only messages and errors')
    .action(async (opts, cmd: Command) => {
      try {
        checkServeOptions(opts, cmd, ctx.stderr);
      } catch (err) {
        return ctx.setExit(reportError(err, ctx.stderr));
      }
      ctx.setExit(
        await serveCommand(
          { ...opts, syncWriteMaxGiven: given(cmd, 'syncWriteMax'), viewTokenTyped: viewTokenTyped(cmd) },
          ctx,
        ),
      );
    });
}

const parseSyncWriteMax = sizeOption('--sync-write-max', { min: 0, max: 2 ** 32, integer: true });

const parseConcurrency = numberOption('--write-concurrency', { min: 1, max: 1024, integer: true });

/** Parses --view HOST:PORT for commander (a bad value is a usage error). */
export function viewAddress(v: string): { host: string; port: number } {
  try {
    return parseHostPort(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message.replace(/^ERR_BAD_OPTION: /, ''));
  }
}

// ---- serve ----------------------------------------------------------------------------------------------

async function serveCommand(
  opts: {
    listen?: string[];
    mtu?: number;
    out?: string;
    maxFrameBytes: number;
    maxMetaBytes: number;
    maxMessageBytes: number;
    fsync?: boolean;
    writeConcurrency: number;
    syncWriteMax: number;
    viewTokenTyped?: boolean;
    /** --sync-write-max was given (else an izmq:// endpoint raises the default). */
    syncWriteMaxGiven?: boolean;
    onConflict: OnConflict;
    verifyCrc: boolean;
    token?: string;
    cert?: string;
    key?: string;
    ca?: string;
    view?: { host: string; port: number };
    publish?: string;
    busCa?: string;
    busCert?: string;
    busKey?: string;
    foxglove?: { host: string; port: number };
    viewCert?: string;
    viewKey?: string;
    viewHost?: string[];
    viewToken?: string;
    sync?: string[];
    tolerance: number;
    maxWait: number;
    trustClocks?: boolean;
    quiet?: boolean;
  },
  io: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream; signal: AbortSignal },
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  let server: FramewireServer | undefined;
  let viewer: ViewerSink | undefined;
  let bus: JetStreamSink | undefined;
  let fox: FoxgloveSink | undefined;
  let syncSink: SyncSink | undefined;
  try {
    const sinks = [];
    const guard = viewGuard(opts, !!opts.view);
    // First: the viewer returns at once, so pages see a frame before slower sinks have stored it.
    if (opts.view) {
      const viewCert = readPem('--view-cert', opts.viewCert);
      const viewKey = readPem('--view-key', opts.viewKey);
      if (!viewCert !== !viewKey) {
        throw new FramewireError('ERR_BAD_OPTION', '--view-cert and --view-key go together', {
          hint: 'give both PEM files, or neither for plain http',
        });
      }
      viewer = await createViewer({
        ...opts.view,
        ...guard,
        ...(viewCert && viewKey ? { tls: { cert: viewCert, key: viewKey } } : {}),
      });
      sinks.push(viewer);
    }
    if (opts.foxglove) {
      fox = await createFoxglove(opts.foxglove);
      sinks.push(fox);
    }
    if (opts.out) {
      sinks.push(
        await FolderSink.open(resolve(opts.out), {
          fsync: !!opts.fsync,
          writeConcurrency: opts.writeConcurrency,
          onConflict: opts.onConflict,
          onError: (e) => line(io.stderr, `framewire: ${e.message}`),
          // An ImageZMQ REQ sender waits for each frame to be saved: its latency is the throughput, so
          // frames up to 4 MiB are written synchronously unless --sync-write-max says otherwise.
          syncWriteMaxBytes:
            !opts.syncWriteMaxGiven && (opts.listen ?? []).some((l) => schemeOf(l) === 'izmq')
              ? 4 * 1024 * 1024
              : opts.syncWriteMax,
        }),
      );
    }
    if (opts.publish) {
      bus = await JetStreamSink.open({
        url: opts.publish,
        ...busTls(opts),
        onStatus: (s) => log(s),
      });
      sinks.push(bus);
    }
    if (opts.sync) {
      syncSink = await SyncSink.open(
        opts.sync.map((g) => parseSyncStreams(g)),
        opts.out === undefined ? undefined : resolve(opts.out),
        {
          toleranceUs: opts.tolerance,
          maxWaitUs: opts.maxWait,
          trustClocks: !!opts.trustClocks,
          onError: (e) => line(io.stderr, `framewire: ${e.message}`),
        },
      );
      sinks.push(syncSink);
      viewer?.addSync(syncSink);
    }
    // Frames stored, per stream, for the summary at exit: counted by a last sink (it sees a frame once the
    // sinks before it stored it), not a 'frame' listener, so that frame buffers can be used again.
    const counts = new Map<string, number>();
    sinks.push({
      frameConcurrency: 1024,
      borrowsFrameData: true,
      frame: (f: ReceivedFrame) => {
        counts.set(f.stream.name, (counts.get(f.stream.name) ?? 0) + 1);
      },
    });
    const cert = readPem('--cert', opts.cert);
    const key = readPem('--key', opts.key);
    const ca = readPem('--ca', opts.ca);
    server = await createServer({
      verifyCrc: opts.verifyCrc,
      trustClocks: !!opts.trustClocks,
      ...(opts.token ? { token: opts.token } : {}),
      ...(cert && key ? { tls: { cert, key, ...(ca ? { ca, requestCert: true } : {}) } } : {}),
      listen: udpListenOptions(opts.listen ?? DEFAULT_LISTEN, opts.mtu),
      sinks,
      limits: {
        maxFrameBytes: opts.maxFrameBytes,
        maxMetaBytes: opts.maxMetaBytes,
        maxMessageBytes: opts.maxMessageBytes,
      },
    });
    // The viewer's /ws also takes framewire senders (the capture page): one origin for the browser.
    viewer?.takeSenders(webSocketSenders(server));
    server.on('connection', (c) => log(`connected: ${c.remote} (${c.client})`));
    server.on('disconnect', (c, err) => log(`disconnected: ${c.remote}${err ? ` (${err.message})` : ''}`));
    server.on('stream', (s, { next }) =>
      log(
        `stream ${s.name} (${s.kind}, ${s.mode}) from ${s.sender}${next > 0 ? `, resuming at frame ${next}` : ''}`,
      ),
    );
    server.on('frame-error', (e) => log(`${isRefusal(e.code) ? 'refused' : 'dropped'}: ${e.message}`));
    server.on('warning', (e) => log(`warning: ${e.message}`));
    server.on('message', (m) => {
      line(
        io.stdout,
        JSON.stringify({ sender: m.sender, receivedUs: m.receivedUs, ref: m.ref, json: m.json }),
      );
    });
    log(
      `framewire ${VERSION} receiving on ${server.urls.join(', ')}${opts.out ? `, saving to ${resolve(opts.out)}` : ''}`,
    );
    if (bus) log(`publishing to JetStream on ${bus.url}`);
    if (viewer) {
      log(`viewer on ${viewer.url} (MJPEG at /streams/NAME.mjpg, metrics at /metrics)`);
      log(`camera page on ${viewer.url}capture, senders at ${viewer.url.replace(/^http/, 'ws')}ws`);
    }
    if (fox)
      log(`foxglove on ${fox.url} (open it in Foxglove or Lichtblick: Open connection, Foxglove WebSocket)`);
    await abortPromise(io.signal);
    log('stopping…');
    await server.close();
    const total = [...counts.entries()].map(([k, v]) => `${k}: ${v}`).join(', ');
    log(`received ${total || 'no frames'}`);
    if (syncSink) log(`sync: ${syncSink.groups} groups; unpaired ${JSON.stringify(syncSink.unpaired())}`);
    return EXIT.OK;
  } catch (err) {
    await server?.close();
    await viewer?.close();
    await bus?.close();
    await fox?.close();
    await syncSink?.close();
    return reportError(err, io.stderr);
  }
}

/** --bus-ca, --bus-cert and --bus-key as the JetStream sink's and source's tls option. */
export function busTls(opts: { busCa?: string; busCert?: string; busKey?: string }): {
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
} {
  const ca = readPem('--bus-ca', opts.busCa);
  const cert = readPem('--bus-cert', opts.busCert);
  const key = readPem('--bus-key', opts.busKey);
  if (!ca && !cert && !key) return {};
  return { tls: { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) } };
}
