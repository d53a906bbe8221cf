/**
 * `framewire send … --to izmq://HOST:PORT | izmq+pub://HOST:PORT`: frames to an ImageZMQ hub (REQ, Lazy
 * Pirate resends) or to ImageZMQ subscribers (PUB); src/cli/send.ts dispatches here.
 */
import { ImageZmqSender } from '../compat/imagezmq/client.js';
import { izmqSchemeOf } from '../compat/imagezmq/zmq.js';
import { FramewireError } from '../errors.js';
import type { StreamKind } from '../protocol/constants.js';
import { EXIT, line, reportError } from './common.js';
import { openInput } from './input.js';
import { formatSummary, Progress } from './progress.js';

export { izmqSchemeOf };

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  signal: AbortSignal;
}

/** `framewire send … --to izmq://… | izmq+pub://…`. Resolves to the exit code. */
export async function izmqSendCommand(
  inputs: string[],
  opts: {
    to: string;
    stream?: string;
    kind?: StreamKind;
    fps?: number;
    size?: string;
    quality?: number;
    realtime?: boolean;
    loop?: boolean;
    epoch?: string;
    retryFor: number;
    progress: boolean;
    quiet?: boolean;
  },
  io: Io,
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  let progress: Progress | undefined;
  let sender: ImageZmqSender | undefined;
  try {
    if (izmqSchemeOf(opts.to) === 'izmq+sub') {
      throw new FramewireError(
        'ERR_UNSUPPORTED_SCHEME',
        `${opts.to} is a hub endpoint; send to izmq:// or izmq+pub://`,
        {
          hint: 'serve --listen izmq+sub://HOST:PORT receives from a PUB sender',
        },
      );
    }
    const { frames, total, name: msg, what, kind } = await openInput(inputs, opts, io.signal);
    if (izmqSchemeOf(opts.to) === 'izmq+pub') log(`waiting for ImageZMQ subscribers on ${opts.to}`);
    sender = await ImageZmqSender.open(opts.to, {
      retryForMs: opts.retryFor * 1000,
      kind,
      signal: io.signal,
      ...(opts.epoch ? { epoch: opts.epoch } : {}),
    });
    const s = sender;
    log(`sending ${what} to ${s.target} as ImageZMQ messages with msg "${msg}"`);
    const started = performance.now();
    progress =
      opts.progress && !opts.quiet ? new Progress({ total, stream: io.stderr, label: msg }) : undefined;
    let refused = 0;
    for await (const frame of frames) {
      try {
        await s.send(msg, frame);
      } catch (err) {
        if ((err as FramewireError).code !== 'ERR_REMOTE') throw err;
        refused++;
        line(io.stderr, `framewire: ${(err as Error).message}`);
      }
      progress?.tick(1, frame.data.length);
      if (io.signal.aborted) break;
    }
    const { resends } = s.stats;
    await s.close();
    if (progress) progress.done();
    else if (!opts.quiet) {
      const seconds = (performance.now() - started) / 1000;
      const { sent, bytes } = s.stats;
      line(
        io.stderr,
        formatSummary({ frames: sent, bytes, seconds, mbPerSec: bytes / 1e6 / seconds, fps: sent / seconds }),
      );
    }
    if (resends > 0) log(`${resends} message(s) sent again after a reply did not come in time`);
    if (refused > 0) {
      line(io.stderr, `framewire: ${refused} frame(s) refused by the hub`);
      return EXIT.FAILED;
    }
    return EXIT.OK;
  } catch (err) {
    progress?.stop();
    await sender?.close();
    return reportError(err, io.stderr);
  }
}
