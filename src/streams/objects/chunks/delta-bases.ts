// The destination's side of stage delta@1, over the sink's files
// (ChunkFiles): for the chunks a query reports missing, the ranges of the
// older file at the same path they may be deltas against (the same place
// in the file, widened by DELTA_BASE_SLACK_BYTES for inserts and deletes
// before it), as block signatures; and, for a PutChunkDelta, the chunk
// rebuilt from its base. A base is re-read and checked against the hash it
// was offered with: a file that changed since the query gives no chunk
// (the recipe then lacks it and the source asks again), and a rebuilt
// chunk is checked against its own hash: a wrong one is refused.

import { createHash } from 'node:crypto';
import { applyDelta, baseSignatures } from '../../../encoding/hde/block-delta.ts';
import { chunkHash } from '../../../encoding/hde/fastcdc.ts';
import { DedupMessageError } from '../../../wire/dedup-messages.ts';
import { MAX_DELTA_BASE_BYTES, MAX_DELTA_BASES } from '../../../wire/delta-messages.ts';
import type { DeltaBase, PutChunkDelta } from '../../../wire/messages.ts';
import type { ChunkFileReader, ChunkFiles } from './chunk-files.ts';

/** A base reaches this far before and after the chunk's own range, bytes (edits up to this size before it still line up). */
export const DELTA_BASE_SLACK_BYTES = 16 * 1024;

/** The missing chunks a query asked bases for: index in the query, offset and length in the new file. */
export interface WantedBase {
  index: number;
  offset: number;
  length: number;
}

/** Bases for wanted chunks from the file at path (none when it is not there); at most MAX_DELTA_BASES. */
export async function deltaBasesFor(files: ChunkFiles, path: string, wanted: readonly WantedBase[]): Promise<DeltaBase[]> {
  const reader = await files.open(path);
  if (!reader) return [];
  try {
    const bases: DeltaBase[] = [];
    for (const w of wanted) {
      if (bases.length >= MAX_DELTA_BASES) break;
      // The chunk's place in the older file, widened; nothing when the older file ends before it.
      const from = Math.max(0, w.offset - DELTA_BASE_SLACK_BYTES);
      const to = Math.min(reader.version.size, w.offset + w.length + DELTA_BASE_SLACK_BYTES, from + MAX_DELTA_BASE_BYTES);
      if (to <= from) continue;
      const bytes = await readRange(reader, from, to - from);
      if (!bytes) break;
      const sig = baseSignatures(bytes);
      bases.push({ index: w.index, offset: from, length: bytes.length, hash: sha256(bytes), blockBytes: sig.blockBytes, signatures: sig.signatures });
    }
    return bases;
  } finally {
    await reader.close();
  }
}

/**
 * The chunk a (checked) PutChunkDelta describes, rebuilt from its base and
 * checked against its hash; null when the base is not there as offered
 * (changed or gone since). Throws DedupMessageError when the delta is
 * malformed or rebuilds a chunk other than the one named.
 */
export async function rebuildDeltaChunk(files: ChunkFiles, op: PutChunkDelta, delta: Uint8Array): Promise<Buffer | null> {
  const reader = await files.open(op.basePath);
  if (!reader) return null;
  let base: Buffer | null;
  try {
    base = await readRange(reader, op.baseOffset, op.baseLength);
  } finally {
    await reader.close();
  }
  if (!base || !sha256(base).equals(op.baseHash)) return null;
  const what = `put chunk delta against ${JSON.stringify(op.basePath)}`;
  let chunk: Buffer;
  try {
    chunk = applyDelta(base, op.blockBytes, delta, op.length);
  } catch (err) {
    throw new DedupMessageError(`${what}: ${(err as Error).message}`, { cause: err });
  }
  if (!chunkHash(chunk).equals(op.hash)) {
    throw new DedupMessageError(`${what}: rebuilt chunk hashes to ${chunkHash(chunk).toString('hex')}, the op names ${Buffer.from(op.hash).toString('hex')}`);
  }
  return chunk;
}

// Exactly length bytes at position, or null when the file is shorter.
async function readRange(reader: ChunkFileReader, position: number, length: number): Promise<Buffer | null> {
  const bytes = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const n = await reader.read(bytes, got, length - got, position + got);
    if (n === 0) return null;
    got += n;
  }
  return bytes;
}

function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}
