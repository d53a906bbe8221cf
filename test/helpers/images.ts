/** Small JPEGs for tests, made with sharp. */
import sharp from 'sharp';

/** A JPEG of one colour. */
export function solidJpeg(
  width: number,
  height: number,
  rgb: [number, number, number],
  quality = 90,
): Promise<Buffer> {
  const [r, g, b] = rgb;
  return sharp({ create: { width, height, channels: 3, background: { r, g, b } } })
    .jpeg({ quality })
    .toBuffer();
}

/** A JPEG of noise: large for its size (JPEG cannot compress it), for filling socket buffers. */
export function noiseJpeg(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.allocUnsafe(width * height * 3);
  let x = (seed + 1) * 2654435761;
  for (let i = 0; i < raw.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    raw[i] = x & 0xff;
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** A colour that walks around the hue circle with `i`, saturated and bright. */
export function hue(i: number): [number, number, number] {
  const h = (i * 23) % 360;
  const f = (n: number) => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (1 - Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}
