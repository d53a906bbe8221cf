/**
 * `legacy-udp://` — the seed's UDP picture server: both forms (one datagram per picture, or a length header
 * and 1024-byte chunks) on one port, each sender address its own stream, `get message!!!` after each
 * stored picture. See docs/compat.md.
 *
 * Query options of the listen URL: `?timeout=MS` (a picture in progress whose sender stays silent this
 * long is dropped; default 1500), `?nak=0` (never answer a dropped picture), `?rcvbuf=BYTES` (socket
 * receive buffer asked of the OS; default 8 MiB), `?kind=infrared` (the kind of this port's streams).
 */
import type dgram from 'node:dgram';
import { FramewireError, toFramewireError } from '../errors.js';
import { STREAM_KINDS, type StreamKind } from '../protocol/constants.js';
import { crc32 } from '../protocol/crc.js';
import type { FramewireServer } from '../session/server.js';
import { monoMs, wallUs } from '../time.js';
import type { ReceivedFrame, StreamInfo } from '../types.js';
import {
  announceStream,
  bindUdp,
  countDrop,
  countNote,
  flagParam,
  forgetEndpoint,
  hostPort,
  inStreamOrder,
  type LegacyListener,
  legacyAddress,
  newStats,
  numberParam,
  PICTURE_NAK,
  PICTURE_REPLY,
  rememberEndpoint,
  udpStreamName,
} from './common.js';
import { type AssemblyEvent, PictureAssembler } from './udp-assembler.js';

/** Receive buffer asked of the OS: a 1080p picture (about 120 chunks) sent as one burst fits many times. */
export const DEFAULT_UDP_RCVBUF = 8 * 1024 * 1024;
const DEFAULT_PARTIAL_TIMEOUT_MS = 1500;
/** Senders remembered at once; the least recently heard is forgotten first. */
const MAX_SENDERS = 1024;
/** A sender silent this long is forgotten (its stream continues, numbered from the sinks, if it returns). */
const SENDER_IDLE_MS = 10 * 60_000;
/** Pictures of one sender waiting to be stored; more are dropped (the seed client waits for each answer). */
const MAX_QUEUED_PER_SENDER = 8;

interface Sender {
  key: string;
  address: string;
  port: number;
  stream: StreamInfo;
  asm: PictureAssembler;
  timer: NodeJS.Timeout | undefined;
  lastSeen: number;
  /** Next sequence number, once the sinks said where the stream stands. */
  next: number | undefined;
  queued: number;
}

