#!/usr/bin/env node
// The layering rules of docs/architecture.md, checked over the import graph of src/:
//   bottom modules → protocol, sync → transports → session → compat, bus → sources, sinks → endpoints, index → cli
// Usage: node scripts/check-imports.mjs [SRC_DIR]   (exit 1 and one line per broken rule)
// Also imported by test/architecture.test.ts, which runs it in `npm test`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The small shared modules at the bottom, which anyone may import. */
export const BOTTOM = new Set([
  'errors.ts',
  'types.ts',
  'names.ts',
  'time.ts',
  'sizes.ts',
  'diagnostics.ts',
  'jpeg.ts',
  'version.ts',
  'urls.ts',
  'slots.ts',
  'memory.ts',
  // The wire's constants (content types, kinds, limits): data only, shared by every layer.
  'protocol/constants.ts',
]);

/**
 * Each layer with the layers it may import (besides itself and the bottom modules). A file's layer is its
 * first folder under src/, or the file name for files directly in src/.
 */
export const MAY_IMPORT = {
  bottom: [],
  protocol: [],
  sync: [],
  transports: ['protocol'],
  session: ['protocol', 'sync', 'transports'],
  compat: ['protocol', 'sync', 'transports', 'session'],
  // The NATS JetStream bus (URL, header codec, connection) shared by the JetStream sink and source.
  bus: ['protocol'],
  // A source or a sink sees frames, never a socket: no session, no transport (they meet in src/types.ts).
  sources: ['protocol', 'bus'],
  sinks: ['protocol', 'sync', 'bus'],
  endpoints: ['protocol', 'sync', 'transports', 'session', 'compat', 'sources', 'sinks'],
  index: ['protocol', 'sync', 'transports', 'session', 'compat', 'bus', 'sources', 'sinks', 'endpoints'],
  // The command line sits on top; nothing imports it.
  cli: [
    'protocol',
    'sync',
    'transports',
    'session',
    'compat',
    'bus',
    'sources',
    'sinks',
    'endpoints',
    'index',
  ],
};

export function layerOf(rel) {
  const p = rel.split(sep).join('/');
  if (BOTTOM.has(p)) return 'bottom';
  const slash = p.indexOf('/');
  const layer = slash === -1 ? p.replace(/\.ts$/, '') : p.slice(0, slash);
  return layer;
}

function walk(dir) {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

// import … from '…', export … from '…', import '…', import('…'); comments are stripped first.
const SPEC =
  /(?:^|[\s;])(?:import|export)\s(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The relative imports of a file, resolved to paths relative to `src`. */
export function importsOf(file, src) {
  const text = readFileSync(file, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const out = [];
  for (const m of text.matchAll(SPEC)) {
    const spec = m[1] ?? m[2];
    if (!spec?.startsWith('.')) continue;
    const target = resolve(dirname(file), spec).replace(/\.js$/, '.ts');
    out.push(relative(src, target));
  }
  return out;
}

/** Every broken rule in the tree under `src`, as lines of text; empty when the layering holds. */
export function checkImports(src) {
  const files = walk(src).map((f) => relative(src, f));
  const graph = new Map(files.map((f) => [f, importsOf(join(src, f), src)]));
  const problems = [];
  for (const [file, deps] of graph) {
    const from = layerOf(file);
    const allowed = MAY_IMPORT[from];
    for (const dep of deps) {
      if (dep.startsWith('..')) {
        problems.push(`${file} imports ${dep}, outside src/`);
        continue;
      }
      const to = layerOf(dep);
      if (to === 'bottom' || to === from) continue;
      if (allowed === undefined) {
        problems.push(`${file}: layer "${from}" is not in the rules (scripts/check-imports.mjs MAY_IMPORT)`);
        break;
      }
      if (!allowed.includes(to)) problems.push(`${file} (${from}) imports ${dep} (${to}): not allowed`);
    }
  }
  // Import circles, file by file (type-only imports included: they tie the files together as well).
  const state = new Map();
  const stack = [];
  const visit = (f) => {
    state.set(f, 1);
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === 1)
        problems.push(`import circle: ${[...stack.slice(stack.indexOf(d)), d].join(' → ')}`);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return problems;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const src = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));
  const problems = checkImports(src);
  for (const p of problems) console.error(p);
  if (problems.length > 0) {
    console.error(`${problems.length} import(s) break the layering of docs/architecture.md`);
    process.exit(1);
  }
  console.log('imports: the layering holds');
}
