/** The checks `framewire serve` runs before it opens anything: the scheme table and the token conflicts. */
import type { Command } from 'commander';
import { FramewireError } from '../errors.js';
import { checkApplicable, factsOf, NO_TOKEN, schemeOf } from './applicability.js';
import { line } from './common.js';

/** The endpoints serve listens on when --listen is not given. */
export const DEFAULT_LISTEN = ['tcp://0.0.0.0:7070'];

/**
 * Throws ERR_BAD_OPTION for options that do nothing with the --listen endpoints (and the other options),
 * for --cert without --key, and for a --token beside endpoints that cannot check it (the seed formats and
 * ImageZMQ) unless --allow-unauthenticated-legacy, which prints a warning on `stderr` instead.
 */
export function checkServeOptions(
  opts: {
    listen?: string[];
    token?: string;
    cert?: string;
    key?: string;
    ca?: string;
    allowUnauthenticatedLegacy?: boolean;
  },
  cmd: Command,
  stderr: NodeJS.WritableStream,
): void {
  const listen = opts.listen ?? DEFAULT_LISTEN;
  checkApplicable('serve', cmd, factsOf(cmd, listen.map(schemeOf)), listen.join(' and '));
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new FramewireError('ERR_BAD_OPTION', '--cert and --key go together', {
      hint: 'give the certificate and its private key (PEM) for the tls:// and wss:// endpoints',
    });
  }
  if (opts.ca !== undefined && opts.cert === undefined) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      '--ca asks senders for a client certificate: it needs --cert',
      {
        hint: 'give --cert and --key for the tls:// or wss:// endpoint as well',
      },
    );
  }
  const unchecked = listen.filter((e) => (NO_TOKEN as readonly string[]).includes(schemeOf(e)));
  if (opts.token && unchecked.length > 0) {
    const what = `${unchecked.join(', ')} cannot check --token (the seed formats and ImageZMQ carry none)`;
    if (!opts.allowUnauthenticatedLegacy) {
      throw new FramewireError(
        'ERR_BAD_OPTION',
        `${what}: anyone who reaches ${unchecked.length === 1 ? 'it' : 'them'} could send frames past the token`,
        {
          hint: 'remove those --listen endpoints, or give --allow-unauthenticated-legacy to accept them without authentication',
        },
      );
    }
    line(
      stderr,
      `framewire: warning: ${what}; they accept frames without authentication (--allow-unauthenticated-legacy)`,
    );
  }
}
