/**
 * The client's sending window: the streams and their unacknowledged frames, the JSON messages, the window
 * limits (backpressure), writing round-robin, acknowledgements and refusals, and what a lost connection
 * or a resume point does to what is in flight. The connection itself is reconnect.ts's.
 */
import { EventEmitter } from 'node:events';
import { FramewireError } from '../errors.js';
import { contentTypeOf } from '../names.js';
import { type ContentType, DEFAULT_LIMITS, Flags, HEADER_BYTES } from '../protocol/constants.js';
import { crc32 } from '../protocol/crc.js';
import {
  type ErrorBody,
  encodeFrame,
  encodeMessage,
  type FrameRef,
  type ResumePoint,
} from '../protocol/messages.js';
import { wallUs } from '../time.js';
import type { Connection } from '../transports/types.js';
import type { Frame } from '../types.js';
import type { ClientStream, FrameSender, OutFrame, OutMessage } from './client-stream.js';
import type { ClientEvents, ClientSettings, ClientStats } from './client-types.js';
import type { ClockSync } from './clock.js';
import { remoteError } from './handshake.js';

/** A frame's content type when none is given: from its name's extension, JPEG for unnamed frames. */
function guessContentType(name: string | undefined): ContentType {
  return name?.includes('.') ? contentTypeOf(name) : 'image/jpeg';
}

/** The window layer of FramewireClient (client.ts); its connection is kept by ClientLink (reconnect.ts). */
export abstract class ClientWindow extends EventEmitter<ClientEvents> implements FrameSender {
  readonly url: URL;
  readonly epoch: string;
  protected readonly o: ClientSettings;
  protected conn: Connection | undefined;
  /** The clock exchange with the current receiver, when it speaks it. */
  protected clock: ClockSync | undefined;
  protected ready = false;
  protected readonly streams: ClientStream[] = [];
  protected readonly byId = new Map<number, ClientStream>();
  protected pendingFrames = 0;
  protected pendingBytes = 0;
  protected messages: OutMessage[] = [];
  protected messageSeq = 0;
  protected messagesUnsent = 0;
  protected waiters: Array<() => void> = [];
  protected flushWaiters: Array<{ resolve: () => void; reject: (e: FramewireError) => void }> = [];
  protected failure: FramewireError | undefined;
  protected closing = false;
  protected closed = false;
  protected serverLimits = {
    maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
    maxMetaBytes: DEFAULT_LIMITS.maxMetaBytes,
    maxMessageBytes: DEFAULT_LIMITS.maxMessageBytes,
  };
  private rr = 0;
  /** Whether the current receiver checks CRCs (WELCOME); when it does not, frames go without one. */
  protected sendCrc = true;
  private readonly latencies = new Float64Array(10_000);
  private latencyCount = 0;
  protected readonly s = {
    framesSent: 0,
    framesAcked: 0,
    bytesAcked: 0,
    framesRefused: 0,
    framesDropped: 0,
    retransmits: 0,
    messagesAcked: 0,
    reconnects: 0,
    rttMs: undefined as number | undefined,
  };

  constructor(url: URL, epoch: string, settings: ClientSettings) {
    super();
    this.url = url;
    this.epoch = epoch;
    this.o = settings;
  }

