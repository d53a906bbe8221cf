/**
 * `server.sync(streams, options)`: the groups of frames taken at the same moment, as an async iterator
 * (docs/sync.md). It listens to the server's 'frame' events, so it sees frames once every sink stored them.
 */
import type { EventEmitter } from 'node:events';
import { FrameSync, type SyncGroup, type SyncOptions } from '../sync/frames.js';
import { wallUs } from '../time.js';
import type { ReceivedFrame } from '../types.js';

export interface SyncIteratorOptions extends SyncOptions {
  /** Ends the iteration (after the groups already decided). */
  signal?: AbortSignal;
  /** How often waiting frames are looked at again (ms, default 20). */
  tickMs?: number;
}

interface FrameSource {
  on(event: 'frame', fn: (f: ReceivedFrame) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
  off(event: 'frame', fn: (f: ReceivedFrame) => void): unknown;
  off(event: 'close', fn: () => void): unknown;
}

/** Groups of `streams` from `source`'s frames; ends when the source closes or the signal aborts. */
export function syncGroups(
  source: FrameSource | EventEmitter,
  streams: readonly string[],
  options: SyncIteratorOptions = {},
): AsyncIterableIterator<SyncGroup> & { sync: FrameSync } {
  const src = source as FrameSource;
  const sync = new FrameSync(streams, options);
  const ready: SyncGroup[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  const take = (events: ReturnType<FrameSync['push']>) => {
    for (const e of events) if (e.type === 'group') ready.push(e.group);
    if (ready.length > 0 || done) {
      wake?.();
      wake = undefined;
    }
  };
  const onFrame = (f: ReceivedFrame) => take(sync.push(f, wallUs()));
  const end = () => {
    if (done) return;
    take(sync.flush());
    done = true;
    cleanup();
    wake?.();
    wake = undefined;
  };
  const timer = setInterval(() => take(sync.advance(wallUs())), options.tickMs ?? 20);
  timer.unref();
  const cleanup = () => {
    clearInterval(timer);
    src.off('frame', onFrame);
    src.off('close', end);
    options.signal?.removeEventListener('abort', end);
  };
  src.on('frame', onFrame);
  src.on('close', end);
  if (options.signal?.aborted) end();
  else options.signal?.addEventListener('abort', end);
  const it = {
    sync,
    async next(): Promise<IteratorResult<SyncGroup>> {
      for (;;) {
        const g = ready.shift();
        if (g) return { value: g, done: false };
        if (done) return { value: undefined, done: true };
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    },
    async return(): Promise<IteratorResult<SyncGroup>> {
      done = true;
      ready.length = 0;
      cleanup();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
