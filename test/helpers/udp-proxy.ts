/**
 * A UDP relay for tests that impairs what it forwards: seeded random loss, duplication, reordering,
 * delay/jitter and byte corruption, each set per direction ("up": client → target, "down": target →
 * client) and changeable while it runs. Every client address gets its own upstream socket, as a NAT would.
 * The PRNG is seeded so that a failure reproduces: pass the seed printed by `describe()` as FW_UDP_SEED.
 */
import dgram from 'node:dgram';

export interface Impairment {
  /** Probability that a datagram is dropped. */
  loss?: number;
  /** Probability that a datagram is sent twice (the copy 0..2 ms later). */
  duplicate?: number;
  /** Probability that a datagram is held back `reorderMs` so that later ones overtake it. */
  reorder?: number;
  reorderMs?: number;
  /** Fixed delay plus a uniform random 0..jitterMs (ms); both 0 forward at once. */
  delayMs?: number;
  jitterMs?: number;
  /** Probability that 1..3 bytes of a datagram are changed. */
  corrupt?: number;
}

export interface DirectionStats {
  received: number;
  forwarded: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
}

export interface UdpProxy {
  port: number;
  readonly seed: number;
  up: Impairment;
  down: Impairment;
  readonly stats: { up: DirectionStats; down: DirectionStats };
  /** Sends what arrives from now on to another target port (e.g. a restarted receiver). */
  retarget(port: number): void;
  /** Called with every datagram that arrives, before any impairment: to see what is on the wire. */
  tap: ((dir: 'up' | 'down', buf: Buffer) => void) | undefined;
  /**
   * Sends one datagram unimpaired as if it came from the latest client (up, to the target) or from the
   * target (down, to that client): to replay or forge datagrams. Does nothing before a client was seen.
   */
  inject(dir: 'up' | 'down', buf: Buffer): void;
  /** One line with the seed and what happened, for failure messages. */
  describe(): string;
  close(): Promise<void>;
}

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function emptyStats(): DirectionStats {
  return { received: 0, forwarded: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };
}

export async function startUdpProxy(options: {
  target: number;
  seed?: number;
  up?: Impairment;
  down?: Impairment;
}): Promise<UdpProxy> {
  const seed = options.seed ?? (Number(process.env.FW_UDP_SEED) || Math.floor(Math.random() * 2 ** 31));
  const random = prng(seed);
  let target = options.target;
  const stats = { up: emptyStats(), down: emptyStats() };
  const timers = new Set<NodeJS.Timeout>();
  const front = dgram.createSocket('udp4');
  const uplinks = new Map<string, dgram.Socket>();
  let latest: { sock: dgram.Socket; port: number; address: string } | undefined;
  let closed = false;

  const proxy: UdpProxy = {
    port: 0,
    seed,
    up: options.up ?? {},
    down: options.down ?? {},
    stats,
    retarget(port: number) {
      target = port;
    },
    tap: undefined,
    inject(dir: 'up' | 'down', buf: Buffer) {
      if (closed || !latest) return;
      if (dir === 'up') latest.sock.send(buf, target, '127.0.0.1', () => {});
      else front.send(buf, latest.port, latest.address, () => {});
    },
    describe() {
      const f = (s: DirectionStats) =>
        `${s.received} in, ${s.dropped} lost, ${s.duplicated} duplicated, ${s.reordered} reordered, ${s.corrupted} corrupted`;
      return `udp proxy seed ${seed} (rerun with FW_UDP_SEED=${seed}); up: ${f(stats.up)}; down: ${f(stats.down)}`;
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all(
        [front, ...uplinks.values()].map((s) => new Promise<void>((r) => s.close(() => r()))),
      );
      uplinks.clear();
    },
  };

  /** Applies the direction's impairments to one datagram, then calls `out` (zero, one or two times). */
  const impair = (imp: Impairment, s: DirectionStats, buf: Buffer, out: (b: Buffer) => void) => {
    s.received++;
    if (imp.loss && random() < imp.loss) {
      s.dropped++;
      return;
    }
    let data = buf;
    if (imp.corrupt && random() < imp.corrupt) {
      data = Buffer.from(buf);
      const n = 1 + Math.floor(random() * 3);
      for (let i = 0; i < n; i++) {
        const at = Math.floor(random() * data.length);
        data[at] = data[at]! ^ (1 + Math.floor(random() * 255));
      }
      s.corrupted++;
    }
    let delay = (imp.delayMs ?? 0) + (imp.jitterMs ? random() * imp.jitterMs : 0);
    if (imp.reorder && random() < imp.reorder) {
      delay += imp.reorderMs ?? 3;
      s.reordered++;
    }
    const later = (ms: number, b: Buffer) => {
      if (ms <= 0) {
        s.forwarded++;
        out(b);
        return;
      }
      const t = setTimeout(() => {
        timers.delete(t);
        if (closed) return;
        s.forwarded++;
        out(b);
      }, ms);
      timers.add(t);
    };
    later(delay, data);
    if (imp.duplicate && random() < imp.duplicate) {
      s.duplicated++;
      later(delay + random() * 2, data);
    }
  };

  front.on('message', (buf, rinfo) => {
    if (closed) return;
    const key = `${rinfo.address}:${rinfo.port}`;
    let up = uplinks.get(key);
    if (!up) {
      const sock = dgram.createSocket('udp4');
      sock.on('error', () => {});
      sock.on('message', (reply) => {
        if (closed) return;
        proxy.tap?.('down', reply);
        impair(proxy.down, stats.down, reply, (b) => front.send(b, rinfo.port, rinfo.address, () => {}));
      });
      sock.bind(0, '127.0.0.1');
      uplinks.set(key, sock);
      up = sock;
    }
    const u = up;
    latest = { sock: u, port: rinfo.port, address: rinfo.address };
    proxy.tap?.('up', buf);
    impair(proxy.up, stats.up, buf, (b) => u.send(b, target, '127.0.0.1', () => {}));
  });
  front.on('error', () => {});
  await new Promise<void>((r) => front.bind(0, '127.0.0.1', () => r()));
  proxy.port = front.address().port;
  return proxy;
}
