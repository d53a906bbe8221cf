/**
 * Fuzzing the seed programs' formats (src/compat/): the UDP picture assembler and the TCP folder-protocol
 * decoder as pure functions, then the three legacy endpoints over real sockets.
 * - UDP pictures: lost datagrams (and junk between pictures) never yield a picture that was not sent; any
 *   damage (duplicates, reordering, cuts, flipped bits, junk anywhere) never yields one that does not start
 *   and end like a picture, walk as one, and have exactly the length a header announced (or be one whole
 *   datagram); the memory reserved for pictures in progress is always given back.
 * - TCP folder protocol: any bytes in any reads never throw; every frame kept has a safe file name and
 *   the stream a safe folder name; a seed client's byte sequence yields exactly its files.
 * - Endpoints: random and damaged datagrams and byte streams, with names like `../x` and `/abs`, never
 *   throw uncaught, never write outside the output folder, and well-behaved legacy clients (pictures over
 *   UDP, frames over TCP, JSON messages) are served afterwards.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { lstat, readdir } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import { LegacyTcpClient, LegacyUdpClient, sendLegacyJson } from '../../src/compat/index.js';
import { checkPicture } from '../../src/compat/picture.js';
import { LegacyTcpDecoder, type TcpDecoderEvent } from '../../src/compat/tcp-decoder.js';
import { type AssemblyEvent, PictureAssembler, readLegacyHeader } from '../../src/compat/udp-assembler.js';
import { FramewireError } from '../../src/errors.js';
import { createServer, FolderSink, type FramewireServer, type ReceivedFrame } from '../../src/index.js';
import { checkFileName, checkStreamName, MAX_FILE_NAME_BYTES, unsafeReason } from '../../src/names.js';
import { fakeJpeg } from '../compat/peers.js';
import { tempDir } from '../helpers/tmp.js';
import {
  applyNet,
  bytes,
  fractionsArb,
  legacyDatagrams,
  legacyFormArb,
  legacyHeader,
  mutate,
  mutationArb,
  netOpsArb,
  SAFE_NAMES,
  splitAtFractions,
  UNSAFE_NAMES,
} from './arbitraries.js';
import { check, checkAsync, delay, runs, UncaughtTrap, within } from './harness.js';

// ---- pictures -------------------------------------------------------------------------------------------

/** A PNG of exactly `size` bytes (≥ 57): signature, IHDR, a filler chunk, IEND, every CRC right. */
function fakePng(size: number, seed: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const ihdr = chunk('IHDR', Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]));
  const iend = chunk('IEND', Buffer.alloc(0));
  const filler = Buffer.alloc(size - sig.length - ihdr.length - iend.length - 12);
  for (let i = 0; i < filler.length; i++) filler[i] = (i * 13 + seed * 101) & 0xff;
  return Buffer.concat([sig, ihdr, chunk('tEXt', filler), iend]);
}

const pictureArb = fc
  .record({
    png: fc.boolean(),
    size: fc.oneof(
      fc.integer({ min: 60, max: 1100 }),
      fc.integer({ min: 60, max: 5000 }),
      fc.constantFrom(1024, 2048, 1023, 1025),
    ),
    seed: fc.nat(1_000_000),
    form: legacyFormArb,
  })
  .map((p) => ({ ...p, data: p.png ? fakePng(p.size, p.seed) : fakeJpeg(p.size, p.seed) }));

/** Feeds datagrams to a fresh assembler with a reservation budget; returns what it emitted, in order. */
function assemble(datagrams: readonly Buffer[], maxPending: number) {
  let reserved = 0;
  let maxReserved = 0;
  const asm = new PictureAssembler({
    maxPictureBytes: 6000,
    reserve: (n) => {
      if (reserved + n > maxPending) return false;
      reserved += n;
      maxReserved = Math.max(maxReserved, reserved);
      return true;
    },
    release: (n) => {
      reserved -= n;
      assert.ok(reserved >= 0, 'released more than was reserved');
    },
  });
  const events: AssemblyEvent[] = [];
  for (const d of datagrams) events.push(...asm.push(d));
  events.push(...asm.expire());
  assert.ok(asm.idle, 'idle after expire()');
  assert.equal(reserved, 0, 'every reservation is given back once the assembler is idle');
  assert.ok(maxReserved <= maxPending);
  return events;
}

