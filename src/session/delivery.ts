/**
 * A receiver session's data path: frames of each stream stored in sequence order (several at once where
 * every sink allows it, Sink.frameConcurrency; acknowledged in order) while the network keeps reading (bounded by the limits; beyond them reading pauses and TCP pushes back on the
 * sender), JSON messages in order, and coalesced cumulative ACKs once every sink has stored what they cover.
 * The connection's life and handshake are receiver.ts's.
 */

import { channels } from '../diagnostics.js';
import { type ErrorCode, FramewireError, isRefusal, toFramewireError } from '../errors.js';
import { checkFileName } from '../names.js';
import { Flags, MESSAGE_CHANNEL, MessageType } from '../protocol/constants.js';
import {
  type ErrorBody,
  encodeAck,
  encodeControl,
  type WireFrame,
  type WireMessage,
} from '../protocol/messages.js';
import { wallUs } from '../time.js';
import type { Connection } from '../transports/types.js';
import type { ReceivedFrame, ReceivedMessage } from '../types.js';
import { type ClockSync, correctCapture } from './clock.js';
import type { ReceiverHost } from './host.js';
import { mayResume, mustPause } from './limits.js';
import type { QueueItem, RecordOwner, RxStream } from './records.js';

/** A frame handed to the sinks (or refused before), whose outcome pump() has not taken yet. */
interface Started {
  f: WireFrame;
  refused: FramewireError | undefined;
  stored: Promise<void> | undefined;
}

/** The data path of a ReceiverSession (receiver.ts), which owns the connection's life. */
export abstract class SessionDelivery implements RecordOwner {
  readonly remote: string;
  protected readonly server: ReceiverHost;
  protected readonly conn: Connection;
  protected readonly streams = new Map<number, RxStream>();
  /** The sender's epoch (from HELLO): also that of its message channel. */
  protected epoch = '';
  protected pendingBytes = 0;
  protected paused = false;
  private ackScheduled = false;
  protected messageNext = 0;
  protected messageAcked = -1;
  protected messageAckSent = -1;
  private messageChain: Promise<void> = Promise.resolve();
  protected finished = false;
  /** The clock exchange, when the sender speaks it. */
  protected clock: ClockSync | undefined;

  constructor(server: ReceiverHost, conn: Connection) {
    this.server = server;
    this.conn = conn;
    this.remote = conn.remote;
  }

  abstract get closed(): boolean;
  abstract release(name: string, why: FramewireError): void;
  /** Reports a fatal error to the peer and closes the connection. Never throws. */
  protected abstract fatal(err: FramewireError): void;
  /** Ends the connection once a sender that said BYE has everything stored. */
  protected abstract maybeFinishBye(): void;

  protected sendError(code: ErrorCode | string, message: string, extra: Partial<ErrorBody> = {}): void {
    const body: ErrorBody = { code, message, fatal: false, ...extra };
    this.conn.send(encodeControl(MessageType.ERROR, body));
  }

  protected onFrame(f: WireFrame): void {
    const s = this.streams.get(f.streamId);
    if (!s) {
      this.sendError('ERR_UNKNOWN_STREAM', `stream id ${f.streamId} was not opened on this connection`, {
        stream: f.streamId,
        seq: f.seq,
      });
      return;
    }
    if (f.flags & Flags.RETRANSMIT && channels.retransmit.hasSubscribers) {
      const duplicate = f.seq < s.next;
      channels.retransmit.publish({ server: this.server, stream: s.info, seq: f.seq, duplicate });
    }
    if (f.seq < s.next) {
      // A resend of something we hold: acknowledge again once the pipeline has passed it.
      if (s.acked >= f.seq) {
        s.ackSent = Math.min(s.ackSent, f.seq - 1);
        this.scheduleAck();
      }
      return;
    }
    if (f.seq > s.next && s.info.mode === 'reliable') {
      throw new FramewireError(
        'ERR_SEQUENCE_GAP',
        `stream "${s.info.name}" expected frame ${s.next}, got ${f.seq}; resend from ${s.next}`,
        { stream: s.info.name, seq: f.seq },
      );
    }
    s.next = f.seq + 1;
    let refused: FramewireError | undefined;
    if (f.name !== '') {
      try {
        checkFileName(f.name, s.info.name, f.seq);
      } catch (err) {
        refused = err as FramewireError;
      }
    }
    if (s.info.mode === 'live' && s.queue.length >= this.server.options.liveQueueFrames) {
      // Newest wins: drop the oldest frame that is still waiting, never the one being stored.
      const dropped = s.queue.shift()!;
      this.addPending(-dropped.frame.payload.length);
      s.drops++;
      if (channels.drop.hasSubscribers) {
        const { seq, payload } = dropped.frame;
        const bytes = payload.length;
        channels.drop.publish({ server: this.server, stream: s.info, seq, bytes, reason: 'live-queue' });
      }
      this.server.emit(
        'frame-error',
        new FramewireError(
          'ERR_FRAME_DROPPED',
          `live stream "${s.info.name}" dropped frame ${dropped.frame.seq}: storage is slower than the stream`,
          {
            stream: s.info.name,
            seq: dropped.frame.seq,
          },
        ),
      );
    }
    s.queue.push({ frame: f, refused });
    this.addPending(f.payload.length);
    const o = this.server.options;
    if (!this.paused && mustPause(o, this.pendingBytes, s.queue.length, this.server.pendingTotal)) {
      this.paused = true;
      this.conn.pause();
    }
    if (!s.busy) void this.pump(s);
  }

