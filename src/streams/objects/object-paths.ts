// Path confinement for the objects stream kind. Every path on the wire is
// relative, '/'-separated and checked here before any file system call, so
// no record can reach outside the sink root: not by '..', not by an
// absolute path, and not through a symlink planted inside the root.

import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { SinkError } from '../stream.ts';

/** Name of the sink's reserved temp area at the root; never replicated. */
export const TEMP_DIR_NAME = '.dwcp-tmp';

/**
 * Check that p is a clean relative path: no leading '/', no empty, '.' or
 * '..' segment, no NUL byte, not inside the reserved temp area. Backslashes
 * are plain characters. Throws a SinkError naming the path and the rule.
 */
export function validateRelativePath(p: string): void {
  const refuse = (rule: string): never => {
    throw new SinkError(`path ${JSON.stringify(p)} refused: ${rule}`);
  };
  if (p.length === 0) refuse('empty path');
  if (p.includes('\0')) refuse('contains a NUL byte');
  if (p.startsWith('/')) refuse('absolute path');
  const segments = p.split('/');
  for (const segment of segments) {
    if (segment === '') refuse('empty segment');
    if (segment === '.') refuse("'.' segment");
    if (segment === '..') refuse("'..' segment");
  }
  if (segments[0] === TEMP_DIR_NAME) refuse(`inside the reserved ${TEMP_DIR_NAME}/ area`);
}

/**
 * Validate rel and return its absolute path under root, after checking with
 * lstat that no existing parent component is a symlink (a symlink in the
 * sink must never redirect a write, delete or rename outside the root).
 * Components that do not exist yet are fine; the last component itself may
 * be anything (callers replace it, they never follow it).
 */
export async function resolveInside(root: string, rel: string): Promise<string> {
  validateRelativePath(rel);
  const segments = rel.split('/');
  let current = root;
  for (let i = 0; i < segments.length - 1; i++) {
    current = join(current, segments[i]);
    let isLink: boolean;
    try {
      isLink = (await lstat(current)).isSymbolicLink();
    } catch (err) {
      // Nothing exists from here down, so nothing below can be a symlink.
      if (isMissing(err)) break;
      throw err;
    }
    if (isLink) {
      throw new SinkError(`path ${JSON.stringify(rel)} refused: parent ${JSON.stringify(segments.slice(0, i + 1).join('/'))} is a symlink`);
    }
  }
  return join(root, rel);
}

/** True for the errors that mean "this path does not exist". */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