/** What any emitted picture must be, whatever the network did. */
function checkEmitted(ev: Extract<AssemblyEvent, { type: 'picture' }>, fed: readonly Buffer[]): void {
  const d = ev.data;
  const check = checkPicture(d);
  assert.ok(check.ok, `an emitted picture does not walk as one: ${check.ok ? '' : check.why}`);
  if (check.contentType === 'image/jpeg') {
    assert.ok(d[0] === 0xff && d[1] === 0xd8 && d[d.length - 2] === 0xff && d[d.length - 1] === 0xd9);
  }
  if (ev.form === 'single') {
    assert.ok(
      fed.some((f) => f.equals(d)),
      'a single-form picture is one whole datagram that was received',
    );
  } else {
    const announced = fed.filter((f) => f.length === 4 || f.length === 8).map((f) => readLegacyHeader(f));
    assert.ok(
      announced.includes(d.length),
      `a chunked picture of ${d.length} bytes that no header announced`,
    );
  }
}

describe('legacy UDP picture assembler fuzz', () => {
  it('loses pictures, never mixes them, when datagrams are lost (and junk comes between pictures)', () => {
    check(
      'legacy udp loss',
      fc.property(
        fc.array(pictureArb, { minLength: 1, maxLength: 6 }),
        netOpsArb(['drop'], 8),
        fc.array(fc.option(bytes(1100), { freq: 4, nil: undefined }), { maxLength: 6 }),
        (pictures, ops, junk) => {
          const wire: Buffer[] = [];
          pictures.forEach((p, i) => {
            wire.push(...legacyDatagrams(p.data, p.form));
            const j = junk[i];
            // Junk between pictures: anything that cannot end a picture in progress (that would be damage).
            if (j !== undefined && j.length !== 0 && j.length !== 4 && j.length !== 8) wire.push(j);
          });
          const fed = applyNet(wire, ops);
          const events = assemble(fed, 1 << 20);
          const got = events.filter((e) => e.type === 'picture');
          let from = 0;
          for (const ev of got) {
            checkEmitted(ev, fed);
            const i = pictures.findIndex((p, k) => k >= from && p.data.equals(ev.data));
            assert.ok(
              i >= 0,
              `a picture of ${ev.data.length} bytes was emitted that was not sent (or out of order)`,
            );
            from = i + 1;
          }
          if (ops.length === 0) assert.equal(got.length, pictures.length, 'nothing lost: every picture');
        },
      ),
      runs(200),
    );
  });

  it('emits only whole pictures of an announced length, whatever the damage, and gives its memory back', () => {
    check(
      'legacy udp damage',
      fc.property(
        fc.array(pictureArb, { minLength: 1, maxLength: 5 }),
        netOpsArb(['drop', 'dup', 'swap', 'trunc', 'corrupt', 'junk'], 16),
        fc.array(
          fc.record({
            at: fc.nat(),
            n: fc.integer({ min: -5, max: 1 << 30 }),
            size: fc.constantFrom(4 as const, 8 as const),
          }),
          { maxLength: 3 },
        ),
        fc.integer({ min: 0, max: 20_000 }),
        (pictures, ops, headers, maxPending) => {
          const wire = pictures.flatMap((p) => legacyDatagrams(p.data, p.form));
          // Headers of any size, also negative or far beyond the limit.
          for (const h of headers) wire.splice(h.at % (wire.length + 1), 0, legacyHeader(h.n, h.size));
          const fed = applyNet(wire, ops);
          for (const ev of assemble(fed, maxPending)) {
            if (ev.type === 'picture') checkEmitted(ev, fed);
            if (ev.type === 'drop') assert.ok(ev.detail.length > 0);
          }
        },
      ),
      runs(300),
    );
  });
});

// ---- TCP folder protocol --------------------------------------------------------------------------------

