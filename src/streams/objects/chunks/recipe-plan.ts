// The source's side of stage dedup@1, as pure functions: the ChunkQuery for
// a chunked file, and, from the destination's ChunkHave, what to send: each
// missing chunk once (PutChunkData, large ones) or inline in the recipe
// (small ones), then the PutRecipe that names every chunk in file order.
// No I/O: the caller chunks the file (fileChunks), sends, and reads the
// missing chunks' bytes back by offset when it sends them (checking the
// file's version first: a file that changed meanwhile is planned again).

import type { ChunkRef } from '../../../encoding/hde/fastcdc.ts';
import { MAX_INLINE_CHUNK_BYTES, MAX_QUERY_CHUNKS, missingIndexes } from '../../../wire/dedup-messages.ts';
import { checkDeltaBases } from '../../../wire/delta-messages.ts';
import type { ChunkHave, ChunkQuery, DeltaBase, FileVersion, PutRecipe } from '../../../wire/messages.ts';

/**
 * Smallest file sent by recipe when the link negotiated dedup@1, and
 * recorded in the destination's chunk index when it arrives whole, bytes.
 * Below it a file is one or two cdc@1 chunks (16..256 KiB, mean 64 KiB):
 * a query's round trip would cost more than the bytes it might save.
 */
export const DEDUP_MIN_FILE_BYTES = 64 * 1024;

/** Missing chunks up to this size travel inline in the recipe's payload, bytes (the rest as PutChunkData). */
export const DEFAULT_INLINE_BYTES = 16 * 1024;

/** A chunked file ready to be queried. */
export interface ChunkedFile {
  path: string;
  version: FileVersion;
  chunks: ChunkRef[];
}

/** What to send for a file once the destination answered. */
export interface RecipePlan {
  /** Chunks to send as PutChunkData frames, each once, in file order (before the recipe). */
  chunkData: ChunkRef[];
  /** The recipe; its inline chunks' bytes (inline, in order) are the frame's payload. */
  recipe: PutRecipe;
  /** Ranges of the file that make up the recipe's payload, in order. */
  inline: ChunkRef[];
  /** Bytes of the file the destination already holds (not sent). */
  heldBytes: number;
  /** Stage delta@1: missing chunks the destination offered a base for, each once, in file order (sent as PutChunkDelta or PutChunkData, before the recipe). */
  deltas: Array<{ chunk: ChunkRef; base: DeltaBase }>;
}

/** The distinct hashes of a file in first-seen order (what the query asks about). */
export function distinctHashes(file: ChunkedFile): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  for (const c of file.chunks) {
    const key = c.hash.toString('hex');
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(c.hash);
  }
  return out;
}

/**
 * The query for a file; throws when it has more distinct chunks than one
 * query may ask (send it whole instead). deltaBases (stage delta@1) adds
 * each distinct chunk's first offset and length, asking for bases.
 */
export function chunkQueryFor(streamId: string, queryId: number, file: ChunkedFile, deltaBases = false): ChunkQuery {
  const hashes = distinctHashes(file);
  if (hashes.length > MAX_QUERY_CHUNKS) throw new Error(`chunk query for ${file.path}: ${hashes.length} distinct chunks, at most ${MAX_QUERY_CHUNKS}`);
  const query: ChunkQuery = { streamId, queryId, path: file.path, hashes: Buffer.concat(hashes) };
  if (deltaBases) {
    const first = new Map<string, { offset: number; length: number }>();
    for (const c of file.chunks) if (!first.has(c.hash.toString('hex'))) first.set(c.hash.toString('hex'), c);
    query.offsets = hashes.map((h) => first.get(h.toString('hex'))!.offset);
    query.lengths = hashes.map((h) => first.get(h.toString('hex'))!.length);
  }
  return query;
}

/** What to send, given the (checked) answer to chunkQueryFor(file); throws when its delta bases are malformed. */
export function planRecipe(file: ChunkedFile, have: ChunkHave, inlineBytes = DEFAULT_INLINE_BYTES): RecipePlan {
  const hashes = distinctHashes(file);
  const missingAt = missingIndexes(have, hashes.length);
  const missing = new Set(missingAt.map((i) => hashes[i].toString('hex')));
  // Bases (stage delta@1) only for hashes reported missing, each once; checked before use.
  const missingIndex = new Set(missingAt);
  const offered = have.refusal ? [] : checkDeltaBases(have.queryId, have.bases ?? [], (i) => missingIndex.has(i));
  const bases = new Map(offered.map((b) => [hashes[b.index]?.toString('hex'), b]));
  const limit = Math.min(inlineBytes, MAX_INLINE_CHUNK_BYTES);
  const plan: RecipePlan = { chunkData: [], recipe: { path: file.path, version: file.version, chunks: [] }, inline: [], heldBytes: 0, deltas: [] };
  const sent = new Set<string>();
  for (const c of file.chunks) {
    const key = c.hash.toString('hex');
    // Held, or sent earlier in this file: a reference.
    if (!missing.has(key) || sent.has(key)) {
      plan.recipe.chunks.push({ hash: c.hash, length: c.length, inline: false });
      if (!missing.has(key)) plan.heldBytes += c.length;
      continue;
    }
    // Missing with a base: a delta (each once).
    const base = bases.get(key);
    if (base) {
      plan.recipe.chunks.push({ hash: c.hash, length: c.length, inline: false });
      plan.deltas.push({ chunk: c, base });
      sent.add(key);
      continue;
    }
    // Missing: small ones inline, large ones as chunk data (each once).
    const inline = c.length <= limit;
    plan.recipe.chunks.push({ hash: c.hash, length: c.length, inline });
    if (inline) plan.inline.push(c);
    else {
      plan.chunkData.push(c);
      sent.add(key);
    }
  }
  return plan;
}
