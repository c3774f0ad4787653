// The messages of stage delta@1 (proto/dwcp.proto: ChunkQuery.offsets and
// lengths, ChunkHave.bases / DeltaBase, PutChunkDelta), checked before use,
// as dedup-messages.ts checks dedup@1's: each check throws a
// DedupMessageError naming the message, the field and the value.

import { MAX_BLOCK_BYTES, MIN_BLOCK_BYTES, checkSignatures } from '../encoding/hde/block-delta.ts';
import { CHUNK_HASH_BYTES, DedupMessageError, MAX_WIRE_CHUNK_BYTES } from './dedup-messages.ts';
import type { ChunkQuery, DeltaBase, PutChunkDelta } from './messages.ts';

/** Largest delta base, bytes (a chunk of at most 256 KiB plus slack on both sides, with room). */
export const MAX_DELTA_BASE_BYTES = 1024 * 1024;
/** Most bases in one ChunkHave (each costs the destination a read and signatures). */
export const MAX_DELTA_BASES = 256;

/** The query's offsets and lengths when it asks for delta bases (one of each per hash), else null; throws when malformed. */
export function deltaQueryRanges(q: ChunkQuery): { offsets: number[]; lengths: number[] } | null {
  const offsets = q.offsets ?? [];
  const lengths = q.lengths ?? [];
  if (offsets.length === 0 && lengths.length === 0) return null;
  const n = q.hashes.length / CHUNK_HASH_BYTES;
  if (offsets.length !== n || lengths.length !== n) {
    throw new DedupMessageError(`chunk query ${q.queryId}: ${offsets.length} offsets and ${lengths.length} lengths for ${n} hashes`);
  }
  for (let i = 0; i < n; i++) {
    if (!(Number.isSafeInteger(offsets[i]) && offsets[i] >= 0)) throw new DedupMessageError(`chunk query ${q.queryId}: offset ${i} is ${offsets[i]}`);
    if (lengths[i] < 1 || lengths[i] > MAX_WIRE_CHUNK_BYTES) throw new DedupMessageError(`chunk query ${q.queryId}: length ${i} is ${lengths[i]}, want 1..${MAX_WIRE_CHUNK_BYTES}`);
  }
  return { offsets, lengths };
}

/** Check a ChunkHave's bases against the query (count hashes, missing ones as given); returns them. */
export function checkDeltaBases(queryId: number, bases: readonly DeltaBase[], isMissing: (index: number) => boolean): readonly DeltaBase[] {
  if (bases.length > MAX_DELTA_BASES) throw new DedupMessageError(`chunk have ${queryId}: ${bases.length} delta bases, at most ${MAX_DELTA_BASES}`);
  const seen = new Set<number>();
  for (const base of bases) {
    const what = `chunk have ${queryId}: delta base for hash ${base.index}`;
    if (!isMissing(base.index)) throw new DedupMessageError(`${what}: that hash is not missing`);
    if (seen.has(base.index)) throw new DedupMessageError(`${what}: given twice`);
    seen.add(base.index);
    if (base.hash.length !== CHUNK_HASH_BYTES) throw new DedupMessageError(`${what}: hash of ${base.hash.length} bytes, want ${CHUNK_HASH_BYTES}`);
    if (!(Number.isSafeInteger(base.offset) && base.offset >= 0)) throw new DedupMessageError(`${what}: offset ${base.offset}`);
    try {
      checkSignatures({ length: base.length, blockBytes: base.blockBytes, signatures: base.signatures }, MAX_DELTA_BASE_BYTES);
    } catch (err) {
      throw new DedupMessageError(`${what}: ${(err as Error).message}`, { cause: err });
    }
  }
  return bases;
}

/** Check a PutChunkDelta op against its payload length; returns it. */
export function checkChunkDelta(op: PutChunkDelta, payloadLength: number): PutChunkDelta {
  const what = `put chunk delta against ${JSON.stringify(op.basePath)}`;
  if (op.hash.length !== CHUNK_HASH_BYTES) throw new DedupMessageError(`${what}: hash of ${op.hash.length} bytes, want ${CHUNK_HASH_BYTES}`);
  if (op.baseHash.length !== CHUNK_HASH_BYTES) throw new DedupMessageError(`${what}: base hash of ${op.baseHash.length} bytes, want ${CHUNK_HASH_BYTES}`);
  if (op.length < 1 || op.length > MAX_WIRE_CHUNK_BYTES) throw new DedupMessageError(`${what}: length ${op.length}, want 1..${MAX_WIRE_CHUNK_BYTES}`);
  if (!(Number.isSafeInteger(op.baseOffset) && op.baseOffset >= 0)) throw new DedupMessageError(`${what}: base offset ${op.baseOffset}`);
  if (op.baseLength < 1 || op.baseLength > MAX_DELTA_BASE_BYTES) throw new DedupMessageError(`${what}: base length ${op.baseLength}, want 1..${MAX_DELTA_BASE_BYTES}`);
  if (!op.basePath) throw new DedupMessageError(`${what}: no base path`);
  // A delta of a chunk is at most its literal bytes plus a few bytes of ops per block.
  if (payloadLength < 1 || payloadLength > 2 * op.length + 64) throw new DedupMessageError(`${what}: delta of ${payloadLength} bytes for a chunk of ${op.length}`);
  if (!(Number.isInteger(op.blockBytes) && op.blockBytes >= MIN_BLOCK_BYTES && op.blockBytes <= MAX_BLOCK_BYTES)) {
    throw new DedupMessageError(`${what}: block of ${op.blockBytes} bytes, want ${MIN_BLOCK_BYTES}..${MAX_BLOCK_BYTES}`);
  }
  return op;
}