/** Why a frame may not be stored under `name` (also the receiver's own file names), or undefined. */
function fileNameRefusal(name: string): string | undefined {
  try {
    checkFileName(name);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const TCP_MAX = 4096;

function decode(chunks: readonly Buffer[]): TcpDecoderEvent[] {
  const refusal = (check: () => unknown) => {
    try {
      check();
      return undefined;
    } catch (err) {
      return err as FramewireError;
    }
  };
  const dec = new LegacyTcpDecoder({
    maxFrameBytes: TCP_MAX,
    checkFolder: (f) => refusal(() => checkStreamName(f)),
    checkName: (n) => refusal(() => checkFileName(n)),
  });
  const out: TcpDecoderEvent[] = [];
  for (const c of chunks) out.push(...dec.push(c));
  dec.endState();
  return out;
}

function checkTcpEvents(events: readonly TcpDecoderEvent[]): void {
  for (const ev of events) {
    if (ev.type === 'session') {
      assert.equal(
        unsafeReason(ev.folder, 128),
        undefined,
        `a session for folder ${JSON.stringify(ev.folder)}`,
      );
    }
    if (ev.type === 'frame') {
      assert.ok(ev.data.length <= TCP_MAX);
      if (ev.refused === undefined) {
        assert.equal(
          fileNameRefusal(ev.name),
          undefined,
          `a frame kept under the name ${JSON.stringify(ev.name)}`,
        );
      } else {
        assert.equal(ev.data.length, 0, 'a refused frame keeps no data');
      }
    }
    if (ev.type === 'fatal') assert.ok(ev.error instanceof FramewireError);
  }
}

/**
 * Names a seed client can send: the protocol has no delimiter, so the receiver ends a name at the first
 * control byte, and a name holding one cannot arrive whole (a damaged stream, for the second property).
 */
const tcpNameArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('0.jpg', 'a.png', 'f 1.jpg', 'é.raw') },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...UNSAFE_NAMES.filter((n) => n !== '' && ![...n].some((c) => c < ' '))),
  },
);
const tcpFolderArb = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...SAFE_NAMES) },
  { weight: 2, arbitrary: fc.constantFrom(...UNSAFE_NAMES.filter((n) => !n.includes('|'))) },
);
const tcpFileArb = fc.record({
  name: tcpNameArb,
  data: fc.oneof(bytes(40), bytes(3000)).filter((d) => d.length !== 1),
  glueContinue: fc.boolean(),
  pieces: fractionsArb,
});

/** The bytes a seed client sends, one text per read (as it waits for `ok` after each), payload in pieces. */
type TcpFile = { name: string; data: Buffer; glueContinue: boolean; pieces: number[] };

function seedTcpReads(format: string, folder: string, files: readonly TcpFile[]): Buffer[] {
  const reads: Buffer[] = [Buffer.from(`${format}|${folder}`)];
  files.forEach((f, i) => {
    const header = Buffer.from(`${f.data.length}|${f.name}`);
    const last = reads[reads.length - 1]!;
    // "continue" and the next header may arrive in one read.
    if (i > 0 && f.glueContinue) reads[reads.length - 1] = Buffer.concat([last, header]);
    else reads.push(header);
    reads.push(...splitAtFractions(f.data, f.pieces).filter((p) => p.length > 0));
    reads.push(Buffer.from(i === files.length - 1 ? 'over' : 'continue'));
  });
  return reads;
}

