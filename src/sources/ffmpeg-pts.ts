/**
 * Capture times of ffmpeg frames from their presentation timestamps. ffmpeg prints each frame's pts on an
 * extra pipe (fd 3) through the `metadata` filter, one line `frame:N pts:P pts_time:T` per frame, before
 * the frame's JPEG reaches stdout. A frame's capture time on this machine's wall clock is then
 * `anchor + pts_time`, where the anchor is the start time: the smallest `arrival − pts_time` seen (the
 * frame that came through fastest) for live inputs, or the first frame's for files read as fast as they
 * decode. The anchor is kept on the monotonic clock and mapped to the wall clock per frame, so a step of
 * the wall clock shows in the very next frame. So the times are spaced exactly as the source stamped them, without the jitter of reading the pipe.
 */

import { wallMinusMonoMs } from '../time.js';

/** The -vf filters that print each frame's pts on fd 3 (a frame without metadata is not printed: add one). */
export const PTS_FILTERS = 'metadata=mode=add:key=fw:value=1,metadata=mode=print:file=pipe\\\\:3:direct=1';

export class PtsClock {
  readonly #live: boolean;
  /** pts_time (s) by frame number, as ffmpeg printed them. */
  readonly #pts = new Map<number, number>();
  #partial = '';
  /** Frame number of the next JPEG. */
  #n = 0;
  #anchorUs: number | undefined;
  #lastUs = 0;

  /** `live`: the input runs in real time (camera, stream, -re), so the anchor may move earlier. */
  constructor(live: boolean) {
    this.#live = live;
  }

  /** Text read from fd 3. */
  write(text: string): void {
    const lines = (this.#partial + text).split('\n');
    this.#partial = (lines.pop() ?? '').slice(-500);
    for (const l of lines) {
      const m = /^frame:\s*(\d+)\s+pts:\s*\S+\s+pts_time:(-?\d+(?:\.\d+)?)/.exec(l);
      if (m && Number(m[1]) >= this.#n) this.#pts.set(Number(m[1]), Number(m[2]));
    }
    // Lines for frames that never come out must not pile up.
    if (this.#pts.size > 1000) for (const k of [...this.#pts.keys()].slice(0, 500)) this.#pts.delete(k);
  }

  /**
   * The capture time of the next frame, which arrived at `arrivalUs` (wall clock, µs): from its pts when
   * ffmpeg printed it, else the arrival time. Never earlier than the previous frame's.
   */
  next(arrivalUs: number): number {
    const n = this.#n++;
    const pts = this.#pts.get(n);
    for (const k of this.#pts.keys()) if (k <= n) this.#pts.delete(k);
    let t = arrivalUs;
    if (pts !== undefined && Number.isFinite(pts)) {
      // The anchor lives on the monotonic clock, so that a step of the wall clock (NTP answering late)
      // moves the capture times at once instead of being taken for a slow frame.
      const wallMinusMono = wallMinusMonoMs() * 1000;
      const ptsUs = pts * 1e6;
      const anchor = arrivalUs - wallMinusMono - ptsUs;
      if (this.#anchorUs === undefined || (this.#live && anchor < this.#anchorUs)) this.#anchorUs = anchor;
      t = Math.round(this.#anchorUs + ptsUs + wallMinusMono);
    }
    // Never back in time, except for a step of the wall clock itself.
    // A frame whose pts line has not come through yet (fd 3 and stdout race) follows the previous frame;
    // only a frame stamped from its pts may go back by more than half a second (a wall clock step).
    if (t <= this.#lastUs && (pts === undefined || this.#lastUs - t < 500_000)) t = this.#lastUs + 1;
    this.#lastUs = t;
    return t;
  }
}
