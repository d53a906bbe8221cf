/**
 * The NATS client packages, loaded on first use rather than when framewire is imported.
 *
 * Why: a receiver that never touches the bus should not carry the client in its heap. Loading the three
 * packages adds about 3 MB of live heap, and a receiver whose live heap sits near 10 MB falls into V8's
 * back-to-back incremental marking under the steady stream of frame buffers (docs/benchmarks.md, "The
 * receiver's heap"): the null-sink row ran at about half speed with them loaded. Everything here is loaded
 * by {@link loadNats}, which every entry point of the bus (connectBus) awaits first; the synchronous
 * accessor {@link nats} is for code that runs only once a connection exists.
 */
import type * as Jetstream from '@nats-io/jetstream';
import type * as Obj from '@nats-io/obj';
import type * as Core from '@nats-io/transport-node';

export interface NatsModules {
  core: typeof Core;
  jetstream: typeof Jetstream;
  obj: typeof Obj;
}

let loaded: NatsModules | undefined;
let loading: Promise<NatsModules> | undefined;

/** Loads the NATS client packages once; later calls return the same modules. */
export function loadNats(): Promise<NatsModules> {
  if (loaded) return Promise.resolve(loaded);
  loading ??= Promise.all([
    import('@nats-io/transport-node'),
    import('@nats-io/jetstream'),
    import('@nats-io/obj'),
  ]).then(([core, jetstream, obj]) => {
    loaded = { core, jetstream, obj };
    return loaded;
  });
  return loading;
}

/** The loaded NATS client packages; throws when {@link loadNats} has not finished (a bug of the caller). */
export function nats(): NatsModules {
  if (!loaded) throw new Error('framewire: the NATS client is used before loadNats() finished');
  return loaded;
}

/** The loaded packages, or undefined before the first load (error classification before any connection). */
export function natsIfLoaded(): NatsModules | undefined {
  return loaded;
}
