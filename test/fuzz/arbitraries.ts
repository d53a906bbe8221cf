/**
 * Shared fast-check arbitraries for the fuzz properties: byte mutations, session scripts for a raw protocol
 * client (valid-shaped messages with semantically wild fields, in any order, plus raw and mutated bytes),
 * lossy-network operations on datagram lists, and inputs of the seed programs' formats.
 *
 * The arbitraries describe inputs; the encoders here turn them into bytes. Everything is deterministic from
 * the fast-check seed (no Math.random), so a shrunk counterexample replays exactly.
 */
import { crc32 } from 'node:zlib';
import fc from 'fast-check';
import {
  CONTENT_TYPES,
  type ContentType,
  Flags,
  MAX_STREAM_ID,
  MESSAGE_CHANNEL,
  MessageType,
  STREAM_KINDS,
  STREAM_MODES,
} from '../../src/protocol/constants.js';
import {
  encodeAck,
  encodeControl,
  encodeFrame,
  encodeMessage,
  encodePing,
  toBytes,
} from '../../src/protocol/messages.js';

// ---- bytes and mutations --------------------------------------------------------------------------------

export const bytes = (maxLength: number, minLength = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));

export type Mutation = { op: 'flip' | 'set' | 'insert' | 'delete' | 'cut'; at: number; value: number };

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom('flip', 'set', 'insert', 'delete', 'cut'),
  // Taken modulo the length: spreads mutations over the whole input.
  at: fc.nat(),
  value: fc.integer({ min: 0, max: 255 }),
});

/** Applies mutations in order: flip a bit, overwrite, insert or delete a byte, or cut the tail off. */
export function mutate(input: Buffer, mutations: readonly Mutation[]): Buffer {
  let b = Buffer.from(input);
  for (const m of mutations) {
    const i = b.length === 0 ? 0 : m.at % (m.op === 'insert' ? b.length + 1 : b.length);
    if (m.op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([m.value]), b.subarray(i)]);
    else if (b.length === 0) continue;
    else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (m.op === 'cut') b = b.subarray(0, i);
    else if (m.op === 'flip') b[i] = b[i]! ^ (1 << (m.value & 7));
    else b[i] = m.value;
  }
  return b;
}

/** Cuts `buf` at fractions of its length (for writing one message in several pieces). */
export function splitAtFractions(buf: Buffer, fractions: readonly number[]): Buffer[] {
  const cuts = [...new Set(fractions.map((f) => Math.floor(f * buf.length)))]
    .filter((p) => p > 0 && p < buf.length)
    .sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of cuts) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}

export const fractionsArb = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 });

// ---- wild JSON values -----------------------------------------------------------------------------------

/** Any JSON value, small: what a careless or hostile peer puts where a field of another type belongs. */
export const wildArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-1, 1.5, 2 ** 53, 2 ** 60, 1e300, -0),
  fc.string({ maxLength: 8 }),
  fc.constant({}),
  fc.constant([]),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Mostly `good`, sometimes any wild value. */
function mostly<T>(good: fc.Arbitrary<T>, weight = 5): fc.Arbitrary<unknown> {
  return fc.oneof({ weight, arbitrary: good }, { weight: 1, arbitrary: wildArb });
}

// ---- names ----------------------------------------------------------------------------------------------

/** Stream and file names a receiver stores. Few, so that frames and declarations meet. */
export const SAFE_NAMES = ['cam0', 'ir', 'depth-1', 'a.b'] as const;
/** Names that could leave the output folder or misbehave on some file system: all must be refused. */
export const UNSAFE_NAMES = [
  '',
  '.',
  '..',
  '../x',
  '../../etc/passwd',
  '/abs',
  '/tmp/x.jpg',
  'a/b',
  'a\\b',
  'C:\\x',
  'c:x',
  '.hidden',
  'trail.',
  'trail ',
  'con',
  'NUL.txt',
  'com1.jpg',
  'a\u0000b',
  'a\u0001b',
  'a\nb',
  'a|b',
  'a*b',
  'x'.repeat(300),
  'é'.repeat(100),
  'index.jsonl',
  'latest.jpg',
] as const;

