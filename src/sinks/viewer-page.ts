/**
 * The viewer's web page: the HTML document, its style sheet (/viewer.css) and its script (/viewer.js),
 * served as separate files so that the Content-Security-Policy allows scripts and styles from the viewer
 * itself only (no 'unsafe-inline'). No external files: the compiled library serves them as they are. The
 * protocol the script speaks is described in docs/viewer.md. Everything shown from the network goes
 * through textContent, never innerHTML.
 */
export const VIEWER_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>framewire viewer</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/viewer.css">
<script src="/viewer.js" defer></script>
</head>
<body>
<div class="top">
  <div class="logo">frame<span>wire</span></div>
  <div class="sub">live viewer</div>
  <div class="spacer"></div>
  <div class="sub" id="summary"></div>
  <div class="pill" id="status"><span class="dot"></span><span id="status-text">connecting</span></div>
</div>
<div class="layout">
  <section class="grid" id="grid" aria-label="streams"></section>
  <aside class="panel" aria-label="messages">
    <h2>Messages <span class="count" id="msg-count"></span></h2>
    <ol class="msgs" id="msgs"></ol>
  </aside>
</div>
</body>
</html>
`;

/** /viewer.css */
export const VIEWER_CSS = `:root {
  --bg: #0b0e14; --panel: #121722; --panel2: #0f131c; --line: #1f2633; --text: #d6deeb; --muted: #7d8799;
  --accent: #4fa3ff; --ok: #22c55e; --warn: #f59e0b; --bad: #ef4444;
  color-scheme: dark;
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: var(--bg); color: var(--text);
  font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.top { height: 52px; display: flex; align-items: center; gap: 14px; padding: 0 18px;
  border-bottom: 1px solid var(--line); background: var(--panel2); }
.logo { font-weight: 700; letter-spacing: .3px; font-size: 16px; }
.logo span { color: var(--accent); }
.sub { color: var(--muted); }
.spacer { flex: 1; }
.pill { display: inline-flex; align-items: center; gap: 6px; padding: 3px 10px; border-radius: 999px;
  border: 1px solid var(--line); color: var(--muted); font-size: 12px; }
.dot { width: 8px; height: 8px; border-radius: 50%; background: var(--bad); }
.pill.on .dot { background: var(--ok); box-shadow: 0 0 6px var(--ok); }
.pill.on { color: var(--text); }
.layout { display: grid; grid-template-columns: minmax(0, 1fr) 360px; gap: 16px; padding: 16px;
  height: calc(100% - 52px); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 420px), 1fr)); gap: 16px;
  align-content: start; overflow: auto; min-height: 0; }
.empty { grid-column: 1 / -1; border: 1px dashed var(--line); border-radius: 12px; padding: 48px 24px;
  text-align: center; color: var(--muted); }
.empty .hint { margin-top: 10px; }
.empty code { color: var(--text); background: var(--panel); padding: 2px 6px; border-radius: 4px; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; overflow: hidden;
  display: flex; flex-direction: column; min-width: 0; }
