/**
 * The viewer's gate against DNS rebinding and other sites' pages: only known Host values (loopback names,
 * the bound address, --view-host names) reach any route or WebSocket upgrade (the pages' and the framewire
 * senders' at /ws); the optional viewer token (Bearer, ?token= and its cookie); and the pages' CSP without
 * 'unsafe-inline'. Real sockets on 127.0.0.1 (and 0.0.0.0), port 0. The pages in a real browser are in
 * viewer.test.ts and capture.test.ts.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { PassThrough } from 'node:stream';
import { after, describe, test } from 'node:test';
import { run } from '../../src/cli/run.js';
import { connect, createServer, type FramewireServer, webSocketSenders } from '../../src/index.js';
import { SyncSink } from '../../src/sinks/sync.js';
import { createViewer, type ViewerOptions, ViewerSink } from '../../src/sinks/viewer.js';
import { solidJpeg } from '../helpers/images.js';
import { waitFor } from '../helpers/tmp.js';

const closers: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One GET to the viewer on 127.0.0.1 with the given headers (Host among them); MJPEG is cut after its head. */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      const done = () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      if (String(res.headers['content-type']).startsWith('multipart/')) {
        res.destroy();
        done();
        return;
      }
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', done);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket upgrade to /ws with the given headers: 101 when taken, else the refusal's status. */
function upgrade(port: number, headers: Record<string, string> = {}, path = '/ws'): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A viewer beside a receiver, with one JPEG stream `cam` already shown. */
async function rig(options: ViewerOptions = {}): Promise<{ viewer: ViewerSink; server: FramewireServer }> {
  const viewer = await createViewer({ port: 0, ...options });
  const server = await createServer({ listen: 'tcp://127.0.0.1:0', sinks: [viewer] });
  viewer.takeSenders(webSocketSenders(server));
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  closers.push(async () => {
    client.destroy();
    await server.close();
    await viewer.close();
  });
  await client.stream('cam', { mode: 'reliable' }).send({ data: await solidJpeg(32, 24, [0, 200, 0]) });
  await waitFor(() => viewer.streams().some((s) => s.frames > 0), 20_000, 'the frame at the viewer');
  return { viewer, server };
}

const ROUTES = ['/', '/api/streams', '/streams/cam.mjpg', '/streams/cam.jpg', '/metrics', '/capture'];

