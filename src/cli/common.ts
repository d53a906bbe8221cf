/** What the CLI commands share: I/O, exit codes, error printing and option parsers. */
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Option } from 'commander';
import { FramewireError } from '../index.js';

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

export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

export function line(out: NodeJS.WritableStream, text: string): void {
  out.write(`${text}\n`);
}

/** Prints an error as one line plus a hint; returns the exit code. */
export function reportError(err: unknown, stderr: NodeJS.WritableStream): number {
  if (err instanceof FramewireError) {
    line(stderr, `framewire: ${err.message}`);
    if (err.hint) line(stderr, `  hint: ${err.hint}`);
    return err.code === 'ERR_BAD_URL' ||
      err.code === 'ERR_UNSUPPORTED_SCHEME' ||
      err.code === 'ERR_BAD_OPTION'
      ? EXIT.USAGE
      : EXIT.FAILED;
  }
  const e = err as NodeJS.ErrnoException;
  line(stderr, `framewire: unexpected error: ${e?.stack ?? String(err)}`);
  return EXIT.FAILED;
}

export function abortPromise(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

export function defaultStreamName(inputs: string[]): string {
  const first = inputs[0];
  if (!first || /[*?[{]/.test(first)) return 'cam0';
  const b = basename(resolve(first)).replace(/\.[^.]*$/, '');
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(b) ? b : 'cam0';
}

export interface CommonNet {
  retryFor: number;
  quiet?: boolean;
  token?: string;
  ca?: string;
  cert?: string;
  key?: string;
}

/** --cert and --key of send and msg (a client certificate for mutual TLS) go together. */
export function checkClientCert(opts: { cert?: string | undefined; key?: string | undefined }): void {
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new FramewireError('ERR_BAD_OPTION', '--cert and --key go together', {
      hint: 'give the client certificate and its private key (PEM), for a receiver started with serve --ca',
    });
  }
}

/**
 * The connect() options that --token, --ca, --cert and --key give. --ca adds to Node's root CAs (and NODE_EXTRA_CA_CERTS)
 * (src/transports/tls.ts); --cert and --key answer a receiver that asks for a client certificate.
 */
export function clientSecurity(opts: CommonNet): {
  token?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
} {
  checkClientCert(opts);
  const ca = readPem('--ca', opts.ca);
  const cert = readPem('--cert', opts.cert);
  const key = readPem('--key', opts.key);
  const tls = { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
  return {
    ...(opts.token ? { token: opts.token } : {}),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
  };
}

/** The I/O every command gets, and how it reports its exit code. */
export interface CommandContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  signal: AbortSignal;
  setExit(code: number): void;
}

/** --token (or FRAMEWIRE_TOKEN), shared by serve, send and msg. */
export function tokenOption(): Option {
  return new Option('--token <secret>', 'shared secret: both sides must give the same one').env(
    'FRAMEWIRE_TOKEN',
  );
}

/** Reads a PEM file named by an option; a missing file is a clear ERR_BAD_OPTION. */
export function readPem(option: string, file: string | undefined): Buffer | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `cannot read ${option} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      {
        hint: `${option} takes a PEM file`,
      },
    );
  }
}

/** Checks the JSON argument of `msg` before connecting, so that a typo fails at once. */
export function checkJsonArgument(json: string | undefined, example: string): void {
  if (json === undefined) return;
  try {
    JSON.parse(json);
  } catch (err) {
    throw new FramewireError('ERR_BAD_JSON', `the message is not valid JSON: ${(err as Error).message}`, {
      hint: `quote it for the shell, e.g. framewire msg --to URL '${example}'`,
    });
  }
}

/**
 * Sends one message per line of `input` (blank lines skipped). A line that is not valid JSON, or too
 * large, is reported on `stderr` and skipped; other errors end the loop. Resolves to the count sent.
 */
export async function sendJsonLines(
  input: NodeJS.ReadableStream,
  send: (text: string) => Promise<unknown>,
  stderr: NodeJS.WritableStream,
): Promise<number> {
  const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  let lineNo = 0;
  let n = 0;
  for await (const l of rl) {
    lineNo++;
    const text = l.trim();
    if (text === '') continue;
    try {
      await send(text);
      n++;
    } catch (err) {
      if (
        err instanceof FramewireError &&
        (err.code === 'ERR_BAD_JSON' || err.code === 'ERR_MESSAGE_TOO_LARGE')
      ) {
        line(stderr, `framewire: line ${lineNo}: ${err.message} (skipped)`);
        continue;
      }
      throw err;
    }
  }
  return n;
}
