/**
 * Which options apply to which endpoints and inputs: one table for every command, checked before anything
 * starts. An option given on the command line (or through its environment variable) that does nothing for
 * the chosen scheme, input or companion options is a usage error (ERR_BAD_OPTION, exit code 2) that names
 * each such option and what it applies to. docs/cli.md has the same table.
 */
import type { Command } from 'commander';
import { FramewireError } from '../errors.js';

/** Schemes that speak framewire protocol v1 (and so take a token, windows, epochs…). */
export const NATIVE = ['tcp', 'tls', 'udp', 'ws', 'wss'] as const;
/** Schemes over TLS. */
export const SECURE = ['tls', 'wss'] as const;
/** Endpoints that cannot check a token: the seed formats and ImageZMQ carry none. */
export const NO_TOKEN = ['legacy-udp', 'legacy-tcp', 'legacy-json', 'izmq', 'izmq+sub', 'izmq+pub'] as const;

/**
 * What a command was given, as a set of facts: schemes (`tcp`), inputs (`input:files`, `input:ffmpeg`, and
 * `input:video` for a video file or http(s) URL), options given (`--out`).
 */
export type Facts = ReadonlySet<string>;

export interface OptionRule {
  /** The flag as printed. */
  flag: string;
  /** commander's attribute name for it (e.g. `windowFrames`, `progress` for `--no-progress`). */
  key: string;
  /**
   * Where the option does something: every group must hold at least one of the facts. A scheme is written
   * as it is (`udp`), an input as `input:files` or `input:ffmpeg`, another option as its flag (`--out`).
   */
  when: readonly (readonly string[])[];
}

const rule = (flag: string, key: string, ...when: (readonly string[])[]): OptionRule => ({ flag, key, when });

const FILES = ['input:files'];
const FFMPEG = ['input:ffmpeg'];
/** A video file or an http(s) video URL: what ffmpeg can read again (--loop) or at its own pace (--realtime). */
const VIDEO = ['input:video'];

/** The table. Options not listed apply everywhere. */
export const OPTION_RULES: Readonly<Record<string, readonly OptionRule[]>> = {
  send: [
    rule('--kind', 'kind', [...NATIVE, 'legacy-tcp', 'izmq', 'izmq+pub']),
    rule('--mode', 'mode', NATIVE),
    rule('--stream', 'stream', [...NATIVE, 'legacy-tcp', 'izmq', 'izmq+pub']),
    rule('--size', 'size', FFMPEG),
    rule('--quality', 'quality', FFMPEG),
    rule('--realtime', 'realtime', VIDEO),
    rule('--loop', 'loop', [...FILES, ...VIDEO]),
    rule('--times', 'times', NATIVE, FILES),
    rule('--stats', 'stats', NATIVE),
    rule('--retry-for', 'retryFor', [...NATIVE, 'legacy-tcp', 'izmq', 'izmq+pub']),
    rule('--window-frames', 'windowFrames', NATIVE),
    rule('--window-bytes', 'windowBytes', NATIVE),
    rule('--mtu', 'mtu', ['udp']),
    rule('--rate', 'rate', ['udp']),
    rule('--latency', 'latency', ['udp']),
    rule('--resume', 'resume', NATIVE, FILES),
    rule('--epoch', 'epoch', [...NATIVE, 'izmq', 'izmq+pub']),
    rule('--token', 'token', NATIVE),
    rule('--ca', 'ca', SECURE),
    rule('--cert', 'cert', SECURE),
    rule('--key', 'key', SECURE),
  ],
  msg: [
    rule('--ref', 'ref', NATIVE),
    rule('--retry-for', 'retryFor', NATIVE),
    rule('--token', 'token', NATIVE),
    rule('--ca', 'ca', SECURE),
    rule('--cert', 'cert', SECURE),
    rule('--key', 'key', SECURE),
  ],
  serve: [
    rule('--mtu', 'mtu', ['udp']),
    // The viewer's /ws takes framewire senders too: the token and the CRC setting apply to them.
    rule('--token', 'token', [...NATIVE, '--view']),
    rule('--no-verify-crc', 'verifyCrc', [...NATIVE, '--view']),
    rule('--cert', 'cert', SECURE),
    rule('--key', 'key', SECURE),
    rule('--ca', 'ca', SECURE),
    rule('--allow-unauthenticated-legacy', 'allowUnauthenticatedLegacy', NO_TOKEN, ['--token']),
    rule('--fsync', 'fsync', ['--out']),
    rule('--write-concurrency', 'writeConcurrency', ['--out']),
    rule('--sync-write-max', 'syncWriteMax', ['--out']),
    rule('--on-conflict', 'onConflict', ['--out']),
    rule('--view-cert', 'viewCert', ['--view']),
    rule('--view-key', 'viewKey', ['--view']),
    rule('--bus-ca', 'busCa', ['--publish']),
    rule('--bus-cert', 'busCert', ['--publish']),
    rule('--bus-key', 'busKey', ['--publish']),
    rule('--tolerance', 'tolerance', ['--sync']),
    rule('--max-wait', 'maxWait', ['--sync']),
  ],
  consume: [rule('--fsync', 'fsync', ['--out'])],
};

/** The scheme of an endpoint as the transports read it (a bare `host:port` is tcp). */
export function schemeOf(endpoint: string): string {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(endpoint.trim());
  return m ? m[1]!.toLowerCase() : 'tcp';
}

/** True when the user gave the option (on the command line or through its environment variable). */
export function given(cmd: Command, key: string): boolean {
  const source = cmd.getOptionValueSource(key);
  return source === 'cli' || source === 'env';
}

function describeFact(f: string): string {
  if (f === 'input:files') return 'folders, globs and image files';
  if (f === 'input:ffmpeg') return 'video files, cameras, URLs and test patterns';
  if (f === 'input:video') return 'video files and http(s) video URLs';
  if (f.startsWith('--')) return `with ${f}`;
  return `${f}://`;
}

/** What the option applies to, for the message: "udp://", "tls://, wss://", "with --out". */
function describeRule(r: OptionRule): string {
  return r.when.map((g) => g.map(describeFact).join(', ')).join('; and ');
}

/**
 * Throws ERR_BAD_OPTION naming every option of `command` given on `cmd` that does nothing with `facts`.
 * `what` names the target in the message, e.g. the --to URL.
 */
export function checkApplicable(command: string, cmd: Command, facts: Facts, what: string): void {
  const bad = (OPTION_RULES[command] ?? []).filter(
    (r) => given(cmd, r.key) && !r.when.every((g) => g.some((f) => facts.has(f))),
  );
  if (bad.length === 0) return;
  const list = bad.map((r) => `${r.flag} (only ${describeRule(r)})`).join(', ');
  throw new FramewireError(
    'ERR_BAD_OPTION',
    `${bad.length === 1 ? 'an option does' : 'options do'} nothing with ${what}: ${list}`,
    { hint: `remove ${bad.map((r) => r.flag).join(', ')}, or see the scheme/option table in docs/cli.md` },
  );
}

/** The facts of a command: its schemes, and the options given that others depend on. */
export function factsOf(
  cmd: Command,
  schemes: readonly string[],
  extra: readonly string[] = [],
): Set<string> {
  const facts = new Set<string>([...schemes, ...extra]);
  for (const o of cmd.options) {
    const key = o.attributeName();
    if (o.long && given(cmd, key)) facts.add(o.long);
  }
  return facts;
}
