/**
 * The live viewer: HTTP endpoints, MJPEG (read by a plain HTTP client and by ffmpeg), the WebSocket page
 * protocol, a stalled viewer that must not hurt another one, the page itself in headless Chromium, and
 * `serve --view`. Real sockets on 127.0.0.1, port 0.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { get, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import sharp from 'sharp';
import WebSocket from 'ws';
import { run } from '../../src/cli/run.js';
import {
  type ClientStream,
  connect,
  createServer,
  FolderSink,
  type FramewireClient,
  type FramewireServer,
} from '../../src/index.js';
import { jpegSize } from '../../src/jpeg.js';
import { SyncSink } from '../../src/sinks/sync.js';
import { createViewer, extractBoxes, parseHostPort, type ViewerSink } from '../../src/sinks/viewer.js';
import { findFfmpeg } from '../../src/sources/ffmpeg.js';
import { hue, noiseJpeg, solidJpeg } from '../helpers/images.js';
import { tempDir, waitFor } from '../helpers/tmp.js';

const CHROMIUM = '/usr/bin/chromium';

/** What the tests touch of the page's globals (this file is compiled without the DOM library). */
interface Canvas {
  width: number;
  height: number;
  dataset: Record<string, string>;
  textContent: string | null;
  querySelector(s: string): Canvas | null;
  getContext(kind: '2d'): {
    getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
  };
}
interface Page {
  framewire: { shown: Record<string, number>; messages: number };
  document: { querySelector(s: string): Canvas | null; querySelectorAll(s: string): ArrayLike<Canvas> };
}

interface Rig {
  dir: string;
  viewer: ViewerSink;
  server: FramewireServer;
  client: FramewireClient;
  /** http://127.0.0.1:PORT (no trailing slash). */
  base: string;
  close(): Promise<void>;
}

const rigs = new Set<Rig>();
after(async () => {
  for (const r of rigs) await r.close();
});

async function rig(viewerOptions: Parameters<typeof createViewer>[0] = {}): Promise<Rig> {
  const { dir, cleanup } = await tempDir('fw-viewer-');
  const viewer = await createViewer({ port: 0, statsIntervalMs: 200, ...viewerOptions });
  const server = await createServer({
    listen: 'tcp://127.0.0.1:0',
    sinks: [viewer, await FolderSink.open(dir)],
  });
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  let closed = false;
  const r: Rig = {
    dir,
    viewer,
    server,
    client,
    base: viewer.url.replace(/\/$/, ''),
    async close() {
      if (closed) return;
      closed = true;
      rigs.delete(r);
      client.destroy();
      await server.close();
      await viewer.close();
      await cleanup();
    },
  };
  rigs.add(r);
  return r;
}

/** Sends a frame of a new colour on each stream every `ms` until stopped. */
function feed(streams: ClientStream[], ms = 60, size: [number, number] = [160, 120]) {
  let i = 0;
  const last = new Map<string, number>();
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      i++;
      for (const [k, st] of streams.entries()) {
        const data = await solidJpeg(size[0], size[1], hue(i + k * 7));
        last.set(st.name, await st.send({ data }));
      }
    } catch {
      /* the client was closed */
    } finally {
      busy = false;
    }
  }, ms);
  return {
    last,
    stop: () => clearInterval(timer),
  };
}

async function fetchText(url: string): Promise<{ status: number; type: string; text: string; body: Buffer }> {
  const r = await fetch(url);
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, type: r.headers.get('content-type') ?? '', text: body.toString('utf8'), body };
}

