// Deterministic pseudo-random bytes for tests that need incompressible data
// that is the same on every run (chunking, dedup): the AES-128-CTR keystream
// of a seed.

import { createCipheriv } from 'node:crypto';

/** n pseudo-random bytes determined by seed. */
export function seededBytes(n: number, seed: number): Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed >>> 0);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}
