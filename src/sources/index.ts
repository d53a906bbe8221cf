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
  DEFAULT_EXTENSIONS,
  FolderSource,
  type FolderSourceOptions,
  folderSource,
  naturalCompare,
  type OpenedFolderSource,
} from './folder.js';
export { MpjpegSplitter } from './mpjpeg.js';
