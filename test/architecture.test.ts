/** The layering of docs/architecture.md holds over src/, and the checker catches what breaks it. */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
// @ts-expect-error: a plain .mjs script without types
import { checkImports, importsOf } from '../scripts/check-imports.mjs';
import { tempDir } from './helpers/tmp.js';

const SRC = new URL('../src/', import.meta.url).pathname;

test('src/ keeps the layering: imports run one way, no circles, nothing imports src/cli', () => {
  const problems: string[] = checkImports(SRC);
  assert.deepEqual(problems, []);
});

test('the checker reads the real graph (it sees the session importing the transports)', () => {
  const deps: string[] = importsOf(join(SRC, 'session/server.ts'), SRC);
  assert.ok(deps.includes('transports/index.ts'), deps.join(', '));
  assert.ok(deps.includes('errors.ts'));
});

test('the checker reports a sink importing the session, a file importing src/cli, and a circle', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const put = (p: string, text: string) => {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  };
  put('errors.ts', 'export const x = 1;\n');
  put('session/server.ts', "import { x } from '../errors.js';\nexport const s = x;\n");
  put('sinks/folder.ts', "import type { s } from '../session/server.js';\nexport const f = 1;\n");
  put('cli/main.ts', 'export const m = 1;\n');
  put('sources/folder.ts', "import { m } from '../cli/main.js';\nexport const g = m;\n");
  put('protocol/a.ts', "import { b } from './b.js';\nexport const a = b;\n");
  put('protocol/b.ts', "// import { nothing } from './c.js';\nexport { a as b } from './a.js';\n");
  const problems: string[] = checkImports(dir);
  assert.equal(problems.length, 3, problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('sinks/folder.ts (sinks) imports session/server.ts')));
  assert.ok(problems.some((p) => p.startsWith('sources/folder.ts (sources) imports cli/main.ts')));
  assert.ok(
    problems.some((p) => p.startsWith('import circle: protocol/a.ts → protocol/b.ts → protocol/a.ts')),
  );
});