/** Reads `count` parts of a multipart MJPEG response: their headers and bodies. */
function readMjpeg(
  url: string,
  count: number,
): Promise<{ contentType: string; parts: { headers: string; data: Buffer }[] }> {
  return new Promise((resolve, reject) => {
    const req = get(url, (res: IncomingMessage) => {
      const contentType = String(res.headers['content-type']);
      const boundary = /boundary=(.+)$/.exec(contentType)?.[1];
      if (res.statusCode !== 200 || !boundary) {
        reject(new Error(`status ${res.statusCode}, content-type ${contentType}`));
        res.destroy();
        return;
      }
      const parts: { headers: string; data: Buffer }[] = [];
      let buf: Buffer = Buffer.alloc(0);
      res.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const start: number = buf.indexOf(`--${boundary}\r\n`);
          if (start < 0) return;
          const end: number = buf.indexOf('\r\n\r\n', start);
          if (end < 0) return;
          const headers = buf.subarray(start, end).toString('latin1');
          const len = Number(/Content-Length: (\d+)/i.exec(headers)?.[1]);
          if (!Number.isInteger(len)) {
            reject(new Error(`part without Content-Length: ${headers}`));
            return;
          }
          if (buf.length < end + 4 + len + 2) return;
          parts.push({ headers, data: Buffer.from(buf.subarray(end + 4, end + 4 + len)) });
          assert.equal(buf.subarray(end + 4 + len, end + 6 + len).toString(), '\r\n', 'CRLF after each part');
          buf = buf.subarray(end + 6 + len);
          if (parts.length >= count) {
            req.destroy();
            resolve({ contentType, parts });
            return;
          }
        }
      });
      res.on('error', () => {});
    });
    req.on('error', (e) => {
      if (!req.destroyed) reject(e);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('MJPEG read timed out')));
  });
}

interface PageClient {
  ws: WebSocket;
  frames: Map<string, { seq: number; data: Buffer; head: Record<string, unknown> }[]>;
  texts: Array<Record<string, unknown>>;
  count(): number;
}

