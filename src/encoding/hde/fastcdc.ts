// Content-defined chunking (stage cdc@1): FastCDC with normalized chunking
// (Xia et al., USENIX ATC 2016, "FastCDC", section 3.3, level 2). A 32-bit
// gear hash rolls over the bytes (h = (h << 1) + GEAR[byte], so a bit k of h
// depends on the last k + 1 bytes); a cut falls where the masked top bits of
// h are all zero. Before the normal size a stricter mask (two more bits) makes
// cuts rarer, after it a looser one (two fewer) makes them likelier, which
// pulls chunk sizes towards the average; no byte before minBytes is hashed
// (the skip that makes FastCDC fast), and a chunk never exceeds maxBytes.
// Boundaries depend only on the bytes (and the parameters and gear table,
// which are part of the cdc@1 wire format): an insert near the start of a
// file moves only the chunks around it.
//
// Written here in TypeScript: npm's only FastCDC (`fastcdc`, bindings to a
// Rust crate) builds with cargo at install time and has not been kept up.
// Measured by scripts/measure-hde.ts (256 MiB of random bytes, Node 24,
// a shared 2-core VM): 1.38-1.63 GB per CPU second for the cuts; SHA-256 of
// the chunks (SHA-NI) 1.37-1.49 GB per CPU second. npm's blake3 3.0.0 does
// not install (the version of blake3-wasm it depends on is missing), so
// chunks are named by SHA-256.

import { createHash } from 'node:crypto';

/** Chunk size bounds of content-defined chunking. */
export interface CdcParams {
  /** No cut before this many bytes (the last chunk of a file may be shorter). */
  readonly minBytes: number;
  /** Normal (target) size; a power of two. */
  readonly avgBytes: number;
  /** A cut is forced at this many bytes. */
  readonly maxBytes: number;
}

/**
 * Defaults of cdc@1: 16 KiB / 64 KiB / 256 KiB. 64 KiB matches the objects
 * stream's frame size; a recipe reference (32-byte hash + length) costs
 * ~0.06 % of a 64 KiB chunk, and a 1 GiB sink holds ~16 k chunks, so the
 * chunk index stays small. A few-KiB edit costs about one chunk, which the
 * delta stage (zstd against the old chunk) shrinks to the edit itself.
 */
export const DEFAULT_CDC_PARAMS: CdcParams = { minBytes: 16 * 1024, avgBytes: 64 * 1024, maxBytes: 256 * 1024 };

/** Smallest accepted normal size, bytes (below it the masks get too few bits). */
export const MIN_AVG_BYTES = 256;
/** Largest accepted maximum chunk size, bytes (a chunk must fit a frame with room to spare). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;

/** Seed of the gear table of cdc@1 (changing it, or the generator, is a new stage version). */
const GEAR_SEED = 0x9e3779b9;

/**
 * The gear table of cdc@1: 256 pseudo-random 32-bit words from splitmix32
 * seeded with GEAR_SEED, generated here so that no table is copied around.
 */
export const GEAR: Int32Array = generateGear(GEAR_SEED);

function generateGear(seed: number): Int32Array {
  const table = new Int32Array(256);
  let state = seed | 0;
  for (let i = 0; i < 256; i++) {
    // splitmix32: add the golden-ratio increment, then mix.
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    table[i] = z ^ (z >>> 16);
  }
  return table;
}

/** A mask of the top `bits` bits of a 32-bit word, as an int32. */
function topBits(bits: number): number {
  return (~0 << (32 - bits)) | 0;
}

/** Masks and sizes compiled once from CdcParams. */
export interface CompiledCdc {
  readonly params: CdcParams;
  /** Mask before the normal size (log2(avg) + 2 bits). */
  readonly maskS: number;
  /** Mask after the normal size (log2(avg) - 2 bits). */
  readonly maskL: number;
}