export const nameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...SAFE_NAMES) },
  { weight: 3, arbitrary: fc.constantFrom(...UNSAFE_NAMES) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

const EPOCHS = ['e1', 'e2', 'legacy-udp'] as const;
const epochArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...EPOCHS) },
  // A fresh epoch: the receiver has no resume point for it.
  { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 8 }) },
  { weight: 1, arbitrary: fc.constantFrom('', 'x'.repeat(64), 'x'.repeat(65)) },
  { weight: 1, arbitrary: wildArb },
);

/** Stream ids: mostly a few small ones (so that declarations collide and frames find their stream). */
const streamIdArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(MAX_STREAM_ID, MESSAGE_CHANNEL) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: MESSAGE_CHANNEL }) },
);

// ---- control bodies -------------------------------------------------------------------------------------

/** A change to one field of a JSON object: removed, or given a wild value. */
type FieldMutation = { key: string; wild: unknown } | { key: string; remove: true };

function fieldMutationsArb(keys: readonly string[], freq: number): fc.Arbitrary<FieldMutation[]> {
  const one: fc.Arbitrary<FieldMutation> = fc.oneof(
    fc.record({ key: fc.constantFrom(...keys), remove: fc.constant(true as const) }),
    fc.record({ key: fc.constantFrom(...keys), wild: wildArb }),
  );
  return fc.option(fc.array(one, { minLength: 1, maxLength: 2 }), { freq, nil: [] as FieldMutation[] });
}

function withMutatedFields<T extends Record<string, unknown>>(
  body: fc.Arbitrary<T>,
  keys: readonly string[],
  freq: number,
): fc.Arbitrary<Record<string, unknown>> {
  return fc.tuple(body, fieldMutationsArb(keys, freq)).map(([b, muts]) => {
    const out: Record<string, unknown> = { ...b };
    for (const m of muts) {
      if ('remove' in m) delete out[m.key];
      else out[m.key] = m.wild;
    }
    return out;
  });
}

const DECL_KEYS = ['id', 'name', 'kind', 'mode', 'epoch'] as const;

/** A stream declaration, sometimes with a field missing or of a wrong type, often with an unsafe name. */
export const declArb: fc.Arbitrary<Record<string, unknown>> = withMutatedFields(
  fc.record({
    id: streamIdArb,
    name: nameArb,
    kind: fc.constantFrom(...STREAM_KINDS),
    mode: fc.constantFrom(...STREAM_MODES),
    epoch: epochArb,
  }),
  DECL_KEYS,
  4,
);

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a).toString('hex'));

const HELLO_KEYS = ['protocol', 'client', 'epoch', 'streams', 'messageSeq', 'auth'] as const;

/**
 * HELLO bodies: mostly well-formed, with mutated fields (missing, wrong types, other protocol numbers,
 * odd message sequence numbers), sometimes with a huge array of streams.
 */
export const helloArb: fc.Arbitrary<Record<string, unknown>> = withMutatedFields(
  fc.record(
    {
      protocol: fc.oneof(
        { weight: 12, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.constantFrom(0, 2, 255, '1', 1.0000001, -1) },
      ),
      client: fc.string({ maxLength: 300 }),
      epoch: epochArb,
      streams: fc.oneof(
        { weight: 10, arbitrary: fc.array(declArb, { maxLength: 4 }) },
        // More streams than maxStreamsPerConnection, mostly valid and distinct, some repeated.
        {
          weight: 1,
          arbitrary: fc.integer({ min: 60, max: 300 }).map((n) =>
            Array.from({ length: n }, (_, i) => ({
              id: i % 97,
              name: `s${i % 89}`,
              kind: 'visible',
              mode: 'live',
              epoch: 'e1',
            })),
          ),
        },
      ),
      messageSeq: fc.oneof(
        { weight: 4, arbitrary: fc.nat(5) },
        { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 60, 1e300, -5, 1.5, 0.5) },
      ),
      auth: hex64.map((nonce) => ({ nonce })),
    },
    { requiredKeys: ['protocol', 'client', 'epoch', 'streams', 'auth'] },
  ),
  HELLO_KEYS,
  3,
);

