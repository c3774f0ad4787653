// A generated sample tree for the demo, the benchmark and tests: nested
// directories, empty files, small and large files, half compressible text
// and half random bytes, deterministic for a given seed.

import { mkdir, open, utimes, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { createCipheriv } from 'node:crypto';

/** What was generated. */
export interface SampleTreeInfo {
  files: number;
  bytes: number;
  largest: number;
}

/** Options of the generator. */
export interface SampleTreeOptions {
  /** Total bytes to write (approximate, within one file). */
  totalBytes: number;
  /** Largest single file; default 200 MB or total / (1.5 x (largeFiles + 1)) (a third with one large file). */
  largestBytes?: number;
  /** How many files of the largest size (every second one text); default 1. */
  largeFiles?: number;
  /** Share (0..1) of the mixed bytes in small files of 1 KiB..64 KiB instead of 1 KiB..8 MiB; default 0. */
  smallShare?: number;
  seed?: number;
}

/** Size range of the mixed files, bytes (log-uniform). */
const MIXED_MIN_BYTES = 1024;
const MIXED_MAX_BYTES = 8 * 1024 * 1024;
/** Upper size of the small files (smallShare), bytes. */
const SMALL_MAX_BYTES = 64 * 1024;

const WORDS = ('replica region carrier stream frame checkpoint durable epoch lease standby primary segment ' +
  'timeline manifest chunk delta dictionary sequence digest backpressure window consensus link source sink').split(' ');
const BLOCK = 1 << 20;

/** A small deterministic PRNG (xorshift32) returning [0, 1): the tree must be the same for the same seed. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

/** Fill buf with text-like (compressible) or pseudo-random (incompressible) bytes. */
function fill(buf: Buffer, text: boolean, rnd: () => number, counter: { n: number }): void {
  if (text) {
    let o = 0;
    while (o < buf.length) {
      const line = `${counter.n++} ${WORDS[Math.floor(rnd() * WORDS.length)]} ${WORDS[Math.floor(rnd() * WORDS.length)]} ${Math.floor(rnd() * 1e6)}\n`;
      o += buf.write(line, o);
    }
    return;
  }
  // AES-CTR keystream: fast, deterministic for the seed, and incompressible.
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(counter.n++, 12);
  iv.writeUInt32BE(Math.floor(rnd() * 0x100000000), 8);
  const cipher = createCipheriv('aes-128-ctr', KEY, iv);
  buf.fill(0);
  cipher.update(buf).copy(buf);
}

const KEY = Buffer.from('dwcp-sample-tree');

async function writeFile(path: string, size: number, text: boolean, rnd: () => number, counter: { n: number }): Promise<void> {
  const fh = await open(path, 'w');
  try {
    const buf = Buffer.allocUnsafe(Math.min(BLOCK, Math.max(size, 1)));
    for (let written = 0; written < size; ) {
      const n = Math.min(buf.length, size - written);
      fill(buf.subarray(0, n), text, rnd, counter);
      await fh.write(buf, 0, n, written);
      written += n;
    }
  } finally {
    await fh.close();
  }
}

/** Generate the tree under root (created if missing). */
export async function generateSampleTree(root: string, options: SampleTreeOptions): Promise<SampleTreeInfo> {
  const rnd = prng(options.seed ?? 42);
  const counter = { n: 0 };
  const largeFiles = options.largeFiles ?? 1;
  const smallShare = options.smallShare ?? 0;
  if (!Number.isInteger(largeFiles) || largeFiles < 1) throw new Error(`sample tree: largeFiles must be a positive integer, got ${largeFiles}`);
  if (!(smallShare >= 0 && smallShare <= 1)) throw new Error(`sample tree: smallShare must be within 0..1, got ${smallShare}`);
  const largest = Math.min(options.largestBytes ?? 200 * 1024 * 1024, Math.floor(options.totalBytes / (1.5 * (largeFiles + 1))));
  let bytes = 0;
  let files = 0;
  const when = new Date('2025-06-01T12:00:00.123Z').getTime() / 1000;

  // The large files (the first random, then alternately text), a few empty files, a deep path.
  await mkdir(join(root, 'big'), { recursive: true });
  for (let i = 0; i < largeFiles; i++) {
    const text = i % 2 === 1;
    await writeFile(join(root, 'big', i === 0 ? 'large.bin' : `large-${i}.${text ? 'txt' : 'bin'}`), largest, text, rnd, counter);
    bytes += largest;
    files++;
  }
  const deep = join(root, 'deep', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
  await mkdir(deep, { recursive: true });
  for (const name of ['empty-1', 'empty two', 'empty-ü']) {
    await writeFile(join(deep, name), 0, true, rnd, counter);
    files++;
  }
  await chmod(join(deep, 'empty-1'), 0o600);

  // Mixed files until the total: sizes from 1 KB to 8 MB, log-uniform (small ones up to 64 KiB for smallShare of the bytes).
  const mixedStart = bytes;
  let smallBytes = 0;
  let dir = 0;
  while (bytes < options.totalBytes) {
    const d = join(root, `dir-${String(dir % 16).padStart(2, '0')}`, `sub-${dir % 5}`);
    await mkdir(d, { recursive: true });
    const small = smallShare > 0 && smallBytes < smallShare * (bytes - mixedStart + 1);
    const max = small ? SMALL_MAX_BYTES : MIXED_MAX_BYTES;
    const size = Math.min(options.totalBytes - bytes, Math.floor(Math.exp(Math.log(MIXED_MIN_BYTES) + rnd() * (Math.log(max) - Math.log(MIXED_MIN_BYTES)))));
    if (small) smallBytes += size;
    const path = join(d, `file-${files}.${rnd() < 0.5 ? 'txt' : 'bin'}`);
    await writeFile(path, size, path.endsWith('.txt'), rnd, counter);
    if (rnd() < 0.2) await chmod(path, 0o640);
    await utimes(path, when + files, when + files);
    bytes += size;
    files++;
    dir++;
  }
  return { files, bytes, largest };
}
