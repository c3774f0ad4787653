// Assemble a file from a PutRecipe (stage dedup@1): each chunk, in order,
// from the frame's inline bytes, from the chunks the destination was sent
// (ChunkStage), or from the files it holds (ChunkIndex.locate), every one
// checked against its SHA-256 before it is written. The caller owns the
// target (a temp file it then fsyncs and renames: apply stays atomic); when a
// chunk cannot be produced nothing is committed and the missing hashes are
// returned, so the caller can refuse the op instead of applying a wrong or
// partial file.

import { chunkHash } from '../../../encoding/hde/fastcdc.ts';
import type { PutRecipe } from '../../../wire/messages.ts';
import type { RecordedChunk } from './chunk-index.ts';

/** Where chunk bytes come from; each returns checked bytes or null. */
export interface RecipeChunkSources {
  /** Chunks received as PutChunkData (ChunkStage.get). */
  staged(hash: Buffer): Promise<Buffer | null>;
  /** Chunks in the sink's files (ChunkIndex.locate). */
  held(hash: Buffer): Promise<Buffer | null>;
}

/** What an assembly did. */
export interface RecipeAssembly {
  /** Hashes no source could produce (the file must not be committed); empty on success. */
  missing: Buffer[];
  /** The file's chunks at their offsets, for ChunkIndex.record after the commit. */
  chunks: RecordedChunk[];
  /** Bytes taken from each source. */
  inlineBytes: number;
  stagedBytes: number;
  heldBytes: number;
}

/**
 * Write the recipe's file through write(bytes, position). inline is the
 * frame's plaintext (the inline chunks, in order), already checked against
 * the recipe by checkPutRecipe.
 */
export async function assembleRecipe(
  recipe: PutRecipe,
  inline: Buffer,
  sources: RecipeChunkSources,
  write: (bytes: Buffer, position: number) => Promise<void>,
): Promise<RecipeAssembly> {
  const result: RecipeAssembly = { missing: [], chunks: [], inlineBytes: 0, stagedBytes: 0, heldBytes: 0 };
  let offset = 0;
  let inlineAt = 0;
  for (const c of recipe.chunks) {
    const hash = Buffer.from(c.hash.buffer, c.hash.byteOffset, c.hash.byteLength);
    let bytes: Buffer | null = null;

    // Inline bytes must be the chunk named, like any other source.
    if (c.inline) {
      const candidate = inline.subarray(inlineAt, inlineAt + c.length);
      inlineAt += c.length;
      if (candidate.length === c.length && chunkHash(candidate).equals(hash)) {
        bytes = candidate;
        result.inlineBytes += c.length;
      }
    } else {
      bytes = await sources.staged(hash);
      if (bytes) result.stagedBytes += c.length;
      else {
        bytes = await sources.held(hash);
        if (bytes) result.heldBytes += c.length;
      }
    }

    // A source's bytes were checked against the hash; the length must agree too.
    if (bytes === null || bytes.length !== c.length) result.missing.push(hash);
    else if (result.missing.length === 0) await write(bytes, offset);
    result.chunks.push({ hash, offset, length: c.length });
    offset += c.length;
  }
  return result;
}
