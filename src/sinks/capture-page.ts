/**
 * `/capture` and `/capture.js` of the viewer: a page that turns the browser's camera into a framewire
 * sender over the viewer's `/ws` (see capture-module.ts for the protocol side). Its style sheet
 * (/capture.css) and start script (/capture-main.js) are files, so its CSP needs no 'unsafe-inline'.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { captureModule } from './capture-module.js';
import { CSS, JS, pageCsp } from './viewer-csp.js';

const CAPTURE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>framewire capture</title>
<link rel="stylesheet" href="/capture.css">
<script type="module" src="/capture-main.js"></script>
</head>
<body>
<main>
  <h1>framewire capture</h1>
  <form id="form">
    <label>stream <input id="stream"></label>
    <label>kind <select id="kind"><option>visible</option><option>infrared</option><option>depth</option><option>other</option></select></label>
    <label>mode <select id="mode"><option>live</option><option>reliable</option></select></label>
    <label>size <input id="size" placeholder="640x480"></label>
    <label>fps <input id="fps" type="number" min="1" max="60"></label>
    <label>JPEG quality <input id="quality" type="number" min="0.1" max="1" step="0.05"></label>
    <label>token <input id="token" type="password" autocomplete="off"></label>
    <button id="start" type="button">start</button>
    <button id="stop" type="button" disabled>stop</button>
  </form>
  <video id="video" muted playsinline></video>
  <canvas id="canvas"></canvas>
  <div id="stats">stopped</div>
</main>
</body>
</html>
`;

const CAPTURE_CSS = `body { font: 15px system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
main { max-width: 760px; margin: auto; padding: 12px; }
form { display: grid; grid-template-columns: repeat(auto-fill, minmax(140px, 1fr)); gap: 8px; }
label { display: flex; flex-direction: column; font-size: 12px; color: #aaa; }
input, select, button { font: inherit; padding: 6px; border-radius: 6px; border: 1px solid #444; background: #222; color: #eee; }
button { background: #2a6; border: 0; cursor: pointer; } button:disabled { opacity: .4; }
video { width: 100%; margin-top: 10px; background: #000; border-radius: 8px; }
#stats { font: 13px ui-monospace, monospace; margin-top: 8px; }
canvas { display: none; }
`;

/** Starts the page (a module: it runs once the document is parsed). Enter in a field sends nothing. */
const CAPTURE_MAIN = `import { start } from '/capture.js';
document.getElementById('form').addEventListener('submit', (e) => e.preventDefault());
start();
`;

/** Serves the capture page, its style sheet and its scripts; false for any other path. */
export function serveCapture(path: string, req: IncomingMessage, res: ServerResponse): boolean {
  let body: string;
  let type: string;
  if (path === '/capture' || path === '/capture.html') {
    body = CAPTURE_HTML;
    type = 'text/html; charset=utf-8';
    // The camera is this page's own (no frames from other sites).
    res.setHeader('Content-Security-Policy', pageCsp("media-src 'self' blob: mediastream:"));
  } else if (path === '/capture.js') {
    body = captureModule();
    type = JS;
  } else if (path === '/capture-main.js') {
    body = CAPTURE_MAIN;
    type = JS;
  } else if (path === '/capture.css') {
    body = CAPTURE_CSS;
    type = CSS;
  } else {
    return false;
  }
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
