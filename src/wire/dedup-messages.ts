// The messages of stage dedup@1 (proto/dwcp.proto: ChunkQuery, ChunkHave,
// PutChunkData, PutRecipe), checked before use: a peer's message names at
// most so many chunks of at most so many bytes, hashes are 32 bytes, bitmaps
// and inline bytes add up. Each check throws a DedupMessageError naming the
// message, the field and the value; receivers turn that into a refusal of
// the stream (bad input halts the stream, never the agent).

import { codec, type ChunkHave, type ChunkQuery, type PutRecipe } from './messages.ts';

/** Bytes of a chunk hash (SHA-256). */
export const CHUNK_HASH_BYTES = 32;
/** Most hashes in one ChunkQuery (2 MiB of hashes; 4 GiB of 64 KiB chunks). Larger files query in parts. */
export const MAX_QUERY_CHUNKS = 65_536;
/** Most chunks in one recipe (~72 GiB at cdc@1's mean chunk); larger files travel as PutChunk. */
export const MAX_RECIPE_CHUNKS = 1 << 20;
/** Largest chunk, bytes (cdc@1's maxBytes is 256 KiB; the bound allows other parameters). */
export const MAX_WIRE_CHUNK_BYTES = 16 * 1024 * 1024;
/** Largest chunk sent inline in a recipe, bytes. */
export const MAX_INLINE_CHUNK_BYTES = 64 * 1024;

/** A dedup message that is malformed or exceeds a limit. */
export class DedupMessageError extends Error {
  override name = 'DedupMessageError';
}

const chunkQueryCodec = codec<ChunkQuery>('dwcp.v1.ChunkQuery');
const chunkHaveCodec = codec<ChunkHave>('dwcp.v1.ChunkHave');
const putRecipeCodec = codec<PutRecipe>('dwcp.v1.PutRecipe');

/** Encode a standalone ChunkQuery (tests, fuzzing; on a carrier it travels in an Envelope). */
export const encodeChunkQuery = (q: ChunkQuery): Uint8Array => chunkQueryCodec.encode(q);
/** Encode a standalone ChunkHave. */
export const encodeChunkHave = (h: ChunkHave): Uint8Array => chunkHaveCodec.encode(h);
/** Encode a standalone PutRecipe. */
export const encodePutRecipe = (r: PutRecipe): Uint8Array => putRecipeCodec.encode(r);

/** Decode and check a standalone ChunkQuery. */
export function decodeChunkQuery(bytes: Uint8Array): ChunkQuery {
  return checkChunkQuery(decodeWith(chunkQueryCodec, bytes, 'chunk query'));
}

/** Decode and check a standalone ChunkHave answering a query of `count` hashes. */
export function decodeChunkHave(bytes: Uint8Array, count: number): ChunkHave {
  return checkChunkHave(decodeWith(chunkHaveCodec, bytes, 'chunk have'), count);
}

/** Decode and check a standalone PutRecipe whose frame carries payloadLength plaintext bytes. */
export function decodePutRecipe(bytes: Uint8Array, payloadLength: number): PutRecipe {
  return checkPutRecipe(decodeWith(putRecipeCodec, bytes, 'put recipe'), payloadLength);
}

/** Check a ChunkQuery (as decoded from an Envelope); returns it. */
export function checkChunkQuery(q: ChunkQuery): ChunkQuery {
  const n = q.hashes.length / CHUNK_HASH_BYTES;
  if (!Number.isInteger(n)) throw new DedupMessageError(`chunk query ${q.queryId}: hashes of ${q.hashes.length} bytes, not a multiple of ${CHUNK_HASH_BYTES}`);
  if (n < 1 || n > MAX_QUERY_CHUNKS) throw new DedupMessageError(`chunk query ${q.queryId}: ${n} hashes, want 1..${MAX_QUERY_CHUNKS}`);
  if (!q.streamId) throw new DedupMessageError(`chunk query ${q.queryId}: no stream id`);
  return q;
}

