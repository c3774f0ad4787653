// Independent zstd frames against a shared dictionary (stage dict@1): for
// objects small enough that each frame must stand alone and has too little
// history of its own to compress well. Both ends hold the same dictionary
// bytes, named by dictionaryId; the frame does not carry the id (a raw
// content dictionary has none), so the sender must name it beside the frame.
// Decoding writes into a buffer of exactly the declared plaintext length: a
// peer's frame cannot make us allocate more.

import { createHash } from 'node:crypto';
import { zstd } from '../zstd-binding.ts';

/** Bytes of a dictionary id (hex of the first bytes of its SHA-256). */
const DICTIONARY_ID_BYTES = 8;

/** A dictionary's id: its content, hashed (so the same bytes always have the same id). */
export function dictionaryId(dictionary: Uint8Array): string {
  return createHash('sha256').update(dictionary).digest('hex').slice(0, DICTIONARY_ID_BYTES * 2);
}

/** One compressor or decompressor context per caller (contexts are not shared across threads). */
export class DictionaryCodec {
  readonly #cctx = new zstd.CCtx();
  readonly #dctx = new zstd.DCtx();
  readonly #dictionary: Uint8Array;
  /** dictionaryId of the dictionary. */
  readonly id: string;

  constructor(dictionary: Uint8Array) {
    this.#dictionary = dictionary;
    this.id = dictionaryId(dictionary);
  }

  /** An independent zstd frame of data at level, using the dictionary. */
  compress(data: Uint8Array, level: number): Buffer {
    const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
    const n = this.#cctx.compressUsingDict(out, data, this.#dictionary, level);
    return out.subarray(0, n);
  }

  /** The plaintext of a frame made by compress, which must be exactly rawLength bytes; throws otherwise. */
  decompress(payload: Uint8Array, rawLength: number): Buffer {
    // One spare byte tells "longer than declared" from "exactly".
    const out = Buffer.allocUnsafe(rawLength + 1);
    let n: number;
    try {
      n = this.#dctx.decompressUsingDict(out, payload, this.#dictionary);
    } catch (err) {
      throw new Error(`zstd frame with dictionary ${this.id}: ${(err as Error).message}`, { cause: err });
    }
    if (n !== rawLength) throw new Error(`zstd frame with dictionary ${this.id}: ${n} bytes, declared ${rawLength}`);
    return out.subarray(0, n);
  }
}
