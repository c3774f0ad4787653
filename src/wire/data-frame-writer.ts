// The framed Envelope of one DataFrame, written with a single copy of the
// payload. The general path (protobufjs encode, then frameBytes) copies the
// payload twice into fresh buffers; on the data path each such copy cost
// ~1.5 CPU s per GiB here (most of it the kernel faulting in new pages, not
// the memcpy). Here the small head (every field but the payload) is encoded
// by protobufjs and the rest is laid out by hand into one buffer of the
// exact size: length prefix, Envelope.data tag and length, head, payload
// tag and length, payload. Protobuf decoders accept fields in any order,
// so the result decodes like envelopeCodec.encode({ data: frame }). A
// payload with free room in front of it (wire/frame-headroom.ts) is not
// copied at all: the front is written into that room.

import { LENGTH_PREFIX_BYTES } from './frame-decoder.ts';
import { DATA_FRAME_FIELDS, encodeDataFrameHead, type DataFrame } from './messages.ts';

/** Protobuf wire type of length-delimited fields. */
const WIRE_TYPE_LEN = 2;

/** Bytes of n as a protobuf varint. */
function varintBytes(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

/** Write n as a varint at offset; returns the offset after it. */
function writeVarint(out: Buffer, offset: number, n: number): number {
  while (n >= 0x80) {
    out[offset++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[offset++] = n;
  return offset;
}

/** Tag of a length-delimited field (field numbers here are below 16: one byte). */
function lenTag(field: number): number {
  return (field << 3) | WIRE_TYPE_LEN;
}

/**
 * Length-prefixed Envelope{data: frame}, ready for a carrier's write.
 * headroom: bytes right before the payload, in the same ArrayBuffer, that
 * nobody else reads or writes (a payload from allocFramePayload, or one a
 * worker moved back to us). When the prefix and head fit there, the frame
 * is written in place around the payload, without copying it; the result
 * then shares the payload's memory.
 */
export function frameDataFrame(frame: DataFrame, headroom = 0): Buffer {
  const { payload, ...rest } = frame;
  const head = encodeDataFrameHead(rest);
  const inner = head.length + 1 + varintBytes(payload.length) + payload.length;
  const envelope = 1 + varintBytes(inner) + inner;
  const front = LENGTH_PREFIX_BYTES + envelope - payload.length;

  // In place when the front fits in the headroom; else one buffer of the exact size.
  const inPlace = headroom >= front && payload.byteOffset >= front;
  const out = inPlace
    ? Buffer.from(payload.buffer, payload.byteOffset - front, front + payload.length)
    : Buffer.allocUnsafe(front + payload.length);
  out.writeUInt32BE(envelope, 0);
  let at = LENGTH_PREFIX_BYTES;
  out[at++] = lenTag(DATA_FRAME_FIELDS.envelopeData);
  at = writeVarint(out, at, inner);
  out.set(head, at);
  at += head.length;
  out[at++] = lenTag(DATA_FRAME_FIELDS.payload);
  at = writeVarint(out, at, payload.length);
  if (!inPlace) out.set(payload, at);
  return out;
}
