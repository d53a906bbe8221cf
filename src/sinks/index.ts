/** The sinks: where received frames and messages go. */
export type { FolderSinkOptions, IndexEntry } from './folder.js';
export { FolderSink } from './folder.js';
export { FramewireMetrics, type MetricsOptions, type ViewerCounts } from './metrics.js';
export {
  type Box,
  createViewer,
  extractBoxes,
  type StreamStats,
  type ViewerOptions,
  ViewerSink,
} from './viewer.js';
