/**
 * framewire: move camera frames, still images and JSON messages between machines.
 *
 * ```ts
 * import { createServer, connect, FolderSink, folderSource } from 'framewire';
 * ```
 * Everything public is exported from here; nothing else is part of the API.
 */
export { ErrorCode, FramewireError, isErrorCode } from './errors.js';
export {
  CONTENT_TYPES,
  DEFAULT_LIMITS,
  type Limits,
  PIXEL_FORMATS,
  STREAM_KINDS,
  STREAM_MODES,
} from './protocol/constants.js';
export { Decoder } from './protocol/decoder.js';
export type { FrameRef, Message } from './protocol/messages.js';
export {
  type AckEvent,
  type ClientEvents,
  type ClientStats,
  ClientStream,
  type ConnectOptions,
  connect,
  FramewireClient,
  type StreamOptions,
} from './session/client.js';
export { checkFileName, checkStreamName } from './session/names.js';
export {
  type ConnectionInfo,
  createServer,
  FramewireServer,
  type ServerEvents,
  type ServerOptions,
  VERSION,
} from './session/server.js';
export { FolderSink, type FolderSinkOptions } from './sinks/folder.js';
export { FolderSource, type FolderSourceOptions, folderSource, naturalCompare } from './sources/folder.js';
export { DEFAULT_PORT } from './transports/index.js';
export type { Connection, Listener, Transport } from './transports/types.js';
export type {
  ContentType,
  Frame,
  PixelFormat,
  ReceivedFrame,
  ReceivedMessage,
  Sink,
  StreamInfo,
  StreamKind,
  StreamMode,
} from './types.js';
