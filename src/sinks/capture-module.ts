/**
 * The browser side of the capture page: one small ES module, served as it is at `/capture.js` (no build
 * step), that speaks framewire protocol v1 over the viewer's `/ws`. Its constants come from
 * src/protocol/constants.ts, written into the module text when it is served, so the browser and the Node
 * peers cannot drift apart. The protocol functions at the top touch no DOM (tests may import the module in
 * Node); `start()` at the bottom drives the camera page.
 */
import {
  ContentTypeCode,
  Flags,
  FRAME_HEAD_FIXED,
  HEADER_BYTES,
  MAGIC0,
  MAGIC1,
  MESSAGE_CHANNEL,
  MessageType,
  PROTOCOL_VERSION,
  STREAM_KINDS,
  STREAM_MODES,
} from '../protocol/constants.js';

const CONSTANTS = {
  MAGIC0,
  MAGIC1,
  PROTOCOL_VERSION,
  HEADER_BYTES,
  FRAME_HEAD_FIXED,
  MESSAGE_CHANNEL,
  T: MessageType,
  FLAGS: Flags,
  JPEG: ContentTypeCode['image/jpeg'],
  KINDS: STREAM_KINDS,
  MODES: STREAM_MODES,
};

const MODULE_BODY = String.raw`
export const SUBPROTOCOL = 'framewire.v1';
const enc = new TextEncoder();
const dec = new TextDecoder();

function header(type, flags, headLen, bodyLen) {
  const b = new Uint8Array(P.HEADER_BYTES + headLen);
  const v = new DataView(b.buffer);
  b[0] = P.MAGIC0; b[1] = P.MAGIC1; b[2] = P.PROTOCOL_VERSION; b[3] = type; b[4] = flags; b[5] = 0;
  v.setUint16(6, headLen); v.setUint32(8, bodyLen);
  return b;
}

function setU64(v, off, n) {
  v.setUint32(off, Math.floor(n / 0x100000000)); v.setUint32(off + 4, n >>> 0);
}
function getU64(v, off) {
  return v.getUint32(off) * 0x100000000 + v.getUint32(off + 4);
}

/** A control message (HELLO, AUTH, PONG's cousins with JSON bodies) as one Uint8Array. */
export function encodeControl(type, body) {
  const json = enc.encode(JSON.stringify(body));
  const b = header(type, 0, 0, json.length);
  const out = new Uint8Array(b.length + json.length);
  out.set(b); out.set(json, b.length);
  return out;
}

export function encodePong(time) {
  const b = header(P.T.PONG, 0, 8, 0);
  setU64(new DataView(b.buffer), P.HEADER_BYTES, time);
  return b;
}

/** The header and head of a JPEG FRAME; the payload follows it in the same WebSocket message. */
export function encodeFrameHead(f) {
  const b = header(P.T.FRAME, f.flags || 0, P.FRAME_HEAD_FIXED, f.payload.length);
  const v = new DataView(b.buffer);
  const o = P.HEADER_BYTES;
  v.setUint16(o, f.streamId); b[o + 2] = P.JPEG; b[o + 3] = 0;
  v.setUint16(o + 4, f.width || 0); v.setUint16(o + 6, f.height || 0);
  setU64(v, o + 8, f.seq); setU64(v, o + 16, f.captureUs);
  v.setUint32(o + 24, crc32(f.payload)); v.setUint16(o + 28, 0); v.setUint16(o + 30, 0);
  return b;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zlib's) of a Uint8Array. */
export function crc32(bytes) {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Decodes one whole message (the receiver sends one per WebSocket message). */
export function decode(buf) {
  const b = new Uint8Array(buf);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < P.HEADER_BYTES || b[0] !== P.MAGIC0 || b[1] !== P.MAGIC1) throw new Error('not a framewire message');
  const type = b[3];
  const headLen = v.getUint16(6);
  const bodyLen = v.getUint32(8);
  const head = new DataView(b.buffer, b.byteOffset + P.HEADER_BYTES, headLen);
  const body = b.subarray(P.HEADER_BYTES + headLen, P.HEADER_BYTES + headLen + bodyLen);
  if (type === P.T.ACK) return { type, stream: head.getUint16(0), seq: getU64(head, 4) };
  if (type === P.T.PING || type === P.T.PONG) return { type, time: getU64(head, 0) };
  return { type, body: bodyLen ? JSON.parse(dec.decode(body)) : {} };
}

// The wall clock, as src/time.ts keeps it: performance.now() for resolution, re-anchored on Date.now()
// whenever the two part by more than 2 ms, so that a step of the system clock after the page loaded shows.
let anchorMs = Date.now() - performance.now();
function wallUs() {
  const mono = performance.now();
  const now = Date.now();
  const t = anchorMs + mono;
  if (t < now - 2 || t > now + 3) {
    anchorMs = now - mono;
    return now * 1000;
  }
  return Math.round(t * 1000);
}

const hex = (a) => Array.from(new Uint8Array(a), (x) => x.toString(16).padStart(2, '0')).join('');
export function nonce() {
  return hex(crypto.getRandomValues(new Uint8Array(32)));
}
/** HMAC-SHA256(token, "framewire-auth-v1\n" + role + "\n" + Ns + "\n" + Nr) in hex (docs/protocol.md). */
export async function proof(token, role, senderNonce, receiverNonce) {
  const key = await crypto.subtle.importKey('raw', enc.encode(token), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const data = enc.encode('framewire-auth-v1\n' + role + '\n' + senderNonce + '\n' + receiverNonce);
  return hex(await crypto.subtle.sign('HMAC', key, data));
}

/**
 * One sender of one stream over a WebSocket URL. Reliable: keeps every unacknowledged frame and sends it
 * again after a reconnect from the receiver's resume point. Live: at most 'liveWindow' frames in flight;
 * a frame offered while they are out is refused (the caller drops it: the newest wins).
 */
export class Sender {
  constructor(url, o) {
    this.url = url;
    this.o = { window: 30, liveWindow: 2, ...o };
    this.epoch = nonce().slice(0, 16);
    this.seq = 0;
    this.held = new Map(); // seq -> { head, payload, sentAt }
    this.acked = -1;
    this.sent = 0;
    this.ackedCount = 0;
    this.latencyMs = 0;
    this.state = 'idle';
    this.error = '';
    this.ws = undefined;
    this.ready = false;
    this.closed = false;
    this.onchange = () => {};
  }

  get inFlight() { return this.held.size; }

  /** True when a frame can be sent now. */
  get canSend() {
    return this.ready && this.inFlight < (this.o.mode === 'live' ? this.o.liveWindow : this.o.window);
  }

  open() {
    if (this.closed) return;
    this.state = 'connecting';
    this.onchange();
    const ws = new WebSocket(this.url, [SUBPROTOCOL]);
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    const senderNonce = nonce();
    ws.onopen = () => {
      const hello = { protocol: 1, client: 'framewire-capture/1', epoch: this.epoch, messageSeq: 0,
        streams: [{ id: 0, name: this.o.stream, kind: this.o.kind, mode: this.o.mode, epoch: this.epoch }] };
      if (this.o.token) hello.auth = { nonce: senderNonce };
      ws.send(encodeControl(P.T.HELLO, hello));
    };
    ws.onmessage = async (ev) => {
      let m;
      try { m = decode(ev.data); } catch (e) { this.fail(String(e)); return; }
      if (m.type === P.T.AUTH && this.o.token) {
        const theirs = await proof(this.o.token, 'receiver', senderNonce, m.body.nonce);
        // The receiver's proof is checked first: an impostor gets an error and never this page's proof
        // (material for guessing the token offline), as the Node sender does (src/session/handshake.ts).
        if (theirs !== m.body.proof) {
          const message = 'wrong token: the receiver does not prove the same token (this sender sent no proof)';
          ws.send(encodeControl(P.T.ERROR, { code: 'ERR_AUTH', message, fatal: true }));
          this.error = 'ERR_AUTH: ' + message;
          this.closed = true;
          ws.close(1000);
          return;
        }
        ws.send(encodeControl(P.T.AUTH, { proof: await proof(this.o.token, 'sender', senderNonce, m.body.nonce) }));
      } else if (m.type === P.T.WELCOME) {
        const s = (m.body.streams || []).find((x) => x.id === 0);
        if (!s) return;
        this.resumeAt(s.next);
      } else if (m.type === P.T.ACK && m.stream === 0) {
        this.ack(m.seq);
      } else if (m.type === P.T.PING) {
        ws.send(encodePong(m.time));
      } else if (m.type === P.T.ERROR) {
        this.error = m.body.code + ': ' + m.body.message;
        if (m.body.fatal) this.closed = this.closed || m.body.code === 'ERR_AUTH';
        this.onchange();
      }
    };
    ws.onclose = () => {
      this.ready = false;
      if (this.ws !== ws) return;
      if (this.o.mode === 'live') this.held.clear();
      this.state = this.closed ? 'closed' : 'reconnecting';
      this.onchange();
      if (!this.closed) setTimeout(() => this.open(), 1000);
    };
  }

  resumeAt(next) {
    if (this.seq < next) this.seq = next;
    for (const s of [...this.held.keys()]) if (s < next) this.ack(s);
    // Reliable frames the receiver lacks go again, in order, flagged as resent.
    for (const [s, f] of this.held) {
      f.head[4] |= P.FLAGS.RETRANSMIT;
      this.ws.send(new Blob([f.head, f.payload]));
    }
    this.ready = true;
    this.state = 'sending';
    this.onchange();
  }

  ack(seq) {
    const now = performance.now();
    for (const [s, f] of this.held) {
      if (s > seq) continue;
      this.held.delete(s);
      this.ackedCount++;
      this.latencyMs = now - f.sentAt;
    }
    this.acked = Math.max(this.acked, seq);
    this.onchange();
  }

  /** Sends one JPEG (Uint8Array); returns false when the window is full (nothing is sent). */
  send(payload, width, height) {
    if (!this.canSend) return false;
    const seq = this.seq++;
    const captureUs = wallUs();
    const head = encodeFrameHead({ streamId: 0, seq, captureUs, width, height, payload });
    this.held.set(seq, { head, payload, sentAt: performance.now() });
    // One WebSocket message per framewire message; the browser joins the parts without a copy in JS.
    this.ws.send(new Blob([head, payload]));
    this.sent++;
    return true;
  }

  close() {
    this.closed = true;
    this.ws?.close(1000);
  }
}

function params() {
  const q = new URLSearchParams(location.search);
  const [w, h] = (q.get('size') || '640x480').split('x').map(Number);
  const kind = q.get('kind') || 'visible';
  const mode = q.get('mode') || 'live';
  return {
    stream: q.get('stream') || 'phone',
    kind: P.KINDS.includes(kind) ? kind : 'visible',
    mode: P.MODES.includes(mode) ? mode : 'live',
    fps: Math.min(60, Math.max(1, Number(q.get('fps')) || 10)),
    width: w || 640,
    height: h || 480,
    quality: Math.min(1, Math.max(0.1, Number(q.get('quality')) || 0.8)),
    token: q.get('token') || '',
    autostart: q.get('autostart') === '1',
  };
}

/** Wires the capture page: the form, the camera, the encoder loop and the stats line. */
export function start(doc = document) {
  const $ = (id) => doc.getElementById(id);
  const o = params();
  for (const k of ['stream', 'kind', 'mode', 'fps', 'quality', 'token']) $(k).value = String(o[k]);
  $('size').value = o.width + 'x' + o.height;
  let sender;
  let timer;
  let stream;
  let frames = [];
  const show = () => {
    const now = performance.now();
    frames = frames.filter((t) => now - t < 2000);
    const fps = frames.length / 2;
    $('stats').textContent = sender
      ? sender.state + ' · sent ' + sender.sent + ' · acked ' + sender.ackedCount + ' · ' + fps.toFixed(1) +
        ' fps · ack latency ' + sender.latencyMs.toFixed(0) + ' ms · in flight ' + sender.inFlight +
        (sender.error ? ' · ' + sender.error : '')
      : 'stopped';
  };
  async function go() {
    const cfg = {
      stream: $('stream').value, kind: $('kind').value, mode: $('mode').value, token: $('token').value,
      fps: Number($('fps').value) || 10, quality: Number($('quality').value) || 0.8,
    };
    const [w, h] = $('size').value.split('x').map(Number);
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: w, height: h, frameRate: cfg.fps }, audio: false });
    const video = $('video');
    video.srcObject = stream;
    await video.play();
    const canvas = $('canvas');
    canvas.width = w || video.videoWidth; canvas.height = h || video.videoHeight;
    const ctx = canvas.getContext('2d');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    sender = new Sender(proto + '//' + location.host + '/ws', cfg);
    sender.onchange = show;
    sender.open();
    let busy = false;
    timer = setInterval(() => {
      if (busy || !sender.canSend) return; // the newest picture wins: a tick with the window full is skipped
      busy = true;
      ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
      canvas.toBlob(async (blob) => {
        try {
          if (blob && sender.send(new Uint8Array(await blob.arrayBuffer()), canvas.width, canvas.height))
            frames.push(performance.now());
        } finally {
          busy = false;
          show();
        }
      }, 'image/jpeg', cfg.quality);
    }, 1000 / cfg.fps);
    $('start').disabled = true;
    $('stop').disabled = false;
  }
  function stop() {
    clearInterval(timer);
    sender?.close();
    for (const t of stream?.getTracks() || []) t.stop();
    $('start').disabled = false;
    $('stop').disabled = true;
    show();
  }
  $('start').onclick = () => go().catch((e) => { $('stats').textContent = 'camera: ' + e.message; });
  $('stop').onclick = stop;
  show();
  if (o.autostart) $('start').click();
}
`;

let cached: string | undefined;

/** The module text served at `/capture.js`. */
export function captureModule(): string {
  cached ??= `// framewire capture: protocol v1 over WebSocket from the browser (generated from src/protocol).\nconst P = ${JSON.stringify(CONSTANTS)};\n${MODULE_BODY}`;
  return cached;
}
