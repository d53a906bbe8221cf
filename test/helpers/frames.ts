/** ReceivedFrame values for sink tests: every field a sink reads, with defaults a test overrides. */
import { crc32 } from '../../src/protocol/crc.js';
import type { ReceivedFrame, StreamInfo } from '../../src/types.js';
import { payload } from './tmp.js';

/** A reliable visible stream `name` of epoch `epoch`. */
export function streamInfo(name = 'cam', over: Partial<StreamInfo> = {}): StreamInfo {
  return { name, kind: 'visible', mode: 'reliable', epoch: 'e1', sender: 'test', ...over };
}

/**
 * Frame `seq` of `streamInfo()`: an unnamed JPEG of `payload(seq, 3000 + seq)`, its CRC-32 computed from the
 * bytes unless `over` gives one.
 */
export function receivedFrame(seq: number, over: Partial<ReceivedFrame> = {}): ReceivedFrame {
  const data = over.data ?? payload(seq, 3000 + seq);
  return {
    stream: streamInfo(),
    seq,
    captureUs: 1,
    receivedUs: 2,
    contentType: 'image/jpeg',
    pixelFormat: 'none',
    width: 0,
    height: 0,
    name: '',
    meta: undefined,
    ...over,
    data,
    crc: over.crc ?? crc32(data),
  };
}
