/**
 * framewire as an ImageZMQ hub (docs/compat.md, "ImageZMQ"):
 * - `izmq://HOST:PORT` binds a REP socket, as ImageZMQ's `ImageHub()` does. Each message becomes a frame of
 *   the stream named after its `msg`, and the answer `OK` goes out only once every sink stored it, so a
 *   REQ sender that got `OK` knows the frame is saved. A malformed message gets `ERR_…: why` and nothing
 *   is saved; the next message is served as usual.
 * - `izmq+sub://HOST:PORT` connects a SUB socket to a PUB sender (`ImageHub(open_port, REQ_REP=False)`), in
 *   live mode: each stream keeps at most `liveQueueFrames` frames waiting to be stored, the newest win, and
 *   every drop is counted (`framewire:drop`).
 *
 * Query options: `?kind=infrared` (the kind of the streams, default visible; a framewire sender's own kind
 * wins). Frames reach the sinks through server.deliverFrame, like the native ones.
 */

import { channels } from '../../diagnostics.js';
import { FramewireError, toFramewireError } from '../../errors.js';
import { checkFileName } from '../../names.js';
import { STREAM_KINDS, type StreamKind, type StreamMode } from '../../protocol/constants.js';
import { crc32 } from '../../protocol/crc.js';
import type { FramewireServer } from '../../session/server.js';
import { wallUs } from '../../time.js';
import type { Listener } from '../../transports/types.js';
import type { ReceivedFrame, StreamInfo } from '../../types.js';
import {
  announceStream,
  countDrop,
  countNote,
  inStreamOrder,
  type LegacyStats,
  newStats,
} from '../common.js';
import { resumePoint } from '../legacy-udp.js';
import {
  errorReply,
  type ImageZmqMessage,
  IZMQ_EPOCH,
  IZMQ_OK,
  izmqStreamName,
  parseImageZmq,
} from './format.js';
import { bindError, type IzmqAddress, izmqAddress, loadZmq, portOfEndpoint } from './zmq.js';

/** Streams remembered per endpoint (name and epoch); the least recently used is forgotten first. */
const MAX_STREAMS = 4096;

/** A bound ImageZMQ endpoint: a Listener with its counters. */
export interface ImageZmqListener extends Listener {
  readonly scheme: 'izmq' | 'izmq+sub';
  /**
   * `delivered`/`bytes`: frames stored; `dropped` and `drops` by reason (the error code of a malformed
   * message, `live-queue` for a live frame a newer one replaced, `store-failed`); `notes.duplicate`: resent
   * frames a framewire sender had already delivered, answered `OK` without storing them again.
   */
  readonly stats: LegacyStats;
}

const endpointsOf = new WeakMap<FramewireServer, ImageZmqListener[]>();

/** The ImageZMQ endpoints a server listens on, with their counters. */
export function imageZmqEndpoints(server: FramewireServer): readonly ImageZmqListener[] {
  return endpointsOf.get(server) ?? [];
}

interface StreamState {
  info: StreamInfo;
  /** Next sequence number, once the sinks said where the stream stands. */
  next: number | undefined;
  /** Live mode: frames waiting to be stored, oldest first, and whether they are being stored. */
  queue: { m: ImageZmqMessage; receivedUs: number }[];
  draining: boolean;
}

/** Maps messages to frames and hands them to the server; shared by the REP and SUB endpoints. */
class Deliverer {
  readonly #server: FramewireServer;
  readonly #label: () => string;
  readonly #kind: StreamKind;
  readonly #mode: StreamMode;
  readonly #streams = new Map<string, StreamState>();
  readonly stats = newStats();

  constructor(server: FramewireServer, label: () => string, kind: StreamKind, mode: StreamMode) {
    this.#server = server;
    this.#label = label;
    this.#kind = kind;
    this.#mode = mode;
  }

