/**
 * The receiver's memory of streams across connections: a record per stream name (epoch, resume point,
 * owner) that makes reliable delivery exactly-once across reconnects and restarts, the message channel's
 * resume point per epoch, the checks on a stream declaration, and a stream's state on one connection.
 */
import { FramewireError } from '../errors.js';
import { checkStreamName } from '../names.js';
import {
  MAX_STREAM_ID,
  STREAM_KINDS,
  STREAM_MODES,
  type StreamKind,
  type StreamMode,
} from '../protocol/constants.js';
import type { StreamDecl, WireFrame } from '../protocol/messages.js';
import type { Sink, StreamInfo } from '../types.js';

/** The connection that sends a stream, as its record sees it (a ReceiverSession). */
export interface RecordOwner {
  readonly remote: string;
  readonly closed: boolean;
  /** Gives up stream `name` (another connection of the same sender took it over). */
  release(name: string, why: FramewireError): void;
}

/** Per (stream name) state kept across connections, so that a reconnect resumes where it left off. */
export interface StreamRecord {
  name: string;
  epoch: string;
  /** Sequence number after the last frame stored by every sink. */
  durableNext: number;
  owner: RecordOwner | undefined;
  /** Resolves when the owner's pipeline for this stream has stored what it had started. */
  idle: Promise<void>;
}

/** A frame received and waiting to be stored; `refused` when its name is unsafe (it is not stored). */
export interface QueueItem {
  frame: WireFrame;
  refused: FramewireError | undefined;
}

/** A stream open on one connection. */
export interface RxStream {
  id: number;
  info: StreamInfo;
  record: StreamRecord;
  /** Next sequence number expected from the network. */
  next: number;
  queue: QueueItem[];
  busy: boolean;
  /** Highest sequence number stored (or refused), -1 before the first. */
  acked: number;
  ackSent: number;
  drops: number;
  idleResolve: (() => void) | undefined;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Checks one stream declaration from HELLO or OPEN; throws ERR_PROTOCOL or ERR_UNSAFE_NAME. */
export function checkDecl(d: unknown): StreamDecl {
  if (!isObject(d)) throw new FramewireError('ERR_PROTOCOL', 'stream declaration is not an object');
  const { id, name, kind, mode, epoch } = d;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_STREAM_ID) {
    throw new FramewireError('ERR_PROTOCOL', `stream id ${String(id)} is outside 0..${MAX_STREAM_ID}`);
  }
  if (typeof name !== 'string') throw new FramewireError('ERR_PROTOCOL', 'stream name is not a string');
  if (!STREAM_KINDS.includes(kind as StreamKind)) {
    throw new FramewireError(
      'ERR_PROTOCOL',
      `stream kind ${JSON.stringify(kind)} is not one of ${STREAM_KINDS.join(', ')}`,
    );
  }
  if (!STREAM_MODES.includes(mode as StreamMode)) {
    throw new FramewireError(
      'ERR_PROTOCOL',
      `stream mode ${JSON.stringify(mode)} is not one of ${STREAM_MODES.join(', ')}`,
    );
  }
  if (typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 64) {
    throw new FramewireError('ERR_PROTOCOL', 'stream epoch must be a string of 1..64 characters');
  }
  checkStreamName(name);
  return { id, name, kind: kind as StreamKind, mode: mode as StreamMode, epoch };
}

/** The records of every stream and the message channels' resume points, kept by the server. */
export class StreamRegistry {
  private readonly records = new Map<string, StreamRecord>();
  private readonly messageNext = new Map<string, number>();

  /** Claims stream `decl` for `s`, waiting for a previous owner to settle; a new record asks the sinks. */
  async claim(
    s: RecordOwner,
    decl: StreamDecl,
    sender: string,
    sinks: readonly Sink[],
  ): Promise<{ record: StreamRecord; info: StreamInfo }> {
    let record = this.records.get(decl.name);
    if (record?.owner && record.owner !== s && !record.owner.closed) {
      if (record.epoch !== decl.epoch) {
        throw new FramewireError(
          'ERR_STREAM_BUSY',
          `stream "${decl.name}" is being sent by ${record.owner.remote}`,
          {
            hint: 'give each sender its own --stream name',
            stream: decl.name,
          },
        );
      }
      // Same epoch: the sender reconnected before we noticed its old connection died.
      record.owner.release(
        decl.name,
        new FramewireError('ERR_CLOSED', 'stream taken over by a newer connection'),
      );
    }
    if (record) await record.idle;
    const info: StreamInfo = { name: decl.name, kind: decl.kind, mode: decl.mode, epoch: decl.epoch, sender };
    if (!record || record.epoch !== decl.epoch) {
      let durableNext = 0;
      for (const sink of sinks) {
        if (sink.resumePoint) durableNext = Math.max(durableNext, await sink.resumePoint(info));
      }
      record = { name: decl.name, epoch: decl.epoch, durableNext, owner: undefined, idle: Promise.resolve() };
      this.records.set(decl.name, record);
    }
    record.owner = s;
    return { record, info };
  }

  /** Where the message channel of sender run `epoch` resumes. */
  messageResume(epoch: string): number {
    return this.messageNext.get(epoch) ?? 0;
  }

  setMessageResume(epoch: string, next: number): void {
    this.messageNext.set(epoch, next);
  }
}
