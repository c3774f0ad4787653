// Fuzz target: the length-prefixed framing state machine
// (src/wire/frame-decoder.ts) fed arbitrary bytes in arbitrary splits.
// Input: [limit selector, split seed, ...wire bytes]. Asserts what the
// decoder promises: only FramingError is thrown; no frame is empty or over
// the limit; at most one partial frame is buffered; and the frames and the
// refusal do not depend on how the bytes were split, checked against a
// one-pass reference reading of the whole input.

import { FrameDecoder, FramingError, LENGTH_PREFIX_BYTES } from '../../src/wire/frame-decoder.ts';
import { check, splitPoints } from './fuzz-input.ts';

/** Frame limits the selector byte picks from: tiny to catch off-by-one at the limit, and the default. */
const LIMITS = [1, 2, 3, 4, 5, 16, 255, 256, 4096, 64 * 1024 * 1024];

/** Jazzer entry point. */
export function fuzz(data: Buffer): void {
  if (data.length < 2) return;
  const limit = LIMITS[data[0] % LIMITS.length];
  const wire = data.subarray(2);
  const expected = referenceDecode(wire, limit);

  // Feed the wire in the chunks the split seed picks, checking every step.
  const decoder = new FrameDecoder(limit);
  const frames: Buffer[] = [];
  let refusal: string | undefined;
  let from = 0;
  for (const to of [...splitPoints(data[1], wire.length), wire.length]) {
    try {
      frames.push(...decoder.push(wire.subarray(from, to)));
    } catch (err) {
      check(err instanceof FramingError, `push threw ${(err as Error)?.name}: ${(err as Error)?.message}, not a FramingError`);
      refusal = (err as Error).message;
      break;
    }
    check(decoder.bufferedBytes <= LENGTH_PREFIX_BYTES + limit, `buffered ${decoder.bufferedBytes} bytes with limit ${limit}`);
    from = to;
  }

  // Same frames and same verdict as reading the whole input at once.
  for (const frame of frames) check(frame.length >= 1 && frame.length <= limit, `frame of ${frame.length} bytes with limit ${limit}`);
  // (A refusing push returns nothing, so frames earlier in that same chunk
  // are not handed out: on refusal only a prefix is promised. The connection
  // closes and unacknowledged frames are resent on another.)
  frames.forEach((frame, i) => check(i < expected.frames.length && frame.equals(expected.frames[i]), `frame ${i} differs between split and whole decode`));
  check((refusal !== undefined) === expected.refused, `split decode ${refusal ?? 'accepted'}, whole decode ${expected.refused ? 'refused' : 'accepted'}`);
  if (!expected.refused) check(frames.length === expected.frames.length, `split decode gave ${frames.length} frames, whole decode ${expected.frames.length}`);
  if (!expected.refused) check(decoder.bufferedBytes === expected.partialBytes, `buffered ${decoder.bufferedBytes}, expected ${expected.partialBytes}`);
}

// The framing rules read straight off the format, over one buffer.
function referenceDecode(wire: Buffer, limit: number): { frames: Buffer[]; refused: boolean; partialBytes: number } {
  const frames: Buffer[] = [];
  let at = 0;
  while (wire.length - at >= LENGTH_PREFIX_BYTES) {
    const length = wire.readUInt32BE(at);
    if (length === 0 || length > limit) return { frames, refused: true, partialBytes: 0 };
    // A read prefix is held as the body length, not as buffered bytes.
    if (wire.length - at - LENGTH_PREFIX_BYTES < length) return { frames, refused: false, partialBytes: wire.length - at - LENGTH_PREFIX_BYTES };
    frames.push(wire.subarray(at + LENGTH_PREFIX_BYTES, at + LENGTH_PREFIX_BYTES + length));
    at += LENGTH_PREFIX_BYTES + length;
  }
  return { frames, refused: false, partialBytes: wire.length - at };
}
