import { PassThrough } from 'node:stream';

/** Standard output and error for run(argv, io) in tests, collected as text. */
export function capture() {
  const out = new PassThrough();
  const err = new PassThrough();
  let o = '';
  let e = '';
  out.on('data', (d: Buffer) => {
    o += d.toString();
  });
  err.on('data', (d: Buffer) => {
    e += d.toString();
  });
  return { stdout: out, stderr: err, out: () => o, err: () => e };
}