describe('legacy TCP folder-protocol decoder fuzz', () => {
  it('yields exactly the files of a seed client, refusing unsafe names', () => {
    check(
      'legacy tcp seed client',
      fc.property(
        fc.constantFrom('visible', 'ir', 'whatever'),
        tcpFolderArb,
        fc.array(tcpFileArb, { minLength: 1, maxLength: 5 }),
        (format, folder, files) => {
          const events = decode(seedTcpReads(format, folder, files));
          checkTcpEvents(events);
          if (unsafeReason(folder, 128) !== undefined) {
            assert.ok(
              events.length === 1 && events[0]!.type === 'fatal',
              'an unsafe folder ends the session',
            );
            return;
          }
          const frames = events.filter((e) => e.type === 'frame');
          assert.equal(frames.length, files.length);
          frames.forEach((fr, i) => {
            const f = files[i]!;
            assert.equal(fr.name, f.name);
            if (fileNameRefusal(f.name) === undefined) {
              assert.equal(fr.refused, undefined);
              assert.ok(fr.data.equals(f.data), `frame ${i} differs from the file sent`);
            } else {
              assert.ok(fr.refused, `frame ${JSON.stringify(f.name)} is refused`);
            }
          });
          assert.equal(events[events.length - 1]!.type, 'over');
        },
      ),
      runs(200),
    );
  });

  it('never throws on random or damaged byte streams in any reads, and keeps only safe names', () => {
    check(
      'legacy tcp damage',
      fc.property(
        fc.oneof(
          bytes(200).map((b) => [b]),
          fc
            .tuple(
              tcpFolderArb,
              fc.array(tcpFileArb, { minLength: 1, maxLength: 3 }),
              fc.array(mutationArb, { maxLength: 4 }),
            )
            .map(([folder, files, muts]) => [
              mutate(Buffer.concat(seedTcpReads('visible', folder, files)), muts),
            ]),
        ),
        fractionsArb,
        ([input], cuts) => {
          checkTcpEvents(decode(splitAtFractions(input!, cuts)));
        },
      ),
      runs(300),
    );
  });
});

// ---- the endpoints over real sockets --------------------------------------------------------------------

/** Every path under `root`: only `out/`, stream folders with safe names, files with safe names. */
async function assertInside(root: string): Promise<void> {
  const top = await readdir(root);
  assert.deepEqual(top, ['out'], `something was written next to the output folder: ${top.join(', ')}`);
  const out = join(root, 'out');
  for (const e of await readdir(out)) {
    const st = await lstat(join(out, e));
    if (st.isFile()) {
      assert.ok(e === 'messages.jsonl' || e.startsWith('.fw-tmp-'), `unexpected file out/${e}`);
      continue;
    }
    assert.ok(st.isDirectory(), `out/${e} is neither a file nor a folder`);
    assert.equal(unsafeReason(e, 128), undefined, `a stream folder named ${JSON.stringify(e)}`);
    for (const f of await readdir(join(out, e))) {
      const fs = await lstat(join(out, e, f));
      assert.ok(fs.isFile(), `out/${e}/${f} is not a plain file`);
      if (f === 'index.jsonl' || f === 'latest.jpg' || f.startsWith('.fw-tmp-')) continue;
      assert.equal(unsafeReason(f, MAX_FILE_NAME_BYTES), undefined, `a file named ${JSON.stringify(f)}`);
    }
  }
}

