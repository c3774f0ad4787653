// Streaming zstd contexts through the real HDE pool (worker threads):
// frames round-trip in sequence order, a damaged or lying frame is refused
// and leaves the context unusable until a resync, a resync frame decodes
// with a fresh context, and release() drops a key.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { HdePool, type Encoded } from '../../src/encoding/hde-pool.ts';
import { frameDigest } from '../../src/encoding/digest.ts';
import { Encoding } from '../../src/wire/messages.ts';

const KiB = 1024;

/** Frames that share content with earlier ones (as WAL does), plus edge cases: empty, incompressible, large. */
function sampleFrames(count: number): Array<{ meta: Buffer; data: Buffer }> {
  const base = randomBytes(48 * KiB);
  const frames: Array<{ meta: Buffer; data: Buffer }> = [];
  for (let i = 0; i < count; i++) {
    let data: Buffer;
    if (i === 3) data = Buffer.alloc(0);
    else if (i === 5) data = randomBytes(64 * KiB);
    else if (i === 7) data = Buffer.concat([base, base, base, base, base, base]);
    else data = Buffer.concat([base.subarray((i * 997) % KiB, 40 * KiB), Buffer.from(`frame ${i} `.repeat(200)), randomBytes(64)]);
    frames.push({ meta: Buffer.from(`meta-${i}`), data });
  }
  return frames;
}

/** Encode frames in order on one key; the first is a resync point. */
async function encodeAll(pool: HdePool, key: string, frames: Array<{ meta: Buffer; data: Buffer }>, resyncAt = new Set([0])): Promise<Encoded[]> {
  // Submitted without awaiting in between: the pool must keep them in order.
  // Copies go in: encodeStream may move a buffer to the worker.
  return Promise.all(frames.map((f, i) => pool.encodeStream(key, f.meta, Buffer.from(f.data), 3, resyncAt.has(i))));
}

function withPool(fn: (pool: HdePool) => Promise<void>): () => Promise<void> {
  return async () => {
    const pool = new HdePool(2);
    try {
      await fn(pool);
    } finally {
      await pool.close();
    }
  };
}

test('a sequence of frames round-trips through encodeStream/decodeStream in order', withPool(async (pool) => {
  const frames = sampleFrames(24);
  const encoded = await encodeAll(pool, 'send/s1', frames);
  assert.equal(pool.streamContexts, 1);

  // Every frame is ZSTD_STREAM; only the first is a resync point; digests are over the plaintext.
  encoded.forEach((e, i) => {
    assert.equal(e.encoding, Encoding.ZSTD_STREAM, `frame ${i} encoding`);
    assert.equal(e.resync, i === 0, `frame ${i} resync`);
    assert.ok(e.digest.equals(frameDigest(frames[i].meta, frames[i].data)), `frame ${i} digest`);
  });
  // History pays: frame 7 repeats 48 KiB six times and later frames repeat earlier ones.
  const independent = await pool.encode(frames[10].meta, Buffer.from(frames[10].data), 3);
  assert.ok(encoded[10].payload.length < independent.payload.length / 4, `streaming frame 10 is ${encoded[10].payload.length} bytes, independent ${independent.payload.length}`);

  // Decode in sequence order on another key (the receiver's context).
  const decoded = await Promise.all(encoded.map((e, i) => pool.decodeStream('recv/s1', frames[i].meta, Buffer.from(e.payload), frames[i].data.length, e.resync)));
  decoded.forEach((d, i) => {
    assert.ok(d.data.equals(frames[i].data), `frame ${i} plaintext`);
    assert.ok(d.digest.equals(encoded[i].digest), `frame ${i} decoded digest`);
  });
  assert.equal(pool.streamContexts, 2);
}));

test('a streaming frame that lies about its size, is truncated, carries junk or is damaged is refused', withPool(async (pool) => {
  const frames = sampleFrames(8);
  const encoded = await encodeAll(pool, 'send/s2', frames);
  const decode = (key: string, i: number, payload: Buffer, rawLength = frames[i].data.length): Promise<unknown> =>
    pool.decodeStream(key, frames[i].meta, payload, rawLength, encoded[i].resync);
  const good = async (key: string, upTo: number): Promise<void> => {
    for (let i = 0; i < upTo; i++) await decode(key, i, Buffer.from(encoded[i].payload));
  };

  // Declared size one byte short, one byte long.
  await good('r-short', 2);
  await assert.rejects(decode('r-short', 2, Buffer.from(encoded[2].payload), frames[2].data.length - 1), /decodes past/);
  await good('r-long', 2);
  await assert.rejects(decode('r-long', 2, Buffer.from(encoded[2].payload), frames[2].data.length + 1), /decoded to \d+ bytes, header says/);
  // Truncated payload, trailing junk.
  await good('r-trunc', 2);
  await assert.rejects(decode('r-trunc', 2, encoded[2].payload.subarray(0, encoded[2].payload.length - 10)), /decoded to \d+ bytes/);
  await good('r-junk', 2);
  await assert.rejects(decode('r-junk', 2, Buffer.concat([encoded[2].payload, randomBytes(32)])));

  // A damaged payload either fails to decode or decodes to other bytes (the digest catches it): never the frame.
  for (const at of [0.1, 0.5, 0.9]) {
    const key = `r-flip-${at}`;
    await good(key, 2);
    const damaged = Buffer.from(encoded[2].payload);
    damaged[Math.floor(damaged.length * at)] ^= 0x5a;
    const result = await decode(key, 2, damaged).then(
      (d) => d as { digest: Buffer },
      (err: Error) => err,
    );
    if (!(result instanceof Error)) assert.ok(!result.digest.equals(encoded[2].digest), `flip at ${at} went unnoticed`);
  }

  // After a refusal the context is unusable: the next, intact frame is refused too.
  await assert.rejects(decode('r-short', 3, Buffer.from(encoded[3].payload)), /no history/);
  // A first frame that is not a resync point has no context to decode with.
  await assert.rejects(decode('r-fresh', 2, Buffer.from(encoded[2].payload)), /first frame must be a resync point/);
}));

