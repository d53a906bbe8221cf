/**
 * `--view-host` and `--view-token`: the viewer's Host allow-list and token, for every command that starts
 * a viewer (serve, consume, demo). Checked by the viewer itself (src/sinks/viewer-guard.ts).
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { FramewireError } from '../errors.js';
import { checkAllowedHost } from '../sinks/viewer-guard.js';
import { collect } from './common.js';

/** The options as commander gives them. */
export interface ViewGuardFlags {
  viewHost?: string[];
  viewToken?: string;
  /** --view-token was typed on the command line (FRAMEWIRE_VIEW_TOKEN alone is no flag). */
  viewTokenTyped?: boolean;
}

/** `--view-host NAME` (repeatable). */
export function viewHostOption(): Option {
  return new Option(
    '--view-host <name>',
    'another name the viewer answers to in the Host header (repeatable), e.g. the name of this machine on the LAN or of a reverse proxy; loopback names and the --view address always work',
  ).argParser((v: string, prev: string[] | undefined) => {
    try {
      checkAllowedHost(v);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
    return collect(v, prev);
  });
}

/** `--view-token TOKEN` (or FRAMEWIRE_VIEW_TOKEN). */
export function viewTokenOption(): Option {
  return new Option(
    '--view-token <secret>',
    'every viewer request must carry this secret: open the page once as /?token=SECRET (a cookie keeps it), or send Authorization: Bearer SECRET',
  ).env('FRAMEWIRE_VIEW_TOKEN');
}

/** Whether `cmd` got --view-token on its command line. */
export function viewTokenTyped(cmd: Command): boolean {
  return cmd.getOptionValueSource('viewToken') === 'cli';
}

/** The ViewerOptions fields of the flags; a flag given without a viewer is a usage error. */
export function viewGuard(
  flags: ViewGuardFlags,
  hasViewer: boolean,
): { allowedHosts?: string[]; token?: string } {
  // FRAMEWIRE_VIEW_TOKEN in the environment is no flag: a command without a viewer ignores it.
  if (!hasViewer && (flags.viewHost || flags.viewTokenTyped)) {
    throw new FramewireError('ERR_BAD_OPTION', '--view-host and --view-token need --view', {
      hint: 'add --view HOST:PORT, or leave them out',
    });
  }
  return {
    ...(flags.viewHost ? { allowedHosts: flags.viewHost } : {}),
    ...(flags.viewToken !== undefined ? { token: flags.viewToken } : {}),
  };
}