/** A WebSocket viewer that reads everything, as the page does. */
async function pageClient(base: string): Promise<PageClient> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/ws`);
  const pc: PageClient = {
    ws,
    frames: new Map(),
    texts: [],
    count: () => [...pc.frames.values()].reduce((n, l) => n + l.length, 0),
  };
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) {
      pc.texts.push(JSON.parse(data.toString()) as Record<string, unknown>);
      return;
    }
    const n = data.readUInt16BE(0);
    const head = JSON.parse(data.subarray(2, 2 + n).toString()) as Record<string, unknown>;
    const list = pc.frames.get(String(head.stream)) ?? [];
    list.push({ seq: Number(head.seq), data: Buffer.from(data.subarray(2 + n)), head });
    pc.frames.set(String(head.stream), list);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return pc;
}

describe('pure helpers', () => {
  test('extractBoxes reads the usual detection shapes', () => {
    assert.deepEqual(
      extractBoxes({
        detections: [
          [1, 2, 3, 4],
          [5, 6, 7, 8],
        ],
      }),
      {
        boxes: [
          { x: 1, y: 2, w: 3, h: 4 },
          { x: 5, y: 6, w: 7, h: 8 },
        ],
        normalized: false,
      },
    );
    assert.deepEqual(extractBoxes([{ box: [10, 20, 30, 40], label: 'person', score: 0.9 }]), {
      boxes: [{ x: 10, y: 20, w: 30, h: 40, label: 'person', score: 0.9 }],
      normalized: false,
    });
    assert.deepEqual(
      extractBoxes({ boxes: [{ bbox: { x: 0.1, y: 0.2, width: 0.3, height: 0.4 }, class: 3, conf: 0.5 }] }),
      {
        boxes: [{ x: 0.1, y: 0.2, w: 0.3, h: 0.4, label: '3', score: 0.5 }],
        normalized: true,
      },
    );
    assert.equal(extractBoxes({ temperature: 21 }), undefined);
    assert.equal(extractBoxes({ detections: [] }), undefined);
    assert.equal(extractBoxes({ detections: [['a', 1, 2, 3]] }), undefined);
    assert.equal(extractBoxes(null), undefined);
    assert.equal(extractBoxes('text'), undefined);
    const many = extractBoxes({ detections: Array.from({ length: 5000 }, () => [1, 1, 2, 2]) });
    assert.equal(many?.boxes.length, 1000);
  });

  test('jpegSize reads the SOF segment; parseHostPort reads HOST:PORT', async () => {
    assert.deepEqual(jpegSize(await solidJpeg(123, 45, [1, 2, 3])), { width: 123, height: 45 });
    assert.equal(jpegSize(Buffer.from('not a jpeg at all')), undefined);
    assert.equal(jpegSize(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00])), undefined);
    assert.deepEqual(parseHostPort('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseHostPort(':9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseHostPort('9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseHostPort('localhost:80'), { host: 'localhost', port: 80 });
    for (const bad of ['', 'x', 'host:', 'host:99999', '1.2.3.4:8080:1']) {
      assert.throws(() => parseHostPort(bad), /ERR_BAD_OPTION/, bad);
    }
  });
});

describe('HTTP endpoints', () => {
  test('/api/streams, /streams/NAME.jpg, the page, 404s and folder latest.jpg', async () => {
    const r = await rig();
    const cam = r.client.stream('cam', { kind: 'visible', mode: 'reliable' });
    const ir = r.client.stream('ir cam', { kind: 'infrared', mode: 'live' });
    let last: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 5; i++) {
      last = await solidJpeg(64, 48, hue(i));
      await cam.send({ data: last, captureUs: Date.now() * 1000 - 5000 });
      await ir.send({ data: await solidJpeg(32, 24, hue(i + 3)) });
    }
    await r.client.flush();
    await waitFor(
      () => r.viewer.streams().length === 2 && r.viewer.streams().every((s) => s.lastSeq === 4),
      20_000,
    );

    const api = await fetchText(`${r.base}/api/streams`);
    assert.equal(api.status, 200);
    assert.match(api.type, /^application\/json/);
    const body = JSON.parse(api.text) as { streams: Array<Record<string, unknown>>; viewers: number };
    const s = body.streams.find((x) => x.name === 'cam')!;
    assert.equal(s.kind, 'visible');
    assert.equal(s.mode, 'reliable');
    assert.equal(s.online, true);
    assert.equal(s.frames, 5);
    assert.equal(s.width, 64);
    assert.equal(s.height, 48);
    assert.equal(s.lastSeq, 4);
    assert.equal(s.missing, 0);
    assert.equal(s.mjpeg, '/streams/cam.mjpg');
    assert.ok(typeof s.latencyMs === 'number' && s.latencyMs >= 4, `latency ${String(s.latencyMs)} ms`);
    const t = body.streams.find((x) => x.name === 'ir cam')!;
    assert.equal(t.kind, 'infrared');
    assert.equal(t.jpeg, '/streams/ir%20cam.jpg');

    const jpg = await fetchText(`${r.base}/streams/cam.jpg`);
    assert.equal(jpg.status, 200);
    assert.equal(jpg.type, 'image/jpeg');
    assert.deepEqual(jpg.body, last);
    assert.equal((await fetchText(`${r.base}${String(t.jpeg)}`)).status, 200);
    assert.equal((await fetchText(`${r.base}/streams/nope.jpg`)).status, 404);
    assert.equal((await fetchText(`${r.base}/streams/nope.mjpg`)).status, 404);
    assert.equal((await fetchText(`${r.base}/streams/%E0%A4%A.jpg`)).status, 400);
    assert.equal((await fetchText(`${r.base}/elsewhere`)).status, 404);
    assert.equal((await fetch(`${r.base}/api/streams`, { method: 'POST' })).status, 405);

    const page = await fetchText(`${r.base}/`);
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.text, /<title>framewire viewer<\/title>/);
    const head = await fetch(`${r.base}/`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.match(head.headers.get('content-security-policy') ?? '', /default-src 'none'/);

    // The folder sink keeps latest.jpg as the newest JPEG of each stream.
    await waitFor(
      () =>
        existsSync(join(r.dir, 'cam', 'latest.jpg')) &&
        readFileSync(join(r.dir, 'cam', 'latest.jpg')).equals(last),
      20_000,
      'latest.jpg holding the last frame',
    );
    await r.close();
  });

  test('MJPEG: a multipart stream with Content-Type and Content-Length per part', async () => {
    const r = await rig();
    const cam = r.client.stream('cam', { kind: 'visible', mode: 'live' });
    await cam.send({ data: await solidJpeg(80, 60, [255, 0, 0]) });
    await waitFor(() => r.viewer.streams()[0]?.lastSeq === 0, 20_000);
    const f = feed([cam], 50, [80, 60]);
    try {
      const { contentType, parts } = await readMjpeg(`${r.base}/streams/cam.mjpg`, 4);
      assert.match(contentType, /^multipart\/x-mixed-replace; boundary=/);
      assert.equal(parts.length, 4);
      for (const p of parts) {
        assert.match(p.headers, /Content-Type: image\/jpeg/);
        assert.deepEqual(jpegSize(p.data), { width: 80, height: 60 });
        const meta = await sharp(p.data).metadata();
        assert.equal(meta.format, 'jpeg');
      }
      const seqs = parts.map((p) => Number(/X-Framewire-Seq: (\d+)/.exec(p.headers)?.[1]));
      for (let i = 1; i < seqs.length; i++)
        assert.ok(seqs[i]! > seqs[i - 1]!, `increasing seqs ${seqs.join(',')}`);
    } finally {
      f.stop();
      await r.close();
    }
  });

  test('MJPEG read by ffmpeg gives decodable frames', async () => {
    const r = await rig();
    const cam = r.client.stream('cam', { kind: 'visible', mode: 'live' });
    const f = feed([cam], 50, [96, 72]);
    const out = await mkdtemp(join(tmpdir(), 'fw-ffmpeg-'));
    try {
      await waitFor(() => (r.viewer.streams()[0]?.frames ?? 0) > 0, 20_000);
      const ffmpeg = findFfmpeg();
      const args = ['-hide_banner', '-loglevel', 'error', '-y', '-i', `${r.base}/streams/cam.mjpg`];
      args.push('-frames:v', '3', '-f', 'image2', join(out, 'out%d.jpg'));
      const child = spawn(ffmpeg, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      assert.equal(code, 0, `ffmpeg failed: ${stderr}`);
      const files = (await readdir(out)).sort();
      assert.deepEqual(files, ['out1.jpg', 'out2.jpg', 'out3.jpg']);
      for (const name of files) {
        const meta = await sharp(join(out, name)).metadata();
        assert.equal(meta.width, 96);
        assert.equal(meta.height, 72);
      }
    } finally {
      f.stop();
      await rm(out, { recursive: true, force: true });
      await r.close();
    }
  });
});

describe('WebSocket viewers', () => {
  test('the page protocol: hello, streams, frames with a header, messages with boxes, stats', async () => {
    const r = await rig();
    const pc = await pageClient(r.base);
    const cam = r.client.stream('cam', { kind: 'infrared', mode: 'live' });
    const data = await solidJpeg(40, 30, [0, 255, 0]);
    const seq = await cam.send({ data, captureUs: 1_700_000_000_000_000 });
    await r.client.message(
      { detections: [{ box: [1, 2, 3, 4], label: 'person', score: 0.9 }], text: 'x'.repeat(100) },
      { ref: { stream: 'cam', seq } },
    );
    await waitFor(
      () => pc.count() >= 1 && pc.texts.some((t) => t.type === 'message'),
      20_000,
      'frame and message',
    );
    await waitFor(() => pc.texts.some((t) => t.type === 'stats'), 20_000, 'stats');
    assert.equal(pc.texts[0]?.type, 'hello');
    assert.ok(pc.texts.some((t) => t.type === 'streams' && JSON.stringify(t.streams).includes('"infrared"')));
    const frame = pc.frames.get('cam')![0]!;
    assert.deepEqual(frame.data, data);
    assert.equal(frame.head.seq, seq);
    assert.equal(frame.head.kind, 'infrared');
    assert.equal(frame.head.width, 40);
    assert.equal(frame.head.height, 30);
    assert.equal(frame.head.captureUs, 1_700_000_000_000_000);
    assert.equal(frame.head.contentType, 'image/jpeg');
    const msg = pc.texts.find((t) => t.type === 'message')!.message as Record<string, unknown>;
    assert.deepEqual(msg.ref, { stream: 'cam', seq });
    assert.deepEqual(msg.boxes, [{ x: 1, y: 2, w: 3, h: 4, label: 'person', score: 0.9 }]);
    assert.equal(msg.normalized, false);

    // A page that connects later gets the stream list, the latest frame and the recent messages at once.
    const late = await pageClient(r.base);
    await waitFor(() => late.count() >= 1, 20_000, 'latest frame for a late page');
    const hello = late.texts[0]!;
    assert.equal(hello.type, 'hello');
    assert.equal((hello.messages as unknown[]).length, 1);
    assert.equal((hello.streams as unknown[]).length, 1);

    // A page of another site may not connect (no CORS for WebSockets).
    const evil = new WebSocket(`${r.base.replace(/^http/, 'ws')}/ws`, { origin: 'http://evil.example' });
    const status = await new Promise<number>((resolve) => {
      evil.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      evil.on('error', () => resolve(-1));
    });
    assert.equal(status, 403);
    pc.ws.close();
    late.ws.close();
    await r.close();
  });

  test('a stalled viewer neither slows another one nor grows: newest wins, drops counted, memory bounded', async () => {
    const maxBufferedBytes = 256 * 1024;
    const r = await rig({ maxBufferedBytes });
    const healthy = await pageClient(r.base);
    const stalled = new WebSocket(`${r.base.replace(/^http/, 'ws')}/ws`);
    await new Promise<void>((resolve, reject) => {
      stalled.once('open', () => resolve());
      stalled.once('error', reject);
    });
    // Never read again: the kernel buffers fill, then the viewer's socket buffer.
    stalled.pause();
    await waitFor(() => r.viewer.debug().length === 2, 20_000, 'two viewers');

    // About 30 MB of hard-to-compress JPEGs, paced, on two reliable streams (every frame reaches the viewer).
    const pictures = await Promise.all(Array.from({ length: 6 }, (_, i) => noiseJpeg(480, 360, i)));
    const maxFrame = Math.max(...pictures.map((p) => p.length));
    const a = r.client.stream('a', { mode: 'reliable' });
    const b = r.client.stream('b', { mode: 'reliable' });
    const perStream = 90;
    for (let i = 0; i < perStream; i++) {
      await a.send({ data: pictures[i % 6]!, name: `${i}.jpg` });
      await b.send({ data: pictures[(i + 3) % 6]!, name: `${i}.jpg` });
      await new Promise((res) => setTimeout(res, 30));
    }
    await r.client.flush();
    await waitFor(
      () =>
        healthy.frames.get('a')?.at(-1)?.seq === perStream - 1 &&
        healthy.frames.get('b')?.at(-1)?.seq === perStream - 1,
      60_000,
      'the healthy viewer to get the last frames',
    );

    const debug = r.viewer.debug();
    const healthyId = Number(healthy.texts.find((t) => t.type === 'hello')?.viewer);
    const h = debug.find((d) => d.id === healthyId)!;
    const s = debug.find((d) => d.id !== healthyId)!;
    // Every frame either reached the healthy viewer or was counted as dropped for it; almost all arrived.
    assert.equal(healthy.count() + h.drops, 2 * perStream);
    assert.ok(
      healthy.count() >= 0.9 * 2 * perStream,
      `healthy viewer got ${healthy.count()} of ${2 * perStream}`,
    );
    assert.deepEqual(healthy.frames.get('a')!.at(-1)!.data, pictures[(perStream - 1) % 6]);

    // The stalled one got fewer, the rest were dropped (newest wins), and what it holds is bounded.
    assert.ok(s.drops > 0, `stalled viewer drops ${s.drops}`);
    assert.ok(s.sentFrames < 2 * perStream, `stalled viewer was sent ${s.sentFrames}`);
    assert.equal(s.sentFrames + s.drops + s.queuedFrames, 2 * perStream);
    assert.ok(s.queuedFrames <= 2, `queued frames ${s.queuedFrames}`);
    assert.ok(s.queuedBytes <= 2 * maxFrame, `queued bytes ${s.queuedBytes}`);
    assert.ok(s.bufferedAmount <= maxBufferedBytes + maxFrame + 64 * 1024, `buffered ${s.bufferedAmount}`);
    assert.ok(s.queuedTextBytes <= 1024 * 1024, `queued text ${s.queuedTextBytes}`);
    const api = JSON.parse((await fetchText(`${r.base}/api/streams`)).text) as {
      streams: { viewerDrops: number }[];
    };
    assert.equal(
      api.streams.reduce((n, x) => n + x.viewerDrops, 0),
      s.drops + h.drops,
      'viewer drops are reported per stream',
    );
    stalled.terminate();
    healthy.ws.close();
    await r.close();
  });
});

describe('lifecycle', () => {
  test('a sender that leaves: its streams go offline, then away; a silent page is let go', async () => {
    const r = await rig({ offlineMs: 300, heartbeatMs: 200, statsIntervalMs: 100 });
    const pc = await pageClient(r.base);
    const silent = new WebSocket(`${r.base.replace(/^http/, 'ws')}/ws`);
    await new Promise((resolve) => silent.once('open', resolve));
    silent.pause();
    await waitFor(() => r.viewer.debug().length === 2, 20_000, 'two viewers');
    const cam = r.client.stream('cam', { mode: 'reliable' });
    await cam.send({ data: await solidJpeg(16, 16, [9, 9, 9]) });
    await r.client.close();
    const lists = () =>
      pc.texts.filter((t) => t.type === 'streams').map((t) => t.streams as { online: boolean }[]);
    await waitFor(() => lists().some((l) => l.length === 1 && l[0]!.online === false), 20_000, 'offline');
    await waitFor(() => r.viewer.streams().length === 0, 20_000, 'removed');
    await waitFor(() => lists().at(-1)?.length === 0, 20_000, 'an empty list sent to the page');
    assert.equal((await fetchText(`${r.base}/streams/cam.jpg`)).status, 404);
    // The paused page answers no ping and is closed; the reading one stays.
    await waitFor(() => r.viewer.debug().length === 1, 20_000, 'the silent page to be let go');
    assert.equal(pc.ws.readyState, WebSocket.OPEN);
    pc.ws.close();
    silent.terminate();
    await r.close();
  });
});

describe('the page in headless Chromium', () => {
  test('two live tiles whose pixels change, a message in the panel, a box drawn over its frame', async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium`);
    // With a viewer token: the first load carries ?token=, the cookie it sets carries the rest (the
    // script, the style sheet, the WebSocket and its reconnects).
    const TOKEN = 'page-token';
    const r = await rig({ token: TOKEN });
    const sync = await SyncSink.open([['front', 'thermal']], undefined, {});
    r.viewer.addSync(sync);
    const a = r.client.stream('front', { kind: 'visible', mode: 'live' });
    const b = r.client.stream('thermal', { kind: 'infrared', mode: 'live' });
    const f = feed([a, b], 80, [160, 120]);
    const userDataDir = await mkdtemp(join(tmpdir(), 'fw-chromium-'));
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-quic',
        '--no-first-run',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1200, height: 800 },
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const errors: string[] = [];
      const violations: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
        if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
      });
      // Every CSP violation of every page loaded, as the browser reports it to the page.
      await page.exposeFunction('fwViolation', (v: string) => violations.push(v));
      await page.addInitScript(() => {
        const g = globalThis as unknown as {
          addEventListener(
            t: string,
            f: (e: { violatedDirective: string; blockedURI: string }) => void,
          ): void;
          fwViolation(v: string): void;
        };
        g.addEventListener('securitypolicyviolation', (e) =>
          g.fwViolation(`${e.violatedDirective} ${e.blockedURI}`),
        );
      });
      // The browser logs the 401 itself, at a moment of its choosing: wait for that line, then forget it.
      const logged401 = page
        .waitForEvent('console', { predicate: (m) => /401/.test(m.text()), timeout: 30_000 })
        .catch(() => undefined);
      const noToken = await page.goto(r.viewer.url);
      assert.equal(noToken?.status(), 401, 'without the token');
      await logged401;
      errors.length = 0;
      await page.goto(`${r.viewer.url}?token=${TOKEN}`);
      const cookies = await browser.cookies(r.viewer.url);
      assert.equal(cookies.length, 1);
      assert.equal(cookies[0]!.httpOnly, true);
      assert.equal(cookies[0]!.sameSite, 'Strict');
      // The functions below run in the page (serialised by Playwright), so they use nothing from here.
      const shown = (name: string) =>
        page.evaluate((n) => (globalThis as unknown as Page).framewire.shown[n] ?? 0, name);
      await page.waitForFunction(
        () => {
          const fw = (globalThis as unknown as Page).framewire;
          return (fw?.shown.front ?? 0) > 2 && (fw?.shown.thermal ?? 0) > 2;
        },
        undefined,
        { timeout: 60_000 },
      );
      const pixels = () =>
        page.evaluate(() => {
          const out: Record<string, number[]> = {};
          for (const t of Array.from((globalThis as unknown as Page).document.querySelectorAll('.tile'))) {
            const c = t.querySelector('canvas')!;
            const d = c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
            out[t.dataset.stream ?? ''] = [d[0]!, d[1]!, d[2]!];
          }
          return out;
        });
      const first = await pixels();
      assert.deepEqual(Object.keys(first).sort(), ['front', 'thermal']);
      const before = { front: await shown('front'), thermal: await shown('thermal') };
      await page.waitForFunction(
        (b) => {
          const fw = (globalThis as unknown as Page).framewire;
          return (fw.shown.front ?? 0) > b.front + 3 && (fw.shown.thermal ?? 0) > b.thermal + 3;
        },
        before,
        { timeout: 60_000 },
      );
      const second = await pixels();
      assert.notDeepEqual(second.front, first.front, 'the front tile changed');
      assert.notDeepEqual(second.thermal, first.thermal, 'the thermal tile changed');
      assert.match((await page.textContent('.tile[data-stream="thermal"] .badge')) ?? '', /infrared/);

      // Freeze on a blue frame, then name it in a message with a box: the panel shows it, the box is drawn.
      f.stop();
      await new Promise((res) => setTimeout(res, 300));
      const seq = await a.send({ data: await solidJpeg(160, 120, [0, 0, 255]) });
      const pixel = (x: number, y: number) =>
        page.evaluate(
          ([px, py]) => {
            const c = (globalThis as unknown as Page).document.querySelector(
              '.tile[data-stream="front"] canvas',
            )!;
            return Array.from(c.getContext('2d').getImageData(px!, py!, 1, 1).data);
          },
          [x, y],
        );
      await page.waitForFunction(
        () => {
          const c = (globalThis as unknown as Page).document.querySelector(
            '.tile[data-stream="front"] canvas',
          )!;
          const d = c.getContext('2d').getImageData(100, 100, 1, 1).data;
          return d[2]! > 200 && d[0]! < 50;
        },
        undefined,
        { timeout: 60_000 },
      );
      await r.client.message(
        { detections: [{ box: [20, 20, 60, 40], label: 'person', score: 0.9 }], note: 'hello-from-test' },
        { ref: { stream: 'front', seq } },
      );
      await page.waitForFunction(
        () =>
          ((globalThis as unknown as Page).document.querySelector('#msgs')?.textContent ?? '').includes(
            'hello-from-test',
          ),
        undefined,
        { timeout: 60_000 },
      );
      assert.match((await page.textContent('#msgs')) ?? '', new RegExp(`front #${seq}`));
      const inside = await pixel(50, 40);
      const edge = await pixel(20, 40);
      assert.ok(inside[2]! > 200 && inside[0]! < 50, `inside the box the frame shows: ${inside.join(',')}`);
      assert.ok(
        !(edge[2]! > 200 && edge[0]! < 50 && edge[1]! < 50),
        `the box edge is drawn: ${edge.join(',')}`,
      );
      // A reload without ?token= works on the cookie alone; so does the sync page.
      await page.goto(r.viewer.url);
      await page.waitForFunction(
        () => (globalThis as unknown as { framewire?: { connected: boolean } }).framewire?.connected === true,
        undefined,
        { timeout: 60_000 },
      );
      const syncPage = await page.goto(`${r.viewer.url}sync`);
      assert.equal(syncPage?.status(), 200);
      await page.waitForSelector('#groups h2', { timeout: 60_000 });
      assert.deepEqual(errors, []);
      assert.deepEqual(violations, [], 'no Content-Security-Policy violation');
    } finally {
      f.stop();
      await sync.close();
      await browser.close();
      await rm(userDataDir, { recursive: true, force: true });
      await r.close();
    }
  });
});

