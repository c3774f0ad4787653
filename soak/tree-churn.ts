// Continuous, seeded changes to a source directory while a soak runs:
// creates, rewrites, renames (also across directories) and deletes of its
// own files under <root>/churn, one operation per tick, with the file count
// and sizes bounded so the sink disk never fills by load alone.

import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prng } from '../src/cli/sample-tree.ts';

/** Directories the churn spreads its files over. */
const CHURN_DIRS = 6;
/** At most this many churn files exist at once; at the bound a create becomes a delete. */
const MAX_FILES = 120;
/** File sizes are log-uniform between these, bytes. */
const MIN_FILE_BYTES = 256;
const MAX_FILE_BYTES = 256 * 1024;

/** Operations done so far, by kind. */
export interface ChurnCounts {
  create: number;
  rewrite: number;
  rename: number;
  delete: number;
}

/** A running churn. */
export interface TreeChurn {
  counts(): ChurnCounts;
  /** Stop after the operation in progress; resolves when no operation runs any more. */
  stop(): Promise<void>;
}

/** Start changing files under root every intervalMs (first operation right away). */
export function startTreeChurn(root: string, options: { seed: number; intervalMs: number; onError: (err: Error) => void }): TreeChurn {
  const rnd = prng(options.seed);
  const files: string[] = [];
  const counts: ChurnCounts = { create: 0, rewrite: 0, rename: 0, delete: 0 };
  let serial = 0;
  let stopped = false;

  // File content: text lines with a serial, so every rewrite changes the bytes.
  const content = (): Buffer => {
    const size = Math.floor(Math.exp(Math.log(MIN_FILE_BYTES) + rnd() * (Math.log(MAX_FILE_BYTES) - Math.log(MIN_FILE_BYTES))));
    const line = `churn ${serial} ${Math.floor(rnd() * 1e9)} ${'x'.repeat(Math.floor(rnd() * 40))}\n`;
    return Buffer.from(line.repeat(Math.ceil(size / line.length)).slice(0, size));
  };
  const freshPath = (): string => join('churn', `d${Math.floor(rnd() * CHURN_DIRS)}`, `f-${++serial}.txt`);
  const takeRandom = (): string => files.splice(Math.floor(rnd() * files.length), 1)[0];

  // One operation, chosen by weight: create 35 %, rewrite 30 %, rename 20 %, delete 15 %.
  const step = async (): Promise<void> => {
    const roll = rnd();
    if (files.length === 0 || (roll < 0.35 && files.length < MAX_FILES)) {
      const rel = freshPath();
      await mkdir(join(root, rel, '..'), { recursive: true });
      await writeFile(join(root, rel), content());
      files.push(rel);
      counts.create++;
    } else if (roll < 0.65) {
      const rel = files[Math.floor(rnd() * files.length)];
      await writeFile(join(root, rel), content());
      counts.rewrite++;
    } else if (roll < 0.85) {
      const from = takeRandom();
      const to = freshPath();
      await mkdir(join(root, to, '..'), { recursive: true });
      await rename(join(root, from), join(root, to));
      files.push(to);
      counts.rename++;
    } else {
      await rm(join(root, takeRandom()), { force: true });
      counts.delete++;
    }
  };

  const loop = (async () => {
    while (!stopped) {
      try {
        await step();
      } catch (err) {
        options.onError(new Error(`tree churn: ${(err as Error).message}`, { cause: err }));
      }
      if (!stopped) await new Promise((r) => setTimeout(r, options.intervalMs));
    }
  })();

  return {
    counts: () => ({ ...counts }),
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