  stats(): ClientStats {
    const n = Math.min(this.latencyCount, this.latencies.length);
    const sorted = Array.from(this.latencies.subarray(0, n)).sort((a, b) => a - b);
    const pick = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]!);
    const clock = this.clock?.estimate();
    return {
      ...this.s,
      // The exchange measures the receiver's clock minus ours; report ours minus the receiver's.
      clockOffsetMs: clock ? -clock.offsetUs / 1000 : undefined,
      clockErrorMs: clock ? clock.errorUs / 1000 : undefined,
      ackLatencyMs: { p50: pick(0.5), p99: pick(0.99), max: n ? sorted[n - 1]! : 0, samples: n },
    };
  }

  protected decl(st: ClientStream) {
    return { id: st.id, name: st.name, kind: st.kind, mode: st.mode, epoch: this.epoch };
  }

  protected assertUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closing || this.closed) throw new FramewireError('ERR_CLOSED', 'the client is closed');
  }

  /** @internal */
  async sendFrame(st: ClientStream, frame: Frame): Promise<number> {
    this.assertUsable();
    if (st.failed) throw st.failed;
    if (!Buffer.isBuffer(frame.data))
      throw new FramewireError('ERR_BAD_FRAME', 'frame.data must be a Buffer');
    if (frame.data.length > this.serverLimits.maxFrameBytes) {
      throw new FramewireError(
        'ERR_FRAME_TOO_LARGE',
        `frame${frame.name ? ` ${frame.name}` : ''} of ${frame.data.length} bytes exceeds the receiver's maxFrameBytes ${this.serverLimits.maxFrameBytes}`,
        {
          stream: st.name,
          hint: 'raise the receiver limit (serve --max-frame-bytes) or send smaller frames',
        },
      );
    }
    const metaJson = frame.meta === undefined ? undefined : JSON.stringify(frame.meta);
    if (metaJson !== undefined && Buffer.byteLength(metaJson) > this.serverLimits.maxMetaBytes) {
      throw new FramewireError(
        'ERR_META_TOO_LARGE',
        `frame metadata exceeds the receiver's maxMetaBytes ${this.serverLimits.maxMetaBytes}`,
        {
          stream: st.name,
        },
      );
    }
    const contentType = frame.contentType ?? guessContentType(frame.name);
    const bytes = frame.data.length;
    if (st.mode === 'reliable') {
      while (this.windowFull(bytes)) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        this.assertUsable();
        if (st.failed) throw st.failed;
      }
    }
    const seq = st.nextSeq++;
    const parts = encodeFrame({
      streamId: st.id,
      seq,
      captureUs: frame.captureUs ?? wallUs(),
      contentType,
      pixelFormat: frame.pixelFormat ?? 'none',
      width: frame.width ?? 0,
      height: frame.height ?? 0,
      name: frame.name ?? '',
      metaJson,
      payload: frame.data,
      flags: this.sendCrc ? 0 : Flags.NO_CRC,
    });
    const out: OutFrame = { seq, parts, bytes, sent: false, sentAt: 0 };
    if (st.mode === 'live') {
      // Newest wins: an older frame that has not left yet is replaced, and counted.
      const last = st.pending[st.pending.length - 1];
      if (last && !last.sent) {
        st.pending.pop();
        st.unsent--;
        this.pendingFrames--;
        this.pendingBytes -= last.bytes;
        this.s.framesDropped++;
        this.emit('drop', { stream: st.name, seq: last.seq });
      }
    }
    st.pending.push(out);
    st.unsent++;
    this.pendingFrames++;
    this.pendingBytes += bytes;
    this.pump();
    return seq;
  }

  private windowFull(bytes: number): boolean {
    if (this.pendingFrames === 0) return false;
    return this.pendingFrames >= this.o.windowFrames || this.pendingBytes + bytes > this.o.windowBytes;
  }

  /** Queues a JSON message (checked by the caller), waiting while the message window is full. */
  protected async queueMessage(text: string, ref: FrameRef | undefined): Promise<number> {
    while (this.messages.length >= this.o.windowMessages) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      this.assertUsable();
    }
    const seq = this.messageSeq++;
    this.messages.push({ seq, parts: encodeMessage(seq, text, ref), sent: false });
    this.messagesUnsent++;
    this.pump();
    return seq;
  }

  /** Frames queued for a receiver that skipped CRCs get them before going to one that checks. */
  protected addMissingCrcs(): void {
    for (const st of this.streams) {
      for (const f of st.pending) {
        const head = f.parts[0]!;
        if (!(head[4]! & Flags.NO_CRC)) continue;
        head[4] = head[4]! & ~Flags.NO_CRC;
        head.writeUInt32BE(crc32(f.parts[1] ?? Buffer.alloc(0)), HEADER_BYTES + 24);
      }
    }
  }

  protected applyResume(p: ResumePoint): void {
    const st = this.byId.get(p.id);
    if (!st || typeof p.next !== 'number') return;
    st.open = true;
    st.resumedAt = p.next;
    for (const w of st.openWaiters.splice(0)) w.resolve(p.next);
    if (st.nextSeq === 0 && st.pending.length === 0 && p.next > 0 && st.mode === 'reliable') {
      // A fresh stream that the receiver already holds frames of (same epoch): continue after them.
      st.nextSeq = p.next;
    }
    this.ackStream(st, p.next - 1);
    if (st.nextSeq < p.next) st.nextSeq = p.next;
  }

  /**
   * The connection was lost: frames in flight on a live stream are dropped, those of a reliable stream and
   * the messages in flight go again (flagged as resends) after the next handshake.
   */
  protected requeueAfterLoss(): void {
    for (const st of this.streams) {
      st.open = false;
      if (st.mode === 'live') {
        // Frames in flight on a live stream are not resent: freshness beats completeness.
        const lost = st.pending.filter((f) => f.sent);
        for (const f of lost) {
          this.pendingFrames--;
          this.pendingBytes -= f.bytes;
          this.s.framesDropped++;
        }
        st.pending = st.pending.filter((f) => !f.sent);
      } else {
        for (const f of st.pending) {
          if (f.sent) {
            f.sent = false;
            f.parts[0]![4]! |= Flags.RETRANSMIT;
            st.unsent++;
          }
        }
      }
    }
    for (const m of this.messages) {
      if (m.sent) {
        m.sent = false;
        this.messagesUnsent++;
      }
    }
  }

  protected onError(body: ErrorBody): void {
    const err = remoteError(body);
    const st = typeof body.stream === 'number' ? this.byId.get(body.stream) : undefined;
    if (!st) return;
    if (typeof body.seq === 'number') {
      st.refused.set(body.seq, new FramewireError(err.code, err.detail, { stream: st.name, seq: body.seq }));
      return;
    }
    // The whole stream was refused: its frames can never be delivered.
    const e = new FramewireError(err.code, err.detail, { stream: st.name });
    st.failed = e;
    for (const w of st.openWaiters.splice(0)) w.reject(e);
    for (const f of st.pending) {
      this.pendingFrames--;
      this.pendingBytes -= f.bytes;
    }
    st.pending = [];
    st.unsent = 0;
    if (this.listenerCount('stream-error') > 0) this.emit('stream-error', e);
    this.wake();
    this.checkFlushed();
  }

  protected ackStream(st: ClientStream, seq: number): void {
    if (seq <= st.acked && st.pending[0] && st.pending[0].seq > seq) return;
    const now = performance.now();
    let frames = 0;
    let bytes = 0;
    while (st.pending.length > 0 && st.pending[0]!.seq <= seq) {
      const f = st.pending.shift()!;
      if (!f.sent) st.unsent--;
      this.pendingFrames--;
      this.pendingBytes -= f.bytes;
      const refused = st.refused.get(f.seq);
      if (refused) {
        st.refused.delete(f.seq);
        this.s.framesRefused++;
        if (this.listenerCount('frame-error') > 0) this.emit('frame-error', refused);
        continue;
      }
      frames++;
      bytes += f.bytes;
      if (f.sent) {
        this.latencies[this.latencyCount++ % this.latencies.length] = now - f.sentAt;
      }
    }
    if (seq > st.acked) st.acked = seq;
    this.s.framesAcked += frames;
    this.s.bytesAcked += bytes;
    if (frames > 0 && this.listenerCount('ack') > 0)
      this.emit('ack', { stream: st.name, seq, frames, bytes });
    this.wake();
    this.checkFlushed();
  }

  protected ackMessages(seq: number): void {
    let n = 0;
    while (this.messages.length > 0 && this.messages[0]!.seq <= seq) {
      const m = this.messages.shift()!;
      if (!m.sent) this.messagesUnsent--;
      n++;
    }
    this.s.messagesAcked += n;
    if (n > 0) {
      this.wake();
      this.checkFlushed();
    }
  }

  protected wake(): void {
    if (this.waiters.length === 0) return;
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  protected checkFlushed(): void {
    if (this.pendingFrames !== 0 || this.messages.length !== 0 || this.flushWaiters.length === 0) return;
    const w = this.flushWaiters;
    this.flushWaiters = [];
    for (const f of w) f.resolve();
  }

  /** Writes what the window and the socket allow, round-robin over streams, messages first. */
  protected pump(): void {
    const conn = this.conn;
    if (!conn || !this.ready || conn.closed) return;
    if (this.messagesUnsent > 0) {
      for (const m of this.messages) {
        if (m.sent) continue;
        m.sent = true;
        this.messagesUnsent--;
        if (!conn.send(m.parts)) return;
      }
    }
    const n = this.streams.length;
    let idle = 0;
    while (idle < n) {
      const st = this.streams[this.rr++ % n]!;
      // A live frame waits while the connection is congested, so that a newer one replaces it (newest wins)
      // instead of queueing behind the older ones in the transport.
      if (!st.open || st.unsent === 0 || (st.mode === 'live' && conn.congested)) {
        idle++;
        continue;
      }
      idle = 0;
      const f = st.pending[st.pending.length - st.unsent]!;
      f.sent = true;
      f.sentAt = performance.now();
      st.unsent--;
      this.s.framesSent++;
      if (f.parts[0]![4]! & Flags.RETRANSMIT) this.s.retransmits++;
      const live =
        st.mode === 'live'
          ? { live: true, deadlineMs: this.o.latencyMs, onDrop: () => this.liveLost(st, f) }
          : undefined;
      if (!conn.send(f.parts, live)) return;
    }
  }

  /** The transport gave up a live frame in flight (too late): it has its outcome, a drop. */
  private liveLost(st: ClientStream, f: OutFrame): void {
    const i = st.pending.indexOf(f);
    if (i < 0 || !f.sent) return;
    st.pending.splice(i, 1);
    this.pendingFrames--;
    this.pendingBytes -= f.bytes;
    this.s.framesDropped++;
    this.emit('drop', { stream: st.name, seq: f.seq });
    this.wake();
    this.checkFlushed();
  }
}
