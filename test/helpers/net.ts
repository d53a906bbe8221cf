/** Network helpers for tests: everything on 127.0.0.1. */
import net from 'node:net';
import { MessageType } from '../../src/protocol/constants.js';
import { Decoder } from '../../src/protocol/decoder.js';
import type { Message } from '../../src/protocol/messages.js';

/** Ports handed out by freePort(): below Linux's ephemeral range (32768-60999), see there. */
const LOW = 20_000;
const HIGH = 32_767;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a process that must be told its port on the command
 * line (or that is killed and started again on the same port). Prefer port 0 where the code under test can
 * report its port and is not restarted.
 *
 * The port lies below the ephemeral range on purpose: while no one listens on a port of that range, a client
 * that keeps reconnecting to it (a sender waiting for its restarted receiver) can be given that very port as
 * its own source port and connect to itself (a TCP self-connect), and the restarted receiver then cannot
 * bind its port.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port in ${LOW}..${HIGH} after 200 tries`);
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
