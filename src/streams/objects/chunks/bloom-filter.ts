// A Bloom filter over chunk hashes. The keys are SHA-256 digests, already
// uniform, so the probe positions are read straight from the key's bytes
// (one 32-bit word per probe) instead of hashing again.

/** Bits per key: with BLOOM_PROBES probes, ~0.8 % false positives. */
export const BLOOM_BITS_PER_KEY = 10;
/** Probes per key (at most 8: one per 32-bit word of a SHA-256 digest). */
export const BLOOM_PROBES = 7;

/** A fixed-size Bloom filter sized for an expected number of keys. */
export class BloomFilter {
  readonly #bits: Uint32Array;
  readonly #size: number;

  /** A filter for `keys` keys (at least 64 bits). */
  constructor(keys: number) {
    this.#size = Math.max(64, Math.ceil(keys * BLOOM_BITS_PER_KEY));
    this.#bits = new Uint32Array(Math.ceil(this.#size / 32));
  }

  /** Memory held by the filter, bytes. */
  get bytes(): number {
    return this.#bits.byteLength;
  }

  /** Add a key (at least 4 * BLOOM_PROBES bytes). */
  add(key: Uint8Array): void {
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = probe(key, i) % this.#size;
      this.#bits[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  /** False when the key was certainly never added. */
  mayHave(key: Uint8Array): boolean {
    for (let i = 0; i < BLOOM_PROBES; i++) {
      const bit = probe(key, i) % this.#size;
      if ((this.#bits[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** The i-th 32-bit word of the key, unsigned. */
function probe(key: Uint8Array, i: number): number {
  const o = i * 4;
  return ((key[o] << 24) | (key[o + 1] << 16) | (key[o + 2] << 8) | key[o + 3]) >>> 0;
}
