/**
 * Detection boxes read from a JSON message ({@link extractBoxes}), for the viewer to draw over the frame
 * the message refers to. Pure: no I/O.
 */

/** A detection box in the frame's pixels (or in 0..1 when the message says `normalized`). */
export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  label?: string;
  score?: number;
}

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

function quad(v: unknown): [number, number, number, number] | undefined {
  if (Array.isArray(v) && v.length >= 4 && v.slice(0, 4).every(finite)) {
    return [v[0], v[1], v[2], v[3]] as [number, number, number, number];
  }
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const w = o.w ?? o.width;
    const h = o.h ?? o.height;
    if (finite(o.x) && finite(o.y) && finite(w) && finite(h)) return [o.x, o.y, w, h];
  }
  return undefined;
}

function boxOf(v: unknown): Box | undefined {
  const plain = quad(v);
  if (plain && Array.isArray(v)) return { x: plain[0], y: plain[1], w: plain[2], h: plain[3] };
  if (v === null || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const q = quad(o.box ?? o.bbox ?? o.rect) ?? plain;
  if (!q) return undefined;
  const box: Box = { x: q[0], y: q[1], w: q[2], h: q[3] };
  const label = o.label ?? o.class ?? o.name;
  if (typeof label === 'string') box.label = label.slice(0, 64);
  else if (finite(label)) box.label = String(label);
  const score = o.score ?? o.confidence ?? o.conf;
  if (finite(score)) box.score = score;
  return box;
}

/**
 * The detection boxes a JSON message carries, for drawing over the frame it refers to: `{"detections":
 * [[x,y,w,h], ...]}`, `[{"box":[x,y,w,h],"label":"person","score":0.9}, ...]`, and the like (keys
 * detections, boxes, objects or predictions; a box as [x,y,w,h] or {x,y,w,h} under box, bbox or rect).
 * `normalized` is true when every coordinate lies in 0..1 (fractions of the frame). Undefined when the
 * message carries no boxes. At most 1000 boxes.
 */
export function extractBoxes(json: unknown): { boxes: Box[]; normalized: boolean } | undefined {
  let list: unknown = json;
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    const o = json as Record<string, unknown>;
    list = o.detections ?? o.boxes ?? o.objects ?? o.predictions;
  }
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const boxes: Box[] = [];
  for (const item of list.slice(0, 1000)) {
    const b = boxOf(item);
    if (b) boxes.push(b);
  }
  if (boxes.length === 0) return undefined;
  const normalized = boxes.every((b) => [b.x, b.y, b.w, b.h].every((n) => n >= 0 && n <= 1));
  return { boxes, normalized };
}
