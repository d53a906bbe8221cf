/**
 * What a receiver session sees of its server (ReceiverHost, which FramewireServer is), and the events the
 * server emits. Sessions depend on this, not on server.ts, so that the server can make sessions.
 */
import type { EventEmitter } from 'node:events';
import type { FramewireError } from '../errors.js';
import type { PartialBudget } from '../protocol/decoder.js';
import type { StreamDecl } from '../protocol/messages.js';
import type { ConnectionInfo, ReceivedFrame, ReceivedMessage, ReceiverInfo, StreamInfo } from '../types.js';
import type { ServerSettings } from './limits.js';
import type { RecordOwner, StreamRecord } from './records.js';

export interface ServerEvents {
  /** A sender completed its handshake. */
  connection: [ConnectionInfo];
  /** A sender went away; `error` says why when it was not a clean BYE. */
  disconnect: [ConnectionInfo, FramewireError | undefined];
  /** A stream was opened (or reopened after a reconnect) and will resume at `next`. */
  stream: [StreamInfo, { next: number }];
  /** A frame was stored by every sink and will be acknowledged. */
  frame: [ReceivedFrame];
  /** A JSON message was stored by every sink and will be acknowledged. */
  message: [ReceivedMessage];
  /** A frame was refused (unsafe name) or a live frame dropped; nothing was written for it. */
  'frame-error': [FramewireError];
  /** A problem that did not stop the server: a malformed peer, a failed write, a refused stream. */
  warning: [FramewireError];
  /** close() finished: every connection is closed and the sinks too. */
  close: [];
}

export interface ReceiverHost extends ReceiverInfo {
  readonly options: ServerSettings;
  /** Bytes received and not yet stored, all connections together. */
  readonly pendingTotal: number;
  /** Frames of one reliable stream handed to the sinks before the first of them is stored (Sink.frameConcurrency). */
  readonly frameDepth: number;
  /** What the decoders of all connections hold of messages still arriving (maxPartialBytes). */
  readonly partialBudget: PartialBudget;
  emit: EventEmitter<ServerEvents>['emit'];
  /** Reports a problem that does not stop the server ('warning'). */
  warn(err: FramewireError): void;
  /** A session reports a change of what it holds unstored. */
  notePending(delta: number): void;
  /** Stores a frame in every sink; undefined when that happened at once. */
  deliverFrameFast(frame: ReceivedFrame): Promise<void> | undefined;
  /** The sinks are done with a frame: its buffer may be used again (FramewireServer.releaseFrameData). */
  releaseFrameData(data: Buffer): void;
  deliverMessage(message: ReceivedMessage): Promise<void>;
  /** Claims a stream for a session, waiting for a previous owner to settle. */
  claim(
    s: RecordOwner,
    decl: StreamDecl,
    sender: string,
  ): Promise<{ record: StreamRecord; info: StreamInfo }>;
  messageResume(epoch: string): number;
  setMessageResume(epoch: string, next: number): void;
}
