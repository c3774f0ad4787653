// Compare two trees file by file: content hash, size, mode and mtime. Used
// by the demo's "verified identical" summary, the benchmark and tests.

import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { scanTree } from '../streams/objects/tree-scan.ts';

/** Result of a comparison. */
export interface TreeComparison {
  identical: boolean;
  files: number;
  bytes: number;
  /** Human-readable differences, at most 20. */
  differences: string[];
}

/** SHA-256 of a file's content, hex. */
export async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Options of compareTrees. */
export interface CompareOptions {
  /** Hash file contents (default true); false compares paths, types, sizes, modes and mtimes only. */
  content?: boolean;
}

/** Compare the trees under a and b (symlinks and .dwcp-tmp excluded). */
export async function compareTrees(a: string, b: string, options: CompareOptions = {}): Promise<TreeComparison> {
  const content = options.content ?? true;
  const [left, right] = await Promise.all([scanTree(a), scanTree(b)]);
  const differences: string[] = [];
  const note = (text: string): void => {
    if (differences.length < 20) differences.push(text);
  };
  const rightByPath = new Map(right.entries.map((e) => [e.path, e]));
  let files = 0;
  let bytes = 0;
  for (const l of left.entries) {
    const r = rightByPath.get(l.path);
    rightByPath.delete(l.path);
    if (!r) {
      note(`missing at destination: ${l.path}`);
      continue;
    }
    if (l.directory !== r.directory) {
      note(`type differs: ${l.path}`);
      continue;
    }
    if (l.directory) continue;
    files++;
    bytes += l.version.size;
    if (l.version.size !== r.version.size) note(`size differs: ${l.path} (${l.version.size} vs ${r.version.size})`);
    else if (l.version.mode !== r.version.mode) note(`mode differs: ${l.path} (${l.version.mode.toString(8)} vs ${r.version.mode.toString(8)})`);
    else if (Math.abs(l.version.mtimeUs - r.version.mtimeUs) > 1) note(`mtime differs: ${l.path} (${l.version.mtimeUs} vs ${r.version.mtimeUs})`);
    else if (content && (await fileHash(join(a, l.path))) !== (await fileHash(join(b, l.path)))) note(`content differs: ${l.path}`);
  }
  for (const extra of rightByPath.keys()) note(`extra at destination: ${extra}`);
  return { identical: differences.length === 0, files, bytes, differences };
}
