/** Public data types shared by sources, sessions and sinks. */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ContentType, PixelFormat, StreamKind, StreamMode } from './protocol/constants.js';

export type { ContentType, PixelFormat, StreamKind, StreamMode };

/** A frame as a source produces it and a sender sends it. */
export interface Frame {
  /** The encoded picture (or any bytes). Sent without copying. */
  data: Buffer;
  /** Defaults to a guess from `name` (".png" → image/png), else image/jpeg. */
  contentType?: ContentType;
  /** The file name, kept by the receiver's folder sink. */
  name?: string;
  /** Capture time in microseconds since the Unix epoch; defaults to the time of sending. */
  captureUs?: number;
  /** Free JSON metadata (at most maxMetaBytes once serialised). */
  meta?: unknown;
  /** Picture size; required for raw frames, optional otherwise. */
  width?: number;
  height?: number;
  /** Pixel layout of raw frames. */
  pixelFormat?: PixelFormat;
}

/** A stream as the receiver knows it. */
export interface StreamInfo {
  name: string;
  kind: StreamKind;
  mode: StreamMode;
  /** The sending run's epoch; resume points are kept per (name, epoch). */
  epoch: string;
  /** "host:port" of the sender. */
  sender: string;
}

/** A frame as the receiver hands it to sinks and listeners. */
export interface ReceivedFrame {
  stream: StreamInfo;
  seq: number;
  captureUs: number;
  /** Receive time, microseconds since the Unix epoch. */
  receivedUs: number;
  contentType: ContentType;
  pixelFormat: PixelFormat;
  width: number;
  height: number;
  /** The file name sent with the frame, or '' when it had none. */
  name: string;
  meta: unknown;
  data: Buffer;
  crc: number;
  /**
   * The capture time on the receiver's clock, µs: `captureUs − clockOffsetUs`. Absent while the sender's
   * clock offset is unknown (an older sender, or before the first clock exchange completed).
   */
  correctedUs?: number;
  /** The sender's clock minus the receiver's, µs, used for correctedUs (0 with `trustClocks`). */
  clockOffsetUs?: number;
  /** Bound on the error of clockOffsetUs, µs (absent with `trustClocks`). */
  clockErrorUs?: number;
}

/** A JSON message as the receiver hands it to sinks and listeners. */
export interface ReceivedMessage {
  /** "host:port" of the sender. */
  sender: string;
  /** The sender's epoch and the message's sequence number on its channel. */
  epoch: string;
  seq: number;
  receivedUs: number;
  /** The frame the message describes, if it names one. */
  ref: { stream: string; seq: number } | undefined;
  json: unknown;
  /** The JSON text as sent. */
  text: string;
}

/**
 * Where received frames and messages go. The receiver calls `frame()` for the frames of one stream in order
 * (one at a time unless the sink says otherwise with `frameConcurrency`), and acknowledges a frame to the
 * sender only after every sink's promise resolved; a rejection leaves it unacknowledged so that the sender
 * sends it again.
 */
export interface Sink {
  /**
   * The next sequence number this sink already holds for (stream name, epoch), from what it stored earlier,
   * or 0. Lets a receiver restarted mid-stream tell the sender where to resume.
   */
  resumePoint?(stream: StreamInfo): Promise<number>;
  frame?(frame: ReceivedFrame): Promise<void> | void;
  /**
   * How many frames of one stream the receiver may hand to `frame()` before the earlier ones resolved
   * (default 1: one at a time). A sink that accepts more must settle its promises in the order of the
   * frames, and resolve a frame only once every earlier frame of its stream is stored. The receiver uses
   * the smallest value of all its sinks that have `frame()`.
   */
  readonly frameConcurrency?: number;
  /**
   * True when the sink uses `frame.data` only until its `frame()` settled and keeps no reference to it
   * afterwards (it copies what it keeps). When every sink of a receiver says so, and no 'frame' listener or
   * diagnostics subscriber is there, the receiver uses a frame's buffer again for a later frame instead of
   * leaving it to the garbage collector (fewer page faults: docs/benchmarks.md, "Frame buffers used again").
   * Say it only when it holds on every path, failures included: a buffer used again while a sink still
   * reads it would corrupt what the sink stores. Default false.
   */
  readonly borrowsFrameData?: boolean;
  message?(message: ReceivedMessage): Promise<void> | void;
  close?(): Promise<void> | void;
}

/**
 * Takes an HTTP upgrade (a WebSocket) or leaves it: returns true when it took the socket. The viewer hands
 * its `/ws` upgrades to one, so that a receiver can take framewire senders on the viewer's port without
 * the viewer knowing about sessions or transports.
 */
export type UpgradeHook = (req: IncomingMessage, socket: Duplex, head: Buffer) => boolean;

/** A sender connection as the receiver reports it (events, diagnostics channels). */
export interface ConnectionInfo {
  id: string;
  remote: string;
  client: string;
}

/**
 * What sinks and diagnostics subscribers may know of the receiver that feeds them; `FramewireServer`
 * implements it. Sinks see frames and this, never a socket or a session.
 */
export interface ReceiverInfo {
  /** The sinks the receiver writes to, in order. */
  readonly sinks: readonly Sink[];
  /** Senders connected right now. */
  readonly connections: number;
}

/**
 * How many frames of a stream to hand `sinks` at once: the smallest `frameConcurrency` of those with
 * `frame()` (1 where not given, or not a number of 1 or more), at most `cap`.
 */
export function framesAtOnce(sinks: readonly Sink[], cap: number): number {
  let n = cap;
  for (const s of sinks) {
    if (!s.frame) continue;
    const c = s.frameConcurrency ?? 1;
    n = Math.min(n, c >= 1 ? Math.floor(c) : 1);
  }
  return Math.max(1, n);
}
