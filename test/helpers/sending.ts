/** Sending in the background while a test breaks things: a running count of acknowledged frames. */
import type { ClientStats, ClientStream, Frame, FramewireClient } from '../../src/index.js';

/**
 * Sends every frame of `frames` on `stream`, then closes `client`. `acked()` counts the frames the receiver
 * acknowledged so far (for waitFor); `done` resolves to the client's stats (it is also caught, so an early
 * failure is not an unhandled rejection before the test awaits it).
 */
export function sendAll(
  client: FramewireClient,
  stream: ClientStream,
  frames: AsyncIterable<Frame> | Iterable<Frame>,
): { acked: () => number; done: Promise<ClientStats> } {
  let acked = 0;
  client.on('ack', (a) => {
    acked += a.frames;
  });
  const done = (async () => {
    for await (const f of frames) await stream.send(f);
    return client.close();
  })();
  done.catch(() => {});
  return { acked: () => acked, done };
}