/** AUTH bodies a sender might send: a proof of the right shape but wrong, or junk. */
export const authArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  { proof: fc.oneof(hex64, wildArb), nonce: fc.oneof(hex64, wildArb) },
  { requiredKeys: [] },
);

// ---- session scripts ------------------------------------------------------------------------------------

export interface FrameStep {
  kind: 'frame';
  streamId: number;
  seq: number;
  name: string;
  contentType: ContentType;
  metaJson: string | undefined;
  payload: Buffer;
  flags: number;
}

/** One step of a raw client's script. `mutations` (when any) damage the step's encoding. */
export type Step = (
  | { kind: 'hello'; body: Record<string, unknown> }
  | { kind: 'open'; body: unknown }
  | { kind: 'auth'; body: Record<string, unknown> }
  /** The right proof for the receiver's AUTH challenge (skipped when there was none). */
  | { kind: 'auth-correct' }
  | FrameStep
  | { kind: 'message'; seq: number; text: string; ref: { stream: string; seq: number } | undefined }
  | { kind: 'ack'; stream: number; seq: number }
  | { kind: 'ping' | 'pong'; time: number }
  | { kind: 'bye' | 'error' | 'welcome' | 'opened'; body: unknown }
  /** A control message whose body is valid JSON but not an object. */
  | { kind: 'control-not-object'; type: number; text: string }
  /** A header announcing a large body, then nothing more of that message. */
  | { kind: 'announce'; type: number; headLen: number; bodyLen: number }
  | { kind: 'raw'; data: Buffer }
  /** Waits up to `ms` for the receiver to answer something. */
  | { kind: 'wait'; ms: number }
) & {
  mutations?: Mutation[];
  /** Written in pieces cut at these fractions of its length. */
  split?: number[];
  /** Written in one write with the next step (so that the receiver reads both at once). */
  glue?: boolean;
};

const seqArb: fc.Arbitrary<number> = fc.oneof(
  { weight: 10, arbitrary: fc.nat(6) },
  { weight: 1, arbitrary: fc.nat(1000) },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER, 2 ** 32, 2 ** 53 - 2) },
);

export const frameStepArb: fc.Arbitrary<FrameStep> = fc.record({
  kind: fc.constant('frame' as const),
  streamId: streamIdArb,
  seq: seqArb,
  name: fc.oneof(
    { weight: 3, arbitrary: fc.constant('') },
    { weight: 3, arbitrary: fc.constantFrom('0.jpg', 'f.png', 'x') },
    { weight: 2, arbitrary: fc.constantFrom(...UNSAFE_NAMES.filter((n) => n !== '')) },
  ),
  contentType: fc.constantFrom(...CONTENT_TYPES),
  metaJson: fc.option(fc.json({ maxDepth: 1 }), { nil: undefined }),
  payload: bytes(48),
  flags: fc.constantFrom(0, 0, Flags.RETRANSMIT, 0xff),
});

const plainStepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 4, arbitrary: helloArb.map((body) => ({ kind: 'hello' as const, body })) },
  { weight: 3, arbitrary: mostly(declArb, 6).map((body) => ({ kind: 'open' as const, body })) },
  { weight: 1, arbitrary: authArb.map((body) => ({ kind: 'auth' as const, body })) },
  { weight: 2, arbitrary: fc.constant({ kind: 'auth-correct' as const }) },
  { weight: 8, arbitrary: frameStepArb },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('message' as const),
      seq: seqArb,
      text: fc.json({ maxDepth: 1 }),
      ref: fc.option(fc.record({ stream: fc.constantFrom(...SAFE_NAMES, '../x'), seq: seqArb }), {
        nil: undefined,
      }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('ack' as const),
      stream: streamIdArb,
      seq: seqArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constantFrom('ping' as const, 'pong' as const), time: seqArb }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constantFrom('bye' as const, 'error' as const, 'welcome' as const, 'opened' as const),
      body: fc.oneof(
        fc.record({ reason: wildArb }),
        fc.record({
          code: mostly(fc.constantFrom('ERR_PROTOCOL', 'ERR_X')),
          message: wildArb,
          fatal: wildArb,
        }),
        fc.record({ id: wildArb, next: wildArb }),
        fc.dictionary(fc.string({ maxLength: 6 }), wildArb, { maxKeys: 3 }),
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('control-not-object' as const),
      type: fc.constantFrom(MessageType.HELLO, MessageType.OPEN, MessageType.AUTH, MessageType.BYE),
      text: fc.constantFrom('[]', '"hello"', 'null', '1', '', '{', '[{"id":0}]'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('announce' as const),
      type: fc.constantFrom(MessageType.FRAME, MessageType.MESSAGE, MessageType.HELLO),
      headLen: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 0xffff })),
      bodyLen: fc.oneof(fc.nat(100_000), fc.constant(0xffff_ffff)),
    }),
  },
  { weight: 2, arbitrary: bytes(64).map((data) => ({ kind: 'raw' as const, data })) },
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 40 }).map((ms) => ({ kind: 'wait' as const, ms })) },
);

/** A step, sometimes damaged (a few bytes of its encoding mutated), sometimes written in pieces. */
export const stepArb: fc.Arbitrary<Step> = fc
  .tuple(
    plainStepArb,
    fc.option(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), { freq: 10, nil: undefined }),
    fc.option(fractionsArb, { freq: 3, nil: undefined }),
    fc.boolean(),
  )
  .map(([s, mutations, split, glue]) => ({
    ...s,
    ...(mutations ? { mutations } : {}),
    ...(split ? { split } : {}),
    ...(glue ? { glue } : {}),
  }));

export interface Script {
  steps: Step[];
  /** How the client goes: half-close and wait for the receiver, or reset at once. */
  end: 'end' | 'destroy';
}

/**
 * Mostly a handshake first (HELLO, a wait for the answer, the proof of the token), so that the wild steps
 * after it reach an open session; sometimes none.
 */
const preludeArb: fc.Arbitrary<Step[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Step[]>([]) },
  {
    weight: 3,
    arbitrary: helloArb.map((body): Step[] => [
      { kind: 'hello', body },
      { kind: 'wait', ms: 40 },
      { kind: 'auth-correct' },
      { kind: 'wait', ms: 40 },
    ]),
  },
);

const endArb = fc.constantFrom('end' as const, 'destroy' as const);

/** Wild scripts: any steps in any order, mostly after a handshake. */
export const wildScriptArb: fc.Arbitrary<Script> = fc.record({
  steps: fc
    .tuple(preludeArb, fc.array(stepArb, { minLength: 1, maxLength: 14 }))
    .map(([prelude, steps]) => [...prelude, ...steps]),
  end: endArb,
});

/** One frame of a plausible session: the next seq of one of its streams, or a little off it. */
const plausibleFrameArb = fc.record({
  stream: fc.nat(3),
  delta: fc.oneof(
    { weight: 12, arbitrary: fc.constant(0) },
    { weight: 1, arbitrary: fc.constantFrom(-2, -1, 1, 2) },
  ),
  name: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('', '0.jpg', 'f.png') },
    { weight: 1, arbitrary: fc.constantFrom(...UNSAFE_NAMES.filter((n) => n !== '')) },
  ),
  payload: bytes(32),
  flags: fc.constantFrom(0, 0, 0, Flags.RETRANSMIT),
  glue: fc.boolean(),
});

/**
 * Plausible sessions: a well-formed HELLO declaring a few streams (some with unsafe names), frames that
 * mostly follow each stream's sequence, JSON messages from the HELLO's messageSeq on, more streams by
 * OPEN (sometimes the same name twice), and a few wild steps among them. They reach the states deep in a
 * session that wild scripts rarely do.
 */
