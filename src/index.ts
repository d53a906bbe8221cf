/**
 * framewire: move camera frames, still images and JSON messages between machines.
 *
 * ```ts
 * import { createServer, connect, FolderSink, folderSource } from 'framewire';
 * ```
 * Everything public is exported from here; nothing else is part of the API.
 */
export type { BusConnectOptions, BusTls } from './bus/connect.js';
export { BUS_URL_PARAMS, type BusConfig, parseBusUrl } from './bus/url.js';
export {
  type ImageZmqListener,
  ImageZmqSender,
  type ImageZmqSenderOptions,
  type ImageZmqSenderStats,
  IZMQ_DEFAULT_PORT,
  imageZmqEndpoints,
  izmqStreamName,
  LEGACY_DEFAULT_PORTS,
  type LegacyClientStats,
  LegacyJsonClient,
  type LegacyJsonClientOptions,
  type LegacyListener,
  type LegacyStats,
  LegacyTcpClient,
  type LegacyTcpClientOptions,
  LegacyUdpClient,
  type LegacyUdpClientOptions,
  legacyEndpoints,
  sendLegacyJson,
} from './compat/index.js';
export {
  CHANNELS as DIAGNOSTICS_CHANNELS,
  type ConnectionEvent,
  type DisconnectEvent,
  type DropEvent,
  type FrameEvent,
  type MessageEvent,
  type RetransmitEvent,
  type StreamEvent,
} from './diagnostics.js';
export { BUILTIN_ENDPOINTS, createServer } from './endpoints.js';
export { ErrorCode, FramewireError, isErrorCode } from './errors.js';
export { keepFreedMemory, noIncrementalMarking } from './memory.js';
export { checkFileName, checkStreamName } from './names.js';
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
export {
  type ConnectionInfo,
  type EndpointStarter,
  FramewireServer,
  type ServerEvents,
  type ServerOptions,
} from './session/server.js';
export type { SyncIteratorOptions } from './session/sync.js';
export { webSocketSenders } from './session/ws-senders.js';
export { FolderSink, type FolderSinkOptions, type IndexEntry, type OnConflict } from './sinks/folder.js';
export { createFoxglove, type FoxgloveOptions, FoxgloveSink } from './sinks/foxglove.js';
export { JetStreamSink, type JetStreamSinkOptions, type JetStreamSinkStats } from './sinks/jetstream.js';
export { FramewireMetrics, type MetricsOptions, type ViewerCounts } from './sinks/metrics.js';
export { OnceFolderSink, type OnceStats } from './sinks/once.js';
export { SyncSink, type SyncSinkOptions } from './sinks/sync.js';
export {
  type Box,
  createViewer,
  extractBoxes,
  type StreamStats,
  type ViewerDebug,
  type ViewerOptions,
  ViewerSink,
} from './sinks/viewer.js';
export {
  FfmpegSource,
  type FfmpegSourceOptions,
  ffmpegSource,
  findFfmpeg,
  isFfmpegInput,
} from './sources/ffmpeg.js';
export { FolderSource, type FolderSourceOptions, folderSource, naturalCompare } from './sources/folder.js';
export {
  type BusDelivery,
  type ConsumeStats,
  JetStreamSource,
  type JetStreamSourceOptions,
  parseStartFrom,
  type StartFrom,
} from './sources/jetstream.js';
export { parseTimes, readTimesFile } from './sources/times.js';
export {
  FrameSync,
  parseSyncStreams,
  SYNC_UNPAIRED_REASONS,
  type SyncEvent,
  type SyncGroup,
  type SyncMember,
  type SyncOptions,
  type SyncUnpairedReason,
} from './sync/frames.js';
export { type ClockEstimate, clockSample, OffsetEstimator } from './sync/offset.js';
export { type PairEvent, Pairer, type PairerOptions, type PairGroup } from './sync/pairer.js';
export { DEFAULT_PORT } from './transports/index.js';
export type { Connection, Listener, SendOptions, Transport } from './transports/types.js';
export {
  MAX_MTU,
  MIN_MTU,
  UDP_URL_PARAMS,
  type UdpConnectionStats,
  UdpListener,
  type UdpListenerStats,
} from './transports/udp/index.js';
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
  UpgradeHook,
} from './types.js';
export { VERSION } from './version.js';
