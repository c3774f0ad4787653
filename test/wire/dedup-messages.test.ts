// Stage dedup@1's wire messages: they round-trip through the Envelope and
// ObjectOp codecs, and the checked decoders refuse truncated, malformed and
// oversized input with an error naming the message and the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { envelopeCodec, objectOpCodec, type PutRecipe } from '../../src/wire/messages.ts';
import {
  checkChunkData,
  checkChunkHave,
  checkChunkQuery,
  checkPutRecipe,
  decodeChunkHave,
  decodeChunkQuery,
  decodePutRecipe,
  DedupMessageError,
  encodeChunkHave,
  encodeChunkQuery,
  encodePutRecipe,
  MAX_QUERY_CHUNKS,
  MAX_RECIPE_CHUNKS,
  missingBitmap,
  missingIndexes,
  queryHashes,
} from '../../src/wire/dedup-messages.ts';

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();
const hashes = [sha('a'), sha('b'), sha('c'), sha('d'), sha('e'), sha('f'), sha('g'), sha('h'), sha('i')];

function recipe(): PutRecipe {
  return {
    path: 'dir/file.bin',
    version: { size: 70_000 + 100, mtimeUs: 1_700_000_000_123_456, mode: 0o644 },
    chunks: [
      { hash: hashes[0], length: 70_000, inline: false },
      { hash: hashes[1], length: 100, inline: true },
    ],
  };
}

test('ChunkQuery and ChunkHave round-trip in an Envelope; the bitmap names exactly the missing hashes', () => {
  const query = { streamId: 'objects-a', queryId: 7, path: 'dir/file.bin', hashes: Buffer.concat(hashes) };
  const back = envelopeCodec.decode(envelopeCodec.encode({ chunkQuery: query }));
  assert.deepEqual(Object.keys(back), ['chunkQuery']);
  const q = checkChunkQuery(back.chunkQuery!);
  assert.equal(q.queryId, 7);
  assert.deepEqual(queryHashes(q).map((h) => h.toString('hex')), hashes.map((h) => h.toString('hex')));

  const flags = hashes.map((_, i) => i === 1 || i === 8);
  const have = { streamId: 'objects-a', queryId: 7, count: hashes.length, missing: missingBitmap(flags), refusal: '' };
  const haveBack = envelopeCodec.decode(envelopeCodec.encode({ chunkHave: have })).chunkHave!;
  assert.deepEqual(missingIndexes(checkChunkHave(haveBack, hashes.length), hashes.length), [1, 8]);
  // A refusal means: everything is missing.
  const refused = { ...have, missing: Buffer.alloc(0), count: 0, refusal: 'no chunk index' };
  assert.deepEqual(missingIndexes(checkChunkHave(refused, 3), 3), [0, 1, 2]);
});

test('PutRecipe and PutChunkData round-trip as ObjectOps', () => {
  const r = recipe();
  const op = objectOpCodec.decode(objectOpCodec.encode({ recipe: r }));
  assert.deepEqual(Object.keys(op), ['recipe']);
  const back = checkPutRecipe(op.recipe!, 100);
  assert.equal(back.path, r.path);
  assert.deepEqual(back.version, r.version);
  assert.deepEqual(back.chunks.map((c) => [Buffer.from(c.hash).toString('hex'), c.length, c.inline]), r.chunks.map((c) => [Buffer.from(c.hash).toString('hex'), c.length, c.inline]));
  assert.deepEqual(decodePutRecipe(encodePutRecipe(r), 100).chunks.length, 2);

  const data = objectOpCodec.decode(objectOpCodec.encode({ chunkData: { hash: hashes[2] } }));
  assert.deepEqual(Object.keys(data), ['chunkData']);
  assert.ok(Buffer.from(checkChunkData(data.chunkData!, 4096)).equals(hashes[2]));
});

test('truncated messages are refused with a clear error', () => {
  const q = encodeChunkQuery({ streamId: 's', queryId: 1, path: 'p', hashes: Buffer.concat(hashes) });
  assert.throws(() => decodeChunkQuery(q.subarray(0, q.length - 5)), (err: Error) => err instanceof DedupMessageError && /chunk query: malformed or truncated/.test(err.message));
  const r = encodePutRecipe(recipe());
  assert.throws(() => decodePutRecipe(r.subarray(0, r.length - 3), 100), /put recipe: malformed or truncated/);
  const h = encodeChunkHave({ streamId: 's', queryId: 1, count: 9, missing: Buffer.alloc(2), refusal: '' });
  assert.throws(() => decodeChunkHave(h.subarray(0, h.length - 1), 9), /chunk have/);
  // A hash cut short inside an otherwise whole query.
  assert.throws(() => decodeChunkQuery(encodeChunkQuery({ streamId: 's', queryId: 2, path: 'p', hashes: Buffer.alloc(33) })), /hashes of 33 bytes, not a multiple of 32/);
});

test('oversized or inconsistent messages are refused naming the field', () => {
  const many = Buffer.alloc((MAX_QUERY_CHUNKS + 1) * 32);
  assert.throws(() => decodeChunkQuery(encodeChunkQuery({ streamId: 's', queryId: 3, path: 'p', hashes: many })), /65537 hashes, want 1\.\.65536/);
  assert.throws(() => checkChunkQuery({ streamId: 's', queryId: 4, path: 'p', hashes: Buffer.alloc(0) }), /0 hashes/);

  assert.throws(() => checkChunkHave({ streamId: 's', queryId: 5, count: 10, missing: Buffer.alloc(2), refusal: '' }, 9), /count 10, the query asked 9/);
  assert.throws(() => checkChunkHave({ streamId: 's', queryId: 5, count: 9, missing: Buffer.alloc(1), refusal: '' }, 9), /bitmap of 1 bytes for 9 hashes/);
  assert.throws(() => checkChunkHave({ streamId: 's', queryId: 5, count: 9, missing: Buffer.from([0, 0x02]), refusal: '' }, 9), /bits set beyond hash 8/);

  const r = recipe();
  assert.throws(() => checkPutRecipe(r, 99), /inline chunks add up to 100 bytes, payload has 99/);
  assert.throws(() => checkPutRecipe({ ...r, version: { ...r.version, size: 5 } }, 100), /chunks add up to 70100 bytes, version says 5/);
  assert.throws(() => checkPutRecipe({ ...r, chunks: [{ hash: hashes[0].subarray(0, 31), length: 70_100, inline: false }] }, 0), /chunk 0 hash of 31 bytes/);
  assert.throws(() => checkPutRecipe({ ...r, chunks: [{ hash: hashes[0], length: 0, inline: false }] }, 0), /chunk 0 length 0/);
  assert.throws(() => checkPutRecipe({ ...r, version: { ...r.version, size: 70_100 }, chunks: [{ hash: hashes[0], length: 70_100, inline: true }] }, 70_100), /inline chunk 0 of 70100 bytes, at most 65536/);
  const huge = { ...r, chunks: new Array(MAX_RECIPE_CHUNKS + 1).fill(r.chunks[0]) };
  assert.throws(() => checkPutRecipe(huge, 0), /1048577 chunks, at most 1048576/);
  assert.throws(() => checkChunkData({ hash: hashes[0] }, 0), /0 bytes/);
  assert.throws(() => checkChunkData({ hash: Buffer.alloc(8) }, 10), /hash of 8 bytes/);
});