describe('serve --view', () => {
  test('serves the viewer next to the receiver; a bad address is a usage error', async () => {
    const out = new PassThrough();
    const err = new PassThrough();
    let e = '';
    err.on('data', (d: Buffer) => {
      e += d.toString();
    });
    out.resume();
    const ac = new AbortController();
    const done = run(['serve', '--listen', 'tcp://127.0.0.1:0', '--view', '127.0.0.1:0'], {
      stdout: out,
      stderr: err,
      signal: ac.signal,
    });
    await waitFor(
      () => /viewer on http:\/\/127\.0\.0\.1:\d+\//.test(e),
      20_000,
      'serve to print the viewer URL',
    );
    const url = /viewer on (http:\/\/127\.0\.0\.1:\d+\/)/.exec(e)![1]!;
    assert.equal((await fetch(url)).status, 200);
    const metrics = await fetchText(`${url}metrics`);
    assert.match(metrics.text, /framewire_senders_connected 0/);
    ac.abort();
    assert.equal(await done, 0);
    await assert.rejects(fetch(url));

    const err2 = new PassThrough();
    let e2 = '';
    err2.on('data', (d: Buffer) => {
      e2 += d.toString();
    });
    assert.equal(await run(['serve', '--view', 'nonsense:port'], { stdout: out, stderr: err2 }), 2);
    assert.match(e2, /HOST:PORT/);
  });
});
