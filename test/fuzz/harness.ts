/**
 * How the fuzz properties run: a short seeded run under `npm test`, a long one under `npm run fuzz`
 * (scripts/fuzz.mjs), from the same test files. The environment decides:
 *
 * - `FUZZ_RUNS`: runs per property (unset: each property's short count). A property may scale it down
 *   when one run is expensive (a TCP connection), never below its short count.
 * - `FUZZ_SEED`: the seed of every property (unset: a fixed seed, so `npm test` is deterministic).
 * - `FUZZ_PATH`: with `FUZZ_SEED` and `--test-name-pattern`, replays the counterexample fast-check printed.
 * - `FUZZ_PROPERTY_MS`, `FUZZ_DEADLINE`: a property stops after this long, or at this time (ms since the
 *   epoch), whichever comes first, counting the runs done as passed (set by scripts/fuzz.mjs from
 *   `FUZZ_SECONDS`, so that the campaign ends within its budget).
 *
 * A failure prints fast-check's report (seed, path, the shrunk counterexample) and the command that replays
 * it. Every property also fails on an uncaught exception or unhandled rejection during its runs.
 */
import fc from 'fast-check';

const env = process.env;
/** True under `npm run fuzz` (FUZZ_RUNS set): long runs, random seed unless one is given. */
export const LONG = env.FUZZ_RUNS !== undefined && env.FUZZ_RUNS !== '';
/** The seed of the short run: fixed so that `npm test` explores the same inputs every time. */
export const SHORT_SEED = 0x5eed_f00d;
export const SEED = env.FUZZ_SEED ? Number(env.FUZZ_SEED) : SHORT_SEED;
const PATH = env.FUZZ_PATH || undefined;
const PROPERTY_MS = env.FUZZ_PROPERTY_MS ? Number(env.FUZZ_PROPERTY_MS) : undefined;
const DEADLINE = env.FUZZ_DEADLINE ? Number(env.FUZZ_DEADLINE) : undefined;

/** How long the next property may run: its share, and never past the campaign's deadline. */
function timeLimit(): number | undefined {
  if (PROPERTY_MS === undefined && DEADLINE === undefined) return undefined;
  const share = PROPERTY_MS ?? Number.POSITIVE_INFINITY;
  const left = DEADLINE === undefined ? Number.POSITIVE_INFINITY : DEADLINE - Date.now();
  return Math.max(500, Math.min(share, left));
}

/** Runs of a property: `short` under npm test, FUZZ_RUNS × `scale` (at least `short`) under npm run fuzz. */
export function runs(short: number, scale = 1): number {
  if (!LONG) return short;
  return Math.max(short, Math.round(Number(env.FUZZ_RUNS) * scale));
}

/** Collects uncaught exceptions and unhandled rejections while it is installed. */
export class UncaughtTrap {
  readonly errors: unknown[] = [];
  readonly #onError = (err: unknown) => {
    this.errors.push(err);
  };

  install(): this {
    process.on('uncaughtException', this.#onError);
    process.on('unhandledRejection', this.#onError);
    return this;
  }

  dispose(): void {
    process.off('uncaughtException', this.#onError);
    process.off('unhandledRejection', this.#onError);
  }

  /** Throws (and forgets) what was caught since the last call. */
  check(where: string): void {
    if (this.errors.length === 0) return;
    const errs = this.errors.splice(0);
    const first = errs[0];
    const text = first instanceof Error ? (first.stack ?? first.message) : String(first);
    throw new Error(
      `${where}: ${errs.length} uncaught exception(s) or unhandled rejection(s); first: ${text}`,
    );
  }
}

function parameters<Ts>(numRuns: number): fc.Parameters<Ts> {
  const limit = timeLimit();
  return {
    seed: SEED,
    numRuns,
    ...(PATH === undefined ? {} : { path: PATH }),
    ...(limit === undefined ? {} : { interruptAfterTimeLimit: limit, markInterruptAsFailure: false }),
  };
}

function report<Ts>(name: string, details: fc.RunDetails<Ts>, message: string | undefined): void {
  if (LONG) {
    const cut = details.interrupted ? ' (stopped by FUZZ_PROPERTY_MS)' : '';
    console.log(`fuzz: ${name}: ${details.numRuns} runs, seed ${details.seed}${cut}`);
  }
  if (!details.failed) return;
  const cause = details.errorInstance;
  const why = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
  throw new Error(
    `${name}: ${message ?? 'failed'}\nthe error: ${why}\n` +
      `replay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath ?? ''} ` +
      `node --import tsx --test --test-name-pattern=${JSON.stringify(name)} test/fuzz/*.test.ts`,
  );
}

/** Checks a synchronous property; throws with fast-check's report (seed, path, counterexample). */
export function check<Ts>(name: string, property: fc.IProperty<Ts>, numRuns: number): void {
  const details = fc.check(property, parameters<Ts>(numRuns));
  report(name, details, details.failed ? fc.defaultReportMessage(details) : undefined);
}

/** Checks an asynchronous property; throws with fast-check's report (seed, path, counterexample). */
export async function checkAsync<Ts>(
  name: string,
  property: fc.IAsyncProperty<Ts>,
  numRuns: number,
): Promise<void> {
  const details = await fc.check(property, parameters<Ts>(numRuns));
  report(name, details, details.failed ? await fc.asyncDefaultReportMessage(details) : undefined);
}

/** Resolves after `ms`. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `cond` every few ms until it holds or `ms` passed; returns whether it held. */
export async function within(ms: number, cond: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await delay(5);
  }
  return true;
}
