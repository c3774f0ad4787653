// Independent-frame encoding in the HDE pool: compressible frames are
// compressed and timed, frames that sample as incompressible go raw without
// a full compression, and either way they decode to the same bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HdePool, type Encoded } from '../../src/encoding/hde-pool.ts';
import { Encoding, envelopeCodec } from '../../src/wire/messages.ts';
import { frameDataFrame } from '../../src/wire/data-frame-writer.ts';
import { FrameDecoder } from '../../src/wire/frame-decoder.ts';
import { allocFramePayload } from '../../src/wire/frame-headroom.ts';

const FRAME = 256 * 1024;

function text(bytes: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; lines.join('').length < bytes; i++) lines.push(`row ${i}: status=ok region=eu-west lag_ms=${i % 97}\n`);
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

test('compressible frames are compressed (and timed), random ones go raw untimed; both decode to their bytes', async () => {
  const pool = new HdePool(1);
  try {
    const meta = Buffer.from('meta');
    const plain = text(FRAME);
    const textEnc = await pool.encode(meta, Buffer.from(plain), 1);
    assert.equal(textEnc.encoding, Encoding.ZSTD);
    assert.ok(textEnc.payload.length < FRAME / 4, `text compressed to ${textEnc.payload.length}`);
    assert.ok(textEnc.compressMs > 0, 'compression time not reported');

    const random = randomBytes(FRAME);
    const randomEnc = await pool.encode(meta, Buffer.from(random), 1);
    assert.equal(randomEnc.encoding, Encoding.RAW);
    assert.equal(randomEnc.compressMs, 0, 'a sampled-incompressible frame was compressed anyway');

    for (const [enc, want] of [[textEnc, plain], [randomEnc, random]] as const) {
      const dec = await pool.decode(meta, enc.payload, enc.encoding, FRAME);
      assert.equal(Buffer.compare(dec.data, want), 0);
      assert.equal(Buffer.compare(dec.digest, enc.digest), 0);
    }
  } finally {
    await pool.close();
  }
});

test('a frame with random slices but a compressible rest is still sent intact (raw)', async () => {
  // Half text, half random: whatever the sample says, the bytes arrive unchanged.
  const pool = new HdePool(1);
  try {
    const mixed = Buffer.concat([text(FRAME / 2), randomBytes(FRAME / 2)]);
    const enc = await pool.encode(Buffer.alloc(0), Buffer.from(mixed), 3);
    const dec = await pool.decode(Buffer.alloc(0), enc.payload, enc.encoding, FRAME);
    assert.equal(Buffer.compare(dec.data, mixed), 0);
  } finally {
    await pool.close();
  }
});

test('small frames (coded on the calling thread) round-trip, and a corrupt one is refused like a worker would', async () => {
  const pool = new HdePool(1);
  try {
    const small = text(4096);
    const enc = await pool.encode(Buffer.from('m'), Buffer.from(small), 1);
    assert.equal(enc.encoding, Encoding.ZSTD);
    const dec = await pool.decode(Buffer.from('m'), enc.payload, enc.encoding, small.length);
    assert.equal(Buffer.compare(dec.data, small), 0);
    assert.equal(Buffer.compare(dec.digest, enc.digest), 0);
    const corrupt = Buffer.from(enc.payload);
    corrupt.fill(0x55, 4);
    await assert.rejects(pool.decode(Buffer.from('m'), corrupt, Encoding.ZSTD, small.length));
    // Raw length that does not match is refused too.
    await assert.rejects(pool.decode(Buffer.from('m'), small.subarray(0, 100), Encoding.RAW, 200), /raw payload is 100 bytes, header says 200/);
  } finally {
    await pool.close();
  }
});

test('frames framed in place around worker buffers stay intact while the workers reuse their scratch for later frames', async () => {
  // Each worker compresses into one reused buffer: a result must never be a
  // view of it. Encode frames of different content back to back (one-shot
  // and streamed, compressible and random), frame each in place, and only
  // then decode them all: every frame must still hold its own bytes.
  const pool = new HdePool(1);
  try {
    const meta = Buffer.from('m');
    const long = text(FRAME + 1000);
    const plains = [long.subarray(0, FRAME), randomBytes(FRAME), long.subarray(1000), long.subarray(0, FRAME / 2)];
    const framed: Buffer[] = [];
    let resync = true;
    for (const [i, plain] of plains.entries()) {
      for (const streamed of [false, true]) {
        const data = allocFramePayload(plain.length);
        plain.copy(data);
        const enc: Encoded = streamed ? await pool.encodeStream('k', meta, data, 1, resync) : await pool.encode(meta, data, 1);
        if (streamed) resync = false;
        if (i === 0) assert.ok(enc.headroom >= 64, `${streamed ? 'streamed' : 'one-shot'} result came back without headroom (${enc.headroom})`);
        const f = frameDataFrame({ streamId: 's', seq: framed.length, epoch: 1, encoding: enc.encoding as 0 | 1 | 2, digest: enc.digest, meta, payload: enc.payload, rawLength: plain.length, resync: enc.resync }, enc.headroom);
        if (enc.headroom >= 64) assert.equal(f.buffer, enc.payload.buffer, 'framed by a copy despite the headroom');
        framed.push(f);
      }
    }
    let at = 0;
    for (const plain of plains) {
      for (const streamed of [false, true]) {
        const frame = envelopeCodec.decode(new FrameDecoder().push(framed[at++]!)[0]!).data!;
        const digest = Buffer.from(frame.digest); // decoding moves the frame's buffer to the worker
        const dec = streamed
          ? await pool.decodeStream('r', frame.meta, frame.payload, frame.rawLength, frame.resync)
          : await pool.decode(frame.meta, frame.payload, frame.encoding, frame.rawLength);
        assert.equal(Buffer.compare(dec.data, plain), 0, `frame ${at - 1} changed after later frames were encoded`);
        assert.equal(Buffer.compare(dec.digest, digest), 0);
      }
    }
  } finally {
    await pool.close();
  }
});

test('small streamed frames decode on a worker frame after frame (a result in the worker\'s shared Buffer pool is copied back, never moved)', async () => {
  // Outputs of a few hundred bytes come from the worker thread's Buffer
  // pool slab; moving one would detach the slab and break the worker.
  const pool = new HdePool(1);
  try {
    const meta = Buffer.from('m');
    const plains = Array.from({ length: 120 }, (_, i) => Buffer.from(`small frame ${i} `.repeat(1 + (i % 20))));
    const encoded: Encoded[] = [];
    for (const [i, plain] of plains.entries()) encoded.push(await pool.encodeStream('k', meta, plain, 1, i === 0));
    for (const [i, enc] of encoded.entries()) {
      const dec = await pool.decodeStream('r', meta, enc.payload, plains[i]!.length, enc.resync);
      assert.equal(Buffer.compare(dec.data, plains[i]!), 0, `frame ${i}`);
    }
  } finally {
    await pool.close();
  }
});
