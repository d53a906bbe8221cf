/**
 * What the ImageZMQ endpoint and sender share: URL parsing (`izmq://HOST:PORT`, port 5555 by default) and
 * the ZeroMQ binding (the npm package `zeromq`, loaded on first use so that a platform without its prebuilt
 * binary loses ImageZMQ only, not framewire).
 */
import { FramewireError } from '../../errors.js';
import { endpointAddress } from '../common.js';
import { IZMQ_DEFAULT_PORT } from './format.js';

export const IZMQ_SCHEMES = ['izmq', 'izmq+sub', 'izmq+pub'] as const;
export type IzmqScheme = (typeof IZMQ_SCHEMES)[number];

export type Zmq = typeof import('zeromq');
let loading: Promise<Zmq> | undefined;

/** The `zeromq` module; ERR_UNSUPPORTED_SCHEME when it cannot be loaded here. */
export function loadZmq(): Promise<Zmq> {
  loading ??= import('zeromq').catch((err: unknown) => {
    loading = undefined;
    throw new FramewireError(
      'ERR_UNSUPPORTED_SCHEME',
      `ImageZMQ needs the npm package zeromq, which did not load: ${(err as Error).message}`,
      { hint: 'reinstall with npm ci on a platform that zeromq ships a prebuilt binary for', cause: err },
    );
  });
  return loading;
}

/** A parsed ImageZMQ URL. */
export interface IzmqAddress {
  scheme: IzmqScheme;
  host: string;
  port: number;
  params: URLSearchParams;
  /** The ZeroMQ endpoint, `tcp://HOST:PORT` (`*` for port 0 when binding). */
  zmqEndpoint: string;
  /** `scheme://host:port`, for messages. */
  text: string;
}

export function izmqSchemeOf(to: string): IzmqScheme | undefined {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(to.trim());
  const s = m?.[1]?.toLowerCase();
  return (IZMQ_SCHEMES as readonly string[]).includes(s ?? '') ? (s as IzmqScheme) : undefined;
}

export function izmqAddress(url: string | URL, allowed: readonly IzmqScheme[]): IzmqAddress {
  const { scheme, host, port, params, shownHost, text } = endpointAddress(
    url,
    allowed,
    () => IZMQ_DEFAULT_PORT,
  );
  return { scheme, host, port, params, zmqEndpoint: `tcp://${shownHost}:${port === 0 ? '*' : port}`, text };
}

/** Reads a numeric query option (`?timeout=500`); ERR_BAD_OPTION when it is not a number in range. */
export function izmqNumber(
  a: IzmqAddress,
  name: string,
  fallback: number,
  range: { min: number; max: number },
): number {
  const raw = a.params.get(name);
  if (raw === null) return fallback;
  const n = Number(raw);
  if (raw === '' || !Number.isInteger(n) || n < range.min || n > range.max) {
    throw new FramewireError(
      'ERR_BAD_OPTION',
      `${a.text}: ?${name}=${raw} must be a whole number from ${range.min} to ${range.max}`,
    );
  }
  return n;
}

/** The port of a bound ZeroMQ endpoint (`tcp://127.0.0.1:41234`). */
export function portOfEndpoint(endpoint: string | null, fallback: number): number {
  const m = /:(\d+)$/.exec(endpoint ?? '');
  return m ? Number(m[1]) : fallback;
}

/** Wraps a bind/connect failure as ERR_LISTEN_FAILED or ERR_BAD_URL. */
export function bindError(err: unknown, a: IzmqAddress): FramewireError {
  const e = err as NodeJS.ErrnoException;
  return new FramewireError('ERR_LISTEN_FAILED', `cannot bind ${a.text}: ${e.code ?? e.message}`, {
    hint: e.code === 'EADDRINUSE' ? 'another program uses this port; pick another' : undefined,
    cause: err,
  });
}
