// Shared by the legacy clients: the connected UDP socket that waits for a server's answers (DatagramPeer),
// the no-answer error, the stats type and the resolved-options type.
import dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { FramewireError, toFramewireError } from '../errors.js';
import { monoMs } from '../time.js';
import { describeSocketError } from '../transports/tcp.js';
import type { LegacyAddress } from './common.js';

// ---- datagrams ------------------------------------------------------------------------------------------

/** A UDP socket connected to one server: sends datagrams, queues the server's answers. */
export class DatagramPeer {
  readonly #socket: dgram.Socket;
  readonly #target: string;
  readonly #replies: Buffer[] = [];
  #wake: (() => void) | undefined;
  /** The last socket error (ECONNREFUSED: nothing listens at the port). */
  lastError: NodeJS.ErrnoException | undefined;

  private constructor(socket: dgram.Socket, target: string) {
    this.#socket = socket;
    this.#target = target;
    socket.on('message', (m) => {
      // Bounded: a server that floods answers cannot grow the queue.
      if (this.#replies.length < 64) this.#replies.push(m);
      this.#wake?.();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastError = err;
      this.#wake?.();
    });
  }

  static async open(a: LegacyAddress): Promise<DatagramPeer> {
    let address: string;
    let family: number;
    try {
      ({ address, family } = await lookup(a.host));
    } catch (err) {
      throw describeSocketError(err as NodeJS.ErrnoException, a.text);
    }
    const socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err: NodeJS.ErrnoException) => reject(describeSocketError(err, a.text)));
      // Connected: only the server's datagrams arrive, and the OS reports an unreachable port.
      socket.connect(a.port, address, () => {
        socket.removeAllListeners('error');
        resolve();
      });
    });
    return new DatagramPeer(socket, a.text);
  }

  /** Forgets answers that arrived late for an earlier send. */
  flush(): void {
    this.#replies.length = 0;
    this.lastError = undefined;
  }

  send(buf: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.send(buf, (err) => {
        if (!err) return resolve();
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ECONNREFUSED') {
          // An earlier datagram met a closed port; this one may well arrive (the server may be back).
          this.lastError = e;
          return resolve();
        }
        if (e.code === 'EMSGSIZE') {
          return reject(
            new FramewireError(
              'ERR_PICTURE_TOO_LARGE',
              `${this.#target}: the OS refuses a datagram of ${buf.length} bytes (EMSGSIZE)`,
              {
                hint: 'macOS sends at most 9216 bytes per datagram by default: sysctl -w net.inet.udp.maxdgram=65535, or use the chunked form',
                cause: e,
              },
            ),
          );
        }
        reject(toFramewireError(e, 'ERR_UNREACHABLE', `${this.#target}: cannot send`));
      });
    });
  }

  /** The next answer, or undefined after `timeoutMs` (or when `signal` aborts). */
  async nextReply(timeoutMs: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const deadline = monoMs() + timeoutMs;
    for (;;) {
      const r = this.#replies.shift();
      if (r) return r;
      const left = deadline - monoMs();
      if (left <= 0 || signal?.aborted) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        this.#wake = done;
        signal?.addEventListener('abort', done, { once: true });
      });
      this.#wake = undefined;
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

export function noAnswer(
  peer: DatagramPeer,
  target: string,
  attempts: number,
  timeoutMs: number,
  what: string,
): FramewireError {
  if (peer.lastError?.code === 'ECONNREFUSED') {
    return new FramewireError(
      'ERR_UNREACHABLE',
      `nothing is listening at ${target} (port unreachable) after ${attempts} attempts`,
      {
        hint: 'start the receiver first, or check the host and port',
      },
    );
  }
  return new FramewireError(
    'ERR_REPLY_TIMEOUT',
    `${target} did not answer ${what} (${attempts} attempts, ${timeoutMs} ms each)`,
    {
      hint: 'check that the receiver runs and that the port is the picture (or message) port; raise ?timeout=MS for a slow receiver',
    },
  );
}

export interface LegacyClientStats {
  /** Pictures, frames or messages the server confirmed. */
  sent: number;
  bytes: number;
  /** Sends repeated after a timeout or a negative answer. */
  resends: number;
  /** Reconnections (TCP). */
  reconnects: number;
}

/** Options with every default filled in. */
export type Resolved<T extends { signal?: AbortSignal }> = Required<Omit<T, 'signal'>> & {
  signal: AbortSignal | undefined;
};

export function newClientStats(): LegacyClientStats {
  return { sent: 0, bytes: 0, resends: 0, reconnects: 0 };
}
