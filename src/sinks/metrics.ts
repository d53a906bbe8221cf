/**
 * Prometheus metrics for a receiver, through prom-client. The counts come from the `node:diagnostics_channel`
 * events the receiver publishes (src/session/diagnostics.ts), not from counters threaded through the session
 * code. Each instance has its own Registry, so several receivers (or tests) in one process never collide.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  CHANNELS,
  type ConnectionEvent,
  type DisconnectEvent,
  type DropEvent,
  type FrameEvent,
  type MessageEvent,
  type RetransmitEvent,
} from '../diagnostics.js';
import { monoMs } from '../time.js';
import type { ReceiverInfo } from '../types.js';

const requireHere = createRequire(import.meta.url);

/** Options of {@link FramewireMetrics}. */
export interface MetricsOptions {
  /**
   * Which servers to count. Default: every server in the process. The viewer passes "servers that list me
   * as a sink, or that I was attached to".
   */
  accept?: (server: ReceiverInfo) => boolean;
  /** Bucket bounds of the end-to-end latency histogram, in seconds. */
  latencyBuckets?: number[];
  /**
   * The series of a stream that had no frame for this long are removed (they come back with its next
   * frame, counting from 0, which Prometheus' rate() takes as a counter reset), so that many short-lived
   * streams do not pile up series. Milliseconds; default 600000 (10 minutes).
   */
  idleSeriesMs?: number;
}

/** Latency buckets from 1 ms to 10 s: live video sits in the low tens of ms, a slow link in seconds. */
export const DEFAULT_LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** What the metrics read of a sync sink. */
export interface SyncCounts {
  unpaired(): Record<string, Partial<Record<string, number>>>;
  readonly groups: number;
}

/** Viewer counts reported by whoever serves viewers (the viewer sink). */
export interface ViewerCounts {
  websocket: number;
  mjpeg: number;
}

/**
 * Counts frames, bytes, drops, gaps, retransmits, messages, latency and connections of the receivers it
 * accepts, and renders them in the Prometheus text format with {@link FramewireMetrics.metrics}.
 * Call {@link FramewireMetrics.close} to unsubscribe.
 */
export class FramewireMetrics {
  /** This instance's own registry (never prom-client's global one). */
  readonly registry: Registry;
  readonly #accept: (server: ReceiverInfo) => boolean;
  /** Servers seen (or attached), for the connected-senders gauge. */
  readonly #servers = new Set<ReceiverInfo>();
  /** Last sequence number per stream name and epoch, to count gaps. */
  readonly #last = new Map<string, { epoch: string; seq: number; at: number }>();
  readonly #idleSeriesMs: number;
  #sweeper: NodeJS.Timeout | undefined;
  readonly #unsubscribe: Array<() => void> = [];
  #viewers: () => ViewerCounts = () => ({ websocket: 0, mjpeg: 0 });
  #closed = false;

  readonly frames: Counter<'stream'>;
  readonly bytes: Counter<'stream'>;
  readonly dropped: Counter<'stream' | 'stage'>;
  readonly missing: Counter<'stream'>;
  readonly retransmits: Counter<'stream'>;
  readonly messages: Counter;
  readonly latency: Histogram<'stream'>;
  readonly connections: Counter;
  readonly clockOffset: Gauge<'stream'>;
  readonly clockError: Gauge<'stream'>;
  readonly #syncs: SyncCounts[] = [];

