/**
 * Connecting to the bus: the NATS connection, the JetStream context, the stream created when missing, and
 * the translation of the client's errors into framewire's codes (ERR_BUS_UNREACHABLE, ERR_BUS_REFUSED).
 */
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { FramewireError } from '../errors.js';
import { loadNats, natsIfLoaded } from './nats.js';
import { type BusConfig, parseBusUrl } from './url.js';

/** TLS material for the bus (PEM text), beside the tls:// scheme. */
export interface BusTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Options shared by the JetStream sink and source. */
export interface BusConnectOptions {
  /** `nats://host:4222`, `tls://…`, with credentials and query options (docs/scale.md). */
  url: string;
  /** TLS material; giving any turns TLS on. */
  tls?: BusTls;
  /** The connection's name, shown by the server's monitoring. */
  name?: string;
  /** Told about reconnects and other connection events (one line of text each). */
  onStatus?: (text: string) => void;
  /** How long the first connection attempt may take, ms (default 5000). */
  connectTimeoutMs?: number;
  /**
   * How long opening waits for JetStream to answer about the stream or the group (a cluster electing a
   * leader answers with timeouts for a few seconds), ms (default 15000); then ERR_BUS_UNREACHABLE.
   */
  startRetryMs?: number;
}

/** Runs `fn` again while it fails with ERR_BUS_UNREACHABLE, for up to `forMs`. */
export async function retryUnreachable<T>(fn: () => Promise<T>, forMs: number): Promise<T> {
  const deadline = Date.now() + forMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof FramewireError) || err.code !== 'ERR_BUS_UNREACHABLE' || Date.now() >= deadline)
        throw err;
      await new Promise((r) => setTimeout(r, Math.min(250 * 2 ** attempt, 2000)));
    }
  }
}

export interface Bus {
  cfg: BusConfig;
  nc: NatsConnection;
  jsm: JetStreamManager;
  js: JetStreamClient;
}

const NANOS = 1_000_000;

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** True for the client's errors that say the bus refuses (no retry will help). */
export function isRefusal(err: unknown): boolean {
  if (err instanceof FramewireError) return err.code === 'ERR_BUS_REFUSED';
  // The client's own errors exist only once it is loaded; before that no error can come from it.
  const m = natsIfLoaded();
  if (
    m &&
    (err instanceof m.core.AuthorizationError ||
      err instanceof m.core.UserAuthenticationExpiredError ||
      err instanceof m.core.PermissionViolationError ||
      err instanceof m.core.InvalidArgumentError)
  )
    return true;
  // 503: JetStream temporarily without a leader (a restart, an election): worth retrying.
  if (m && err instanceof m.jetstream.JetStreamApiError) return err.status !== 503;
  // A certificate the client does not trust, or a server that does not speak TLS: a configuration fault.
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/.test(code)) return true;
  if (/certificate|self[- ]signed|tls|ssl/i.test(describe(err))) return true;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err && isRefusal(cause);
}

/** The client's error as a framewire error: ERR_BUS_REFUSED when the bus refuses, else ERR_BUS_UNREACHABLE. */
export function busError(err: unknown, cfg: BusConfig, what: string): FramewireError {
  if (err instanceof FramewireError) return err;
  if (isRefusal(err)) {
    return new FramewireError('ERR_BUS_REFUSED', `${what} on ${cfg.display}: ${describe(err)}`, {
      cause: err,
      hint: 'check the bus credentials and permissions, that JetStream is on (nats-server -js) and max_payload',
    });
  }
  return new FramewireError('ERR_BUS_UNREACHABLE', `${what} on ${cfg.display}: ${describe(err)}`, {
    cause: err,
    hint: 'check that nats-server runs and listens there (and that JetStream has a leader)',
  });
}

