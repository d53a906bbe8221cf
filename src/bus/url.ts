/**
 * The bus URL: `nats://[user:pass@|token@]host[:port][,host:port…][?option=value&…]`, or `tls://…` for TLS
 * to the bus. Query options name the JetStream stream framewire publishes to and the limits it is created
 * with when missing. Pure parsing; no sockets.
 */
import { FramewireError } from '../errors.js';
import { parseByteSize } from '../sizes.js';
import { redact } from '../urls.js';

export { redact };

/** What a bus URL says, ready for the NATS client and the stream configuration. */
export interface BusConfig {
  /** host:port of each server (the client fails over between them). */
  servers: string[];
  /** The URL without credentials, for logs. */
  display: string;
  user?: string;
  pass?: string;
  token?: string;
  /** tls:// scheme or ?tls=1: TLS to the bus is required. */
  tls: boolean;
  /** JetStream stream name (?stream=, default FRAMEWIRE). */
  stream: string;
  /** Subject prefix (?prefix=, default framewire): frames on PREFIX.<stream>, messages on PREFIX._messages. */
  prefix: string;
  /** Object store bucket for frames above max_payload (?bucket=, default <stream>_frames). */
  bucket: string;
  /** Stream replicas when created (?replicas=, 1..5, default 1). */
  replicas: number;
  /** Stream max age in ms when created (?max-age=24h; 0: unlimited). */
  maxAgeMs: number;
  /** Stream max bytes when created (?max-bytes=10GiB; 0: unlimited). */
  maxBytes: number;
  /** The publish deduplication window in ms (?duplicate-window=2m, default 2 minutes). */
  duplicateWindowMs: number;
}

/** The query options a bus URL accepts. */
export const BUS_URL_PARAMS = [
  'stream',
  'prefix',
  'bucket',
  'replicas',
  'max-age',
  'max-bytes',
  'duplicate-window',
  'tls',
] as const;

const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function bad(url: string, why: string): FramewireError {
  return new FramewireError('ERR_BAD_URL', `bus URL ${JSON.stringify(redact(url))}: ${why}`, {
    hint: 'write nats://[user:pass@]host:4222[,host2:4222][?replicas=3&max-age=24h&max-bytes=10GiB]',
  });
}

/** Parses a duration such as `24h`, `30m`, `90s`, `500ms`, `7d` (a bare number is seconds) into ms. */
export function parseDuration(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) {
    throw new FramewireError('ERR_BAD_OPTION', `${what} "${text}" is not a duration`, {
      hint: 'write a number with a unit: 500ms, 90s, 30m, 24h, 7d',
    });
  }
  return Math.round(Number(m[1]) * (TIME_UNITS[(m[2] ?? 's').toLowerCase()] ?? 1000));
}

/** Parses a bus URL. Throws ERR_BAD_URL (shape, unknown option) or ERR_BAD_OPTION (a bad value). */
export function parseBusUrl(url: string): BusConfig {
  const m = /^([a-z]+):\/\/(?:([^@/?#]*)@)?([^/?#]+)\/?(?:\?([^#]*))?$/i.exec(url.trim());
  if (!m) throw bad(url, 'not of the form nats://host:port');
  const scheme = m[1]!.toLowerCase();
  if (scheme !== 'nats' && scheme !== 'tls') {
    throw new FramewireError('ERR_UNSUPPORTED_SCHEME', `bus URL scheme "${scheme}:" is not nats: or tls:`, {
      hint: 'write nats://host:4222 (or tls://host:4222 for TLS to the bus)',
    });
  }
  const servers: string[] = [];
  for (const part of m[3]!.split(',')) {
    const hp = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/i.exec(part.trim());
    const port = hp?.[2] === undefined ? 4222 : Number(hp[2]);
    if (!hp || port < 1 || port > 65535) throw bad(url, `"${part}" is not host[:port]`);
    servers.push(`${hp[1]}:${port}`);
  }
  const cfg: BusConfig = {
    servers,
    display: '',
    tls: scheme === 'tls',
    stream: 'FRAMEWIRE',
    prefix: 'framewire',
    bucket: '',
    replicas: 1,
    maxAgeMs: 0,
    maxBytes: 0,
    duplicateWindowMs: 120_000,
  };
  const cred = m[2];
  if (cred !== undefined && cred !== '') {
    const i = cred.indexOf(':');
    if (i === -1) cfg.token = decodeURIComponent(cred);
    else {
      cfg.user = decodeURIComponent(cred.slice(0, i));
      cfg.pass = decodeURIComponent(cred.slice(i + 1));
    }
  }
  const params = new URLSearchParams(m[4] ?? '');
  for (const [k, v] of params) {
    switch (k) {
      case 'stream':
      case 'bucket':
        if (!/^[A-Za-z0-9_-]{1,64}$/.test(v))
          throw bad(url, `${k} "${v}" may hold only letters, digits, _ and -`);
        cfg[k] = v;
        break;
      case 'prefix':
        if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(v) || v.length > 64)
          throw bad(url, `prefix "${v}" is not a subject prefix (tokens of letters, digits, _ and -)`);
        cfg.prefix = v;
        break;
      case 'replicas': {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > 5) throw bad(url, `replicas "${v}" is not 1 to 5`);
        cfg.replicas = n;
        break;
      }
      case 'max-age':
        cfg.maxAgeMs = parseDuration(v, 'max-age');
        break;
      case 'max-bytes':
        cfg.maxBytes = parseByteSize(v, 'max-bytes');
        break;
      case 'duplicate-window':
        cfg.duplicateWindowMs = parseDuration(v, 'duplicate-window');
        break;
      case 'tls':
        cfg.tls = v === '' || v === '1' || v === 'true';
        break;
      default:
        throw bad(url, `unknown option "${k}" (known: ${BUS_URL_PARAMS.join(', ')})`);
    }
  }
  if (cfg.bucket === '') cfg.bucket = `${cfg.stream}_frames`;
  cfg.display = `${scheme}://${servers.join(',')}`;
  return cfg;
}

/**
 * The subject token for a framewire stream name. Names are already safe as file names; what a subject
 * cannot hold (white space, `*`, `>`, an empty token from `..`, `%` itself, non-ASCII) is percent-encoded.
 */
export function subjectToken(name: string): string {
  let out = '';
  for (const ch of name) {
    if (/^[A-Za-z0-9_\-.~!#$&'()+,;=@[\]^`{}]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out.replace(/\.(?=\.)/g, '%2E');
}
