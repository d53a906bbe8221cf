/** `framewire consume`: a worker that takes frames and messages from NATS JetStream into the sinks. */
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parseDuration } from '../bus/url.js';
import { FramewireError, type ReceivedFrame, type Sink } from '../index.js';
import { FolderSink } from '../sinks/folder.js';
import { createFoxglove, type FoxgloveSink } from '../sinks/foxglove.js';
import { OnceFolderSink } from '../sinks/once.js';
import { createViewer, type ViewerSink } from '../sinks/viewer.js';
import { JetStreamSource, parseStartFrom, type StartFrom } from '../sources/jetstream.js';
import { checkApplicable, factsOf } from './applicability.js';
import { type CommandContext, collect, line, reportError } from './common.js';
import { busTls, viewAddress } from './serve.js';
import { viewGuard, viewHostOption, viewTokenOption, viewTokenTyped } from './view-options.js';

function option<T>(parse: (v: string) => T) {
  return (v: string): T => {
    try {
      return parse(v);
    } catch (err) {
      if (err instanceof FramewireError) throw new InvalidArgumentError(err.detail);
      throw err;
    }
  };
}

/** Adds `framewire consume` to the program. */
export function registerConsume(program: Command, ctx: CommandContext): void {
  program
    .command('consume')
    .description(
      'Take frames and messages from NATS JetStream (published by serve --publish) into a folder, the viewer or stdout.',
    )
    .argument('<url>', 'the bus, e.g. nats://host:4222 (the same ?stream= and ?prefix= as the receiver)')
    .option(
      '-s, --stream <name>',
      'only this framewire stream (repeatable); default all streams and messages',
      collect,
    )
    .option(
      '-g, --group <name>',
      'the worker group (durable consumer): workers of one group share the frames',
      'framewire',
    )
    .addOption(
      new Option(
        '--from <where>',
        'where a new group starts: first, new, a time (ISO 8601) or a duration ago (10m)',
      )
        .argParser(option(parseStartFrom))
        .default('first'),
    )
    .option('-o, --out <dir>', 'save frames to DIR/<stream>/ and messages to DIR/messages.jsonl, each once')
    .option('--fsync', 'flush every frame to disk before acknowledging it to the bus')
    .option('--view <host:port>', 'serve the live viewer page, MJPEG and metrics', viewAddress)
    .addOption(viewHostOption())
    .addOption(viewTokenOption())
    .option(
      '--foxglove <host:port>',
      'serve the streams and messages to Foxglove or Lichtblick (Foxglove WebSocket protocol), e.g. 127.0.0.1:8765',
      viewAddress,
    )
    .addOption(
      new Option(
        '--ack-wait <duration>',
        'how long a frame may stay unacknowledged before another worker gets it',
      )
        .argParser(
          option((v) => {
            const ms = parseDuration(v, '--ack-wait');
            if (ms <= 0 || ms > 7 * 86_400_000)
              throw new InvalidArgumentError(`--ack-wait must be above 0 and at most 7d, got "${v}"`);
            return ms;
          }),
        )
        .default(30_000, '30s'),
    )
    .option('--bus-ca <file>', 'CA (PEM) that signs the bus server certificate (TLS to the bus)')
    .option('--bus-cert <file>', 'client certificate (PEM) for the bus')
    .option('--bus-key <file>', 'client private key (PEM) for the bus')
    .option('-q, --quiet', 'print only messages (and frames without --out or --view) and errors')
    .action(async (url: string, opts, cmd: Command) => {
      try {
        checkApplicable('consume', cmd, factsOf(cmd, []), url);
      } catch (err) {
        return ctx.setExit(reportError(err, ctx.stderr));
      }
      ctx.setExit(await consumeCommand(url, { ...opts, viewTokenTyped: viewTokenTyped(cmd) }, ctx));
    });
}