/** Check and compile parameters; throws naming the field and value that is wrong. */
export function compileCdc(params: CdcParams = DEFAULT_CDC_PARAMS): CompiledCdc {
  const { minBytes, avgBytes, maxBytes } = params;
  if (!Number.isInteger(avgBytes) || avgBytes < MIN_AVG_BYTES || (avgBytes & (avgBytes - 1)) !== 0) {
    throw new Error(`cdc: avgBytes must be a power of two >= ${MIN_AVG_BYTES}, got ${avgBytes}`);
  }
  if (!Number.isInteger(minBytes) || minBytes < 64 || minBytes > avgBytes) {
    throw new Error(`cdc: minBytes must be an integer within 64..avgBytes (${avgBytes}), got ${minBytes}`);
  }
  if (!Number.isInteger(maxBytes) || maxBytes < avgBytes || maxBytes > MAX_CHUNK_BYTES) {
    throw new Error(`cdc: maxBytes must be an integer within avgBytes (${avgBytes})..${MAX_CHUNK_BYTES}, got ${maxBytes}`);
  }
  const bits = Math.log2(avgBytes);
  return { params, maskS: topBits(bits + 2), maskL: topBits(bits - 2) };
}

/**
 * Where the chunk that starts at `start` ends, in data[start..end): the
 * offset just past its last byte. With `final` false (more bytes of the file
 * follow end) it returns -1 when it cannot decide yet: no cut in the bytes
 * at hand and fewer than maxBytes of them. With `final` true the rest of the
 * data always ends a chunk.
 */
export function nextCut(cdc: CompiledCdc, data: Uint8Array, start: number, end: number, final: boolean): number {
  const { minBytes, avgBytes, maxBytes } = cdc.params;
  const available = end - start;
  if (available <= minBytes) return final ? end : -1;

  // Hash from minBytes on: up to the normal size with the strict mask, then
  // with the loose one, and cut at maxBytes at the latest.
  const limit = available < maxBytes ? end : start + maxBytes;
  const normal = Math.min(start + avgBytes, limit);
  const gear = GEAR;
  const maskS = cdc.maskS;
  const maskL = cdc.maskL;
  // Unrolled by four: 1.3-1.5 GB/s of CPU time against ~0.65 for the plain
  // loop on this machine (V8 keeps h an int32 and hoists the bounds checks).
  let h = 0;
  let i = start + minBytes;
  for (const normal4 = normal - 3; i < normal4; i += 4) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskS) === 0) return i + 1;
    h = ((h << 1) + gear[data[i + 1]]) | 0;
    if ((h & maskS) === 0) return i + 2;
    h = ((h << 1) + gear[data[i + 2]]) | 0;
    if ((h & maskS) === 0) return i + 3;
    h = ((h << 1) + gear[data[i + 3]]) | 0;
    if ((h & maskS) === 0) return i + 4;
  }
  for (; i < normal; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (const limit4 = limit - 3; i < limit4; i += 4) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskL) === 0) return i + 1;
    h = ((h << 1) + gear[data[i + 1]]) | 0;
    if ((h & maskL) === 0) return i + 2;
    h = ((h << 1) + gear[data[i + 2]]) | 0;
    if ((h & maskL) === 0) return i + 3;
    h = ((h << 1) + gear[data[i + 3]]) | 0;
    if ((h & maskL) === 0) return i + 4;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  if (limit === start + maxBytes || final) return limit;
  return -1;
}

/** The end offsets of the chunks of a whole buffer (the last one is data.length; none for an empty buffer). */
export function cutPoints(data: Uint8Array, params: CdcParams = DEFAULT_CDC_PARAMS): number[] {
  const cdc = compileCdc(params);
  const cuts: number[] = [];
  for (let start = 0; start < data.length; ) {
    start = nextCut(cdc, data, start, data.length, true);
    cuts.push(start);
  }
  return cuts;
}

/** Length in bytes of a chunk's name (SHA-256). */
export const CHUNK_HASH_BYTES = 32;

/** A chunk's name: the SHA-256 of its bytes. */
export function chunkHash(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

/** One chunk of a file or buffer. */
export interface ChunkRef {
  offset: number;
  length: number;
  /** SHA-256 of the chunk's bytes (CHUNK_HASH_BYTES). */
  hash: Buffer;
}

/** Chunk a whole buffer and name each chunk. */
export function chunkBuffer(data: Uint8Array, params: CdcParams = DEFAULT_CDC_PARAMS): ChunkRef[] {
  const chunks: ChunkRef[] = [];
  let offset = 0;
  for (const cut of cutPoints(data, params)) {
    chunks.push({ offset, length: cut - offset, hash: chunkHash(data.subarray(offset, cut)) });
    offset = cut;
  }
  return chunks;
}
