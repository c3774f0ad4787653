// The source's side of stage dict@1: a stream's dictionary for its small
// files, loaded from the source region's consensus store (the id the stream
// uses) or, the first time, trained from a sample of the stream's small files
// (raw-dictionary.ts) and stored there once. compress() says per file
// whether the dictionary pays; the caller ships the dictionary itself
// (PutDictionary) before the first PutDictFile of a session whose
// destination does not list its id.

import type { DictionaryCodec } from '../../../encoding/hde/dictionary-codec.ts';
import type { DictionaryStore } from '../../../encoding/hde/dictionary-store.ts';
import { buildRawDictionary } from '../../../encoding/hde/raw-dictionary.ts';

/** Files from this size up to DICT_MAX_FILE_BYTES go with the dictionary, bytes (below, frame overhead dominates). */
export const DICT_MIN_FILE_BYTES = 64;
/** Largest file sent with the dictionary, bytes (larger ones have history enough of their own). */
export const DICT_MAX_FILE_BYTES = 64 * 1024;
/** Small files read to train a stream's dictionary, at most (spread over the tree). */
export const DICT_TRAIN_SAMPLES = 300;
/** Fewer small files than this: no dictionary (too little to learn from, too little to gain). */
export const DICT_MIN_TRAIN_SAMPLES = 16;
/** zstd level of dictionary frames (the frame's own zstd then finds them incompressible). */
export const DICT_LEVEL = 3;
/** A dictionary frame is used only when at most this share of the file (else the file goes as PutChunk). */
const DICT_MAX_SHARE = 0.9;
/** Bytes of a file's head compressed first to tell an incompressible file cheaply. */
const DICT_PROBE_BYTES = 1024;

/** A stream's dictionary at the source. */
export class StreamDictionary {
  /** Its id (dictionaryId of bytes). */
  readonly id: string;
  /** Its bytes, for PutDictionary. */
  readonly bytes: Buffer;
  readonly #codec: DictionaryCodec;

  private constructor(id: string, bytes: Buffer, codec: DictionaryCodec) {
    this.id = id;
    this.bytes = bytes;
    this.#codec = codec;
  }

  /**
   * The dictionary streamId uses, trained from samples() and stored when it
   * has none yet; null when the samples are too few to train one.
   */
  static async open(store: DictionaryStore, streamId: string, samples: () => Promise<Buffer[]>): Promise<StreamDictionary | null> {
    // The one stored for the stream, when it is still there.
    const current = await store.streamDictionary(streamId);
    const bytes = current ? await store.get(current) : null;
    if (current && bytes) return new StreamDictionary(current, bytes, await store.codec(current));

    // Train, store once, and make it the stream's.
    const picked = await samples();
    if (picked.length < DICT_MIN_TRAIN_SAMPLES) return null;
    const trained = buildRawDictionary(picked);
    const { id } = await store.put(trained);
    await store.setStreamDictionary(streamId, id);
    return new StreamDictionary(id, trained, await store.codec(id));
  }

  /** data as a dictionary frame, or null when it is out of range or the dictionary does not pay. */
  compress(data: Uint8Array): Buffer | null {
    if (data.length < DICT_MIN_FILE_BYTES || data.length > DICT_MAX_FILE_BYTES) return null;
    // A larger file is probed by its head first: random files (half the sample tree's) cost a probe, not a frame.
    if (data.length > 4 * DICT_PROBE_BYTES && this.#codec.compress(data.subarray(0, DICT_PROBE_BYTES), DICT_LEVEL).length > DICT_PROBE_BYTES * DICT_MAX_SHARE) return null;
    const frame = this.#codec.compress(data, DICT_LEVEL);
    return frame.length <= data.length * DICT_MAX_SHARE ? frame : null;
  }
}

/**
 * Up to n paths of small files (DICT_MIN_FILE_BYTES..DICT_MAX_FILE_BYTES),
 * in an order whose every prefix is spread evenly over the list (a van der
 * Corput sequence): the dictionary fills up from the first samples, and
 * taken in path order those were all of one directory (measured on 3,000
 * JSON and log files: 2.5x without a dictionary, 2.9x with one filled from
 * the log directory alone).
 */
export function samplePaths(files: ReadonlyArray<{ path: string; size: number }>, n = DICT_TRAIN_SAMPLES): string[] {
  const small = files.filter((f) => f.size >= DICT_MIN_FILE_BYTES && f.size <= DICT_MAX_FILE_BYTES);
  const picked = new Set<number>();
  for (let i = 0; picked.size < Math.min(n, small.length) && i < 4 * small.length + 4; i++) picked.add(Math.floor(vanDerCorput(i) * small.length));
  return [...picked].map((i) => small[i].path);
}

// The i-th element of the base-2 van der Corput sequence: 0, 1/2, 1/4, 3/4, 1/8 ...
function vanDerCorput(i: number): number {
  let x = 0;
  for (let bit = 0.5; i > 0; bit /= 2, i >>>= 1) if (i & 1) x += bit;
  return x;
}