export const plausibleScriptArb: fc.Arbitrary<Script> = fc
  .record({
    epoch: fc.oneof(fc.constantFrom(...EPOCHS), fc.string({ minLength: 1, maxLength: 8 })),
    streams: fc.uniqueArray(
      fc.record({
        id: fc.integer({ min: 0, max: 3 }),
        name: nameArb,
        mode: fc.constantFrom(...STREAM_MODES),
      }),
      { selector: (s) => s.id, minLength: 1, maxLength: 3 },
    ),
    messageSeq: fc.oneof(
      { weight: 6, arbitrary: fc.nat(3) },
      { weight: 1, arbitrary: fc.constantFrom(1.5, 0.5, 2 ** 60, 1e300, -1, Number.MAX_SAFE_INTEGER) },
    ),
    frames: fc.array(plausibleFrameArb, { maxLength: 12 }),
    messages: fc.array(fc.record({ at: fc.nat(), delta: fc.constantFrom(0, 0, 0, -1, 1) }), { maxLength: 3 }),
    opens: fc.array(
      fc.record({
        at: fc.nat(),
        id: fc.integer({ min: 0, max: 5 }),
        name: nameArb,
        glue: fc.boolean(),
        twice: fc.boolean(),
      }),
      { maxLength: 2 },
    ),
    wild: fc.array(fc.record({ at: fc.nat(), step: stepArb }), { maxLength: 3 }),
    bye: fc.boolean(),
    end: endArb,
  })
  .map((p) => {
    const decl = (id: number, name: string, mode: string) => ({
      id,
      name,
      kind: 'visible',
      mode,
      epoch: p.epoch,
    });
    const steps: Step[] = [
      {
        kind: 'hello',
        body: {
          protocol: 1,
          client: 'fuzz',
          epoch: p.epoch,
          streams: p.streams.map((s) => decl(s.id, s.name, s.mode)),
          messageSeq: p.messageSeq,
          auth: { nonce: 'ab'.repeat(32) },
        },
      },
      { kind: 'wait', ms: 40 },
      { kind: 'auth-correct' },
      { kind: 'wait', ms: 40 },
    ];
    const body: Step[] = [];
    const next = new Map<number, number>();
    // Frames go to the streams of the HELLO and to those declared later by OPEN (before or after).
    const ids = [
      ...p.streams.map((s) => s.id),
      ...p.opens.flatMap((o) => (o.twice ? [o.id, o.id + 6] : [o.id])),
    ];
    for (const f of p.frames) {
      const id = ids[f.stream % ids.length]!;
      const seq = Math.max(0, (next.get(id) ?? 0) + f.delta);
      next.set(id, seq + 1);
      body.push({
        kind: 'frame',
        streamId: id,
        seq,
        name: f.name,
        contentType: 'image/jpeg',
        metaJson: undefined,
        payload: f.payload,
        flags: f.flags,
        ...(f.glue ? { glue: true } : {}),
      });
    }
    let mseq =
      Number.isSafeInteger(p.messageSeq) && p.messageSeq >= 0
        ? p.messageSeq
        : Math.max(0, Math.floor(p.messageSeq) || 0);
    if (!Number.isSafeInteger(mseq)) mseq = 0;
    for (const m of p.messages) {
      const seq = Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, mseq + m.delta));
      mseq = Math.min(Number.MAX_SAFE_INTEGER, seq + 1);
      body.splice(m.at % (body.length + 1), 0, { kind: 'message', seq, text: '{"n":1}', ref: undefined });
    }
    for (const o of p.opens) {
      const open: Step = {
        kind: 'open',
        body: decl(o.id, o.name, 'reliable'),
        ...(o.glue ? { glue: true } : {}),
      };
      const at = o.at % (body.length + 1);
      body.splice(
        at,
        0,
        ...(o.twice ? [open, { ...open, body: decl(o.id + 6, o.name, 'reliable') }] : [open]),
      );
    }
    for (const w of p.wild) body.splice(w.at % (body.length + 1), 0, w.step);
    if (p.bye) body.push({ kind: 'bye', body: { reason: 'done' } }, { kind: 'wait', ms: 40 });
    return { steps: [...steps, ...body], end: p.end };
  });