  parse(parts: Buffer[]): ImageZmqMessage {
    return parseImageZmq(parts, this.#server.options.limits);
  }

  stateOf(m: ImageZmqMessage): StreamState {
    const name = izmqStreamName(m.msg);
    const epoch = m.fw?.epoch ?? IZMQ_EPOCH;
    const key = `${name}\u0000${epoch}`;
    let st = this.#streams.get(key);
    if (st) {
      this.#streams.delete(key);
      this.#streams.set(key, st);
      return st;
    }
    if (this.#streams.size >= MAX_STREAMS) {
      const oldest = this.#streams.keys().next().value as string;
      this.#streams.delete(oldest);
    }
    st = {
      info: { name, kind: m.fw?.kind ?? this.#kind, mode: this.#mode, epoch, sender: this.#label() },
      next: undefined,
      queue: [],
      draining: false,
    };
    this.#streams.set(key, st);
    return st;
  }

  /** Stores one message as a frame; resolves to false for a duplicate of a frame already stored. */
  store(m: ImageZmqMessage, st: StreamState, receivedUs: number): Promise<boolean> {
    const stream = st.info;
    return inStreamOrder(this.#server, stream.name, async () => {
      if (st.next === undefined) {
        st.next = await resumePoint(this.#server, stream);
        announceStream(this.#server, stream, st.next);
      }
      // A framewire sender numbers its frames: one it sends again (its reply was lost) is not stored twice.
      if (m.fw && m.fw.seq < st.next) {
        countNote(this.stats, 'duplicate');
        if (channels.retransmit.hasSubscribers)
          channels.retransmit.publish({ server: this.#server, stream, seq: m.fw.seq, duplicate: true });
        return false;
      }
      const seq = m.fw ? m.fw.seq : st.next;
      const name = m.fw?.name ?? '';
      if (name !== '') checkFileName(name, stream.name, seq);
      const imagezmq: Record<string, unknown> = { msg: m.msg };
      if (m.dtype !== undefined) imagezmq.dtype = m.dtype;
      if (m.shape !== undefined) imagezmq.shape = m.shape;
      const frame: ReceivedFrame = {
        stream,
        seq,
        captureUs: m.fw?.captureUs ?? receivedUs,
        receivedUs,
        contentType: m.contentType,
        pixelFormat: m.pixelFormat,
        width: m.width,
        height: m.height,
        name,
        meta: { imagezmq },
        data: m.data,
        crc: crc32(m.data),
      };
      await this.#server.deliverFrame(frame);
      st.next = seq + 1;
      this.stats.delivered++;
      this.stats.bytes += m.data.length;
      return true;
    });
  }

  /** Counts and reports a message that was not stored. */
  refuse(err: unknown): FramewireError {
    const e = toFramewireError(err, 'ERR_WRITE_FAILED', `${this.#label()}: storing a frame`);
    countDrop(this.stats, e.code === 'ERR_WRITE_FAILED' ? 'store-failed' : e.code);
    const where = new FramewireError(e.code, `${this.#label()}: ${e.detail}`, {
      ...(e.hint ? { hint: e.hint } : {}),
      ...(e.stream ? { stream: e.stream } : {}),
      cause: e,
    });
    this.#server.emit('frame-error', where);
    return e;
  }

  dropLive(st: StreamState, bytes: number): void {
    countDrop(this.stats, 'live-queue');
    if (channels.drop.hasSubscribers) {
      channels.drop.publish({
        server: this.#server,
        stream: st.info,
        seq: st.next ?? 0,
        bytes,
        reason: 'live-queue',
      });
    }
  }
}

function kindParam(a: IzmqAddress): StreamKind {
  const k = a.params.get('kind') ?? 'visible';
  if (!STREAM_KINDS.includes(k as StreamKind)) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `${a.text}: ?kind=${k} is not one of ${STREAM_KINDS.join(', ')}`,
    );
  }
  return k as StreamKind;
}

/**
 * Parts above this are never read: ZeroMQ drops the connection instead (ZMQ_MAXMSGSIZE). Below it, a message
 * over maxFrameBytes is read and answered with ERR_FRAME_TOO_LARGE.
 */
function readLimit(maxFrameBytes: number): number {
  return Math.min(maxFrameBytes + Math.max(maxFrameBytes, 1 << 20), Number.MAX_SAFE_INTEGER);
}

function isClosedError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EBADF' || code === 'ETERM' || code === 'ENOTSOCK';
}

/** `izmq://HOST:PORT`: a REP hub. */
export async function startImageZmqHub(url: URL, server: FramewireServer): Promise<ImageZmqListener> {
  const addr = izmqAddress(url, ['izmq']);
  const kind = kindParam(addr);
  const zmq = await loadZmq();
  const sock = new zmq.Reply({
    linger: 0,
    maxMessageSize: readLimit(server.options.limits.maxFrameBytes),
    ipv6: addr.host.includes(':'),
  });
  try {
    await sock.bind(addr.zmqEndpoint);
  } catch (err) {
    sock.close();
    throw bindError(err, addr);
  }
  const port = portOfEndpoint(sock.lastEndpoint, addr.port);
  const shown = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  const label = `izmq://${shown}:${port}`;
  const d = new Deliverer(server, () => label, kind, 'reliable');
  let closed = false;
  const loop = (async () => {
    while (!closed) {
      let parts: Buffer[];
      try {
        parts = await sock.receive();
      } catch (err) {
        if (closed || sock.closed || isClosedError(err)) return;
        server.warn(toFramewireError(err, 'ERR_PROTOCOL', `${label}: receiving`));
        return;
      }
      let reply: Buffer;
      try {
        const m = d.parse(parts);
        await d.store(m, d.stateOf(m), wallUs());
        reply = Buffer.from(IZMQ_OK);
      } catch (err) {
        reply = errorReply(d.refuse(err));
      }
      // REP must answer before it can receive again; a sender that went away just misses the answer.
      if (closed) return;
      try {
        await sock.send(reply);
      } catch (err) {
        if (closed || sock.closed || isClosedError(err)) return;
        server.warn(toFramewireError(err, 'ERR_PROTOCOL', `${label}: replying`));
      }
    }
  })();
  const listener: ImageZmqListener = {
    scheme: 'izmq',
    url: label,
    host: addr.host,
    port,
    stats: d.stats,
    close: async () => {
      if (closed) return;
      closed = true;
      // The frame being stored is finished (and answered if the socket still can), then the socket closes.
      sock.close();
      await loop;
      forget(server, listener);
    },
  };
  remember(server, listener);
  return listener;
}

/** `izmq+sub://HOST:PORT`: a SUB socket connected to a PUB sender, live. */
export async function startImageZmqSub(url: URL, server: FramewireServer): Promise<ImageZmqListener> {
  const addr = izmqAddress(url, ['izmq+sub']);
  if (addr.port === 0) {
    throw new FramewireError(
      'ERR_BAD_URL',
      `${addr.text}: a SUB hub connects to a PUB sender; name its port`,
    );
  }
  const kind = kindParam(addr);
  const zmq = await loadZmq();
  const sock = new zmq.Subscriber({
    linger: 0,
    maxMessageSize: readLimit(server.options.limits.maxFrameBytes),
    receiveHighWaterMark: 64,
    ipv6: addr.host.includes(':'),
  });
  try {
    sock.connect(addr.zmqEndpoint);
  } catch (err) {
    sock.close();
    throw bindError(err, addr);
  }
  sock.subscribe();
  const label = addr.text;
  const d = new Deliverer(server, () => label, kind, 'live');
  const queueMax = Math.max(1, server.options.liveQueueFrames);
  let closed = false;
  const inFlight = new Set<Promise<unknown>>();
  const loop = (async () => {
    while (!closed) {
      let parts: Buffer[];
      try {
        parts = await sock.receive();
      } catch (err) {
        if (closed || sock.closed || isClosedError(err)) return;
        server.warn(toFramewireError(err, 'ERR_PROTOCOL', `${label}: receiving`));
        return;
      }
      let m: ImageZmqMessage;
      try {
        m = d.parse(parts);
      } catch (err) {
        d.refuse(err);
        continue;
      }
      const st = d.stateOf(m);
      if (st.queue.length >= queueMax) {
        // Newest wins: the oldest frame still waiting to be stored makes room for this one.
        const old = st.queue.shift()!;
        d.dropLive(st, old.m.data.length);
      }
      st.queue.push({ m, receivedUs: wallUs() });
      if (!st.draining) {
        st.draining = true;
        const p = (async () => {
          for (let job = st.queue.shift(); job && !closed; job = st.queue.shift()) {
            await d.store(job.m, st, job.receivedUs).catch((err: unknown) => d.refuse(err));
          }
          st.queue.length = 0;
          st.draining = false;
        })();
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
    }
  })();
  const listener: ImageZmqListener = {
    scheme: 'izmq+sub',
    url: label,
    host: addr.host,
    port: addr.port,
    stats: d.stats,
    close: async () => {
      if (closed) return;
      closed = true;
      sock.close();
      await loop;
      await Promise.allSettled([...inFlight]);
      forget(server, listener);
    },
  };
  remember(server, listener);
  return listener;
}

function remember(server: FramewireServer, l: ImageZmqListener): void {
  endpointsOf.set(server, [...(endpointsOf.get(server) ?? []), l]);
}

function forget(server: FramewireServer, l: ImageZmqListener): void {
  endpointsOf.set(
    server,
    (endpointsOf.get(server) ?? []).filter((x) => x !== l),
  );
}
