// One pass over a directory tree, producing the manifest both ends of an
// objects stream diff against. Iterative (a queue of directories, never
// recursion), stats in bounded parallel batches, bigint stats so mtimes keep
// their microseconds.

import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ManifestEntry } from '../../wire/messages.ts';
import { versionOf } from './file-version.ts';
import { TEMP_DIR_NAME, isMissing } from './object-paths.ts';
import type { PathFilter } from './path-filter.ts';

/** lstat calls in flight at once per directory batch. */
const STAT_BATCH = 256;

/** What to leave out of a scan. */
export interface ScanOptions {
  /** Relative paths to skip, each with everything below it. Default none. */
  exclude?: readonly string[];
  /** Only paths it accepts (and never below a path it refuses). Default all. */
  include?: PathFilter;
}

/** A scanned tree: its entries sorted by path, and what was skipped. */
export interface TreeScan {
  /** Files and directories, sorted by path (code units), parents before children. */
  entries: ManifestEntry[];
  /** Symlinks seen and skipped (never followed, never replicated). */
  skippedSymlinks: number;
  /** Other entries skipped: sockets, FIFOs, devices, names that are not UTF-8. */
  skippedOther: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Scan root: every regular file and directory below it (root excluded) as a
 * ManifestEntry. The reserved temp area at the root is always skipped.
 * Entries that vanish during the scan are left out.
 */
export async function scanTree(root: string, options: ScanOptions = {}): Promise<TreeScan> {
  const excluded = new Set(options.exclude ?? []);
  const result: TreeScan = { entries: [], skippedSymlinks: 0, skippedOther: 0 };
  const dirs: string[] = [''];

  while (dirs.length > 0) {
    const dirRel = dirs.pop()!;
    const names = await listNames(root, dirRel);
    if (names === undefined) continue;

    // Keep the names that are replicable, then stat them in batches.
    const rels: string[] = [];
    for (const raw of names) {
      let name: string;
      try {
        name = utf8.decode(raw);
      } catch {
        result.skippedOther++;
        continue;
      }
      if (dirRel === '' && name === TEMP_DIR_NAME) continue;
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      if (!excluded.has(rel) && (options.include === undefined || options.include(rel))) rels.push(rel);
    }
    for (let i = 0; i < rels.length; i += STAT_BATCH) {
      const batch = rels.slice(i, i + STAT_BATCH);
      const stats = await Promise.all(batch.map((rel) => statOrUndefined(join(root, rel))));
      for (let j = 0; j < batch.length; j++) {
        const st = stats[j];
        if (st === undefined) continue;
        if (st.isSymbolicLink()) {
          result.skippedSymlinks++;
        } else if (st.isDirectory()) {
          // A directory's size means nothing to a copy; its mode does.
          result.entries.push({ path: batch[j], version: { ...versionOf(st), size: 0 }, directory: true });
          dirs.push(batch[j]);
        } else if (st.isFile()) {
          result.entries.push({ path: batch[j], version: versionOf(st), directory: false });
        } else {
          result.skippedOther++;
        }
      }
    }
  }

  result.entries.sort((a, b) => comparePaths(a.path, b.path));
  return result;
}

/** Order of manifest paths: plain code-unit order, so a parent precedes its children. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// Raw names of one directory; undefined when a subdirectory vanished mid-scan.
async function listNames(root: string, dirRel: string): Promise<Buffer[] | undefined> {
  try {
    return await readdir(join(root, dirRel), { encoding: 'buffer' });
  } catch (err) {
    if (dirRel !== '' && isMissing(err)) return undefined;
    throw new Error(`scan ${join(root, dirRel)}: ${(err as Error).message}`, { cause: err });
  }
}

async function statOrUndefined(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw new Error(`scan ${path}: ${(err as Error).message}`, { cause: err });
  }
}
