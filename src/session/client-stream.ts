/**
 * One named stream of a client (ClientStream) and the frames and messages a client holds until the receiver
 * acknowledges them. The stream hands its frames to the client's window (FrameSender).
 */
import { FramewireError } from '../errors.js';
import type { StreamKind, StreamMode } from '../protocol/constants.js';
import type { Encoded } from '../protocol/messages.js';
import type { Frame } from '../types.js';

/** A frame queued or in flight, kept until acknowledged. */
export interface OutFrame {
  seq: number;
  parts: Encoded;
  bytes: number;
  sent: boolean;
  sentAt: number;
}

/** A JSON message queued or in flight, kept until acknowledged. */
export interface OutMessage {
  seq: number;
  parts: Encoded;
  sent: boolean;
}

/** Where a stream's frames go: the client's window. */
export interface FrameSender {
  sendFrame(st: ClientStream, frame: Frame): Promise<number>;
}

/** One named stream of a client. */
export class ClientStream {
  readonly name: string;
  readonly kind: StreamKind;
  readonly mode: StreamMode;
  readonly id: number;
  /** @internal */ pending: OutFrame[] = [];
  /** @internal */ nextSeq = 0;
  /** @internal */ open = false;
  /** @internal */ failed: FramewireError | undefined;
  /** @internal */ refused = new Map<number, FramewireError>();
  /** @internal */ acked = -1;
  /** @internal */ unsent = 0;
  /** The receiver's resume point at the last open: frames below it were already held. */
  resumedAt = 0;
  /** @internal */ openWaiters: Array<{
    resolve: (next: number) => void;
    reject: (e: FramewireError) => void;
  }> = [];
  private readonly client: FrameSender;

  /** @internal */
  constructor(client: FrameSender, id: number, name: string, kind: StreamKind, mode: StreamMode) {
    this.client = client;
    this.id = id;
    this.name = name;
    this.kind = kind;
    this.mode = mode;
  }

  /**
   * Queues a frame. Resolves once the frame is inside the window (reliable streams wait here when the
   * receiver is slow: that is the backpressure). Live streams never wait: a newer frame replaces an unsent
   * older one. Rejects when the stream was refused or the client gave up.
   */
  send(frame: Frame, options?: { captureUs?: number }): Promise<number> {
    // `captureUs`: when the camera took the frame, on this machine's wall clock (default: now).
    const f = options?.captureUs === undefined ? frame : { ...frame, captureUs: options.captureUs };
    return this.client.sendFrame(this, f);
  }

  /**
   * Resolves with the receiver's resume point once the receiver has accepted the stream (every frame below
   * it is held already; a sender that replays the same source with the same epoch skips them). Rejects
   * when the receiver refused the stream.
   */
  ready(): Promise<number> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.open) return Promise.resolve(this.resumedAt);
    return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
  }

  /** Next sequence number this stream will assign. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Sets the next sequence number (before the first frame), e.g. to skip frames the receiver holds. */
  startAt(seq: number): void {
    if (this.nextSeq !== 0 || this.pending.length > 0) {
      throw new FramewireError('ERR_BAD_OPTION', 'startAt() must be called before the first frame is sent');
    }
    this.nextSeq = seq;
  }
}
