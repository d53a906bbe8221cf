/**
 * A property over the numeric options of every command: any value outside an option's range, or not a number
 * at all, is a usage error (exit code 2, `framewire: ERR_BAD_OPTION: …` naming the option), never a stack
 * trace and never a started command. In-process through run(argv), so hundreds of cases take a second or two.
 * The ranges below are written out here (docs/cli.md lists the same), not read from src/cli/values.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { run } from '../../src/cli/run.js';
import { parseByteSize } from '../../src/sizes.js';
import { capture } from '../helpers/cli.js';

type Kind = 'int' | 'number' | 'size' | 'duration-us' | 'duration-ms' | 'wxh' | 'port';
interface Spec {
  flag: string;
  kind: Kind;
  min: number;
  max: number;
  /** The smallest value is excluded. */
  aboveMin?: boolean;
  argv: (arg: string) => string[];
}

const send =
  (to: string, input = '/nonexistent/fw-frames') =>
  (arg: string) => ['send', input, '--to', to, arg];
const SPECS: Spec[] = [
  { flag: '--mtu', kind: 'int', min: 256, max: 65507, argv: send('udp://127.0.0.1:9') },
  { flag: '--rate', kind: 'size', min: 1, max: 2 ** 40, argv: send('udp://127.0.0.1:9') },
  { flag: '--latency', kind: 'int', min: 1, max: 60000, argv: send('udp://127.0.0.1:9') },
  { flag: '--window-frames', kind: 'int', min: 1, max: 65536, argv: send('tcp://127.0.0.1:9') },
  { flag: '--window-bytes', kind: 'size', min: 1024, max: 16 * 2 ** 30, argv: send('tcp://127.0.0.1:9') },
  { flag: '--retry-for', kind: 'number', min: 0, aboveMin: true, max: 1e6, argv: send('tcp://127.0.0.1:9') },
  { flag: '--fps', kind: 'number', min: 0, aboveMin: true, max: 1000, argv: send('tcp://127.0.0.1:9') },
  { flag: '--quality', kind: 'int', min: 1, max: 100, argv: send('tcp://127.0.0.1:9', 'testsrc') },
  { flag: '--size', kind: 'wxh', min: 1, max: 16384, argv: send('tcp://127.0.0.1:9', 'testsrc') },
  {
    flag: '--retry-for',
    kind: 'number',
    min: 0,
    aboveMin: true,
    max: 1e6,
    argv: (a) => ['msg', '--to', 'tcp://127.0.0.1:9', a, '[1]'],
  },
  { flag: '--max-frame-bytes', kind: 'size', min: 1, max: 0xffffffff, argv: (a) => ['serve', a] },
  { flag: '--max-meta-bytes', kind: 'size', min: 0, max: 0xffff, argv: (a) => ['serve', a] },
  { flag: '--max-message-bytes', kind: 'size', min: 2, max: 0xffffffff, argv: (a) => ['serve', a] },
  {
    flag: '--mtu',
    kind: 'int',
    min: 256,
    max: 65507,
    argv: (a) => ['serve', '--listen', 'udp://127.0.0.1:0', a],
  },
  { flag: '--tolerance', kind: 'duration-us', min: 0, max: 60e6, argv: (a) => ['serve', '--sync', 'a,b', a] },
  { flag: '--max-wait', kind: 'duration-us', min: 0, max: 600e6, argv: (a) => ['serve', '--sync', 'a,b', a] },
  { flag: '--fps', kind: 'number', min: 0, aboveMin: true, max: 1000, argv: (a) => ['demo', a] },
  { flag: '--quality', kind: 'int', min: 1, max: 100, argv: (a) => ['demo', a] },
  { flag: '--size', kind: 'wxh', min: 1, max: 16384, argv: (a) => ['demo', a] },
  {
    flag: '--ack-wait',
    kind: 'duration-ms',
    min: 0,
    aboveMin: true,
    max: 7 * 86_400_000,
    argv: (a) => ['consume', 'nats://127.0.0.1:9', a],
  },
  { flag: '--view', kind: 'port', min: 0, max: 65535, argv: (a) => ['serve', a] },
  { flag: '--foxglove', kind: 'port', min: 0, max: 65535, argv: (a) => ['consume', 'nats://127.0.0.1:9', a] },
  { flag: '--view', kind: 'port', min: 0, max: 65535, argv: (a) => ['demo', a] },
];

function inRange(s: Spec, n: number): boolean {
  return Number.isFinite(n) && (s.aboveMin ? n > s.min : n >= s.min) && n <= s.max;
}

