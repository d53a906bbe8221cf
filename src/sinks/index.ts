/** The sinks: where received frames and messages go. */
export type { FolderSinkOptions, IndexEntry } from './folder.js';
export { FolderSink } from './folder.js';
