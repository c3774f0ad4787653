// The framing state machine: whole frames however the bytes are split,
// refusal of zero and oversized lengths before buffering, and memory that
// follows the bytes actually received.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameDecoder, FramingError, frameBytes } from '../../src/wire/frame-decoder.ts';
import { envelopeCodec } from '../../src/wire/messages.ts';

test('frames split at every byte boundary decode to the same bodies', () => {
  const bodies = [Buffer.from('a'), Buffer.alloc(70_000, 7), Buffer.from('hello world')];
  const wire = Buffer.concat(bodies.map((b) => frameBytes(b)));
  for (const step of [1, 3, 4, 5, 1000, wire.length]) {
    const decoder = new FrameDecoder(1 << 20);
    const out: Buffer[] = [];
    for (let i = 0; i < wire.length; i += step) out.push(...decoder.push(wire.subarray(i, i + step)));
    assert.deepEqual(out.map((b) => b.toString('hex')), bodies.map((b) => b.toString('hex')), `step ${step}`);
    assert.equal(decoder.bufferedBytes, 0);
  }
});

test('a 4 GiB length prefix is refused before any body byte is buffered', () => {
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  assert.throws(() => decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])), (err: Error) => err instanceof FramingError && /4294967295 exceeds maximum 67108864/.test(err.message));
});

test('a zero length is refused', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from([0, 0, 0, 0])), FramingError);
});

test('a frame announced large but sent short holds only what arrived', () => {
  const decoder = new FrameDecoder(64 * 1024 * 1024);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(60 * 1024 * 1024);
  assert.deepEqual(decoder.push(Buffer.concat([header, Buffer.alloc(10)])), []);
  assert.equal(decoder.bufferedBytes, 10);
});

test('envelopes round-trip and garbage bodies are refused by the codec', () => {
  const env = { ack: { streamId: 's', durableSeq: 42, chain: Buffer.alloc(32, 1) } };
  assert.deepEqual(envelopeCodec.decode(envelopeCodec.encode(env)).ack?.durableSeq, 42);
  assert.throws(() => envelopeCodec.decode(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])));
  assert.throws(() => envelopeCodec.decode(Buffer.alloc(0)), /no body/);
});
