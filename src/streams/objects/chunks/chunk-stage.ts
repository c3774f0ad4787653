// Where a destination keeps the chunks it was sent (PutChunkData) until the
// recipe that uses them is applied: one file per chunk, named by its hash,
// in a private directory. Content-addressed, so writing the same chunk twice
// is harmless (a resent frame after kill -9 changes nothing), and every read
// is checked against the name: a damaged staged chunk is never used.

import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkHash } from '../../../encoding/hde/fastcdc.ts';

/** Bytes of a chunk's name (SHA-256). */
const HASH_BYTES = 32;

/** The staging directory of one stream's received chunks. */
export class ChunkStage {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Open (creating) the staging directory; leftovers of an interrupted write are removed. */
  static async open(dir: string): Promise<ChunkStage> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(dir)) if (name.endsWith('.tmp')) await rm(join(dir, name), { force: true });
    return new ChunkStage(dir);
  }

  /**
   * Keep a received chunk; throws when the bytes are not the chunk named.
   * durable: false skips the fsync, for a caller that clears the stage on
   * recovery (the objects sink does: a staged chunk is then asked for and
   * sent again, so its durability buys nothing; measured, the fsync per
   * 64 KiB chunk dominated a new file's apply). Default true.
   */
  async put(hash: Uint8Array, bytes: Uint8Array, options: { durable?: boolean } = {}): Promise<void> {
    const name = nameOf(hash);
    if (!chunkHash(bytes).equals(hash)) throw new Error(`chunk stage: bytes do not hash to ${name}`);
    const temp = join(this.dir, `${name}.tmp`);
    const fh = await open(temp, 'w', 0o600);
    try {
      await fh.writeFile(bytes);
      if (options.durable ?? true) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, join(this.dir, name));
  }

  /** A staged chunk's bytes, checked against its name; null when absent or damaged (a damaged one is removed). */
  async get(hash: Uint8Array): Promise<Buffer | null> {
    const path = join(this.dir, nameOf(hash));
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new Error(`chunk stage: read ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (chunkHash(bytes).equals(hash)) return bytes;
    await rm(path, { force: true });
    return null;
  }

  /** Remove staged chunks (used by an applied recipe). */
  async remove(hashes: readonly Uint8Array[]): Promise<void> {
    for (const h of hashes) await rm(join(this.dir, nameOf(h)), { force: true });
  }

  /** Remove every staged chunk. */
  async clear(): Promise<void> {
    for (const name of await readdir(this.dir)) await rm(join(this.dir, name), { force: true });
  }
}

function nameOf(hash: Uint8Array): string {
  if (hash.length !== HASH_BYTES) throw new Error(`chunk stage: hash of ${hash.length} bytes, want ${HASH_BYTES}`);
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex');
}