const udpInputArb = fc.array(
  fc.oneof(
    pictureArb.map((p) => legacyDatagrams(p.data, p.form)),
    fc
      .tuple(pictureArb, fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
      .map(([p, muts]) => legacyDatagrams(p.data, p.form).map((d, i) => (i === 1 ? mutate(d, muts) : d))),
    fc.array(bytes(1200), { minLength: 1, maxLength: 3 }),
    fc.integer({ min: -3, max: 1 << 30 }).map((n) => [legacyHeader(n, 8)]),
  ),
  { maxLength: 4 },
);

const jsonInputArb = fc.array(
  fc.oneof(
    fc.json({ maxDepth: 2 }).map((t) => Buffer.from(t)),
    bytes(64),
    fc.constantFrom('{"a":', '\u00ff', '', 'null', '"x"').map((t) => Buffer.from(t, 'latin1')),
  ),
  { maxLength: 4 },
);

const tcpInputArb = fc.oneof(
  fc.tuple(
    fc.constantFrom('visible', 'ir', 'x'),
    tcpFolderArb,
    fc.array(tcpFileArb, { minLength: 1, maxLength: 3 }),
  ),
  fc.constant(undefined),
);

describe('legacy endpoints fuzz', () => {
  let server: FramewireServer;
  let root: string;
  let cleanup: () => Promise<void>;
  let ports: { udp: number; json: number; tcp: number };
  const trap = new UncaughtTrap();
  const stored: ReceivedFrame[] = [];

  before(async () => {
    trap.install();
    ({ dir: root, cleanup } = await tempDir('fw-fuzz-legacy-'));
    server = await createServer({
      listen: [
        'legacy-udp://127.0.0.1:0?timeout=100',
        'legacy-json://127.0.0.1:0',
        'legacy-tcp://127.0.0.1:0?idleok=20',
      ],
      sinks: [await FolderSink.open(join(root, 'out'))],
      handshakeTimeoutMs: 1000,
      idleTimeoutMs: 3000,
      limits: { maxFrameBytes: 6000 },
    });
    const port = (scheme: string) => Number(new URL(server.urls.find((u) => u.startsWith(scheme))!).port);
    ports = { udp: port('legacy-udp'), json: port('legacy-json'), tcp: port('legacy-tcp') };
    server.on('frame', (f) => stored.push(f));
    server.on('frame-error', (e) => {
      if (process.env.FUZZ_DEBUG) console.log('frame-error', e.message);
    });
  });
  after(async () => {
    await server?.close();
    await cleanup?.();
    trap.dispose();
  });

  /** A well-behaved seed client of each kind is served: a picture, 3 frames, a message. */
  async function assertServed(n: number): Promise<void> {
    const udp = await LegacyUdpClient.open(`legacy-udp://127.0.0.1:${ports.udp}`, { replyTimeoutMs: 2000 });
    try {
      await udp.send(fakeJpeg(3000 + (n % 1000), n));
    } finally {
      await udp.close();
    }
    const tcp = await LegacyTcpClient.open(`legacy-tcp://127.0.0.1:${ports.tcp}`, {
      folder: `health-${n}`,
      replyTimeoutMs: 3000,
      settleMs: 0,
      continueGapMs: 0,
    });
    try {
      for (let i = 0; i < 3; i++) await tcp.send({ name: `${i}.jpg`, data: fakeJpeg(200 + i, i) });
    } finally {
      await tcp.close();
    }
    await sendLegacyJson(`legacy-json://127.0.0.1:${ports.json}`, { health: n }, { replyTimeoutMs: 2000 });
  }

  it('survives random and damaged input on all three, writes only inside its folder, then serves seed clients', async () => {
    let run = 0;
    await checkAsync(
      'legacy endpoints',
      fc.asyncProperty(
        udpInputArb,
        jsonInputArb,
        tcpInputArb,
        fc.option(bytes(300)),
        async (udpIn, jsonIn, tcpIn, tcpRaw) => {
          const sock = dgram.createSocket('udp4');
          sock.on('error', () => {});
          await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
          const send = (d: Buffer, port: number) =>
            new Promise<void>((resolve) => sock.send(d, port, '127.0.0.1', () => resolve()));
          try {
            for (const group of udpIn) for (const d of group) await send(d, ports.udp);
            for (const d of jsonIn) await send(d, ports.json);
          } finally {
            sock.close();
          }
          const tcp = net.connect(ports.tcp, '127.0.0.1');
          tcp.on('error', () => {});
          tcp.resume();
          await new Promise((resolve) => {
            tcp.once('connect', resolve);
            tcp.once('close', resolve);
          });
          if (tcpIn) {
            for (const r of seedTcpReads(tcpIn[0], tcpIn[1], tcpIn[2])) {
              if (!tcp.writable) break;
              tcp.write(r);
              await delay(1);
            }
          }
          if (tcpRaw && tcp.writable) tcp.write(tcpRaw);
          tcp.end();
          await within(1000, () => tcp.destroyed || tcp.closed);
          tcp.destroy();
          await delay(5);
          trap.check('during the run');
          for (const f of stored.splice(0)) {
            if (f.stream.epoch === 'legacy-udp') {
              const c = checkPicture(f.data);
              assert.ok(
                c.ok,
                `legacy-udp stored something that is not a whole picture: ${c.ok ? '' : c.why}`,
              );
            }
            assert.equal(unsafeReason(f.stream.name, 128), undefined);
            if (f.name !== '') assert.equal(fileNameRefusal(f.name), undefined);
          }
          if (++run % 15 === 0) {
            await assertInside(root);
            await assertServed(run);
            trap.check('while serving seed clients');
          }
        },
      ),
      runs(25, 0.1),
    );
    await delay(150);
    await assertInside(root);
    await assertServed(10_000);
    trap.check('after the fuzz runs');
  });
});
