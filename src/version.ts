/** framewire's version, read from package.json so that the two cannot drift apart. */
import { readFileSync } from 'node:fs';

// src/version.ts (tsx) and dist/version.js both sit one folder below package.json.
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The version of this framewire package, as in its package.json. */
export const VERSION: string = pkg.version;
