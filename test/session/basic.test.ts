import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, createServer, type ReceivedFrame, type ReceivedMessage } from '../../src/index.js';
import { payload, waitFor } from '../helpers/tmp.js';

test('frames and messages go from client to server in order, acked', async () => {
  const server = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const frames: ReceivedFrame[] = [];
  const messages: ReceivedMessage[] = [];
  server.on('frame', (f) => frames.push(f));
  server.on('message', (m) => messages.push(m));
  const client = await connect(`tcp://127.0.0.1:${server.port}`);
  const a = client.stream('cam0', { kind: 'visible' });
  const b = client.stream('ir0', { kind: 'infrared' });
  for (let i = 0; i < 200; i++) {
    await a.send({ data: payload(i, 1000 + i), name: `${i}.jpg`, meta: { i } });
    if (i % 2 === 0) await b.send({ data: payload(1000 + i, 500) });
  }
  await client.message({ detections: [[1, 2, 3, 4]] }, { ref: { stream: 'cam0', seq: 5 } });
  const stats = await client.close();
  assert.equal(stats.framesAcked, 300);
  assert.equal(stats.messagesAcked, 1);
  await waitFor(() => frames.length === 300 && messages.length === 1);
  const cam = frames.filter((f) => f.stream.name === 'cam0');
  assert.deepEqual(
    cam.map((f) => f.seq),
    [...Array(200).keys()],
  );
  for (const f of cam) {
    assert.ok(f.data.equals(payload(f.seq, 1000 + f.seq)));
    assert.equal(f.name, `${f.seq}.jpg`);
    assert.deepEqual(f.meta, { i: f.seq });
  }
  assert.equal(frames.filter((f) => f.stream.kind === 'infrared').length, 100);
  assert.deepEqual(messages[0]!.ref, { stream: 'cam0', seq: 5 });
  await server.close();
});

test('aborting the signal stops a connect that is still retrying, at once', async () => {
  const probe = await createServer({ listen: 'tcp://127.0.0.1:0' });
  const port = probe.port;
  await probe.close();
  const ac = new AbortController();
  const t0 = Date.now();
  setTimeout(() => ac.abort(), 300);
  await assert.rejects(connect(`tcp://127.0.0.1:${port}`, { retryForMs: 30_000, signal: ac.signal }), {
    code: 'ERR_CLOSED',
  });
  assert.ok(Date.now() - t0 < 5000, 'stopped well before retryForMs');
});
