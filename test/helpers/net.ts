/** Network helpers for tests: everything on 127.0.0.1. */
import net from 'node:net';
import { MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import type { Message } from '../../src/protocol/messages.js';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released), for a process that
 * must be told its port on the command line. Prefer port 0 where the code under test can report its port.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Writes `chunk`; when the socket wants a drain, waits for it (or for the socket to close). */
export async function writeOrWait(sock: net.Socket, chunk: Buffer): Promise<void> {
  if (sock.write(chunk)) return;
  await new Promise<void>((r) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      r();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

/**
 * A raw TCP peer of a framewire receiver on 127.0.0.1:`port`, which writes whatever bytes a test gives it:
 * the messages the receiver answered (decoded; bytes that do not decode are ignored), whether the receiver
 * closed it, and the code of the ERROR it was sent, if any.
 */
export async function rawPeer(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  const got: Message[] = [];
  const dec = new Decoder((m) => got.push(m));
  let closed = false;
  sock.on('data', (d) => {
    try {
      dec.write(d);
    } catch {
      // A test asserts on what decoded; the rest counts as nothing.
    }
  });
  sock.on('error', () => {});
  sock.on('close', () => {
    closed = true;
  });
  const errorCode = () => {
    const e = got.find((m) => m.type === MessageType.ERROR);
    return e?.type === MessageType.ERROR ? String(e.body.code) : undefined;
  };
  return { sock, got, isClosed: () => closed, errorCode };
}
