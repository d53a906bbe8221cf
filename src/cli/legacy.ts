/**
 * `framewire send` and `framewire msg` towards the seed programs' servers: what the CLI runs when `--to`
 * is a legacy-udp://, legacy-tcp:// or legacy-json:// URL (src/cli/send.ts and msg.ts dispatch here).
 */

import { LegacyJsonClient, LegacyTcpClient, LegacyUdpClient } from '../compat/clients.js';
import { legacySchemeOf } from '../compat/common.js';
import { FramewireError } from '../errors.js';
import type { StreamKind } from '../protocol/constants.js';
import type { Frame } from '../types.js';
import { checkJsonArgument, EXIT, line, reportError, sendJsonLines } from './common.js';
import { openInput } from './input.js';
import { formatSummary, Progress } from './progress.js';

export { legacySchemeOf };

interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin?: NodeJS.ReadableStream;
  signal: AbortSignal;
}

/** `framewire send … --to legacy-udp://… | legacy-tcp://…`. Resolves to the exit code. */
export async function legacySendCommand(
  inputs: string[],
  opts: {
    to: string;
    stream?: string;
    /** Default: visible, or infrared for ffmpeg's `thermal` pattern. */
    kind?: StreamKind;
    fps?: number;
    size?: string;
    quality?: number;
    realtime?: boolean;
    loop?: boolean;
    retryFor: number;
    progress: boolean;
    quiet?: boolean;
  },
  io: Io,
): Promise<number> {
  const log = (s: string) => {
    if (!opts.quiet) line(io.stderr, s);
  };
  const scheme = legacySchemeOf(opts.to);
  let progress: Progress | undefined;
  let client: LegacyUdpClient | LegacyTcpClient | undefined;
  try {
    if (scheme === 'legacy-json') {
      throw new FramewireError(
        'ERR_UNSUPPORTED_SCHEME',
        `${opts.to} is a JSON message port; it takes no frames`,
        {
          hint: 'send frames to legacy-udp:// or legacy-tcp://, and messages with framewire msg --to legacy-json://HOST:6666',
        },
      );
    }
    // Stopping (Ctrl-C) ends the source; the frame being sent finishes, then the session ends cleanly.
    // Image files, or one video file, camera, URL or test pattern through ffmpeg (like the seed's camera
    // client); the seed protocols wait for each answer, so a live input drops the frames it cannot send.
    const input = await openInput(inputs, opts, io.signal);
    const { total, what, kind } = input;
    const streamName = input.name;
    const frames = numbered(input.frames);
    if (scheme === 'legacy-udp') {
      const c = await LegacyUdpClient.open(opts.to);
      client = c;
      log(
        `sending ${what} to ${c.target} as seed UDP pictures; the receiver names the stream after this sender's address`,
      );
    } else {
      const c = await LegacyTcpClient.open(opts.to, {
        folder: streamName,
        format: kind,
        retryForMs: opts.retryFor * 1000,
      });
      client = c;
      log(`sending ${what} to ${c.target} into folder ${streamName} (format ${kind})`);
    }
    const started = performance.now();
    progress =
      opts.progress && !opts.quiet
        ? new Progress({
            total,
            stream: io.stderr,
            label: scheme === 'legacy-udp' ? 'pictures' : streamName,
          })
        : undefined;
    for await (const frame of frames) {
      if (client instanceof LegacyUdpClient) await client.send(frame.data, frame.name ?? 'a picture');
      else await client.send(frame);
      progress?.tick(1, frame.data.length);
    }
    await client.close();
    const resends = client.stats.resends;
    if (progress) progress.done();
    else if (!opts.quiet) {
      const seconds = (performance.now() - started) / 1000;
      const { sent, bytes } = client.stats;
      line(
        io.stderr,
        formatSummary({ frames: sent, bytes, seconds, mbPerSec: bytes / 1e6 / seconds, fps: sent / seconds }),
      );
    }
    if (resends > 0) log(`${resends} picture(s) or frame(s) had to be sent again`);
    return EXIT.OK;
  } catch (err) {
    progress?.stop();
    if (client instanceof LegacyTcpClient) client.destroy();
    else await client?.close();
    return reportError(err, io.stderr);
  }
}

/** `framewire msg … --to legacy-json://…`. Resolves to the exit code. */
export async function legacyMsgCommand(
  json: string | undefined,
  opts: { to: string; ref?: string; quiet?: boolean },
  io: Io,
): Promise<number> {
  let client: LegacyJsonClient | undefined;
  try {
    const scheme = legacySchemeOf(opts.to);
    if (scheme !== 'legacy-json') {
      throw new FramewireError(
        'ERR_UNSUPPORTED_SCHEME',
        `${opts.to} takes pictures or frames, not JSON messages`,
        {
          hint: "send messages to the seed's message port: framewire msg --to legacy-json://HOST:6666 '[0,0,0,1]'",
        },
      );
    }
    if (opts.ref !== undefined) {
      throw new FramewireError(
        'ERR_BAD_OPTION',
        '--ref cannot go to a legacy-json:// port: the seed message is the JSON alone',
        {
          hint: 'put the reference inside the JSON, or send to a tcp:// receiver',
        },
      );
    }
    checkJsonArgument(json, '[0,0,0,1]');
    client = await LegacyJsonClient.open(opts.to);
    let n = 0;
    if (json !== undefined) {
      await client.send(json, { raw: true });
      n = 1;
    } else if (io.stdin) {
      const c = client;
      n = await sendJsonLines(io.stdin, (text) => c.send(text, { raw: true }), io.stderr);
    }
    await client.close();
    if (!opts.quiet) line(io.stderr, `sent ${n} message${n === 1 ? '' : 's'} to ${client.target}`);
    return EXIT.OK;
  } catch (err) {
    await client?.close();
    return reportError(err, io.stderr);
  }
}

/** Names frames that have none `0.jpg`, `1.jpg`, … (the seed client sorts its files by that number). */
async function* numbered(frames: AsyncIterable<Frame>): AsyncIterable<Frame> {
  let n = 0;
  for await (const f of frames) {
    yield f.name ? f : { ...f, name: `${n}.jpg` };
    n++;
  }
}
