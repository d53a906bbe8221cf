/**
 * The viewer's sync page (`/sync`): the latest group of each `--sync` group, its frames side by side with
 * the group's span. Deliberately small: a page (script /sync.js, style /sync.css) that polls `/api/sync`
 * and loads `/sync/G/STREAM.jpg`.
 */
import type { ServerResponse } from 'node:http';
import type { SyncGroup, SyncUnpairedReason } from '../sync/frames.js';
import { CSS, JS, pageCsp } from './viewer-csp.js';

/** What the viewer needs of a sync sink (src/sinks/sync.ts). */
export interface SyncSource {
  readonly syncs: readonly { readonly streams: readonly string[] }[];
  on(event: 'group', fn: (g: SyncGroup) => void): unknown;
  unpaired(): Record<string, Partial<Record<SyncUnpairedReason, number>>>;
  readonly groups: number;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>framewire sync</title>
<link rel="stylesheet" href="/sync.css"><script src="/sync.js" defer></script>
<h1>Synchronised groups</h1><div id="groups"></div><p><a href="/">streams</a></p>`;

const CSS_TEXT = `body{font:14px system-ui;margin:1em;background:#111;color:#ddd}.g{margin:0 0 1.5em}
.row{display:flex;gap:8px}.row figure{margin:0}.row img{max-width:45vw;max-height:60vh;background:#222}
figcaption{font-size:12px;color:#aaa}
a{color:#8cf}
`;

const SCRIPT = `const root=document.getElementById('groups');
async function tick(){
  try{
    const r=await fetch('/api/sync',{cache:'no-store'});const j=await r.json();
    root.replaceChildren(...j.groups.map((g,i)=>{
      const d=document.createElement('div');d.className='g';
      const h=document.createElement('h2');
      h.textContent=g.streams.join(' + ')+(g.latest?' — span '+(g.latest.spanUs/1000).toFixed(1)+' ms, t '+new Date(g.latest.t/1000).toISOString():' — no group yet');
      const row=document.createElement('div');row.className='row';
      if(g.latest)for(const s of g.streams){const f=g.latest.frames[s];const fig=document.createElement('figure');
        const img=document.createElement('img');img.alt=s;img.src='/sync/'+i+'/'+encodeURIComponent(s)+'.jpg?t='+g.latest.t;
        const c=document.createElement('figcaption');c.textContent=s+' #'+f.seq+' '+f.name;fig.append(img,c);row.append(fig);}
      d.append(h,row);return d;}));
  }catch(e){}
  setTimeout(tick,500);
}
tick();
`;

/** Keeps the latest group of each pairer and answers /sync (and its files), /api/sync and /sync/G/STREAM.jpg. */
export class SyncView {
  readonly #source: SyncSource;
  readonly #latest: (SyncGroup | undefined)[];

  constructor(source: SyncSource) {
    this.#source = source;
    this.#latest = source.syncs.map(() => undefined);
    source.on('group', (g) => {
      const names = Object.keys(g.frames);
      const i = source.syncs.findIndex(
        (s) => s.streams.length === names.length && s.streams.every((n) => names.includes(n)),
      );
      if (i >= 0) this.#latest[i] = g;
    });
  }

  /** The unpaired counts of `stream`, for /api/streams. */
  unpaired(stream: string): Partial<Record<SyncUnpairedReason, number>> | undefined {
    return this.#source.unpaired()[stream];
  }

  /** Answers a sync path; false for any other path. */
  handle(path: string, res: ServerResponse): boolean {
    if (path === '/sync') {
      res.writeHead(200, {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Security-Policy': pageCsp("img-src 'self'"),
      });
      res.end(PAGE);
      return true;
    }
    if (path === '/sync.js' || path === '/sync.css') {
      const body = path === '/sync.js' ? SCRIPT : CSS_TEXT;
      res.writeHead(200, {
        'Content-Type': path === '/sync.js' ? JS : CSS,
        'Content-Length': Buffer.byteLength(body),
        'Cache-Control': 'no-store',
      });
      res.end(body);
      return true;
    }
    if (path === '/api/sync') {
      const groups = this.#source.syncs.map((s, i) => {
        const g = this.#latest[i];
        const latest = g && {
          t: g.t,
          spanUs: g.spanUs,
          frames: Object.fromEntries(
            Object.entries(g.frames).map(([k, m]) => [
              k,
              { seq: m.seq, name: m.name, captureUs: m.captureUs, correctedUs: m.correctedUs },
            ]),
          ),
        };
        return { streams: s.streams, latest };
      });
      const body = JSON.stringify({ groups, total: this.#source.groups, unpaired: this.#source.unpaired() });
      res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(body);
      return true;
    }
    const m = /^\/sync\/(\d+)\/([^/]+)\.jpg$/.exec(path);
    if (!m) return false;
    let stream = '';
    try {
      stream = decodeURIComponent(m[2]!);
    } catch {
      /* a bad escape is a 404 */
    }
    const f = this.#latest[Number(m[1])]?.frames[stream]?.frame;
    if (f?.contentType !== 'image/jpeg') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such frame\n');
      return true;
    }
    res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Cache-Control': 'no-store' });
    res.end(f.data);
    return true;
  }
}
