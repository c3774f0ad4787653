import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { frameDataFrame } from '../../src/wire/data-frame-writer.ts';
import { FRAME_HEADROOM_BYTES, allocFramePayload } from '../../src/wire/frame-headroom.ts';
import { FrameDecoder } from '../../src/wire/frame-decoder.ts';
import { envelopeCodec, Encoding, type DataFrame } from '../../src/wire/messages.ts';
import { frameEnvelope } from '../../src/transport/link.ts';

function frame(payloadBytes: number, overrides: Partial<DataFrame> = {}): DataFrame {
  return {
    streamId: 'objs', seq: 2 ** 40 + 7, epoch: 12345, encoding: Encoding.ZSTD, digest: randomBytes(32),
    meta: randomBytes(40), payload: randomBytes(payloadBytes), rawLength: payloadBytes * 3, resync: true, ...overrides,
  };
}

/** The one frame body a decoder finds in these bytes. */
function body(bytes: Buffer): Buffer {
  const bodies = new FrameDecoder().push(bytes);
  assert.equal(bodies.length, 1);
  return bodies[0]!;
}

test('a single-copy data frame decodes to the same envelope as the general encoder, at every varint length', () => {
  // Payload sizes around the varint steps (1, 2, 3, 4 bytes of length) and an empty one.
  for (const size of [0, 1, 127, 128, 16_383, 16_384, 262_144, 2_097_151, 2_097_152]) {
    const f = frame(size);
    const fast = frameDataFrame(f);
    const general = frameEnvelope({ data: f });
    assert.equal(fast.length, general.length, `size ${size}: framed length`);
    assert.deepEqual(envelopeCodec.decode(body(fast)), envelopeCodec.decode(body(general)), `size ${size}`);
  }
});

test('default field values (seq 0, raw encoding, no resync, empty meta) round-trip', () => {
  const f = frame(1000, { seq: 0, epoch: 0, encoding: Encoding.RAW, meta: Buffer.alloc(0), resync: false, rawLength: 1000 });
  const decoded = envelopeCodec.decode(body(frameDataFrame(f))).data!;
  assert.equal(decoded.seq, 0);
  assert.equal(decoded.encoding, Encoding.RAW);
  assert.equal(decoded.resync, false);
  assert.equal(Buffer.compare(Buffer.from(decoded.payload), Buffer.from(f.payload)), 0);
});

test('a payload with headroom is framed in place (no copy) and decodes like the general encoder', () => {
  for (const size of [1, 16_384, 262_144]) {
    const payload = allocFramePayload(size);
    randomBytes(size).copy(payload);
    const f = frame(size, { payload });
    const general = frameEnvelope({ data: { ...f, payload: Buffer.from(payload) } });
    const fast = frameDataFrame(f, FRAME_HEADROOM_BYTES);
    // Same memory as the payload: the head went into the room before it.
    assert.equal(fast.buffer, payload.buffer, `size ${size}: copied`);
    assert.equal(fast.byteOffset + fast.length, payload.byteOffset + payload.length);
    assert.deepEqual(envelopeCodec.decode(body(fast)), envelopeCodec.decode(body(general)), `size ${size}`);
  }
});

test('a head larger than the headroom is copied instead, leaving the bytes before the payload alone', () => {
  const payload = allocFramePayload(1000);
  payload.fill(7);
  const before = Buffer.from(payload.buffer, 0, FRAME_HEADROOM_BYTES);
  before.fill(0xee);
  const f = frame(1000, { payload, meta: randomBytes(FRAME_HEADROOM_BYTES) });
  const framed = frameDataFrame(f, FRAME_HEADROOM_BYTES);
  assert.notEqual(framed.buffer, payload.buffer);
  assert.ok(before.every((b) => b === 0xee), 'bytes before the payload were written');
  assert.deepEqual(envelopeCodec.decode(body(framed)), envelopeCodec.decode(body(frameEnvelope({ data: f }))));
  // No headroom given: always a copy.
  assert.notEqual(frameDataFrame(frame(10, { payload: allocFramePayload(10) })).buffer, payload.buffer);
});