  constructor(options: MetricsOptions = {}) {
    // Required here, not at import: a process without metrics does not carry prom-client in its heap.
    const { Counter, Gauge, Histogram, Registry } = requireHere(
      'prom-client',
    ) as typeof import('prom-client');
    this.registry = new Registry();
    this.#accept = options.accept ?? (() => true);
    this.#idleSeriesMs = options.idleSeriesMs ?? 600_000;
    const registers = [this.registry];
    this.frames = new Counter({
      name: 'framewire_frames_received_total',
      help: 'Frames stored by every sink, per stream.',
      labelNames: ['stream'],
      registers,
    });
    this.bytes = new Counter({
      name: 'framewire_bytes_received_total',
      help: 'Payload bytes of the frames stored, per stream.',
      labelNames: ['stream'],
      registers,
    });
    this.dropped = new Counter({
      name: 'framewire_frames_dropped_total',
      help: 'Live frames dropped because a newer one replaced them: stage="receiver" before the sinks (storage slower than the stream), stage="viewer" for a slow viewer (summed over viewers).',
      labelNames: ['stream', 'stage'],
      registers,
    });
    this.missing = new Counter({
      name: 'framewire_frames_missing_total',
      help: 'Sequence numbers skipped between stored frames of a stream (frames dropped at the sender, on the way, or at the receiver).',
      labelNames: ['stream'],
      registers,
    });
    this.retransmits = new Counter({
      name: 'framewire_retransmits_total',
      help: 'Frames that arrived flagged as sent again after a reconnect, per stream.',
      labelNames: ['stream'],
      registers,
    });
    this.messages = new Counter({
      name: 'framewire_messages_received_total',
      help: 'JSON messages stored by every sink.',
      registers,
    });
    this.latency = new Histogram({
      name: 'framewire_latency_seconds',
      help: 'End-to-end latency of stored frames: receive time minus capture time (negative values, from clocks that disagree, count as 0).',
      labelNames: ['stream'],
      buckets: options.latencyBuckets ?? DEFAULT_LATENCY_BUCKETS,
      registers,
    });
    this.connections = new Counter({
      name: 'framewire_sender_connections_total',
      help: 'Sender handshakes completed (first connections and reconnects).',
      registers,
    });
    const servers = this.#servers;
    new Gauge({
      name: 'framewire_senders_connected',
      help: 'Senders connected now.',
      registers,
      collect() {
        let n = 0;
        for (const s of servers) n += s.connections;
        this.set(n);
      },
    });
    const viewers = () => this.#viewers();
    new Gauge({
      name: 'framewire_viewers_connected',
      help: 'Viewers connected now, by protocol (websocket: the web page; mjpeg: /streams/NAME.mjpg readers).',
      labelNames: ['protocol'],
      registers,
      collect() {
        const v = viewers();
        this.set({ protocol: 'websocket' }, v.websocket);
        this.set({ protocol: 'mjpeg' }, v.mjpeg);
      },
    });

    this.clockOffset = new Gauge({
      name: 'framewire_clock_offset_seconds',
      help: "The sender's clock minus the receiver's, per stream, from the clock exchange (docs/sync.md).",
      labelNames: ['stream'],
      registers,
    });
    this.clockError = new Gauge({
      name: 'framewire_clock_error_seconds',
      help: 'Bound on the error of framewire_clock_offset_seconds: half the round trip of the best recent exchange.',
      labelNames: ['stream'],
      registers,
    });
    const syncs = this.#syncs;
    new Counter({
      name: 'framewire_sync_unpaired_total',
      help: 'Frames of a --sync group left without a group, by stream and reason (tolerance, skipped, late, clock).',
      labelNames: ['stream', 'reason'],
      registers,
      collect() {
        this.reset();
        for (const s of syncs) {
          for (const [stream, counts] of Object.entries(s.unpaired())) {
            for (const [reason, n] of Object.entries(counts)) this.inc({ stream, reason }, n ?? 0);
          }
        }
      },
    });
    new Counter({
      name: 'framewire_sync_groups_total',
      help: 'Groups of frames taken at the same moment (serve --sync).',
      registers,
      collect() {
        this.reset();
        this.inc(syncs.reduce((n, s) => n + s.groups, 0));
      },
    });

    this.#on<FrameEvent>(CHANNELS.frame, ({ frame }) => {
      const stream = frame.stream.name;
      if (frame.clockOffsetUs !== undefined) this.clockOffset.set({ stream }, frame.clockOffsetUs / 1e6);
      if (frame.clockErrorUs !== undefined) this.clockError.set({ stream }, frame.clockErrorUs / 1e6);
      this.frames.inc({ stream });
      this.bytes.inc({ stream }, frame.data.length);
      this.latency.observe({ stream }, Math.max(0, frame.receivedUs - frame.captureUs) / 1e6);
      const last = this.#last.get(stream);
      if (last && last.epoch === frame.stream.epoch && frame.seq > last.seq + 1) {
        this.missing.inc({ stream }, frame.seq - last.seq - 1);
      }
      this.#last.set(stream, { epoch: frame.stream.epoch, seq: frame.seq, at: monoMs() });
      // Timers take at most 2^31-1 ms; a longer idleSeriesMs sweeps that often.
      const every = Math.min(2 ** 31 - 1, Math.max(10, this.#idleSeriesMs / 2));
      this.#sweeper ??= setInterval(() => this.#sweep(), every).unref();
    });
    this.#on<MessageEvent>(CHANNELS.message, () => this.messages.inc());
    this.#on<DropEvent>(CHANNELS.drop, ({ stream }) => {
      this.dropped.inc({ stream: stream.name, stage: 'receiver' });
    });
    this.#on<RetransmitEvent>(CHANNELS.retransmit, ({ stream }) => {
      this.retransmits.inc({ stream: stream.name });
    });
    this.#on<ConnectionEvent>(CHANNELS.connection, () => this.connections.inc());
    // Seen only so that the gauge knows the server; the gauge reads the live count.
    this.#on<DisconnectEvent>(CHANNELS.disconnect, () => {});
  }

  /** Counts `server` even when `accept` would not (and lets the senders gauge see it before any event). */
  attach(server: ReceiverInfo): void {
    this.#servers.add(server);
  }

  /** Counts the groups and unpaired frames of a sync sink (serve --sync). */
  addSync(source: SyncCounts): void {
    this.#syncs.push(source);
  }

  /** Reports viewer counts for the `framewire_viewers_connected` gauge. */
  setViewerCounts(read: () => ViewerCounts): void {
    this.#viewers = read;
  }

  /** Counts frames dropped for a slow viewer. */
  viewerDropped(stream: string, n = 1): void {
    if (!this.#closed) this.dropped.inc({ stream, stage: 'viewer' }, n);
  }

  /** The metrics in the Prometheus text format. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** The Content-Type header for {@link metrics}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Removes the series of streams idle for idleSeriesMs. */
  #sweep(): void {
    const now = monoMs();
    for (const [stream, last] of this.#last) {
      if (now - last.at < this.#idleSeriesMs) continue;
      this.#last.delete(stream);
      for (const m of [
        this.frames,
        this.bytes,
        this.missing,
        this.retransmits,
        this.latency,
        this.clockOffset,
        this.clockError,
      ])
        m.remove({ stream });
      this.dropped.remove({ stream, stage: 'receiver' });
      this.dropped.remove({ stream, stage: 'viewer' });
    }
    if (this.#last.size === 0 && this.#sweeper) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  /** Unsubscribes from the diagnostics channels. The registry keeps its last values. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweeper) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  #on<E extends { server: ReceiverInfo }>(name: string, handle: (event: E) => void): void {
    const fn = (message: unknown) => {
      const event = message as E;
      if (!this.#servers.has(event.server)) {
        if (!this.#accept(event.server)) return;
        this.#servers.add(event.server);
      }
      handle(event);
    };
    diagnostics_channel.subscribe(name, fn);
    this.#unsubscribe.push(() => diagnostics_channel.unsubscribe(name, fn));
  }
}