/** Connects to the bus and checks that JetStream answers. */
export async function connectBus(opts: BusConnectOptions): Promise<Bus> {
  const cfg = parseBusUrl(opts.url);
  const tls = cfg.tls || opts.tls !== undefined;
  const { core, jetstream } = await loadNats();
  let nc: NatsConnection;
  try {
    nc = await core.connect({
      servers: cfg.servers,
      ...(cfg.user !== undefined ? { user: cfg.user, pass: cfg.pass ?? '' } : {}),
      ...(cfg.token !== undefined ? { token: cfg.token } : {}),
      ...(tls
        ? {
            tls: {
              ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca.toString() } : {}),
              ...(opts.tls?.cert !== undefined ? { cert: opts.tls.cert.toString() } : {}),
              ...(opts.tls?.key !== undefined ? { key: opts.tls.key.toString() } : {}),
            },
          }
        : {}),
      name: opts.name ?? 'framewire',
      timeout: opts.connectTimeoutMs ?? 5000,
      // Keep trying for ever once connected: the sink holds frames back, the source waits.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      // Notice a dead server within seconds rather than the default 2 minutes.
      pingInterval: 5000,
      maxPingOut: 2,
    });
  } catch (err) {
    throw busError(err, cfg, 'cannot connect');
  }
  if (opts.onStatus) {
    const onStatus = opts.onStatus;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
          onStatus(`bus ${s.type}${'server' in s && s.server ? ` ${s.server}` : ''}`);
      }
    })().catch(() => {});
  }
  try {
    const jsm = await jetstream.jetstreamManager(nc, { timeout: 5000 });
    return { cfg, nc, jsm, js: jsm.jetstream() };
  } catch (err) {
    await nc.close().catch(() => {});
    const e = busError(err, cfg, 'JetStream does not answer');
    // No JetStream on the server is a refusal (a configuration fault), not a network fault.
    if (/jetstream.*not enabled|no responders/i.test(describe(err))) {
      throw new FramewireError('ERR_BUS_REFUSED', `JetStream is not enabled on ${cfg.display}`, {
        cause: err,
        hint: 'start nats-server with -js (or a jetstream {} block in its configuration)',
      });
    }
    throw e;
  }
}

/** Creates the JetStream stream when missing, with the URL's limits; checks an existing one's subjects. */
export async function ensureStream(bus: Bus): Promise<void> {
  const { cfg, jsm } = bus;
  const { JetStreamApiError, RetentionPolicy, StorageType } = (await loadNats()).jetstream;
  const subject = `${cfg.prefix}.>`;
  try {
    const info = await jsm.streams.info(cfg.stream).catch((err: unknown) => {
      if (err instanceof JetStreamApiError && err.status === 404) return undefined;
      throw err;
    });
    if (info) {
      if (!info.config.subjects?.includes(subject)) {
        throw new FramewireError(
          'ERR_BUS_REFUSED',
          `JetStream stream ${cfg.stream} exists on ${cfg.display} without subject ${subject} (it has ${JSON.stringify(info.config.subjects ?? [])})`,
          { hint: 'give another ?stream= or ?prefix=, or add the subject to the stream' },
        );
      }
      return;
    }
    await jsm.streams.add({
      name: cfg.stream,
      subjects: [subject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      num_replicas: cfg.replicas,
      max_age: cfg.maxAgeMs * NANOS,
      max_bytes: cfg.maxBytes === 0 ? -1 : cfg.maxBytes,
      duplicate_window: cfg.duplicateWindowMs * NANOS,
      // Keeps the newest frame of each stream at hand for a viewer that joins late.
      allow_direct: true,
    });
  } catch (err) {
    throw busError(err, cfg, `cannot create JetStream stream ${cfg.stream}`);
  }
}

/**
 * Drains the connection (flushes what is buffered, acknowledgements included) and closes it; closes it
 * outright when draining takes longer than `ms` (a bus that is down would keep a drain waiting).
 */
export async function closeBus(bus: Bus, ms = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => {
    timer = setTimeout(() => r('late'), ms);
  });
  const r = await Promise.race([bus.nc.drain().catch(() => 'failed' as const), late]);
  clearTimeout(timer);
  if (r === 'late' || r === 'failed') await bus.nc.close().catch(() => {});
}
