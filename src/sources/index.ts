/** Sources: AsyncIterable<Frame> producers that a sender session consumes. */

export {
  FfmpegSource,
  type FfmpegSourceOptions,
  ffmpegArgs,
  ffmpegSource,
  findFfmpeg,
  isFfmpegInput,
  parseFfmpegInput,
} from './ffmpeg.js';
export {
  contentTypeOf,
  DEFAULT_EXTENSIONS,
  FolderSource,
  type FolderSourceOptions,
  folderSource,
  naturalCompare,
  type OpenedFolderSource,
} from './folder.js';
export {
  type BusDelivery,
  type ConsumeStats,
  JetStreamSource,
  type JetStreamSourceOptions,
  parseStartFrom,
  type StartFrom,
} from './jetstream.js';
export { jpegSize, MpjpegSplitter } from './mpjpeg.js';