export async function startLegacyUdp(url: URL, server: FramewireServer): Promise<LegacyListener> {
  const addr = legacyAddress(url, ['legacy-udp']);
  const timeoutMs = numberParam(addr, 'timeout', DEFAULT_PARTIAL_TIMEOUT_MS, { min: 10, max: 600_000 });
  const nak = flagParam(addr, 'nak', true);
  const rcvbuf = numberParam(addr, 'rcvbuf', DEFAULT_UDP_RCVBUF, {
    min: 65_536,
    max: 1 << 30,
    integer: true,
  });
  const kindParam = addr.params.get('kind') ?? 'visible';
  if (!STREAM_KINDS.includes(kindParam as StreamKind)) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `${addr.text}: ?kind=${kindParam} is not one of ${STREAM_KINDS.join(', ')}`,
    );
  }
  const kind = kindParam as StreamKind;
  const limits = server.options.limits;
  const stats = newStats();
  const socket = await bindUdp(addr);
  const rcvbufGot = setReceiveBuffer(socket, rcvbuf);
  let rcvbufWarned = rcvbufGot >= rcvbuf;
  const bound = socket.address();
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const label = `legacy-udp://${shownHost}:${bound.port}`;

  const senders = new Map<string, Sender>();
  const inFlight = new Set<Promise<void>>();
  let pendingBytes = 0;
  let closed = false;

  const reply = (s: Sender, text: string) => {
    if (closed) return;
    socket.send(text, s.port, s.address, () => {});
  };
  const sendNak = (s: Sender) => {
    if (!nak) return;
    countNote(stats, 'naks');
    reply(s, PICTURE_NAK);
  };

  const senderOf = (address: string, port: number): Sender => {
    const key = hostPort(address, port);
    let s = senders.get(key);
    if (s) {
      // Map order is recency order: the first entry is the least recently heard sender.
      senders.delete(key);
      senders.set(key, s);
      return s;
    }
    if (senders.size >= MAX_SENDERS) {
      const oldest = senders.values().next().value as Sender;
      forget(oldest);
    }
    s = {
      key,
      address,
      port,
      stream: {
        name: udpStreamName(address, port),
        kind,
        mode: 'reliable',
        epoch: 'legacy-udp',
        sender: key,
      },
      asm: new PictureAssembler({
        maxPictureBytes: limits.maxFrameBytes,
        reserve: (n) => {
          if (pendingBytes + n > server.options.maxPendingBytes) return false;
          pendingBytes += n;
          return true;
        },
        release: (n) => {
          pendingBytes -= n;
        },
      }),
      timer: undefined,
      lastSeen: monoMs(),
      next: undefined,
      queued: 0,
    };
    senders.set(key, s);
    return s;
  };

  const forget = (s: Sender) => {
    if (s.timer) clearTimeout(s.timer);
    s.timer = undefined;
    if (!s.asm.idle) {
      handle(s, s.asm.expire());
    }
    s.asm.reset();
    senders.delete(s.key);
  };

  const drop = (s: Sender, code: FramewireError['code'], reason: string, detail: string) => {
    countDrop(stats, reason);
    server.emit(
      'frame-error',
      new FramewireError(
        code,
        `${label}: dropped a picture from ${s.key} (stream "${s.stream.name}"): ${detail}`,
        {
          stream: s.stream.name,
        },
      ),
    );
  };

  const deliver = (s: Sender, data: Buffer, contentType: ReceivedFrame['contentType']) => {
    if (s.queued >= MAX_QUEUED_PER_SENDER || pendingBytes + data.length > server.options.maxPendingBytes) {
      drop(s, 'ERR_FRAME_DROPPED', 'queue-full', 'pictures arrive faster than they are stored');
      sendNak(s);
      return;
    }
    s.queued++;
    pendingBytes += data.length;
    const receivedUs = wallUs();
    const p = inStreamOrder(server, s.stream.name, async () => {
      if (s.next === undefined) {
        s.next = await resumePoint(server, s.stream);
        announceStream(server, s.stream, s.next);
      }
      const seq = s.next;
      const frame: ReceivedFrame = {
        stream: s.stream,
        seq,
        captureUs: receivedUs,
        receivedUs,
        contentType,
        pixelFormat: 'none',
        width: 0,
        height: 0,
        name: '',
        meta: undefined,
        data,
        crc: crc32(data),
      };
      await server.deliverFrame(frame);
      s.next = seq + 1;
    })
      .then(
        () => {
          stats.delivered++;
          stats.bytes += data.length;
          reply(s, PICTURE_REPLY);
        },
        (err: unknown) => {
          const e = toFramewireError(
            err,
            'ERR_WRITE_FAILED',
            `${label}: storing a picture of "${s.stream.name}"`,
          );
          countDrop(stats, e.code === 'ERR_UNSAFE_NAME' ? 'unsafe-name' : 'store-failed');
          server.emit('frame-error', e);
          sendNak(s);
        },
      )
      .finally(() => {
        s.queued--;
        pendingBytes -= data.length;
        inFlight.delete(p);
      });
    inFlight.add(p);
  };

  const handle = (s: Sender, events: AssemblyEvent[]) => {
    for (const ev of events) {
      switch (ev.type) {
        case 'picture':
          countNote(stats, ev.form === 'single' ? 'single-form' : 'chunked-form');
          deliver(s, ev.data, ev.contentType);
          break;
        case 'drop':
          drop(s, ev.code, ev.reason, ev.detail);
          if (ev.nak) sendNak(s);
          break;
        case 'nak':
          sendNak(s);
          break;
        case 'note':
          countNote(stats, ev.what);
          break;
      }
    }
  };

  const arm = (s: Sender, delay: number) => {
    s.timer = setTimeout(() => {
      s.timer = undefined;
      // Datagrams may be waiting in the socket after a stalled event loop: let them be read first.
      setImmediate(() => {
        if (closed || s.asm.idle || s.timer) return;
        const silent = monoMs() - s.lastSeen;
        if (silent + 1 < timeoutMs) arm(s, timeoutMs - silent);
        else handle(s, s.asm.expire());
      });
    }, delay);
    s.timer.unref?.();
  };

  socket.on('message', (msg, rinfo) => {
    if (closed) return;
    if (!rcvbufWarned) {
      rcvbufWarned = true;
      countNote(stats, 'small-receive-buffer');
      server.warn(
        new FramewireError(
          'ERR_BAD_OPTION',
          `${label}: the OS gave a receive buffer of ${rcvbufGot} bytes (asked ${rcvbuf}); a large picture sent in one burst may be cut`,
          { hint: `raise it, e.g. sysctl -w net.core.rmem_max=${rcvbuf}` },
        ),
      );
    }
    const s = senderOf(rinfo.address, rinfo.port);
    s.lastSeen = monoMs();
    handle(s, s.asm.push(msg));
    if (s.asm.idle) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = undefined;
    } else if (!s.timer) {
      arm(s, timeoutMs);
    }
  });
  socket.on('error', (err) => {
    server.warn(toFramewireError(err, 'ERR_PROTOCOL', `${label}: socket error`));
  });

  const sweep = setInterval(() => {
    const now = monoMs();
    for (const s of [...senders.values()]) {
      if (now - s.lastSeen > SENDER_IDLE_MS && s.queued === 0) forget(s);
    }
  }, 30_000);
  sweep.unref();

  const listener: LegacyListener = {
    scheme: 'legacy-udp',
    url: label,
    host: bound.address,
    port: bound.port,
    stats,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      for (const s of senders.values()) {
        if (s.timer) clearTimeout(s.timer);
        s.asm.reset();
      }
      senders.clear();
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      await Promise.allSettled([...inFlight]);
      forgetEndpoint(server, listener);
    },
  };
  rememberEndpoint(server, listener);
  return listener;
}

/**
 * Asks the OS for `bytes` of receive buffer, halving the request where it refuses (macOS caps it at
 * kern.ipc.maxsockbuf and fails rather than trims). Returns what the OS reports.
 */
function setReceiveBuffer(socket: dgram.Socket, bytes: number): number {
  for (let want = bytes; want >= 65_536; want = Math.floor(want / 2)) {
    try {
      socket.setRecvBufferSize(want);
      break;
    } catch {
      /* try a smaller one */
    }
  }
  try {
    return socket.getRecvBufferSize();
  } catch {
    return 0;
  }
}

/** Where a stream stands in the sinks, so a returning sender's files never overwrite earlier ones. */
export async function resumePoint(server: FramewireServer, info: StreamInfo): Promise<number> {
  let next = 0;
  for (const sink of server.sinks) {
    if (sink.resumePoint) next = Math.max(next, await sink.resumePoint(info));
  }
  return next;
}
