/** `framewire msg`: send JSON messages. */
import { type Command, Option } from 'commander';
import { connect, FramewireError } from '../index.js';
import { redact } from '../urls.js';
import { checkApplicable, factsOf, schemeOf } from './applicability.js';
import {
  type CommandContext,
  type CommonNet,
  checkClientCert,
  checkJsonArgument,
  clientSecurity,
  EXIT,
  line,
  reportError,
  sendJsonLines,
  tokenOption,
} from './common.js';
import { legacyMsgCommand, legacySchemeOf } from './legacy.js';
import { parseRetryFor } from './values.js';

/** Adds `framewire msg` to the program. */
export function registerMsg(program: Command, ctx: CommandContext): void {
  program
    .command('msg')
    .description('Send JSON messages: the JSON argument, or one JSON value per line on standard input.')
    .argument('[json]', 'the JSON text, e.g. \'{"detections":[[10,20,30,40]]}\'')
    .requiredOption('-t, --to <url>', 'receiver endpoint, e.g. tcp://127.0.0.1:7070')
    .option('-r, --ref <stream:seq>', 'the frame the message describes, e.g. cam0:41')
    .addOption(
      new Option('--retry-for <seconds>', 'keep reconnecting this long before giving up')
        .argParser(parseRetryFor)
        .default(30),
    )
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
    .action(async (json: string | undefined, opts, cmd: Command) => {
      try {
        checkApplicable('msg', cmd, factsOf(cmd, [schemeOf(opts.to)]), opts.to);
        checkClientCert(opts);
      } catch (err) {
        return ctx.setExit(reportError(err, ctx.stderr));
      }
      // legacy-json://: the seed programs' message port (src/compat).
      if (legacySchemeOf(opts.to)) return ctx.setExit(await legacyMsgCommand(json, opts, ctx));
      ctx.setExit(await msgCommand(json, opts, ctx));
    });
}

// ---- msg ----------------------------------------------------------------------------------------------

async function msgCommand(
  json: string | undefined,
  opts: CommonNet & { to: string; ref?: string },
  io: {
    stdout: NodeJS.WritableStream;
    stderr: NodeJS.WritableStream;
    stdin: NodeJS.ReadableStream;
    signal: AbortSignal;
  },
): Promise<number> {
  let ref: { stream: string; seq: number } | undefined;
  if (opts.ref !== undefined) {
    const m = /^(.+):(\d+)$/.exec(opts.ref);
    if (!m)
      throw new FramewireError(
        'ERR_BAD_OPTION',
        `--ref "${opts.ref}" must look like STREAM:SEQ, e.g. cam0:41`,
      );
    ref = { stream: m[1]!, seq: Number(m[2]) };
  }
  // Check the argument before connecting, so a typo fails at once.
  checkJsonArgument(json, '{"detections":[[10,20,30,40]]}');
  let client: Awaited<ReturnType<typeof connect>> | undefined;
  try {
    client = await connect(opts.to, {
      retryForMs: opts.retryFor * 1000,
      signal: io.signal,
      ...clientSecurity(opts),
    });
    let n = 0;
    if (json !== undefined) {
      await client.message(json, { raw: true, ...(ref ? { ref } : {}) });
      n = 1;
    } else {
      const c = client;
      n = await sendJsonLines(
        io.stdin,
        (text) => c.message(text, { raw: true, ...(ref ? { ref } : {}) }),
        io.stderr,
      );
    }
    await client.close();
    if (!opts.quiet) line(io.stderr, `sent ${n} message${n === 1 ? '' : 's'} to ${redact(opts.to)}`);
    return EXIT.OK;
  } catch (err) {
    client?.destroy();
    return reportError(err, io.stderr);
  }
}