export const scriptArb: fc.Arbitrary<Script> = fc.oneof(wildScriptArb, plausibleScriptArb);

/** What the encoder needs from the connection. */
export interface StepContext {
  /** First payload byte of every frame: 'A' once the client proved the token, 'U' before. */
  marker: number;
  /**
   * Appended to every short epoch of HELLO and OPEN: a run of its own starts from a receiver that knows
   * none of its streams, so that fast-check's shrinking replays the same situation.
   */
  epochSuffix?: string;
}

function suffixEpoch(v: unknown, suffix: string): unknown {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
  const o = { ...(v as Record<string, unknown>) };
  if (typeof o.epoch === 'string' && o.epoch.length > 0 && o.epoch.length <= 40) o.epoch += suffix;
  if (Array.isArray(o.streams)) o.streams = o.streams.map((d: unknown) => suffixEpoch(d, suffix));
  return o;
}

export const MARK_AUTHED = 0x41;
export const MARK_UNAUTHED = 0x55;

function header(type: number, headLen: number, bodyLen: number): Buffer {
  const h = Buffer.alloc(12);
  h[0] = 0x46;
  h[1] = 0x57;
  h[2] = 1;
  h[3] = type;
  h.writeUInt16BE(headLen, 6);
  h.writeUInt32BE(bodyLen, 8);
  return h;
}

/** A control message with any JSON text as body (the encoder only takes objects). */
export function rawControl(type: number, text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([header(type, 0, body.length), body]);
}

/** Encodes a control body, falling back to a raw one for bodies the encoder refuses (not an object). */
function control(type: Parameters<typeof encodeControl>[0], body: unknown): Buffer {
  if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
    return toBytes(encodeControl(type, body));
  }
  return rawControl(type, JSON.stringify(body) ?? 'null');
}

/**
 * The bytes of one step (not 'auth-correct' or 'wait', which the client handles). Frames get the
 * context's marker as their first payload byte.
 */
export function encodeStep(step: Step, ctx: StepContext): Buffer {
  const plain = encodePlain(step, ctx);
  return step.mutations ? mutate(plain, step.mutations) : plain;
}

function encodePlain(step: Step, ctx: StepContext): Buffer {
  switch (step.kind) {
    case 'hello':
      return control(
        MessageType.HELLO,
        ctx.epochSuffix ? suffixEpoch(step.body, ctx.epochSuffix) : step.body,
      );
    case 'open':
      return control(MessageType.OPEN, ctx.epochSuffix ? suffixEpoch(step.body, ctx.epochSuffix) : step.body);
    case 'auth':
      return control(MessageType.AUTH, step.body);
    case 'frame': {
      const payload = Buffer.concat([Buffer.from([ctx.marker]), step.payload]);
      return toBytes(
        encodeFrame({
          streamId: Math.min(step.streamId, MAX_STREAM_ID),
          seq: step.seq,
          captureUs: 1_700_000_000_000_000,
          contentType: step.contentType,
          name: step.name,
          metaJson: step.metaJson,
          payload,
          crc: crc32(payload),
          flags: step.flags,
        }),
      );
    }
    case 'message':
      return toBytes(encodeMessage(step.seq, step.text, step.ref));
    case 'ack':
      return toBytes(encodeAck(step.stream, step.seq));
    case 'ping':
      return toBytes(encodePing(MessageType.PING, step.time));
    case 'pong':
      return toBytes(encodePing(MessageType.PONG, step.time));
    case 'bye':
      return control(MessageType.BYE, step.body);
    case 'error':
      return control(MessageType.ERROR, step.body);
    case 'welcome':
      return control(MessageType.WELCOME, step.body);
    case 'opened':
      return control(MessageType.OPENED, step.body);
    case 'control-not-object':
      return rawControl(step.type, step.text);
    case 'announce': {
      const headLen =
        step.headLen >= 0
          ? step.headLen
          : step.type === MessageType.FRAME
            ? 32
            : step.type === MessageType.MESSAGE
              ? 18
              : 0;
      // Enough of the head to look real, none of the body.
      return Buffer.concat([header(step.type, headLen, step.bodyLen), Buffer.alloc(Math.min(headLen, 40))]);
    }
    case 'raw':
      return step.data;
    case 'auth-correct':
    case 'wait':
      return Buffer.alloc(0);
  }
}

