/**
 * Test peers that behave like the seed programs (../shared/seeds/), byte for byte and in their timing:
 * the UDP picture clients and servers (both forms), the JSON message client and server, and the TCP folder
 * client and server, with Python's socket semantics emulated (recv(n) returns what is there, up to n bytes;
 * recvfrom(n) cuts a datagram to n bytes). Every wait has a deadline so that a broken peer fails a test
 * instead of hanging it.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export const WAIT_MS = 20_000;

/**
 * A structurally valid JPEG of exactly `size` bytes whose compressed data differs per `seed`: SOI, APP0,
 * a baseline SOS header, stuffed pseudo-random scan data, EOI. (Not decodable, but framed like a real one.)
 */
export function fakeJpeg(size: number, seed: number): Buffer {
  const head = Buffer.from([
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00,
    0x01, 0x00, 0x00, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
  ]);
  if (size < head.length + 3) throw new Error(`fakeJpeg: ${size} bytes is too small`);
  const b = Buffer.alloc(size);
  head.copy(b);
  let x = (seed + 1) * 2654435761;
  const end = size - 2;
  for (let i = head.length; i < end; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    let v = x & 0xff;
    // 0xFF is stuffed (FF 00) as in real scan data, and never the last byte before EOI.
    if (v === 0xff && i + 1 < end) {
      b[i] = 0xff;
      b[++i] = 0x00;
      continue;
    }
    if (v === 0xff) v = 0xfe;
    b[i] = v;
  }
  b[size - 2] = 0xff;
  b[size - 1] = 0xd9;
  return b;
}

// ---- UDP -------------------------------------------------------------------------------------------------

