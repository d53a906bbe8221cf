/** Folders of frames for tests: made from files or from deterministic payloads, and read back. */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { payload } from './tmp.js';

/**
 * Makes `root/name` holding either the given files, or `count` files `0.jpg … (count-1).jpg` whose bytes are
 * `payload(i + seed, size(i))`. Returns the folder's path.
 */
export async function makeFolder(root: string, name: string, files: Record<string, Buffer>): Promise<string>;
export async function makeFolder(
  root: string,
  name: string,
  count: number,
  size: (i: number) => number,
  seed?: number,
): Promise<string>;
export async function makeFolder(
  root: string,
  name: string,
  filesOrCount: Record<string, Buffer> | number,
  size?: (i: number) => number,
  seed = 0,
): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  if (typeof filesOrCount === 'number') {
    for (let i = 0; i < filesOrCount; i++)
      await writeFile(join(dir, `${i}.jpg`), payload(i + seed, size!(i)));
  } else {
    for (const [n, data] of Object.entries(filesOrCount)) await writeFile(join(dir, n), data);
  }
  return dir;
}

/** The `seq` of every line of a stream folder's index.jsonl, in file order. */
export async function indexSeqs(dir: string): Promise<number[]> {
  return (await readFile(join(dir, 'index.jsonl'), 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { seq: number }).seq);
}