describe('Host allow-list', () => {
  test("a foreign Host gets 421 on every route and on WebSocket upgrades, the senders' too", async () => {
    const { viewer } = await rig();
    const port = viewer.port;
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.evil.example:${port}`, 'a_b c']) {
      for (const path of ROUTES) {
        const r = await get(port, path, { Host: host });
        assert.equal(r.status, 421, `${path} with Host "${host}"`);
        assert.doesNotMatch(r.body, /cam/, 'nothing of the streams in the refusal');
      }
      assert.equal(await upgrade(port, { Host: host }), 421, `page upgrade with Host "${host}"`);
      assert.equal(
        await upgrade(port, { Host: host, 'Sec-WebSocket-Protocol': 'framewire.v1' }),
        421,
        `sender upgrade with Host "${host}"`,
      );
    }
    // The same requests with a loopback name work.
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      'localhost',
      'LOCALHOST:1234',
      `[::1]:${port}`,
    ]) {
      assert.equal((await get(port, '/api/streams', { Host: host })).status, 200, host);
    }
    assert.equal((await get(port, '/streams/cam.mjpg', { Host: `localhost:${port}` })).status, 200);
    assert.equal(await upgrade(port, { Host: `localhost:${port}` }), 101);
    assert.equal(
      await upgrade(port, { Host: `127.0.0.1:${port}`, 'Sec-WebSocket-Protocol': 'framewire.v1' }),
      101,
    );
    // The Origin check stays on top of the allow-list.
    assert.equal(
      await upgrade(port, { Host: `127.0.0.1:${port}`, Origin: 'http://evil.example' }),
      403,
      'a page of another site',
    );
    assert.equal(await upgrade(port, { Host: `127.0.0.1:${port}`, Origin: `http://127.0.0.1:${port}` }), 101);
  });

  test('--view-host names work with any port; the bound address only with its port', async () => {
    const { viewer } = await rig({ allowedHosts: ['cams.example.com', 'FE80::1'] });
    const port = viewer.port;
    for (const host of [
      'cams.example.com',
      'CAMS.example.com:8443',
      `cams.example.com:${port}`,
      '[fe80::1]:80',
    ]) {
      assert.equal((await get(port, '/', { Host: host })).status, 200, host);
      assert.equal(await upgrade(port, { Host: host }), 101, host);
    }
    assert.equal((await get(port, '/', { Host: 'other.example.com' })).status, 421);
    assert.equal((await get(port, '/', { Host: 'evil.cams.example.com' })).status, 421);
  });

  test("a specific bind address is allowed with its port only; a wildcard allows this machine's addresses", async () => {
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (lan) {
      const v = await createViewer({ host: lan, port: 0 });
      closers.push(() => v.close());
      const r = (host: string) =>
        new Promise<number>((resolve, reject) => {
          request(
            { host: lan, port: v.port, path: '/healthz', headers: { Host: host }, agent: false },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          )
            .on('error', reject)
            .end();
        });
      assert.equal(await r(`${lan}:${v.port}`), 200);
      assert.equal(await r(`${lan}:${v.port + 1}`), 421);
      assert.equal(await r(lan), 421, 'without the port (not 80)');
    }
    const any = await createViewer({ host: '0.0.0.0', port: 0 });
    closers.push(() => any.close());
    const port = any.port;
    assert.equal((await get(port, '/healthz', { Host: `127.0.0.1:${port}` })).status, 200);
    if (lan) assert.equal((await get(port, '/healthz', { Host: `${lan}:${port}` })).status, 200, lan);
    assert.equal(
      (await get(port, '/healthz', { Host: `0.0.0.0:${port}` })).status,
      421,
      'a wildcard is no name',
    );
    assert.equal((await get(port, '/healthz', { Host: `192.0.2.77:${port}` })).status, 421, 'not ours');
    assert.equal((await get(port, '/healthz', { Host: `evil.example:${port}` })).status, 421);
  });

  test('bad names and an empty token are ERR_BAD_OPTION; --view-host without --view is a usage error', async () => {
    for (const h of ['http://x.example', 'x.example:80', 'a b', '', 'x/y']) {
      assert.throws(() => new ViewerSink({ allowedHosts: [h] }), { code: 'ERR_BAD_OPTION' }, h);
    }
    assert.throws(() => new ViewerSink({ token: '' }), { code: 'ERR_BAD_OPTION' });
    const out = new PassThrough().resume();
    const err = () => {
      let e = '';
      const s = new PassThrough();
      s.on('data', (d: Buffer) => {
        e += d.toString();
      });
      return { s, text: () => e };
    };
    const e1 = err();
    assert.equal(await run(['serve', '--view-host', 'cams.local'], { stdout: out, stderr: e1.s }), 2);
    assert.match(e1.text(), /need --view/);
    const e2 = err();
    assert.equal(
      await run(['serve', '--view', '127.0.0.1:0', '--view-host', 'http://x'], { stdout: out, stderr: e2.s }),
      2,
    );
    assert.match(e2.text(), /not a host name/);
    // demo and consume take them too.
    const e3 = err();
    assert.equal(await run(['demo', '--view-host', 'x.example:80'], { stdout: out, stderr: e3.s }), 2);
    assert.match(e3.text(), /not a host name/);
    const e4 = err();
    assert.equal(
      await run(['consume', 'nats://127.0.0.1:1', '--view-token', 'x'], { stdout: out, stderr: e4.s }),
      2,
    );
    assert.match(e4.text(), /need --view/);
    // Typed, it needs --view even when FRAMEWIRE_VIEW_TOKEN holds the same value; the variable alone is ignored.
    process.env.FRAMEWIRE_VIEW_TOKEN = 'same';
    try {
      const e5 = err();
      assert.equal(
        await run(['consume', 'nats://127.0.0.1:1', '--view-token', 'same'], { stdout: out, stderr: e5.s }),
        2,
      );
      assert.match(e5.text(), /need --view/);
      const e6 = err();
      const code = await run(['consume', 'nats://127.0.0.1:1', '--quiet'], { stdout: out, stderr: e6.s });
      assert.doesNotMatch(e6.text(), /need --view/);
      assert.notEqual(code, 0, 'no bus there');
    } finally {
      delete process.env.FRAMEWIRE_VIEW_TOKEN;
    }
  });
});

