/** Sources: AsyncIterable<Frame> producers that a sender session consumes. */
export {
  contentTypeOf,
  DEFAULT_EXTENSIONS,
  FolderSource,
  type FolderSourceOptions,
  folderSource,
  naturalCompare,
  type OpenedFolderSource,
} from './folder.js';
