/**
 * Finds a python3 for the tests that run real Python peers: $FRAMEWIRE_PYTHON, then the one on PATH, then
 * Debian's /usr/bin/python3 (where .ci/run installs python3-zmq, python3-numpy and python3-opencv), the
 * first that imports every module asked for. Each answer is remembered for the process.
 */
import { spawnSync } from 'node:child_process';

const found = new Map<string, string | null>();

/** A python3 that imports all of `modules` (e.g. `['zmq', 'numpy']`), or null. */
export function pythonWith(modules: readonly string[]): string | null {
  const key = modules.join(',');
  const known = found.get(key);
  if (known !== undefined) return known;
  let answer: string | null = null;
  for (const p of [process.env.FRAMEWIRE_PYTHON, 'python3', '/usr/bin/python3']) {
    if (!p) continue;
    const r = spawnSync(p, ['-c', `import ${key}`], { stdio: 'ignore', timeout: 60_000 });
    if (r.status === 0) {
      answer = p;
      break;
    }
  }
  found.set(key, answer);
  return answer;
}