// ---- lossy networks -------------------------------------------------------------------------------------

export type NetOp =
  | { op: 'drop' | 'dup'; at: number }
  | { op: 'swap'; at: number; by: number }
  | { op: 'trunc'; at: number; keep: number }
  | { op: 'corrupt'; at: number; byte: number; bit: number }
  | { op: 'junk'; at: number; data: Buffer };

export type NetKind = NetOp['op'];

/** Operations a network (or a hostile peer) applies to a list of datagrams. */
export function netOpsArb(kinds: readonly NetKind[], maxLength = 12): fc.Arbitrary<NetOp[]> {
  const all: Record<NetKind, fc.Arbitrary<NetOp>> = {
    drop: fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
    dup: fc.record({ op: fc.constant('dup' as const), at: fc.nat() }),
    swap: fc.record({ op: fc.constant('swap' as const), at: fc.nat(), by: fc.integer({ min: 1, max: 8 }) }),
    trunc: fc.record({ op: fc.constant('trunc' as const), at: fc.nat(), keep: fc.nat() }),
    corrupt: fc.record({
      op: fc.constant('corrupt' as const),
      at: fc.nat(),
      byte: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
    junk: fc.record({ op: fc.constant('junk' as const), at: fc.nat(), data: bytes(1100) }),
  };
  return fc.array(fc.oneof(...kinds.map((k) => all[k])), { maxLength });
}

/** Applies network operations, in order, to a copy of the list. Datagrams are copied before damage. */
export function applyNet(datagrams: readonly Buffer[], ops: readonly NetOp[]): Buffer[] {
  const out = [...datagrams];
  for (const o of ops) {
    if (o.op === 'junk') {
      out.splice(o.at % (out.length + 1), 0, o.data);
      continue;
    }
    if (out.length === 0) continue;
    const i = o.at % out.length;
    const d = out[i]!;
    switch (o.op) {
      case 'drop':
        out.splice(i, 1);
        break;
      case 'dup':
        out.splice(i, 0, d);
        break;
      case 'swap': {
        const j = Math.min(out.length - 1, i + o.by);
        out[i] = out[j]!;
        out[j] = d;
        break;
      }
      case 'trunc':
        out[i] = d.subarray(0, d.length === 0 ? 0 : o.keep % d.length);
        break;
      case 'corrupt': {
        if (d.length === 0) break;
        const c = Buffer.from(d);
        const k = o.byte % c.length;
        c[k] = c[k]! ^ (1 << o.bit);
        out[i] = c;
        break;
      }
    }
  }
  return out;
}

// ---- the seed programs' formats ------------------------------------------------------------------------

/** `struct.pack('l', n)`: the seed's chunked-form header, 8 bytes (64-bit senders) or 4 (Windows). */
export function legacyHeader(n: number, size: 4 | 8): Buffer {
  const b = Buffer.alloc(size);
  if (size === 8) b.writeBigInt64LE(BigInt(n));
  else b.writeInt32LE(n);
  return b;
}

/** The datagrams of one picture as the seed clients send it: one datagram, or header and 1024-byte chunks. */
export function legacyDatagrams(picture: Buffer, form: 'single' | 4 | 8): Buffer[] {
  if (form === 'single') return [picture];
  const out = [legacyHeader(picture.length, form)];
  for (let off = 0; off < picture.length; off += 1024) out.push(picture.subarray(off, off + 1024));
  return out;
}

export const legacyFormArb = fc.constantFrom('single' as const, 4 as const, 8 as const);
