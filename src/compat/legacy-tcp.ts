/**
 * `legacy-tcp://` — the seed's TCP folder protocol: a `FORMAT|FOLDER` session header, then named frames
 * with `ok` answers (src/compat/tcp-decoder.ts has the byte sequence and the rules for its quirks). The
 * format becomes the stream's kind, the folder its name; frames go through server.deliverFrame, so every
 * sink gets them and names are checked. See docs/compat.md.
 *
 * Query options of the listen URL: `?idleok=MS` — when a payload stops short of the seed client's piece
 * boundaries for this long, answer `ok` anyway (a client that cuts its payload differently waits for one;
 * default 250).
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { FramewireError, toFramewireError } from '../errors.js';
import { checkFileName, checkStreamName, contentTypeOf } from '../names.js';
import { STREAM_KINDS, type StreamKind } from '../protocol/constants.js';
import { crc32 } from '../protocol/crc.js';
import type { ConnectionInfo, FramewireServer } from '../session/server.js';
import { wallUs } from '../time.js';
import { listenServer } from '../transports/tcp.js';
import type { ReceivedFrame, StreamInfo } from '../types.js';
import {
  announceConnection,
  announceDisconnect,
  announceStream,
  countDrop,
  countNote,
  forgetEndpoint,
  hostPort,
  inStreamOrder,
  type LegacyListener,
  type LegacyStats,
  legacyAddress,
  legacyEpoch,
  newStats,
  numberParam,
  rememberEndpoint,
  TCP_OK,
} from './common.js';
import { LegacyTcpDecoder, type TcpDecoderEvent } from './tcp-decoder.js';

const DEFAULT_IDLE_OK_MS = 250;
const OK = Buffer.from(TCP_OK);

/** The stream kind a seed format names ("visible", "infrared", "ir", …); others are kind "other". */
export function kindOfFormat(format: string): StreamKind | undefined {
  const f = format.trim().toLowerCase();
  if (f === 'ir') return 'infrared';
  return STREAM_KINDS.includes(f as StreamKind) ? (f as StreamKind) : undefined;
}

export async function startLegacyTcp(url: URL, server: FramewireServer): Promise<LegacyListener> {
  const addr = legacyAddress(url, ['legacy-tcp']);
  const idleOkMs = numberParam(addr, 'idleok', DEFAULT_IDLE_OK_MS, { min: 1, max: 60_000 });
  const stats = newStats();
  const sessions = new Set<LegacyTcpSession>();
  // The bound URL (with the real port) once listening; connections only come after that.
  let label = addr.text;
  const netServer = net.createServer((socket) => {
    // The seed protocol has no way to say why: a connection over the server's limits is closed at once.
    const o = server.options;
    const from = socket.remoteAddress ?? '?';
    let fromAddress = 0;
    for (const x of sessions) if (x.address === from) fromAddress++;
    if (sessions.size >= o.maxConnections || fromAddress >= o.maxConnectionsPerAddress) {
      const which = sessions.size >= o.maxConnections ? 'maxConnections' : 'maxConnectionsPerAddress';
      server.warn(
        new FramewireError(
          'ERR_TOO_MANY_CONNECTIONS',
          `${label}: refused a connection from ${from}: ${which} (${o[which]}) reached`,
        ),
      );
      socket.destroy();
      return;
    }
    const s = new LegacyTcpSession(server, socket, stats, idleOkMs, label);
    sessions.add(s);
    socket.once('close', () => sessions.delete(s));
  });
  const shown = addr.host.includes(':') ? `[${addr.host}]` : addr.host;
  // listenServer defaults a missing port to 7070; the seed's port is passed explicitly.
  const base = await listenServer(netServer, new URL(`legacy-tcp://${shown}:${addr.port}`), 'legacy-tcp');
  label = base.url;
  const listener: LegacyListener = {
    scheme: 'legacy-tcp',
    url: base.url,
    host: base.host,
    port: base.port,
    stats,
    close: async () => {
      // Frames being stored finish first; then every connection is closed.
      await Promise.allSettled([...sessions].map((s) => s.idle()));
      await base.close();
      forgetEndpoint(server, listener);
    },
  };
  rememberEndpoint(server, listener);
  return listener;
}

