/**
 * Per-stream state of the viewer and the statistics computed from it: counts, gaps, a ring of recent
 * arrival times and latencies, and the fps/latency figures served by GET /api/streams and to the page.
 */
import type { SyncUnpairedReason } from '../sync/frames.js';
import type { ReceivedFrame, StreamInfo } from '../types.js';

/** Statistics of one stream, as `GET /api/streams` and the page show them. */
export interface StreamStats {
  name: string;
  kind: StreamInfo['kind'];
  mode: StreamInfo['mode'];
  sender: string;
  epoch: string;
  /** False once its sender disconnected (the stream is removed after `offlineMs`). */
  online: boolean;
  frames: number;
  bytes: number;
  /** Frames per second over the last two seconds. */
  fps: number;
  /** Mean end-to-end latency (receive time minus capture time) over the last two seconds, ms. */
  latencyMs: number | undefined;
  /** Sequence numbers skipped between received frames (dropped anywhere before the viewer). */
  missing: number;
  /** Live frames the receiver dropped because storage was slower than the stream. */
  receiverDrops: number;
  /** Frames not sent to slow viewers (all viewers together). */
  viewerDrops: number;
  width: number;
  height: number;
  contentType: string | undefined;
  lastSeq: number;
  lastCaptureUs: number | undefined;
  lastReceivedUs: number | undefined;
  /** Paths of the stream's MJPEG and latest-frame endpoints. */
  mjpeg: string;
  jpeg: string;
  /** The sender's clock minus the receiver's and its error bound, ms, from the latest frame (docs/sync.md). */
  clockOffsetMs: number | undefined;
  clockErrorMs: number | undefined;
  /** With `serve --sync`: frames of this stream left without a group, by reason. */
  unpaired?: Partial<Record<SyncUnpairedReason, number>>;
}

const WINDOW_MS = 2000;

/** Per stream state. */
export interface StreamState {
  info: StreamInfo;
  online: boolean;
  offlineSince: number;
  latest: ReceivedFrame | undefined;
  width: number;
  height: number;
  frames: number;
  bytes: number;
  lastSeq: number;
  missing: number;
  receiverDrops: number;
  viewerDrops: number;
  clockOffsetUs: number | undefined;
  clockErrorUs: number | undefined;
  /** Arrival times (ms) and latencies (µs) of recent frames, a ring. */
  times: Float64Array;
  lat: Float64Array;
  n: number;
}

const RING = 128;

export function newState(info: StreamInfo): StreamState {
  return {
    info,
    online: true,
    offlineSince: 0,
    latest: undefined,
    clockOffsetUs: undefined,
    clockErrorUs: undefined,
    width: 0,
    height: 0,
    frames: 0,
    bytes: 0,
    lastSeq: -1,
    missing: 0,
    receiverDrops: 0,
    viewerDrops: 0,
    times: new Float64Array(RING),
    lat: new Float64Array(RING),
    n: 0,
  };
}

/** Counts a received frame: sequence gaps, frames, bytes, and its arrival time and latency in the ring. */
export function countFrame(s: StreamState, f: ReceivedFrame): void {
  if (s.lastSeq >= 0 && f.seq > s.lastSeq + 1) s.missing += f.seq - s.lastSeq - 1;
  s.lastSeq = f.seq;
  s.frames++;
  s.bytes += f.data.length;
  s.clockOffsetUs = f.clockOffsetUs;
  s.clockErrorUs = f.clockErrorUs;
  const k = s.n++ % RING;
  s.times[k] = performance.now();
  s.lat[k] = f.receivedUs - f.captureUs;
}

/** The statistics of one stream over the last two seconds. */
export function streamStats(
  s: StreamState,
  unpaired?: Partial<Record<SyncUnpairedReason, number>>,
): StreamStats {
  const now = performance.now();
  const count = Math.min(s.n, RING);
  let inWindow = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  let latSum = 0;
  for (let i = 0; i < count; i++) {
    const t = s.times[i]!;
    if (now - t > WINDOW_MS) continue;
    inWindow++;
    first = Math.min(first, t);
    last = Math.max(last, t);
    latSum += s.lat[i]!;
  }
  const span = last - first;
  const fps = inWindow >= 2 && span > 0 ? ((inWindow - 1) * 1000) / span : 0;
  const enc = encodeURIComponent(s.info.name);
  return {
    name: s.info.name,
    kind: s.info.kind,
    mode: s.info.mode,
    sender: s.info.sender,
    epoch: s.info.epoch,
    online: s.online,
    frames: s.frames,
    bytes: s.bytes,
    fps: Math.round(fps * 10) / 10,
    latencyMs: inWindow > 0 ? Math.round(latSum / inWindow / 100) / 10 : undefined,
    missing: s.missing,
    receiverDrops: s.receiverDrops,
    viewerDrops: s.viewerDrops,
    width: s.width,
    height: s.height,
    contentType: s.latest?.contentType,
    lastSeq: s.lastSeq,
    lastCaptureUs: s.latest?.captureUs,
    lastReceivedUs: s.latest?.receivedUs,
    mjpeg: `/streams/${enc}.mjpg`,
    jpeg: `/streams/${enc}.jpg`,
    clockOffsetMs: s.clockOffsetUs === undefined ? undefined : s.clockOffsetUs / 1000,
    clockErrorMs: s.clockErrorUs === undefined ? undefined : s.clockErrorUs / 1000,
    ...(unpaired ? { unpaired } : {}),
  };
}

/** The short list of streams that the page gets when streams come, go or change size. */
export function streamList(states: Iterable<StreamState>): unknown[] {
  return [...states].map((s) => ({
    name: s.info.name,
    kind: s.info.kind,
    mode: s.info.mode,
    sender: s.info.sender,
    online: s.online,
    width: s.width,
    height: s.height,
  }));
}
