/**
 * The input of a `send` towards a peer that answers each frame (the seed formats, ImageZMQ): image files, or
 * one video file, camera, URL or test pattern through ffmpeg. Such peers wait for each answer, so a live input
 * drops the frames it cannot send in time.
 */
import type { StreamKind } from '../protocol/constants.js';
import { describeFfmpeg, ffmpegSource, ffmpegStreamName, isFfmpegInput } from '../sources/ffmpeg.js';
import { folderSource } from '../sources/folder.js';
import type { Frame } from '../types.js';
import { defaultStreamName } from './common.js';

export interface InputOptions {
  stream?: string;
  kind?: StreamKind;
  size?: string;
  fps?: number;
  quality?: number;
  realtime?: boolean;
  loop?: boolean;
}

export interface OpenedInput {
  frames: AsyncIterable<Frame>;
  /** Frames and bytes to send, when known (files without --loop): for the progress bar. */
  total: { frames: number; bytes: number } | undefined;
  /** --stream, or a name made from the input. */
  name: string;
  /** What is sent, for the log line. */
  what: string;
  /** --kind, or infrared for a thermal test pattern, else visible. */
  kind: StreamKind;
}

export async function openInput(
  inputs: string[],
  opts: InputOptions,
  signal: AbortSignal | undefined,
): Promise<OpenedInput> {
  const first = inputs[0] ?? '';
  if (inputs.length === 1 && isFfmpegInput(first)) {
    const video = ffmpegSource(first, {
      ...(opts.size === undefined ? {} : { size: opts.size }),
      ...(opts.fps === undefined ? {} : { fps: opts.fps }),
      ...(opts.quality === undefined ? {} : { quality: opts.quality }),
      ...(opts.realtime ? { realtime: true } : {}),
      loop: !!opts.loop,
      dropWhenBehind: true,
      ...(signal ? { signal } : {}),
    });
    const { ffmpeg, caps } = await video.open();
    return {
      frames: video,
      total: undefined,
      name: opts.stream ?? ffmpegStreamName(first),
      what: `${first} through ${describeFfmpeg(ffmpeg, caps)}`,
      kind: opts.kind ?? (video.kind === 'thermal' ? 'infrared' : 'visible'),
    };
  }
  const opened = await folderSource(inputs, { fps: opts.fps, loop: !!opts.loop, signal }).open();
  return {
    frames: opened,
    total: opts.loop ? undefined : { frames: opened.files.length, bytes: opened.totalBytes },
    name: opts.stream ?? defaultStreamName(inputs),
    what: `${opened.files.length} files (${(opened.totalBytes / 1e6).toFixed(1)} MB)`,
    kind: opts.kind ?? 'visible',
  };
}