/** Check a ChunkHave against the query it answers (count hashes); returns it. */
export function checkChunkHave(h: ChunkHave, count: number): ChunkHave {
  if (h.refusal) return h;
  if (h.count !== count) throw new DedupMessageError(`chunk have ${h.queryId}: count ${h.count}, the query asked ${count}`);
  if (h.missing.length !== Math.ceil(count / 8)) throw new DedupMessageError(`chunk have ${h.queryId}: bitmap of ${h.missing.length} bytes for ${count} hashes`);
  // Spare bits of the last byte must be zero (no hash beyond count is missing).
  const spare = count % 8;
  if (spare !== 0 && h.missing[h.missing.length - 1] >> spare !== 0) throw new DedupMessageError(`chunk have ${h.queryId}: bits set beyond hash ${count - 1}`);
  return h;
}

/** Check a PutRecipe against the plaintext length of its frame; returns it. */
export function checkPutRecipe(r: PutRecipe, payloadLength: number): PutRecipe {
  const what = `put recipe ${JSON.stringify(r.path)}`;
  if (!r.version) throw new DedupMessageError(`${what}: no version`);
  if (r.chunks.length > MAX_RECIPE_CHUNKS) throw new DedupMessageError(`${what}: ${r.chunks.length} chunks, at most ${MAX_RECIPE_CHUNKS}`);
  let size = 0;
  let inlineBytes = 0;
  for (const [i, c] of r.chunks.entries()) {
    if (c.hash.length !== CHUNK_HASH_BYTES) throw new DedupMessageError(`${what}: chunk ${i} hash of ${c.hash.length} bytes, want ${CHUNK_HASH_BYTES}`);
    if (c.length < 1 || c.length > MAX_WIRE_CHUNK_BYTES) throw new DedupMessageError(`${what}: chunk ${i} length ${c.length}, want 1..${MAX_WIRE_CHUNK_BYTES}`);
    if (c.inline && c.length > MAX_INLINE_CHUNK_BYTES) throw new DedupMessageError(`${what}: inline chunk ${i} of ${c.length} bytes, at most ${MAX_INLINE_CHUNK_BYTES}`);
    size += c.length;
    if (c.inline) inlineBytes += c.length;
  }
  if (size !== r.version.size) throw new DedupMessageError(`${what}: chunks add up to ${size} bytes, version says ${r.version.size}`);
  if (inlineBytes !== payloadLength) throw new DedupMessageError(`${what}: inline chunks add up to ${inlineBytes} bytes, payload has ${payloadLength}`);
  return r;
}

/** Check a PutChunkData op against its payload; returns the hash. */
export function checkChunkData(op: { hash: Uint8Array }, payloadLength: number): Uint8Array {
  if (op.hash.length !== CHUNK_HASH_BYTES) throw new DedupMessageError(`put chunk data: hash of ${op.hash.length} bytes, want ${CHUNK_HASH_BYTES}`);
  if (payloadLength < 1 || payloadLength > MAX_WIRE_CHUNK_BYTES) throw new DedupMessageError(`put chunk data: ${payloadLength} bytes, want 1..${MAX_WIRE_CHUNK_BYTES}`);
  return op.hash;
}

/** The hashes of a (checked) query, each a view into it. */
export function queryHashes(q: ChunkQuery): Buffer[] {
  const all = Buffer.from(q.hashes.buffer, q.hashes.byteOffset, q.hashes.byteLength);
  return Array.from({ length: all.length / CHUNK_HASH_BYTES }, (_, i) => all.subarray(i * CHUNK_HASH_BYTES, (i + 1) * CHUNK_HASH_BYTES));
}

/** The ChunkHave bitmap for flags (true = missing). */
export function missingBitmap(missing: readonly boolean[]): Buffer {
  const bitmap = Buffer.alloc(Math.ceil(missing.length / 8));
  missing.forEach((m, i) => {
    if (m) bitmap[i >>> 3] |= 1 << (i & 7);
  });
  return bitmap;
}

/** Indexes of the hashes a (checked) ChunkHave reports missing; all of them when refused. */
export function missingIndexes(h: ChunkHave, count: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++) if (h.refusal || (h.missing[i >>> 3] & (1 << (i & 7))) !== 0) out.push(i);
  return out;
}

function decodeWith<T>(c: { decode(bytes: Uint8Array): T }, bytes: Uint8Array, what: string): T {
  try {
    return c.decode(bytes);
  } catch (err) {
    throw new DedupMessageError(`${what}: malformed or truncated (${bytes.length} bytes): ${(err as Error).message}`, { cause: err });
  }
}
