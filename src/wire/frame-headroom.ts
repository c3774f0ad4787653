// Room for a data frame's head in front of its payload. A payload read into
// a buffer with this headroom (allocFramePayload) can become a framed
// Envelope in place: the writer (data-frame-writer.ts) puts the length
// prefix and the head into the bytes right before the payload instead of
// copying the payload into a fresh buffer (a fresh 256 KiB buffer plus the
// copy cost ~1.5 CPU s per GiB here, most of it faulting in new pages).

/**
 * Bytes kept free before a payload: the length prefix, the Envelope and
 * payload tags and lengths, and the head (stream id, digest, meta, a few
 * numbers). A head that does not fit (a meta with a very long path) makes
 * the writer copy, as it did before.
 */
export const FRAME_HEADROOM_BYTES = 4096;

/** ArrayBuffers made by allocFramePayload whose headroom nobody else uses. */
const withHeadroom = new WeakSet<ArrayBufferLike>();

/**
 * A fresh buffer of `length` bytes with FRAME_HEADROOM_BYTES free before it
 * in the same ArrayBuffer. The caller owns the whole ArrayBuffer: the HDE
 * pool may move it to a worker (hasFrameHeadroom says it may).
 */
export function allocFramePayload(length: number): Buffer {
  const whole = Buffer.allocUnsafeSlow(FRAME_HEADROOM_BYTES + length);
  withHeadroom.add(whole.buffer);
  return whole.subarray(FRAME_HEADROOM_BYTES);
}

/** True when view is a whole payload made by allocFramePayload (its ArrayBuffer is the headroom and the view). */
export function hasFrameHeadroom(view: Uint8Array): boolean {
  return withHeadroom.has(view.buffer) && view.byteOffset === FRAME_HEADROOM_BYTES && view.buffer.byteLength === FRAME_HEADROOM_BYTES + view.byteLength;
}

/** A copy of bytes in a buffer from allocFramePayload (one copy, exact size). */
export function framePayloadCopy(bytes: Uint8Array): Buffer {
  const out = allocFramePayload(bytes.length);
  out.set(bytes);
  return out;
}
