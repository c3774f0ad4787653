// The incremental phase of the objects workload: change a share of a
// generated tree's files by a few KiB in place, add and delete a share,
// deterministically for a seed, so every tool syncs the same change.

import { open, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { scanTree } from '../src/streams/objects/tree-scan.ts';
import { prng } from '../src/cli/sample-tree.ts';

/** Shares of the incremental phase: 10 % changed, 1 % added, 1 % deleted. */
export const DEFAULT_MUTATION = { changedShare: 0.1, addedShare: 0.01, deletedShare: 0.01, changeBytes: 4 * 1024 } as const;

/** What to change. */
export interface MutationOptions {
  /** Share of existing files rewritten in place (0..1). */
  changedShare: number;
  /** New files, as a share of the existing count. */
  addedShare: number;
  /** Share of existing files deleted. */
  deletedShare: number;
  /** Bytes rewritten per changed file (at a random offset; whole file when smaller). */
  changeBytes: number;
  seed?: number;
}

/** What was changed. */
export interface MutationResult {
  changed: number;
  added: number;
  deleted: number;
  /** Bytes written (changes and new files). */
  bytesWritten: number;
}

/** Bytes from the seeded generator (not random-quality; enough to differ from what was there). */
function bytesFrom(rnd: () => number, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) buf[i] = Math.floor(rnd() * 256);
  return buf;
}

/** Apply the mutation under root; throws naming the option when a share is outside 0..1. */
export async function mutateTree(root: string, options: MutationOptions): Promise<MutationResult> {
  for (const key of ['changedShare', 'addedShare', 'deletedShare'] as const) {
    const v = options[key];
    if (!(v >= 0 && v <= 1)) throw new Error(`tree mutation: ${key} must be within 0..1, got ${v}`);
  }
  const rnd = prng(options.seed ?? 7);
  const files = (await scanTree(root)).entries.filter((e) => !e.directory);
  // A seeded shuffle picks disjoint sets: deleted first, then changed.
  const order = files.map((f) => f.path);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const sizeOf = new Map(files.map((f) => [f.path, f.version.size]));
  const nDeleted = Math.round(files.length * options.deletedShare);
  const nChanged = Math.round(files.length * options.changedShare);
  const nAdded = Math.round(files.length * options.addedShare);
  const result: MutationResult = { changed: 0, added: 0, deleted: 0, bytesWritten: 0 };

  for (const path of order.slice(0, nDeleted)) {
    await rm(join(root, path));
    result.deleted++;
  }
  for (const path of order.slice(nDeleted, nDeleted + nChanged)) {
    const size = sizeOf.get(path) ?? 0;
    const n = Math.min(options.changeBytes, size);
    if (n === 0) continue;
    const offset = Math.floor(rnd() * (size - n + 1));
    const fh = await open(join(root, path), 'r+');
    try {
      await fh.write(bytesFrom(rnd, n), 0, n, offset);
    } finally {
      await fh.close();
    }
    result.changed++;
    result.bytesWritten += n;
  }
  // New files beside existing ones, sized like a randomly picked existing file (capped at 1 MiB).
  for (let i = 0; i < nAdded; i++) {
    const like = files[Math.floor(rnd() * files.length)];
    const size = Math.min(like.version.size, 1024 * 1024);
    await writeFile(join(root, dirname(like.path), `added-${i}.bin`), bytesFrom(rnd, size));
    result.added++;
    result.bytesWritten += size;
  }
  return result;
}