test('a resync frame decodes with a fresh context and the stream goes on from it', withPool(async (pool) => {
  const frames = sampleFrames(12);
  const encoded = await encodeAll(pool, 'send/s3', frames, new Set([0, 6]));
  assert.deepEqual(encoded.map((e) => e.resync), frames.map((_, i) => i === 0 || i === 6));

  // A restarted receiver that never saw frames 0..5 starts at the resync frame 6.
  for (let i = 6; i < frames.length; i++) {
    const d = await pool.decodeStream('recv/restarted', frames[i].meta, Buffer.from(encoded[i].payload), frames[i].data.length, encoded[i].resync);
    assert.ok(d.data.equals(frames[i].data), `frame ${i} after the resync`);
  }
  // A context mid-stream that gets the resync frame resets and decodes it too.
  const key = 'recv/continuous';
  for (let i = 0; i < frames.length; i++) {
    const d = await pool.decodeStream(key, frames[i].meta, Buffer.from(encoded[i].payload), frames[i].data.length, encoded[i].resync);
    assert.ok(d.data.equals(frames[i].data), `frame ${i} continuous`);
  }
  // Frame 7 needs frame 6's history: on a fresh context it is refused.
  await assert.rejects(pool.decodeStream('recv/late', frames[7].meta, Buffer.from(encoded[7].payload), frames[7].data.length, false), /resync point/);
  // After a failure, a resync frame makes the context usable again.
  await assert.rejects(pool.decodeStream('recv/recover', frames[1].meta, Buffer.from(encoded[1].payload), frames[1].data.length, true));
  const d6 = await pool.decodeStream('recv/recover', frames[6].meta, Buffer.from(encoded[6].payload), frames[6].data.length, true);
  assert.ok(d6.data.equals(frames[6].data));
}));

test('release drops a key: its next non-resync frame is refused and a resync starts over', withPool(async (pool) => {
  const frames = sampleFrames(4);
  const encoded = await encodeAll(pool, 'send/s4', frames);
  await pool.decodeStream('recv/s4', frames[0].meta, Buffer.from(encoded[0].payload), frames[0].data.length, true);
  assert.equal(pool.streamContexts, 2);
  pool.release('send/s4');
  pool.release('recv/s4');
  assert.equal(pool.streamContexts, 0);
  await assert.rejects(pool.decodeStream('recv/s4', frames[1].meta, Buffer.from(encoded[1].payload), frames[1].data.length, false), /resync point/);
  await assert.rejects(pool.encodeStream('send/s4', frames[1].meta, Buffer.from(frames[1].data), 3, false), /resync point/);
  // The worker dropped its context too: a resync on the same key starts from scratch and round-trips.
  const again = await pool.encodeStream('send/s4', frames[1].meta, Buffer.from(frames[1].data), 3, true);
  assert.equal(again.resync, true);
  const d = await pool.decodeStream('recv/s4', frames[1].meta, again.payload, frames[1].data.length, true);
  assert.ok(d.data.equals(frames[1].data));
}));

test('a level change restarts the context and marks the frame as a resync point', withPool(async (pool) => {
  const frames = sampleFrames(4);
  const a = await pool.encodeStream('send/s5', frames[0].meta, Buffer.from(frames[0].data), 3, true);
  const b = await pool.encodeStream('send/s5', frames[1].meta, Buffer.from(frames[1].data), 3, false);
  const c = await pool.encodeStream('send/s5', frames[2].meta, Buffer.from(frames[2].data), 6, false);
  assert.deepEqual([a.resync, b.resync, c.resync], [true, false, true]);
  const d = await pool.decodeStream('recv/s5', frames[2].meta, c.payload, frames[2].data.length, c.resync);
  assert.ok(d.data.equals(frames[2].data));
}));