describe('viewer token', () => {
  test('without the token 401 everywhere; Bearer, ?token= and its cookie work; Host is checked first', async () => {
    const TOKEN = 'view-s3cret';
    const { viewer } = await rig({ token: TOKEN });
    const port = viewer.port;
    const Host = `127.0.0.1:${port}`;
    for (const path of ROUTES) {
      const r = await get(port, path, { Host });
      assert.equal(r.status, 401, path);
      assert.match(String(r.headers['www-authenticate']), /^Bearer/);
      assert.equal((await get(port, path, { Host, Authorization: 'Bearer wrong' })).status, 401, path);
      assert.equal((await get(port, `${path}?token=wrong`, { Host })).status, 401, path);
      assert.equal((await get(port, path, { Host, Authorization: `Bearer ${TOKEN}` })).status, 200, path);
    }
    assert.equal(await upgrade(port, { Host }), 401);
    assert.equal(await upgrade(port, { Host, 'Sec-WebSocket-Protocol': 'framewire.v1' }), 401, 'senders too');
    assert.equal(await upgrade(port, { Host, Authorization: `Bearer ${TOKEN}` }), 101);
    assert.equal(await upgrade(port, { Host }, `/ws?token=${TOKEN}`), 101);

    // ?token= on the page sets an HttpOnly SameSite=Strict cookie; the cookie alone then opens the rest.
    const page = await get(port, `/?token=${encodeURIComponent(TOKEN)}`, { Host });
    assert.equal(page.status, 200);
    const setCookie = String(page.headers['set-cookie']);
    assert.match(setCookie, new RegExp(`^framewire_view_${port}=[^;]+; Path=/; HttpOnly; SameSite=Strict$`));
    assert.ok(!setCookie.includes(TOKEN), 'the cookie is not the token itself');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    const cookie = setCookie.split(';')[0]!;
    assert.equal((await get(port, '/api/streams', { Host, Cookie: `a=b; ${cookie}` })).status, 200);
    assert.equal((await get(port, '/streams/cam.mjpg', { Host, Cookie: cookie })).status, 200);
    assert.equal(await upgrade(port, { Host, Cookie: cookie }), 101);
    assert.equal((await get(port, '/api/streams', { Host, Cookie: `${cookie}x` })).status, 401);
    assert.equal(
      (await get(port, '/api/streams', { Host, Cookie: cookie.replace(/_\d+=/, '_1=') })).status,
      401,
      'the cookie of another port',
    );
    // A framewire sender over the viewer's /ws gives the viewer token in the URL.
    await assert.rejects(connect(`ws://127.0.0.1:${port}/ws`));
    const sender = await connect(`ws://127.0.0.1:${port}/ws?token=${TOKEN}`);
    try {
      await sender.stream('over-ws', { mode: 'reliable' }).send({ data: await solidJpeg(16, 16, [9, 9, 9]) });
      await waitFor(() => viewer.streams().some((s) => s.name === 'over-ws'), 20_000, 'the frame over /ws');
    } finally {
      sender.destroy();
    }
    // A foreign Host is refused even with the token.
    assert.equal(
      (await get(port, '/', { Host: 'evil.example', Authorization: `Bearer ${TOKEN}` })).status,
      421,
    );
    assert.equal(await upgrade(port, { Host: 'evil.example' }, `/ws?token=${TOKEN}`), 421);
  });

  test('a request target that is no URL (//, //[) is 400, on the viewer and the ws:// listener, which go on serving', async () => {
    const { viewer } = await rig();
    const Host = `127.0.0.1:${viewer.port}`;
    for (const path of ['//', '//[', '//:99999']) {
      assert.equal((await get(viewer.port, path, { Host })).status, 400, path);
      assert.equal(await upgrade(viewer.port, { Host }, path), 400, `upgrade to ${path}`);
    }
    assert.equal((await get(viewer.port, '/api/streams', { Host })).status, 200, 'still serving');
    const ws = await createServer({ listen: 'ws://127.0.0.1:0' });
    closers.push(() => ws.close());
    const wsHost = `127.0.0.1:${ws.port}`;
    assert.equal(
      await upgrade(ws.port, { Host: wsHost, 'Sec-WebSocket-Protocol': 'framewire.v1' }, '//'),
      400,
    );
    assert.equal(
      await upgrade(ws.port, { Host: wsHost, 'Sec-WebSocket-Protocol': 'framewire.v1' }, '/'),
      101,
    );
  });

  test('with a token, /favicon.ico alone answers without it (204, nothing else opens there)', async () => {
    const { viewer } = await rig({ token: 'icon-s3cret' });
    const Host = `127.0.0.1:${viewer.port}`;
    const icon = await get(viewer.port, '/favicon.ico', { Host });
    assert.equal(icon.status, 204);
    assert.equal(icon.body, '');
    assert.equal(await upgrade(viewer.port, { Host }, '/favicon.ico'), 404, 'no WebSocket at the icon');
    assert.equal((await get(viewer.port, '/favicon.ico?x=1', { Host })).status, 401, 'the exact path only');
  });

  test('serve --view-token and --view-host reach the viewer', async () => {
    const out = new PassThrough().resume();
    const err = new PassThrough();
    let e = '';
    err.on('data', (d: Buffer) => {
      e += d.toString();
    });
    const ac = new AbortController();
    const done = run(
      [
        'serve',
        '--listen',
        'tcp://127.0.0.1:0',
        '--view',
        '127.0.0.1:0',
        '--view-token',
        'tk',
        '--view-host',
        'cams.lan',
      ],
      { stdout: out, stderr: err, signal: ac.signal },
    );
    try {
      await waitFor(() => /viewer on http:\/\/127\.0\.0\.1:\d+\//.test(e), 20_000, 'the viewer URL');
      const port = Number(/viewer on http:\/\/127\.0\.0\.1:(\d+)\//.exec(e)![1]);
      assert.equal((await get(port, '/api/streams', { Host: 'cams.lan' })).status, 401);
      assert.equal((await get(port, '/api/streams?token=tk', { Host: 'cams.lan' })).status, 200);
      assert.equal((await get(port, '/api/streams?token=tk', { Host: 'evil.example' })).status, 421);
    } finally {
      ac.abort();
      assert.equal(await done, 0);
    }
  });
});

describe('Content-Security-Policy', () => {
  test('the viewer, capture and sync pages allow no inline script or style, and their files are served', async () => {
    const { viewer } = await rig();
    const sync = await SyncSink.open([['a', 'b']], undefined, {});
    closers.push(() => sync.close());
    viewer.addSync(sync);
    const port = viewer.port;
    const Host = `127.0.0.1:${port}`;
    for (const path of ['/', '/capture', '/sync']) {
      const r = await get(port, path, { Host });
      assert.equal(r.status, 200, path);
      const csp = String(r.headers['content-security-policy']);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|unsafe-hashes/, `${path}: ${csp}`);
      assert.match(csp, /script-src 'self';/, path);
      assert.match(csp, /style-src 'self';/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.doesNotMatch(r.body, /<script(?![^>]*\ssrc=)/, `${path}: no inline script`);
      assert.doesNotMatch(r.body, /<style|\sstyle=|\son[a-z]+=/i, `${path}: no inline style or handler`);
    }
    const files: Array<[string, RegExp]> = [
      ['/viewer.js', /^text\/javascript/],
      ['/viewer.css', /^text\/css/],
      ['/capture.js', /^text\/javascript/],
      ['/capture-main.js', /^text\/javascript/],
      ['/capture.css', /^text\/css/],
      ['/sync.js', /^text\/javascript/],
      ['/sync.css', /^text\/css/],
    ];
    for (const [path, type] of files) {
      const r = await get(port, path, { Host });
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers['content-type']), type, path);
      assert.ok(r.body.length > 50, path);
    }
    // Other answers carry a CSP that allows nothing.
    const api = await get(port, '/api/streams', { Host });
    assert.match(String(api.headers['content-security-policy']), /^default-src 'none'/);
  });
});
