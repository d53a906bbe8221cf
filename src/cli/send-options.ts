/** The checks `framewire send` runs before it opens anything: inputs, and options against the scheme table. */
import type { Command } from 'commander';
import { FramewireError } from '../errors.js';
import { DEFAULT_LIMITS } from '../protocol/constants.js';
import { isFfmpegInput, parseFfmpegInput } from '../sources/ffmpeg.js';
import { parseUdpOptions } from '../transports/udp/options.js';
import { checkApplicable, factsOf, schemeOf } from './applicability.js';
import { checkClientCert } from './common.js';
import { withUdpOptions } from './udp-options.js';

/**
 * Throws ERR_BAD_OPTION for a video, camera, URL or pattern that is not the only input, for every option
 * that does nothing with the --to scheme or the inputs (one message naming them all), for --cert without
 * --key, and for --resume with --loop or --epoch.
 */
export function checkSendOptions(
  inputs: readonly string[],
  opts: {
    to: string;
    resume?: boolean;
    loop?: boolean;
    epoch?: string;
    cert?: string;
    key?: string;
    mtu?: number;
    rate?: number;
    latency?: number;
  },
  cmd: Command,
): void {
  const viaFfmpeg = inputs.length === 1 && isFfmpegInput(inputs[0] ?? '');
  if (!viaFfmpeg && inputs.some((i) => isFfmpegInput(i))) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      'a video file, camera, URL or test pattern must be the only input of send',
      { hint: 'send a folder or image files, or one video file, camera, URL or test pattern' },
    );
  }
  const scheme = schemeOf(opts.to);
  const kind = viaFfmpeg ? parseFfmpegInput(inputs[0] ?? '')?.kind : undefined;
  const inputFacts = viaFfmpeg
    ? ['input:ffmpeg', ...(kind === 'file' || kind === 'http' ? ['input:video'] : [])]
    : ['input:files'];
  const facts = factsOf(cmd, [scheme], inputFacts);
  checkApplicable('send', cmd, facts, `${opts.to} and ${viaFfmpeg ? inputs[0] : 'image files'}`);
  checkClientCert(opts);
  // A bad udp:// URL parameter (?latency=abc) is a usage error now, not a reason to keep reconnecting.
  if (scheme === 'udp' && URL.canParse(opts.to.trim()))
    parseUdpOptions(new URL(withUdpOptions(opts.to, opts)), DEFAULT_LIMITS);
  if (opts.resume && (opts.loop || opts.epoch)) {
    throw new FramewireError('ERR_BAD_OPTION', '--resume cannot go with --loop or --epoch', {
      hint: '--resume names its own epoch from the stream and the inputs',
    });
  }
}