async function consumeCommand(
  url: string,
  opts: {
    stream?: string[];
    group: string;
    from: StartFrom | string;
    out?: string;
    fsync?: boolean;
    view?: { host: string; port: number };
    viewHost?: string[];
    viewToken?: string;
    viewTokenTyped?: boolean;
    foxglove?: { host: string; port: number };
    ackWait: number;
    busCa?: string;
    busCert?: string;
    busKey?: string;
    quiet?: boolean;
  },
  io: CommandContext,
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  const sinks: Sink[] = [];
  let source: JetStreamSource | undefined;
  let viewer: ViewerSink | undefined;
  let fox: FoxgloveSink | undefined;
  try {
    const from = typeof opts.from === 'string' ? parseStartFrom(opts.from) : opts.from;
    const guard = viewGuard(opts, !!opts.view);
    if (opts.view) {
      viewer = await createViewer({ ...opts.view, ...guard });
      sinks.push(viewer);
    }
    if (opts.foxglove) {
      fox = await createFoxglove(opts.foxglove);
      sinks.push(fox);
    }
    let once: OnceFolderSink | undefined;
    if (opts.out) {
      const folder = await FolderSink.open(resolve(opts.out), {
        fsync: !!opts.fsync,
        onError: (e) => line(io.stderr, `framewire: ${e.message}`),
      });
      once = new OnceFolderSink(folder);
      sinks.push(once);
    }
    source = await JetStreamSource.open({
      url,
      group: opts.group,
      ...(opts.stream ? { streams: opts.stream } : {}),
      from,
      ackWaitMs: opts.ackWait,
      ...busTls(opts),
      onStatus: (s) => log(s),
    });
    const printFrames = !opts.out && !opts.view && !opts.foxglove;
    log(
      `consuming ${source.filter} on ${source.url} as group "${source.group}"${opts.out ? `, saving to ${resolve(opts.out)}` : ''}`,
    );
    if (viewer) {
      // A viewer shows the newest frame of each stream at once, not after the group's next delivery.
      for (const f of await source.latest()) await viewer.frame(f);
      log(`viewer on ${viewer.url}`);
    }
    if (fox) {
      // Foxglove too starts with the newest frame of each stream.
      for (const f of await source.latest()) fox.frame(f);
      log(`foxglove on ${fox.url} (open it in Foxglove or Lichtblick: Open connection, Foxglove WebSocket)`);
    }
    const stats = await source.deliverTo(sinks, {
      signal: io.signal,
      onFrame: printFrames
        ? (f: ReceivedFrame, d) =>
            line(io.stdout, JSON.stringify({ ...frameLine(f), deliveryCount: d.deliveryCount }))
        : undefined,
      onMessage: (m) =>
        line(
          io.stdout,
          JSON.stringify({ sender: m.sender, receivedUs: m.receivedUs, ref: m.ref, json: m.json }),
        ),
      onError: (e) => line(io.stderr, `framewire: ${e.message}`),
    });
    log('stopping…');
    await source.close();
    for (const s of sinks) await s.close?.();
    log(
      `consumed ${stats.frames} frames, ${stats.messages} messages (${stats.redelivered} redelivered${once ? `, ${once.stats.skipped} already in the folder` : ''}${stats.failed ? `, ${stats.failed} failed` : ''})`,
    );
    return 0;
  } catch (err) {
    await source?.close().catch(() => {});
    for (const s of sinks) await Promise.resolve(s.close?.()).catch(() => {});
    return reportError(err, io.stderr);
  }
}

/** A frame as one JSON line on stdout (without its bytes). */
function frameLine(f: ReceivedFrame): Record<string, unknown> {
  return {
    stream: f.stream.name,
    kind: f.stream.kind,
    epoch: f.stream.epoch,
    seq: f.seq,
    name: f.name,
    bytes: f.data.length,
    contentType: f.contentType,
    captureUs: f.captureUs,
    receivedUs: f.receivedUs,
    ...(f.meta !== undefined ? { meta: f.meta } : {}),
  };
}