/** A UDP socket with Python's blocking recvfrom(n), answering timeouts with an error. */
export class PyUdp {
  readonly socket: dgram.Socket;
  readonly #queue: { msg: Buffer; rinfo: dgram.RemoteInfo }[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  constructor(type: 'udp4' | 'udp6' = 'udp4') {
    this.socket = dgram.createSocket(type);
    this.socket.on('message', (msg, rinfo) => {
      this.#queue.push({ msg, rinfo });
      this.#wake?.();
    });
  }

  bind(port = 0, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve) => this.socket.bind(port, host, () => resolve(this.socket.address().port)));
  }

  sendto(data: Buffer | string, port: number, host = '127.0.0.1'): void {
    this.socket.send(data, port, host);
  }

  /** recvfrom(n): the next datagram cut to n bytes (the rest of it is lost, as in Python). */
  async recvfrom(n: number, timeoutMs = WAIT_MS): Promise<[Buffer, dgram.RemoteInfo]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const d = this.#queue.shift();
      if (d) return [d.msg.subarray(0, n), d.rinfo];
      if (this.#closed) throw new Error('recvfrom on a closed socket');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`recvfrom timed out after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Datagrams waiting to be read. */
  get queued(): number {
    return this.#queue.length;
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** `struct.pack('l', n)`: 8 bytes little-endian on 64-bit Linux and macOS, 4 on Windows and 32-bit. */
export function structPackL(n: number, bytes: 4 | 8 = 8): Buffer {
  const b = Buffer.alloc(bytes);
  if (bytes === 8) b.writeBigInt64LE(BigInt(n));
  else b.writeInt32LE(n);
  return b;
}

/**
 * The seed's chunked picture send, as udp_client_1.py does it: the header, then
 * `for i in range(len(data)//1024+1)` chunks back to back (an empty one when the length is a multiple of
 * 1024). Returns nothing; the caller reads the answer with recvfrom(1024).
 */
export function seedSendChunked(s: PyUdp, data: Buffer, port: number, headerBytes: 4 | 8 = 8): void {
  s.sendto(structPackL(data.length, headerBytes), port);
  for (let i = 0; i < Math.floor(data.length / 1024) + 1; i++) {
    if (1024 * (i + 1) > data.length) s.sendto(data.subarray(1024 * i), port);
    else s.sendto(data.subarray(1024 * i, 1024 * (i + 1)), port);
  }
}

/** The seed's chunked UDP picture server (udp_server.py's receive_img), exactly: one loop, no timeouts. */
export class SeedUdpPictureServer {
  readonly pictures: Buffer[] = [];
  /** Set when the seed would have died (struct.error on a 4-byte header, …). */
  crashed: string | undefined;
  readonly #s = new PyUdp();
  #running = true;
  /** Drop the datagram of this index (0 = the first received) to simulate a loss. */
  loseDatagrams = new Set<number>();
  /** Answers to lose. */
  loseReplies = 0;
  #count = 0;

  async start(): Promise<number> {
    const port = await this.#s.bind();
    void this.#run();
    return port;
  }

  async #recvfrom(n: number): Promise<[Buffer, dgram.RemoteInfo]> {
    for (;;) {
      const r = await this.#s.recvfrom(n, 3_600_000);
      if (this.loseDatagrams.has(this.#count++)) continue;
      return r;
    }
  }

  async #run(): Promise<void> {
    try {
      while (this.#running) {
        const fheadSize = 8; // struct.calcsize('l') on 64-bit Linux
        const [buf] = await this.#recvfrom(fheadSize);
        if (buf.length === 0) continue; // `if buf:`
        if (buf.length !== fheadSize) {
          this.crashed = `struct.error: unpack requires a buffer of ${fheadSize} bytes`;
          return;
        }
        const dataSize = Number(buf.readBigInt64LE(0));
        let recvdSize = 0;
        const total: Buffer[] = [];
        let addr: dgram.RemoteInfo | undefined;
        while (recvdSize !== dataSize) {
          let data: Buffer;
          if (dataSize - recvdSize > 1024) {
            [data, addr] = await this.#recvfrom(1024);
            recvdSize += data.length;
          } else {
            [data, addr] = await this.#recvfrom(1024);
            recvdSize = dataSize;
          }
          total.push(data);
        }
        this.pictures.push(Buffer.concat(total));
        // A lost answer, when asked for (the network's doing, not the seed's).
        if (this.loseReplies > 0) this.loseReplies--;
        else if (addr) this.#s.sendto('get message!!!', addr.port, addr.address);
      }
    } catch (err) {
      if (this.#running) this.crashed = String(err);
    }
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#s.close();
  }
}

/** The seed's single-datagram picture server (the first udp_sever.py): recvfrom(400000), answer. */
export class SeedUdpSingleServer {
  readonly pictures: Buffer[] = [];
  readonly #s = new PyUdp();
  #running = true;

  async start(): Promise<number> {
    const port = await this.#s.bind();
    void (async () => {
      try {
        while (this.#running) {
          const [data, addr] = await this.#s.recvfrom(400_000, 3_600_000);
          this.pictures.push(data);
          this.#s.sendto('get message!!!', addr.port, addr.address);
        }
      } catch {
        /* closed */
      }
    })();
    return port;
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#s.close();
  }
}

/** The seed's JSON message server (receive_msg): recvfrom(1024), json.loads, answer; dies on bad JSON. */
export class SeedJsonServer {
  readonly messages: unknown[] = [];
  crashed: string | undefined;
  readonly #s = new PyUdp();
  #running = true;

  async start(): Promise<number> {
    const port = await this.#s.bind();
    void (async () => {
      try {
        while (this.#running) {
          const [msgData, addr] = await this.#s.recvfrom(1024, 3_600_000);
          this.messages.push(JSON.parse(msgData.toString('utf8')));
          this.#s.sendto('get the msg', addr.port, addr.address);
        }
      } catch (err) {
        if (this.#running) this.crashed = String(err);
      }
    })();
    return port;
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#s.close();
  }
}

// ---- TCP -------------------------------------------------------------------------------------------------

/** A TCP socket with Python's blocking recv(n): at least one byte, at most n, whatever has arrived. */
export class PyTcp {
  readonly socket: net.Socket;
  #buf: Buffer = Buffer.alloc(0);
  #eof = false;
  #wake: (() => void) | undefined;
  /** Everything received, for assertions on the exact answers. */
  received = '';

  constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      this.received += d.toString('latin1');
      this.#wake?.();
    });
    socket.on('end', () => {
      this.#eof = true;
      this.#wake?.();
    });
    socket.on('close', () => {
      this.#eof = true;
      this.#wake?.();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, noDelay = false): Promise<PyTcp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.once('error', reject);
      s.once('connect', () => {
        s.setNoDelay(noDelay);
        resolve(new PyTcp(s));
      });
    });
  }

  send(data: Buffer | string): void {
    this.socket.write(data);
  }

  /** recv(n); b'' at the end of the stream (and for n = 0, as Python does). */
  async recv(n: number, timeoutMs = WAIT_MS): Promise<Buffer> {
    if (n === 0) return Buffer.alloc(0);
    const deadline = Date.now() + timeoutMs;
    while (this.#buf.length === 0) {
      if (this.#eof) return Buffer.alloc(0);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`recv timed out after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  close(): void {
    this.socket.end();
  }
}

export interface SeedFile {
  name: string;
  data: Buffer;
}

/**
 * The seed's TCP client (clien.py's send()), exactly: header, recv; per file header, recv, halves with a
 * recv after each, `continue` between files, `over` at the end, close. Nagle as Python leaves it (on),
 * unless `noDelay`. Returns every answer the client read.
 */
export async function seedTcpClient(
  port: number,
  format: string,
  folder: string,
  files: SeedFile[],
  options: { noDelay?: boolean } = {},
): Promise<{ replies: string[]; sock: PyTcp }> {
  const sock = await PyTcp.connect(port, options.noDelay ?? false);
  const replies: string[] = [];
  sock.send(`${format}|${folder}`);
  const reply = (await sock.recv(1024)).toString();
  replies.push(reply);
  if (reply === 'ok') {
    let i = 0;
    for (const f of files) {
      const data = f.data;
      sock.send(`${data.length}|${f.name}`);
      replies.push((await sock.recv(1024)).toString());
      let go = 0;
      const total = data.length;
      while (go < total) {
        const dataToSend = data.subarray(go, go + Math.floor(total / 2));
        sock.send(dataToSend);
        go += dataToSend.length;
        replies.push((await sock.recv(1024)).toString());
      }
      i += 1;
      if (i < files.length) sock.send('continue');
    }
    sock.send('over');
  }
  sock.close();
  return { replies, sock };
}

/**
 * The seed's TCP server (server.py), exactly, one connection at a time. `recvCut` makes recv(n) return at
 * most that many bytes (a network that delivers a piece in several reads).
 */
export class SeedTcpServer {
  /** folder → name → bytes, as the seed would have written them. */
  readonly files = new Map<string, Map<string, Buffer>>();
  readonly log: string[] = [];
  crashed: string | undefined;
  /** recv(n) returns at most this many bytes (default: no cut). */
  recvCut = Number.POSITIVE_INFINITY;
  /** Not the seed: drop the connection once, after this many frames (a network cut). */
  dropConnectionAfterFrames = 0;
  #frames = 0;
  readonly #server = net.createServer();
  #sockets = new Set<net.Socket>();
  #pending: net.Socket[] = [];
  #wake: (() => void) | undefined;
  #running = true;

  async start(): Promise<number> {
    this.#server.on('connection', (s) => {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      this.#pending.push(s);
      this.#wake?.();
    });
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', () => resolve()));
    void this.#run();
    return (this.#server.address() as net.AddressInfo).port;
  }

  async #accept(): Promise<net.Socket | undefined> {
    while (this.#running) {
      const s = this.#pending.shift();
      if (s) return s;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    return undefined;
  }

  async #run(): Promise<void> {
    for (;;) {
      const raw = await this.#accept();
      if (!raw) return;
      const sc = new PyTcp(raw);
      const recv = async (n: number) => sc.recv(Math.min(n, this.recvCut), 3_600_000);
      try {
        const info = (await recv(1024)).toString();
        const parts = info.split('|');
        if (parts.length !== 2) {
          this.log.push('protocol header is incorrect, automatically disconnect');
          sc.socket.end();
          continue;
        }
        sc.send('ok');
        const directoryName = parts[1]!;
        if (!this.files.has(directoryName)) this.files.set(directoryName, new Map());
        for (;;) {
          const headInfo = (await recv(1024)).toString();
          const h = headInfo.split('|');
          if (h.length !== 2)
            throw new Error(`ValueError: not enough values to unpack: ${JSON.stringify(headInfo)}`);
          const [length, fileName] = h as [string, string];
          sc.send('ok');
          if (length && fileName) {
            const chunks: Buffer[] = [];
            const total = Number.parseInt(length, 10);
            let get = 0;
            let spins = 0;
            while (get < total) {
              const data = await recv(Math.floor(total / 2));
              if (data.length === 0 && ++spins > 1000)
                throw new Error('recv returned nothing 1000 times (the seed spins forever)');
              chunks.push(data);
              get += data.length;
              sc.send('ok');
            }
            // open(..., 'wb') creates the file even when nothing is written to it.
            this.files.get(directoryName)!.set(fileName, Buffer.concat(chunks));
            if (++this.#frames === this.dropConnectionAfterFrames) {
              this.log.push('connection dropped');
              sc.socket.destroy();
              break;
            }
          }
          const reply = (await recv(1024)).toString();
          if (reply === 'over') break;
        }
      } catch (err) {
        this.crashed = String(err);
        return;
      }
    }
  }

  async close(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Resolves when `cond()` holds; throws after `timeoutMs`. */
export async function until(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
