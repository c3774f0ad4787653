// The source's side of stage delta@1, pure: a missing chunk the destination
// offered a base for goes as a PutChunkDelta when the delta is clearly
// smaller than the chunk, else as PutChunkData (the same bytes the dedup
// stage alone would send). Both are staged at the destination under the
// chunk's hash, so the recipe is the same either way.

import { encodeDelta } from '../../../encoding/hde/block-delta.ts';
import type { ChunkRef } from '../../../encoding/hde/fastcdc.ts';
import type { DeltaBase, ObjectOp } from '../../../wire/messages.ts';

/**
 * A delta is sent only when at most this share of the chunk's length: the
 * frame's zstd compresses both, and a delta that saves little costs the
 * destination a base read and a rebuild for nothing.
 */
export const DELTA_MAX_SHARE = 0.75;

/** Files that the destination holds an older version of go by recipe with delta bases from this size on, bytes (below, the query costs more than it saves). */
export const DELTA_MIN_FILE_BYTES = 4 * 1024;

/** One op of a delta plan: its ObjectOp and payload. */
export interface ChunkOp {
  op: ObjectOp;
  payload: Buffer;
  /** True when it went as a delta. */
  delta: boolean;
}

/** The op that carries chunk (its bytes) to a destination holding base of the file at path. */
export function chunkOpFor(path: string, chunk: ChunkRef, bytes: Buffer, base: DeltaBase): ChunkOp {
  const delta = encodeDelta(bytes, { length: base.length, blockBytes: base.blockBytes, signatures: base.signatures });
  if (delta.length > bytes.length * DELTA_MAX_SHARE) return { op: { chunkData: { hash: chunk.hash } }, payload: bytes, delta: false };
  return {
    op: {
      chunkDelta: {
        hash: chunk.hash,
        length: chunk.length,
        basePath: path,
        baseOffset: base.offset,
        baseLength: base.length,
        baseHash: base.hash,
        blockBytes: base.blockBytes,
      },
    },
    payload: delta,
    delta: true,
  };
}
