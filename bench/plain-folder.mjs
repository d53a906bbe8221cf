// The plain-Node floor of the folder-to-folder rows (bench/folders.mjs): about the least a Node program can
// do to move a folder over one TCP connection. No framewire code: each file goes as a 4-byte name length,
// the name, a 4-byte size and the bytes; the receiver reads into one buffer (net's `onread`, as framewire's
// tcp:// receiver does), opens each file under its final name, writes each piece as it arrives (writeSync
// from that buffer: no copy of its own), closes it, and at the end answers one byte. No temporary file, no
// index, no CRC, no acknowledgement per file, no checks. What framewire adds costs on top of this row.
//
//   node bench/plain-folder.mjs recv OUT        prints "listening PORT"; takes one connection; runs until killed
//   node bench/plain-folder.mjs send PORT SRC   prints "sent N files, B bytes in S s" (connect to answer)
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';

const [mode, a, b] = process.argv.slice(2);

if (mode === 'recv') {
  const out = a;
  const readBuffer = Buffer.allocUnsafe(256 * 1024);
  const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
    server.close();
    let head = Buffer.alloc(0); // bytes of a header not complete yet
    let fd = -1; // the file being written
    let left = 0; // its bytes still to come
    const onChunk = (chunk) => {
      let at = 0;
      while (at < chunk.length) {
        if (fd >= 0) {
          const n = Math.min(left, chunk.length - at);
          writeSync(fd, chunk, at, n);
          at += n;
          left -= n;
          if (left === 0) {
            closeSync(fd);
            fd = -1;
          }
          continue;
        }
        // A header: name length, name, size; gathered across chunks when it is split.
        head = head.length ? Buffer.concat([head, chunk.subarray(at)]) : chunk.subarray(at);
        if (head.length < 4) break;
        const nameLen = head.readUInt32BE(0);
        if (head.length < 8 + nameLen) break;
        const name = head.toString('utf8', 4, 4 + nameLen);
        left = head.readUInt32BE(4 + nameLen);
        fd = openSync(join(out, name), 'wx');
        if (left === 0) {
          closeSync(fd);
          fd = -1;
        }
        const used = 8 + nameLen - (head.length - (chunk.length - at));
        at += used;
        head = Buffer.alloc(0);
      }
      // The read buffer is reused for the next read: a header cut short is kept as a copy.
      if (head.length > 0) head = Buffer.from(head);
    };
    // Node takes `onread` only for sockets it creates: a new Socket takes over the accepted one's handle
    // (src/transports/stream.ts, takeOverWithSharedReads, does the same).
    const sock = new net.Socket({
      handle: accepted._handle,
      readable: true,
      writable: true,
      onread: { buffer: readBuffer, callback: (n, buf) => onChunk(buf.subarray(0, n)) },
    });
    accepted._handle = null;
    sock.on('close', () => accepted.destroy());
    sock.on('end', () => {
      sock.end('K');
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`listening ${server.address().port}`));
  // Stays until stopped (SIGTERM), so that the bench can read its CPU time after the transfer.
  setInterval(() => {}, 1 << 30);
} else if (mode === 'send') {
  const port = Number(a);
  const src = b;
  const names = readdirSync(src).sort();
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r, j) => sock.once('connect', r).once('error', j));
  const t0 = performance.now();
  let bytes = 0;
  const answered = new Promise((r) => sock.once('data', r));
  for (const name of names) {
    const data = readFileSync(join(src, name));
    const nameBytes = Buffer.from(name);
    const h = Buffer.allocUnsafe(8 + nameBytes.length);
    h.writeUInt32BE(nameBytes.length, 0);
    nameBytes.copy(h, 4);
    h.writeUInt32BE(data.length, 4 + nameBytes.length);
    sock.write(h);
    bytes += data.length;
    if (!sock.write(data)) await new Promise((r) => sock.once('drain', r));
  }
  sock.end();
  await answered;
  const s = (performance.now() - t0) / 1000;
  console.log(`sent ${names.length} files, ${bytes} bytes in ${s.toFixed(3)} s`);
  sock.destroy();
} else {
  console.error('usage: plain-folder.mjs recv OUT | send PORT SRC');
  process.exit(2);
}