.tile.offline { opacity: .55; }
.tile .head { display: flex; align-items: center; gap: 8px; padding: 9px 12px; border-bottom: 1px solid var(--line); }
.tile .name { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.badge { font-size: 11px; text-transform: uppercase; letter-spacing: .5px; padding: 2px 7px; border-radius: 5px;
  border: 1px solid; white-space: nowrap; }
.k-visible { color: #7cb6ff; border-color: #2d5a94; background: #13233a; }
.k-infrared { color: #ffad6b; border-color: #8a4516; background: #2d1808; }
.k-depth { color: #d3a4ff; border-color: #6a3aa0; background: #22133a; }
.k-other { color: #b3bdcc; border-color: #3a4456; background: #181e29; }
.m-live { color: #86efac; border-color: #1e6b3b; background: #0d2617; }
.m-reliable { color: #7dd3fc; border-color: #1d5a78; background: #0b2230; }
.state { margin-left: auto; font-size: 12px; color: var(--muted); white-space: nowrap; }
.state.live { color: var(--ok); }
.state.stalled { color: var(--warn); }
.state.offline { color: var(--bad); }
.view { position: relative; background: #000; aspect-ratio: 4 / 3; }
.view canvas { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain; display: block; }
.view .note { position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--muted); font-size: 13px; }
.stats { display: flex; flex-wrap: wrap; gap: 4px 16px; padding: 8px 12px; font: 12px/1.5 ui-monospace,
  SFMono-Regular, Menlo, Consolas, monospace; color: var(--muted); border-top: 1px solid var(--line); }
.stats b { color: var(--text); font-weight: 600; }
.stats .bad b { color: var(--warn); }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 12px; display: flex;
  flex-direction: column; min-height: 0; overflow: hidden; }
.panel h2 { margin: 0; font-size: 13px; font-weight: 600; padding: 11px 14px; border-bottom: 1px solid var(--line);
  display: flex; align-items: center; gap: 8px; }
.panel h2 .count { color: var(--muted); font-weight: 400; }
.msgs { list-style: none; margin: 0; padding: 0; overflow: auto; flex: 1; }
.msgs li { padding: 9px 14px; border-bottom: 1px solid var(--line); }
.msgs li.fresh { animation: fresh 1.2s ease-out; }
@keyframes fresh { from { background: #1a2a44; } to { background: transparent; } }
.msgs .meta { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; font-size: 12px; color: var(--muted); }
.msgs .ref { color: var(--accent); }
.msgs .nbox { color: #86efac; }
.msgs pre { margin: 5px 0 0; white-space: pre-wrap; word-break: break-all; max-height: 7.5em; overflow: hidden;
  font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; color: var(--text); }
.msgs .none { color: var(--muted); padding: 18px 14px; border: 0; }
@media (max-width: 960px) {
  .layout { grid-template-columns: 1fr; height: auto; }
  .panel { max-height: 60vh; }
}
`;

/** /viewer.js */
export const VIEWER_JS = `"use strict";
(function () {
  var grid = document.getElementById("grid");
  var msgList = document.getElementById("msgs");
  var tiles = new Map();
  var messages = [];
  var messageCount = 0;
  var lastStats = null;
  var viewers = 0;
  var ws = null;
  var backoff = 500;
  var decoder = new TextDecoder();
  var MAX_MESSAGES = 100;
  var OVERLAY_MS = 1000;
  // Read by tests and handy in the console.
  window.framewire = { tiles: tiles, shown: {}, messages: 0, decodeErrors: 0, connected: false };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function kindClass(kind) {
    return "k-" + (["visible", "infrared", "depth"].indexOf(kind) >= 0 ? kind : "other");
  }

  function setStatus(on, text) {
    var s = document.getElementById("status");
    s.classList.toggle("on", on);
    document.getElementById("status-text").textContent = text;
    window.framewire.connected = on;
  }

  function summary() {
    var online = 0;
    tiles.forEach(function (t) { if (t.info.online) online++; });
    document.getElementById("summary").textContent =
      online + " stream" + (online === 1 ? "" : "s") + " \\u00b7 " + viewers + " viewer" + (viewers === 1 ? "" : "s");
  }

  function showEmpty() {
    var old = grid.querySelector(".empty");
    if (tiles.size > 0) { if (old) old.remove(); return; }
    if (old) return;
    var e = el("div", "empty");
    e.appendChild(el("div", null, "Waiting for streams\\u2026"));
    var hint = el("div", "hint");
    hint.appendChild(document.createTextNode("Send one with "));
    hint.appendChild(el("code", null, "framewire send FOLDER --to tcp://HOST:7070 --mode live"));
    e.appendChild(hint);
    grid.appendChild(e);
  }

  function makeTile(info) {
    var t = { info: info, seq: -1, bitmap: null, pending: null, decoding: false, dets: [], lastFrameAt: 0,
      shown: 0, w: 0, h: 0 };
    t.root = el("article", "tile");
    t.root.dataset.stream = info.name;
    var head = el("div", "head");
    t.nameEl = el("span", "name", info.name);
    t.kindEl = el("span", "badge");
    t.modeEl = el("span", "badge");
    t.stateEl = el("span", "state", "waiting");
    head.append(t.nameEl, t.kindEl, t.modeEl, t.stateEl);
    t.view = el("div", "view");
    t.canvas = el("canvas");
    t.canvas.width = 640;
    t.canvas.height = 480;
    t.ctx = t.canvas.getContext("2d");
    t.note = el("div", "note", "waiting for frames\\u2026");
    t.view.append(t.canvas, t.note);
    t.statsEl = el("div", "stats");
    t.fields = {};
    [["res", "size"], ["fps", "fps"], ["lat", "latency"], ["drops", "drops"], ["seq", "frame"]].forEach(function (f) {
      var s = el("span");
      s.appendChild(document.createTextNode(f[1] + " "));
      var b = el("b", null, "\\u2013");
      s.appendChild(b);
      t.statsEl.appendChild(s);
      t.fields[f[0]] = { span: s, b: b };
    });
    t.root.append(head, t.view, t.statsEl);
    updateTileInfo(t, info);
    return t;
  }

  function updateTileInfo(t, info) {
    t.info = info;
    t.kindEl.className = "badge " + kindClass(info.kind);
    t.kindEl.textContent = info.kind;
    t.modeEl.className = "badge m-" + (info.mode === "live" ? "live" : "reliable");
    t.modeEl.textContent = info.mode;
    t.root.classList.toggle("offline", !info.online);
    t.root.title = info.name + " from " + info.sender;
    if (info.width > 0 && info.height > 0) {
      t.view.style.aspectRatio = info.width + " / " + info.height;
    }
    refreshState(t);
  }

  function refreshState(t) {
    var s = t.stateEl;
    var age = t.lastFrameAt ? performance.now() - t.lastFrameAt : Infinity;
    if (!t.info.online) { s.className = "state offline"; s.textContent = "offline"; }
    else if (!t.lastFrameAt) { s.className = "state"; s.textContent = "waiting"; }
    else if (age > 3000) { s.className = "state stalled"; s.textContent = "no frames for " + Math.round(age / 1000) + " s"; }
    else { s.className = "state live"; s.textContent = "\\u25cf live"; }
  }

  function syncStreams(list) {
    var seen = new Set();
    list.forEach(function (info) {
      seen.add(info.name);
      var t = tiles.get(info.name);
      if (!t) {
        t = makeTile(info);
        tiles.set(info.name, t);
        grid.appendChild(t.root);
      } else updateTileInfo(t, info);
    });
    tiles.forEach(function (t, name) {
      if (!seen.has(name)) {
        if (t.bitmap) t.bitmap.close();
        t.root.remove();
        tiles.delete(name);
      }
    });
    showEmpty();
    summary();
  }

  function onStats(m) {
    lastStats = m;
    viewers = m.viewers;
    var mine = (m.viewer && m.viewer.drops) || {};
    m.streams.forEach(function (s) {
      var t = tiles.get(s.name);
      if (!t) return;
      var f = t.fields;
      var w = t.w || s.width, h = t.h || s.height;
      f.res.b.textContent = w && h ? w + "\\u00d7" + h : "\\u2013";
      f.fps.b.textContent = s.fps.toFixed(1);
      f.lat.b.textContent = s.latencyMs === undefined || s.latencyMs === null ? "\\u2013" : s.latencyMs.toFixed(1) + " ms";
      var drops = s.missing + (mine[s.name] || 0);
      f.drops.b.textContent = String(drops);
      f.drops.span.className = drops > 0 ? "bad" : "";
      f.drops.span.title = "frames that never reached the viewer: " + s.missing + " (dropped by the receiver: " +
        s.receiverDrops + "); skipped for this page: " + (mine[s.name] || 0);
      refreshState(t);
    });
    summary();
  }

  function onMessage(pm, fresh) {
    messageCount++;
    window.framewire.messages = messageCount;
    messages.push(pm);
    if (pm.boxes && pm.ref) {
      var t = tiles.get(pm.ref.stream);
      if (t) {
        t.dets.push({ seq: pm.ref.seq, at: performance.now(), boxes: pm.boxes, normalized: pm.normalized });
        if (t.dets.length > 30) t.dets.shift();
        if (t.bitmap) draw(t);
      }
    }
    var none = msgList.querySelector(".none");
    if (none) none.remove();
    var li = el("li", fresh ? "fresh" : "");
    var meta = el("div", "meta");
    var d = new Date(pm.receivedUs / 1000);
    meta.appendChild(el("span", null, d.toLocaleTimeString([], { hour12: false }) + "." +
      String(d.getMilliseconds()).padStart(3, "0")));
    meta.appendChild(el("span", null, pm.sender));
    if (pm.ref) meta.appendChild(el("span", "ref", "\\u2192 " + pm.ref.stream + " #" + pm.ref.seq));
    if (pm.boxes) meta.appendChild(el("span", "nbox", pm.boxes.length + " box" + (pm.boxes.length === 1 ? "" : "es")));
    li.appendChild(meta);
    var text = pm.text;
    try { if (!pm.truncated) text = JSON.stringify(JSON.parse(pm.text)); } catch (e) { /* shown as sent */ }
    if (text.length > 600) text = text.slice(0, 600) + "\\u2026";
    if (pm.truncated) text += " \\u2026 (cut)";
    li.appendChild(el("pre", null, text));
    msgList.insertBefore(li, msgList.firstChild);
    while (msgList.children.length > MAX_MESSAGES) msgList.lastChild.remove();
    document.getElementById("msg-count").textContent = String(messageCount);
  }

  function noMessages() {
    msgList.textContent = "";
    msgList.appendChild(el("li", "none", "No messages yet. Send one with framewire msg."));
    document.getElementById("msg-count").textContent = "";
  }

  var COLORS = ["#22d3ee", "#a3e635", "#f472b6", "#facc15", "#60a5fa", "#fb923c", "#c084fc"];
  function colorOf(label) {
    var h = 0;
    for (var i = 0; i < label.length; i++) h = (h * 31 + label.charCodeAt(i)) | 0;
    return COLORS[Math.abs(h) % COLORS.length];
  }

  function detectionFor(t) {
    var best = null;
    for (var i = t.dets.length - 1; i >= 0; i--) {
      var d = t.dets[i];
      if (d.seq === t.seq) return d;
      if (!best && performance.now() - d.at < OVERLAY_MS) best = d;
    }
    return best;
  }

  function draw(t) {
    var b = t.bitmap;
    var c = t.canvas, ctx = t.ctx;
    if (c.width !== b.width || c.height !== b.height) {
      c.width = b.width;
      c.height = b.height;
      t.view.style.aspectRatio = b.width + " / " + b.height;
    }
    ctx.drawImage(b, 0, 0);
    var d = detectionFor(t);
    if (!d) return;
    var sx = d.normalized ? b.width : 1, sy = d.normalized ? b.height : 1;
    var lw = Math.max(2, Math.round(b.width / 320));
    var fontPx = Math.max(12, Math.round(b.width / 45));
    ctx.font = "600 " + fontPx + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    d.boxes.forEach(function (box) {
      var x = box.x * sx, y = box.y * sy, w = box.w * sx, h = box.h * sy;
      var label = box.label || "";
      var color = colorOf(label || "box");
      ctx.lineWidth = lw;
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);
      var text = label + (typeof box.score === "number" ? (label ? " " : "") + Math.round(box.score * 100) + "%" : "");
      if (!text) return;
      var tw = ctx.measureText(text).width + 10;
      var ty = y - fontPx - 6 >= 0 ? y - fontPx - 6 : y;
      ctx.fillStyle = color;
      ctx.fillRect(x - lw / 2, ty, tw, fontPx + 6);
      ctx.fillStyle = "#0b0e14";
      ctx.fillText(text, x + 5 - lw / 2, ty + 3);
    });
  }

  function decodeNext(t) {
    var p = t.pending;
    if (!p || t.decoding) return;
    t.pending = null;
    t.decoding = true;
    createImageBitmap(new Blob([p.bytes], { type: p.head.contentType || "image/jpeg" })).then(function (bmp) {
      if (t.bitmap) t.bitmap.close();
      t.bitmap = bmp;
      t.seq = p.head.seq;
      t.w = bmp.width;
      t.h = bmp.height;
      t.lastFrameAt = performance.now();
      t.shown++;
      window.framewire.shown[t.info.name] = t.shown;
      if (t.note.parentNode) t.note.remove();
      t.fields.seq.b.textContent = "#" + t.seq;
      if (!t.fields.res.b.textContent || t.fields.res.b.textContent === "\u2013") {
        t.fields.res.b.textContent = bmp.width + "\u00d7" + bmp.height;
      }
      draw(t);
      refreshState(t);
    }, function () {
      window.framewire.decodeErrors++;
    }).then(function () {
      t.decoding = false;
      decodeNext(t);
    });
  }

  function onFrame(buf) {
    var view = new DataView(buf);
    var n = view.getUint16(0);
    var head = JSON.parse(decoder.decode(new Uint8Array(buf, 2, n)));
    var t = tiles.get(head.stream);
    if (!t) return;
    // Newest wins here too: a frame that arrives while the previous one decodes replaces the waiting one.
    t.pending = { head: head, bytes: new Uint8Array(buf, 2 + n) };
    decodeNext(t);
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(proto + location.host + "/ws");
    ws.binaryType = "arraybuffer";
    ws.onopen = function () { backoff = 500; setStatus(true, "connected"); };
    ws.onclose = function () {
      setStatus(false, "reconnecting");
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 5000);
    };
    ws.onmessage = function (ev) {
      if (typeof ev.data !== "string") { onFrame(ev.data); return; }
      var m = JSON.parse(ev.data);
      if (m.type === "hello") {
        messages = [];
        messageCount = 0;
        noMessages();
        syncStreams(m.streams);
        m.messages.forEach(function (pm) { onMessage(pm, false); });
      } else if (m.type === "streams") syncStreams(m.streams);
      else if (m.type === "stats") onStats(m);
      else if (m.type === "message") onMessage(m.message, true);
    };
  }

  setInterval(function () { tiles.forEach(refreshState); }, 1000);
  noMessages();
  showEmpty();
  summary();
  connect();
})();
`;
