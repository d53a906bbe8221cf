/**
 * The `framewire` command. A thin layer over the public API (src/index.ts): it parses arguments with
 * commander, wires sources, the client or server and sinks, and turns errors into one line plus a hint.
 * `run(argv, io)` is what tests call; it never calls process.exit.
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../index.js';
import { type CliIO, type CommandContext, EXIT, reportError } from './common.js';
import { registerConsume } from './consume.js';
import { registerDemo } from './demo.js';
import { registerMsg } from './msg.js';
import { registerSend } from './send.js';
import { registerServe } from './serve.js';

export { type CliIO, EXIT } from './common.js';

/** Runs the CLI with `argv` (without the node and script names). Resolves to the exit code. */
export async function run(argv: string[], io: Partial<CliIO> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const stdin = io.stdin ?? process.stdin;
  const signal = io.signal ?? new AbortController().signal;
  let exitCode: number = EXIT.OK;
  const ctx: CommandContext = {
    stdout,
    stderr,
    stdin,
    signal,
    setExit: (c) => {
      exitCode = c;
    },
  };

  const program = new Command('framewire')
    .description('Move camera frames, still images and JSON messages between machines.')
    .version(VERSION, '-V, --version')
    .showHelpAfterError('(see framewire <command> --help)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => stdout.write(s),
      writeErr: (s) => stderr.write(s),
      // A bad option value is a usage error with a code, like the ones the commands raise themselves.
      outputError: (s, write) =>
        write(
          `framewire: ${s.replace(/^error: /, '').replace(/^(option '[^']*' argument '.*?' is invalid)\. /, 'ERR_BAD_OPTION: $1: ')}`,
        ),
    });

  registerServe(program, ctx);
  registerSend(program, ctx);
  registerMsg(program, ctx);
  registerConsume(program, ctx);
  registerDemo(program, ctx);

  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0)
        return EXIT.OK;
      if (err.code === 'commander.help') return EXIT.OK;
      return EXIT.USAGE;
    }
    return reportError(err, stderr);
  }
  return exitCode;
}
