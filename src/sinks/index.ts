/** The sinks: where received frames and messages go. */
export type { FolderSinkOptions, IndexEntry } from './folder.js';
export { FolderSink } from './folder.js';
export { JetStreamSink, type JetStreamSinkOptions, type JetStreamSinkStats } from './jetstream.js';
export { FramewireMetrics, type MetricsOptions, type ViewerCounts } from './metrics.js';
export { OnceFolderSink, type OnceStats } from './once.js';
export {
  type Box,
  createViewer,
  extractBoxes,
  type StreamStats,
  type ViewerOptions,
  ViewerSink,
} from './viewer.js';
