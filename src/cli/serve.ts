/** `framewire serve`: receive frames and messages. */
import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { createServer, type FramewireServer, VERSION } from '../index.js';
import { FolderSink } from '../sinks/folder.js';
import { abortPromise, type CommandContext, collect, EXIT, line, parseSize, reportError } from './common.js';

/** Adds `framewire serve` to the program. */
export function registerServe(program: Command, ctx: CommandContext): void {
  program
    .command('serve')
    .description('Receive frames and messages; save them in a folder and print messages as JSON lines.')
    .option('-l, --listen <url>', 'endpoint to listen on (repeatable), e.g. tcp://0.0.0.0:7070', collect)
    .option('-o, --out <dir>', 'save frames to DIR/<stream>/ and messages to DIR/messages.jsonl')
    .addOption(
      new Option('--max-frame-bytes <size>', 'largest frame accepted')
        .argParser(parseSize)
        .default(64 * 1024 * 1024, '64MiB'),
    )
    .addOption(
      new Option('--max-meta-bytes <size>', 'largest frame metadata accepted')
        .argParser(parseSize)
        .default(16 * 1024, '16KiB'),
    )
    .addOption(
      new Option('--max-message-bytes <size>', 'largest JSON message accepted')
        .argParser(parseSize)
        .default(1024 * 1024, '1MiB'),
    )
    .option('--fsync', 'flush every frame to disk before acknowledging it (slower; survives power loss)')
    .option('-q, --quiet', 'print only messages and errors')
    .action(async (opts) => {
      ctx.setExit(await serveCommand(opts, ctx));
    });
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
      sinks.push(
        await FolderSink.open(resolve(opts.out), {
          fsync: !!opts.fsync,
          onError: (e) => line(io.stderr, `framewire: ${e.message}`),
        }),
      );
    }
    server = await createServer({
      listen: opts.listen ?? ['tcp://0.0.0.0:7070'],
      sinks,
      limits: {
        maxFrameBytes: opts.maxFrameBytes,
        maxMetaBytes: opts.maxMetaBytes,
        maxMessageBytes: opts.maxMessageBytes,
      },
    });
    const counts = new Map<string, number>();
    server.on('connection', (c) => log(`connected: ${c.remote} (${c.client})`));
    server.on('disconnect', (c, err) => log(`disconnected: ${c.remote}${err ? ` (${err.message})` : ''}`));
    server.on('stream', (s, { next }) =>
      log(
        `stream ${s.name} (${s.kind}, ${s.mode}) from ${s.sender}${next > 0 ? `, resuming at frame ${next}` : ''}`,
      ),
    );
    server.on('frame', (f) => counts.set(f.stream.name, (counts.get(f.stream.name) ?? 0) + 1));
    server.on('frame-error', (e) => log(`refused: ${e.message}`));
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