/** Whether `v` might be a valid value of `s`: generous, so that only surely bad values are tested. */
function mayBeValid(s: Spec, v: string): boolean {
  const t = v.trim();
  switch (s.kind) {
    case 'int':
    case 'number': {
      const n = Number(t);
      return t !== '' && inRange(s, n) && (s.kind === 'number' || Number.isInteger(n));
    }
    case 'size':
      try {
        return inRange(s, parseByteSize(v, 'x'));
      } catch {
        return false;
      }
    case 'duration-us':
    case 'duration-ms': {
      const m = /^(\d+(?:\.\d+)?)\s*([a-zµ]*)$/i.exec(t);
      if (!m) return false;
      const unit = { '': 1, us: 1e-3, µs: 1e-3, ms: 1, s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7 }[
        m[2]!.toLowerCase()
      ];
      if (unit === undefined) return false;
      return inRange(s, Number(m[1]) * unit * (s.kind === 'duration-us' ? 1000 : 1));
    }
    case 'port': {
      // HOST:PORT, or a bare PORT (on 127.0.0.1).
      const m = /(?:^|:)(\d+)$/.exec(t);
      return !!m && inRange(s, Number(m[1]));
    }
    case 'wxh': {
      const m = /^(\d+)x(\d+)$/.exec(t);
      return !!m && inRange(s, Number(m[1])) && inRange(s, Number(m[2]));
    }
  }
}

/** Values outside the range, or not numbers: both written plainly and with units. */
function badValues(s: Spec): fc.Arbitrary<string> {
  const below =
    s.min > -1e15 ? fc.integer({ min: -1e9, max: Math.ceil(s.min) - (s.aboveMin ? 0 : 1) }) : fc.constant(-1);
  const above = fc.double({ min: s.max + 1, max: s.max * 1e6 + 1e9, noNaN: true });
  const numeric = fc.oneof(
    below.map(String),
    above.map((n) => String(Math.round(n))),
    fc.double({ noNaN: false }).map(String),
    fc.integer({ min: -1e6, max: 1e6 }).map((n) => `${n}.5`),
  );
  const garbage = fc.oneof(
    fc.string(),
    fc.constantFrom('', ' ', 'NaN', 'Infinity', '-Infinity', '1e3', '0x10', '-0', '+5', '1,5', '½', '١٢'),
    fc
      .tuple(fc.integer({ min: 1, max: 999 }), fc.constantFrom('parsecs', 'kg', 'x', 'MB/h'))
      .map(([n, u]) => `${n}${u}`),
  );
  const sized =
    s.kind === 'size'
      ? fc.oneof(
          fc.integer({ min: 5, max: 999 }).map((n) => `${n}TiB`),
          below.map((n) => `${n}B`),
        )
      : s.kind === 'wxh'
        ? fc.oneof(
            fc
              .tuple(fc.integer({ min: -5, max: 20_000 }), fc.integer({ min: 16385, max: 99_999 }))
              .map(([w, h]) => `${w}x${h}`),
            fc.constantFrom('0x0', '10x', 'x10', '640X480', '640x480x3', '-1x5'),
          )
        : s.kind === 'port'
          ? fc.oneof(
              fc.integer({ min: 65536, max: 1e9 }).map((n) => `127.0.0.1:${n}`),
              fc.integer({ min: 1, max: 1e6 }).map((n) => `127.0.0.1:-${n}`),
              fc.integer({ min: 0, max: 65535 }).map((n) => `localhost:${n}.5`),
              fc.constantFrom('127.0.0.1', '127.0.0.1:', '127.0.0.1:http'),
            )
          : fc.constantFrom('-1ms', '99999h', '1 fortnight');
  return fc.oneof(numeric, garbage, sized).filter((v) => !mayBeValid(s, v));
}

test('every numeric option: a value out of range or not a number is a usage error, never a stack trace', async () => {
  for (const s of SPECS) {
    await fc.assert(
      fc.asyncProperty(badValues(s), async (v) => {
        const io = capture();
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), 5000);
        const argv = s.argv(`${s.flag}=${v}`);
        const rc = await run(argv, { ...io, signal: ac.signal });
        clearTimeout(timer);
        const err = io.err();
        assert.equal(rc, 2, `${JSON.stringify(argv)} → ${rc}: ${err}`);
        assert.ok(err.startsWith('framewire: ERR_BAD_OPTION: '), err);
        assert.ok(err.includes(s.flag), err);
        assert.doesNotMatch(err, /\n\s+at |unexpected error/);
      }),
      { numRuns: 40 },
    );
  }
});