  protected addPending(delta: number): void {
    this.pendingBytes += delta;
    this.server.notePending(delta);
  }

  /** @internal Called by the server when the total pending bytes fell: resume if this session may. */
  tryResume(): void {
    if (this.paused && !this.finished && this.canResume()) {
      this.paused = false;
      this.conn.resume();
    }
  }

  private canResume(): boolean {
    const queues = [...this.streams.values()].map((st) => st.queue.length);
    return mayResume(this.server.options, this.pendingBytes, this.server.pendingTotal, queues);
  }

  private async pump(s: RxStream): Promise<void> {
    s.busy = true;
    s.record.idle = new Promise<void>((resolve) => {
      s.idleResolve = resolve;
    });
    // Up to `depth` frames of this stream are handed to the sinks before the first of them is stored (the
    // folder sink writes several at once); their outcomes are taken in order, so acks stay in order. Live
    // streams keep one at a time: what waits stays in the queue, where a newer frame can replace it.
    const depth = s.info.mode === 'live' ? 1 : this.server.frameDepth;
    const started: Started[] = [];
    // A session that lost the stream to a newer one stops starting frames, and settles those under way.
    const stopping = () => this.finished && s.record.owner !== this;
    try {
      for (;;) {
        while (!stopping() && started.length < depth && s.queue.length > 0) {
          started.push(this.startFrame(s, s.queue.shift()!));
        }
        const head = started.shift();
        if (!head) break;
        const { f } = head;
        let refused = head.refused;
        if (head.stored) {
          try {
            await head.stored;
          } catch (err) {
            const e = toFramewireError(err, 'ERR_WRITE_FAILED', `storing frame ${f.seq} of "${s.info.name}"`);
            if (!isRefusal(e.code)) {
              // Not stored: leave it unacknowledged, tell the sender, and let it resend after reconnecting.
              // The frames started after it are not acknowledged either; wait for them before going idle.
              s.next = f.seq;
              s.queue.length = 0;
              this.fatal(e);
              await Promise.allSettled(started.map((x) => x.stored));
              return;
            }
            refused = e;
          }
        }
        s.record.durableNext = f.seq + 1;
        // Stored (or refused by a sink): the sinks are done with its bytes.
        if (!head.refused) this.server.releaseFrameData(f.payload);
        if (refused) {
          this.sendError(refused.code, refused.message, { stream: s.id, seq: f.seq });
          this.server.emit('frame-error', refused);
        }
        s.acked = f.seq;
        this.scheduleAck();
      }
    } finally {
      s.busy = false;
      s.idleResolve?.();
      s.idleResolve = undefined;
      this.maybeFinishBye();
    }
  }

  /** Hands one queued frame to the sinks; `stored` is undefined when they stored it at once. */
  private startFrame(s: RxStream, item: QueueItem): Started {
    const f = item.frame;
    this.addPending(-f.payload.length);
    this.tryResume();
    if (item.refused) return { f, refused: item.refused, stored: undefined };
    const rf: ReceivedFrame = {
      stream: s.info,
      seq: f.seq,
      captureUs: f.captureUs,
      receivedUs: wallUs(),
      contentType: f.contentType,
      pixelFormat: f.pixelFormat,
      width: f.width,
      height: f.height,
      name: f.name,
      meta: f.meta,
      data: f.payload,
      crc: f.crc,
      ...correctCapture(f.captureUs, this.clock?.estimate(), this.server.options.trustClocks),
    };
    let stored: Promise<void> | undefined;
    try {
      stored = this.server.deliverFrameFast(rf);
    } catch (err) {
      stored = Promise.reject(err);
    }
    // Awaited in order by pump(); this keeps a rejection from counting as unhandled meanwhile.
    stored?.catch(() => {});
    return { f, refused: undefined, stored };
  }

  protected scheduleAck(): void {
    if (this.ackScheduled || this.finished) return;
    this.ackScheduled = true;
    setImmediate(() => {
      this.ackScheduled = false;
      this.flushAcks();
    });
  }

  /** Sends one cumulative ACK per stream that progressed: acks are coalesced, never one per frame. */
  protected flushAcks(): void {
    if (this.conn.closed) return;
    for (const s of this.streams.values()) {
      if (s.acked > s.ackSent) {
        s.ackSent = s.acked;
        this.conn.send(encodeAck(s.id, s.acked));
      }
    }
    if (this.messageAcked > this.messageAckSent) {
      this.messageAckSent = this.messageAcked;
      this.conn.send(encodeAck(MESSAGE_CHANNEL, this.messageAcked));
    }
  }

  protected onJsonMessage(m: WireMessage): void {
    if (m.seq < this.messageNext) {
      if (this.messageAcked >= m.seq) {
        this.messageAckSent = Math.min(this.messageAckSent, m.seq - 1);
        this.scheduleAck();
      }
      return;
    }
    this.messageNext = m.seq + 1;
    this.server.setMessageResume(this.epoch, this.messageNext);
    const rm: ReceivedMessage = {
      sender: this.remote,
      epoch: this.epoch,
      seq: m.seq,
      receivedUs: wallUs(),
      ref: m.ref,
      json: m.json,
      text: m.text,
    };
    this.messageChain = this.messageChain.then(async () => {
      if (this.finished) return;
      try {
        await this.server.deliverMessage(rm);
      } catch (err) {
        this.server.setMessageResume(this.epoch, m.seq);
        this.fatal(toFramewireError(err, 'ERR_WRITE_FAILED', `storing message ${m.seq}`));
        return;
      }
      this.messageAcked = m.seq;
      this.scheduleAck();
    });
  }
}