/** One connection of a seed-protocol client. */
class LegacyTcpSession {
  readonly #server: FramewireServer;
  readonly #socket: net.Socket;
  readonly #stats: LegacyStats;
  readonly #label: string;
  readonly #idleOkMs: number;
  readonly #decoder: LegacyTcpDecoder;
  readonly #remote: string;
  /** The peer's IP address, for the per-address connection limit. */
  readonly address: string;
  readonly #info: ConnectionInfo;
  readonly #epoch = legacyEpoch();
  #stream: StreamInfo | undefined;
  #meta: unknown;
  #seq = 0;
  #queue: TcpDecoderEvent[] = [];
  #running: Promise<void> | undefined;
  #idleOk: NodeJS.Timeout | undefined;
  #handshake: NodeJS.Timeout | undefined;
  #error: FramewireError | undefined;
  #connected = false;
  /** Set on "over" or a fatal error: nothing more is read or answered. */
  #ended = false;
  /** The client finished sending. */
  #eof = false;

  constructor(
    server: FramewireServer,
    socket: net.Socket,
    stats: LegacyStats,
    idleOkMs: number,
    label: string,
  ) {
    this.#server = server;
    this.#socket = socket;
    this.#stats = stats;
    this.#label = label;
    this.#idleOkMs = idleOkMs;
    this.address = socket.remoteAddress ?? '?';
    this.#remote = hostPort(this.address, socket.remotePort ?? 0);
    this.#info = { id: randomBytes(6).toString('hex'), remote: this.#remote, client: 'legacy-tcp' };
    this.#decoder = new LegacyTcpDecoder({
      maxFrameBytes: server.options.limits.maxFrameBytes,
      checkFolder: (folder) => refusal(() => checkStreamName(folder)),
      checkName: (name) => refusal(() => checkFileName(name, this.#stream?.name)),
    });
    // Our `ok`s go out at once; with Nagle they could wait for the client's delayed ACK.
    socket.setNoDelay(true);
    socket.setTimeout(server.options.idleTimeoutMs);
    socket.on('timeout', () => {
      if (this.#running) return;
      this.#fail(
        new FramewireError(
          'ERR_PEER_TIMEOUT',
          `${this.#where()}: nothing received for ${server.options.idleTimeoutMs} ms`,
        ),
      );
    });
    this.#handshake = setTimeout(() => {
      if (this.#stream || this.#ended) return;
      countNote(this.#stats, 'bad-session-header');
      this.#fail(
        new FramewireError(
          'ERR_HANDSHAKE_TIMEOUT',
          `${this.#where()}: no session header (FORMAT|FOLDER) within ${server.options.handshakeTimeoutMs} ms`,
        ),
      );
    }, server.options.handshakeTimeoutMs);
    this.#handshake.unref();
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('end', () => this.#onEnd());
    socket.on('error', (err) => {
      this.#error ??= toFramewireError(err, 'ERR_CLOSED', `${this.#where()}: connection error`);
    });
    socket.on('close', () => this.#onClose());
  }

  /** Resolves when the frames received so far are stored. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  #where(): string {
    return `${this.#label} from ${this.#remote}${this.#stream ? ` (stream "${this.#stream.name}")` : ''}`;
  }

  #onData(chunk: Buffer): void {
    if (this.#ended) return;
    const events = this.#decoder.push(chunk);
    if (events.length > 0) {
      this.#queue.push(...events);
      if (!this.#running) this.#running = this.#run();
    }
    this.#armIdleOk();
  }

  /** Answers a payload that stopped short of the seed client's piece boundaries (see the decoder). */
  #armIdleOk(): void {
    if (this.#idleOk) clearTimeout(this.#idleOk);
    this.#idleOk = undefined;
    if (!this.#decoder.owesReply) return;
    this.#idleOk = setTimeout(() => {
      this.#idleOk = undefined;
      if (this.#running || this.#ended || !this.#decoder.owesReply) return;
      this.#decoder.noteReply();
      countNote(this.#stats, 'idle-ok');
      this.#socket.write(OK);
    }, this.#idleOkMs);
    this.#idleOk.unref();
  }

  async #run(): Promise<void> {
    try {
      for (let ev = this.#queue.shift(); ev; ev = this.#queue.shift()) {
        if (this.#ended) break;
        await this.#handle(ev);
      }
    } catch (err) {
      this.#fail(toFramewireError(err, 'ERR_PROTOCOL', `${this.#where()}: unexpected failure`));
    } finally {
      this.#running = undefined;
      if (!this.#ended && !this.#eof && this.#socket.isPaused()) this.#socket.resume();
      this.#armIdleOk();
    }
  }

  async #handle(ev: TcpDecoderEvent): Promise<void> {
    switch (ev.type) {
      case 'session': {
        if (this.#handshake) clearTimeout(this.#handshake);
        const kind = kindOfFormat(ev.format);
        this.#meta = kind ? undefined : { legacyFormat: ev.format };
        this.#stream = {
          name: ev.folder,
          kind: kind ?? 'other',
          mode: 'reliable',
          epoch: this.#epoch,
          sender: this.#remote,
        };
        this.#connected = true;
        announceConnection(this.#server, this.#info);
        announceStream(this.#server, this.#stream, 0);
        return;
      }
      case 'reply':
        this.#socket.write(OK);
        return;
      case 'frame':
        await this.#frame(ev);
        return;
      case 'over':
        this.#ended = true;
        this.#socket.end();
        return;
      case 'fatal':
        if (ev.reason === 'bad-session-header') countNote(this.#stats, 'bad-session-header');
        else countDrop(this.#stats, ev.reason);
        this.#fail(
          new FramewireError(ev.error.code, `${this.#where()}: ${ev.error.detail}; closing the connection`, {
            ...(ev.error.hint ? { hint: ev.error.hint } : {}),
            ...(this.#stream ? { stream: this.#stream.name } : {}),
          }),
        );
        return;
    }
  }

  async #frame(ev: Extract<TcpDecoderEvent, { type: 'frame' }>): Promise<void> {
    const stream = this.#stream!;
    const seq = this.#seq++;
    if (ev.refused) {
      countDrop(this.#stats, 'unsafe-name');
      this.#server.emit(
        'frame-error',
        new FramewireError(ev.refused.code, `${this.#where()}: ${ev.refused.detail}`, {
          stream: stream.name,
          seq,
          ...(ev.refused.hint ? { hint: ev.refused.hint } : {}),
        }),
      );
    } else {
      // Reading waits while the frame is stored; the seed client waits for the last `ok` anyway.
      this.#socket.pause();
      const receivedUs = wallUs();
      const frame: ReceivedFrame = {
        stream,
        seq,
        captureUs: receivedUs,
        receivedUs,
        contentType: contentTypeOf(ev.name),
        pixelFormat: 'none',
        width: 0,
        height: 0,
        name: ev.name,
        meta: this.#meta,
        data: ev.data,
        crc: crc32(ev.data),
      };
      try {
        await inStreamOrder(this.#server, stream.name, () => this.#server.deliverFrame(frame));
        this.#stats.delivered++;
        this.#stats.bytes += ev.data.length;
      } catch (err) {
        const e = toFramewireError(err, 'ERR_WRITE_FAILED', `${this.#where()}: storing frame "${ev.name}"`);
        if (e.code === 'ERR_UNSAFE_NAME') {
          countDrop(this.#stats, 'unsafe-name');
          this.#server.emit('frame-error', e);
        } else {
          // Not stored: the client must not get its `ok`. Closing is the only "no" the protocol has.
          countDrop(this.#stats, 'store-failed');
          this.#fail(e);
          return;
        }
      }
    }
    if (ev.finalReply && !this.#ended) this.#socket.write(OK);
  }

  #onEnd(): void {
    if (this.#ended) return;
    this.#eof = true;
    const cut = this.#decoder.endState();
    if (cut && this.#decoder.current) countDrop(this.#stats, 'truncated');
    if (cut) {
      this.#error ??= new FramewireError('ERR_TRUNCATED', `${this.#where()}: ${cut}`);
      if (this.#decoder.current) {
        this.#server.emit(
          'frame-error',
          new FramewireError('ERR_TRUNCATED', `${this.#where()}: ${cut}`, {
            ...(this.#stream ? { stream: this.#stream.name } : {}),
          }),
        );
      }
    }
    // What was received is still stored; then our side closes too.
    void this.idle().then(() => this.#socket.end());
  }

  #fail(err: FramewireError): void {
    if (this.#ended && this.#error) return;
    this.#ended = true;
    this.#error ??= err;
    this.#server.warn(err);
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 2000).unref();
  }

  #onClose(): void {
    this.#ended = true;
    if (this.#idleOk) clearTimeout(this.#idleOk);
    if (this.#handshake) clearTimeout(this.#handshake);
    if (!this.#connected) return;
    const err = this.#error;
    announceDisconnect(this.#server, this.#info, err);
  }
}

function refusal(check: () => unknown): FramewireError | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    return toFramewireError(err, 'ERR_UNSAFE_NAME', 'name check');
  }
}
