/**
 * `legacy-json://` — the seed's UDP JSON message port: each datagram is one JSON value (a list, an object,
 * anything `json.loads` takes); it becomes a message for every sink and is answered `get the msg` once
 * stored. A datagram that is not JSON is logged and counted (the seed server's thread died on it) and
 * answered `bad msg`, so that a seed client waiting for an answer goes on. See docs/compat.md.
 *
 * Query options of the listen URL: `?nak=0` (answer nothing to a message that was not stored).
 */
import { randomBytes } from 'node:crypto';
import { FramewireError, toFramewireError } from '../errors.js';
import type { FramewireServer } from '../session/server.js';
import { wallUs } from '../time.js';
import type { ReceivedMessage } from '../types.js';
import {
  bindUdp,
  countDrop,
  flagParam,
  forgetEndpoint,
  hostPort,
  type LegacyListener,
  legacyAddress,
  MESSAGE_BAD,
  MESSAGE_LOST,
  MESSAGE_REPLY,
  newStats,
  rememberEndpoint,
} from './common.js';

const MAX_SENDERS = 4096;
/** Messages received and not yet stored; more are dropped and answered `lost msg`. */
const MAX_QUEUED = 1024;

interface JsonSender {
  epoch: string;
  seq: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function startLegacyJson(url: URL, server: FramewireServer): Promise<LegacyListener> {
  const addr = legacyAddress(url, ['legacy-json']);
  const nak = flagParam(addr, 'nak', true);
  const maxBytes = server.options.limits.maxMessageBytes;
  const stats = newStats();
  const socket = await bindUdp(addr);
  const bound = socket.address();
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  const label = `legacy-json://${shownHost}:${bound.port}`;
  const senders = new Map<string, JsonSender>();
  let chain: Promise<void> = Promise.resolve();
  let queued = 0;
  let closed = false;

  const reply = (text: string, port: number, address: string) => {
    if (!closed) socket.send(text, port, address, () => {});
  };
  const refuse = (reason: string, err: FramewireError, text: string, port: number, address: string) => {
    countDrop(stats, reason);
    server.warn(err);
    if (nak) reply(text, port, address);
  };

  socket.on('message', (msg, rinfo) => {
    if (closed) return;
    const from = hostPort(rinfo.address, rinfo.port);
    if (msg.length > maxBytes) {
      const e = new FramewireError(
        'ERR_MESSAGE_TOO_LARGE',
        `${label}: message of ${msg.length} bytes from ${from} exceeds maxMessageBytes ${maxBytes}`,
      );
      refuse('too-large', e, MESSAGE_BAD, rinfo.port, rinfo.address);
      return;
    }
    let text: string;
    let json: unknown;
    try {
      text = utf8.decode(msg);
      json = JSON.parse(text);
    } catch (err) {
      const preview = JSON.stringify(msg.subarray(0, 60).toString('latin1'));
      const e = new FramewireError(
        'ERR_BAD_JSON',
        `${label}: datagram of ${msg.length} bytes from ${from} is not JSON (${(err as Error).message}): ${preview}`,
        { cause: err },
      );
      refuse('bad-json', e, MESSAGE_BAD, rinfo.port, rinfo.address);
      return;
    }
    if (queued >= MAX_QUEUED) {
      const e = new FramewireError(
        'ERR_FRAME_DROPPED',
        `${label}: message from ${from} dropped: ${MAX_QUEUED} messages wait to be stored`,
      );
      refuse('queue-full', e, MESSAGE_LOST, rinfo.port, rinfo.address);
      return;
    }
    let s = senders.get(from);
    if (s) senders.delete(from);
    else {
      s = { epoch: `legacy-${randomBytes(6).toString('hex')}`, seq: 0 };
      if (senders.size >= MAX_SENDERS) senders.delete(senders.keys().next().value as string);
    }
    senders.set(from, s);
    const m: ReceivedMessage = {
      sender: from,
      epoch: s.epoch,
      seq: s.seq++,
      receivedUs: wallUs(),
      ref: undefined,
      json,
      text,
    };
    queued++;
    chain = chain
      .then(() => server.deliverMessage(m))
      .then(
        () => {
          stats.delivered++;
          stats.bytes += msg.length;
          reply(MESSAGE_REPLY, rinfo.port, rinfo.address);
        },
        (err: unknown) => {
          const e = toFramewireError(err, 'ERR_WRITE_FAILED', `${label}: storing a message from ${from}`);
          refuse('store-failed', e, MESSAGE_LOST, rinfo.port, rinfo.address);
        },
      )
      .finally(() => {
        queued--;
      });
  });
  socket.on('error', (err) => {
    server.warn(toFramewireError(err, 'ERR_PROTOCOL', `${label}: socket error`));
  });

  const listener: LegacyListener = {
    scheme: 'legacy-json',
    url: label,
    host: bound.address,
    port: bound.port,
    stats,
    close: async () => {
      if (closed) return;
      // Messages under way are still stored; their answers are not sent (the socket is gone).
      closed = true;
      await new Promise<void>((resolve) => socket.close(() => resolve()));
      await chain;
      forgetEndpoint(server, listener);
    },
  };
  rememberEndpoint(server, listener);
  return listener;
}
