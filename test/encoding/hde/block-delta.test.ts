// Stage delta@1's codec (src/encoding/hde/block-delta.ts): a chunk edited in
// place, by an insert or a delete, rebuilds exactly from its base and a
// delta much smaller than the chunk; a corrupt or lying delta is refused by
// the decoder or by the chunk hash, never returned as the chunk.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyDelta, baseSignatures, blockBytesFor, checkSignatures, encodeDelta } from '../../../src/encoding/hde/block-delta.ts';
import { chunkHash } from '../../../src/encoding/hde/fastcdc.ts';
import { seededBytes } from '../../helpers/seeded-bytes.ts';

const KiB = 1024;

function roundTrip(base: Buffer, target: Buffer): Buffer {
  const sig = baseSignatures(base);
  checkSignatures(sig, base.length);
  const delta = encodeDelta(target, sig);
  const rebuilt = applyDelta(base, sig.blockBytes, delta, target.length);
  assert.ok(rebuilt.equals(target), 'rebuilt chunk differs');
  assert.ok(chunkHash(rebuilt).equals(chunkHash(target)));
  return delta;
}

test('edits inside a chunk rebuild exactly from a small delta', () => {
  const base = seededBytes(200 * KiB, 1);
  // Overwrite 2 KiB in the middle.
  const overwritten = Buffer.from(base);
  seededBytes(2 * KiB, 2).copy(overwritten, 100 * KiB + 17);
  assert.ok(roundTrip(base, overwritten).length < 8 * KiB);
  // Insert 3 KiB, and delete 1 KiB.
  const inserted = Buffer.concat([base.subarray(0, 50 * KiB + 5), seededBytes(3 * KiB, 3), base.subarray(50 * KiB + 5)]);
  assert.ok(roundTrip(base, inserted).length < 8 * KiB);
  const deleted = Buffer.concat([base.subarray(0, 70 * KiB + 1), base.subarray(71 * KiB + 1)]);
  assert.ok(roundTrip(base, deleted).length < 4 * KiB);
  // A target unrelated to the base, an empty-ish and a tiny one.
  const other = seededBytes(64 * KiB, 9);
  assert.ok(roundTrip(base, other).length >= other.length);
  roundTrip(base, Buffer.from('x'));
  roundTrip(Buffer.from('short base'), seededBytes(3000, 4));
});

test('block size grows with the square root of the base, within bounds', () => {
  assert.equal(blockBytesFor(1), 512);
  assert.equal(blockBytesFor(64 * KiB), 1024);
  assert.equal(blockBytesFor(256 * KiB), 2048);
  assert.equal(blockBytesFor(2 ** 40), 64 * KiB);
});

test('a corrupt or lying delta is refused by the decoder or fails the chunk hash', () => {
  const base = seededBytes(64 * KiB, 5);
  const target = Buffer.from(base);
  seededBytes(1000, 6).copy(target, 30_000);
  const sig = baseSignatures(base);
  const delta = encodeDelta(target, sig);
  const want = chunkHash(target);

  // Truncated, a copy beyond the base, output longer or shorter than declared: thrown.
  assert.throws(() => applyDelta(base, sig.blockBytes, delta.subarray(0, delta.length - 3), target.length), /delta: /);
  assert.throws(() => applyDelta(base, sig.blockBytes, Buffer.from([0x03, 0x7f]), target.length), /copy of blocks 127\.\.127, base has 64/);
  assert.throws(() => applyDelta(base, sig.blockBytes, delta, target.length - 1), /beyond the declared/);
  assert.throws(() => applyDelta(base, sig.blockBytes, delta, target.length + 1), /rebuilt 65536 bytes, declared 65537/);
  assert.throws(() => applyDelta(base, sig.blockBytes, Buffer.from([0x00]), 1), /empty op/);

  // Well formed but lying (a flipped literal byte, copies of the wrong blocks): rebuilds, and the hash says no.
  for (let i = 0; i < delta.length; i += 97) {
    const lie = Buffer.from(delta);
    lie[i] ^= 0x01;
    let rebuilt: Buffer | null = null;
    try {
      rebuilt = applyDelta(base, sig.blockBytes, lie, target.length);
    } catch {
      continue;
    }
    assert.ok(!chunkHash(rebuilt).equals(want) || rebuilt.equals(target), `byte ${i}: a lying delta matched the hash`);
  }
  // Signatures a peer made up are checked before use.
  assert.throws(() => checkSignatures({ ...sig, blockBytes: 3 }, base.length), /block of 3 bytes/);
  assert.throws(() => checkSignatures({ ...sig, signatures: sig.signatures.subarray(1) }, base.length), /signature bytes/);
  assert.throws(() => checkSignatures(sig, base.length - 1), /length 65536/);
});
