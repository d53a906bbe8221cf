/**
 * Observability through `node:diagnostics_channel` (the pattern of undici's lib/core/diagnostics.js): the
 * receiver publishes what happens at the few places where it happens, and whoever wants to count it (the
 * metrics sink, a test, an APM agent) subscribes by channel name. Nothing is threaded through the session
 * code, and a channel without subscribers costs one boolean check.
 *
 * Every payload carries the `server` it comes from, so that a subscriber can keep to its own server when
 * several run in one process.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import type { ConnectionInfo, ReceivedFrame, ReceivedMessage, ReceiverInfo, StreamInfo } from './types.js';

/** Channel names; stable, part of the public API (docs/viewer.md). */
export const CHANNELS = {
  /** A frame was stored by every sink: {@link FrameEvent}. */
  frame: 'framewire:frame',
  /** A JSON message was stored by every sink: {@link MessageEvent}. */
  message: 'framewire:message',
  /** A live frame was dropped by the receiver before reaching the sinks: {@link DropEvent}. */
  drop: 'framewire:drop',
  /** A frame arrived flagged as sent again after a reconnect: {@link RetransmitEvent}. */
  retransmit: 'framewire:retransmit',
  /** A stream was opened or reopened: {@link StreamEvent}. */
  stream: 'framewire:stream',
  /** A sender completed its handshake: {@link ConnectionEvent}. */
  connection: 'framewire:connection',
  /** A sender went away: {@link DisconnectEvent}. */
  disconnect: 'framewire:disconnect',
} as const;

export interface FrameEvent {
  server: ReceiverInfo;
  frame: ReceivedFrame;
}
export interface MessageEvent {
  server: ReceiverInfo;
  message: ReceivedMessage;
}
export interface DropEvent {
  server: ReceiverInfo;
  stream: StreamInfo;
  seq: number;
  bytes: number;
  reason: 'live-queue';
}
export interface RetransmitEvent {
  server: ReceiverInfo;
  stream: StreamInfo;
  seq: number;
  /** True when the receiver already held the frame (it is acknowledged again, not stored again). */
  duplicate: boolean;
}
export interface StreamEvent {
  server: ReceiverInfo;
  stream: StreamInfo;
  next: number;
}
export interface ConnectionEvent {
  server: ReceiverInfo;
  connection: ConnectionInfo;
}
export interface DisconnectEvent {
  server: ReceiverInfo;
  connection: ConnectionInfo;
  error: Error | undefined;
}

/** The channel objects, created once (diagnostics_channel.channel returns the same object per name). */
export const channels = {
  frame: diagnostics_channel.channel(CHANNELS.frame),
  message: diagnostics_channel.channel(CHANNELS.message),
  drop: diagnostics_channel.channel(CHANNELS.drop),
  retransmit: diagnostics_channel.channel(CHANNELS.retransmit),
  stream: diagnostics_channel.channel(CHANNELS.stream),
  connection: diagnostics_channel.channel(CHANNELS.connection),
  disconnect: diagnostics_channel.channel(CHANNELS.disconnect),
} as const;
