// Path rules for the objects stream kind. Every path on the wire is
// relative, '/'-separated and checked here before any file system call, so
// no record names anything outside the sink root: not by '..', not by an
// absolute path. Symlinks planted inside the root are the kernel's to refuse
// (beneath-root.ts).

import { SinkError } from '../stream.ts';

/** Name of the sink's reserved temp area at the root; never replicated. */
export const TEMP_DIR_NAME = '.dwcp-tmp';

/** Longest path the sink resolves below its root, bytes (Linux PATH_MAX less its NUL). */
export const MAX_PATH_BYTES = 4095;

/** Longest segment, bytes (Linux NAME_MAX). */
export const MAX_SEGMENT_BYTES = 255;

/**
 * Check that p is a clean relative path: no leading '/', no empty, '.' or
 * '..' segment, no NUL byte, not inside the reserved temp area, and short
 * enough for the file system (MAX_PATH_BYTES, MAX_SEGMENT_BYTES of UTF-8).
 * Backslashes are plain characters. Throws a SinkError naming the path and
 * the rule.
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
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) refuse(`a segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  if (Buffer.byteLength(p) > MAX_PATH_BYTES) refuse(`longer than ${MAX_PATH_BYTES} bytes`);
  if (segments[0] === TEMP_DIR_NAME) refuse(`inside the reserved ${TEMP_DIR_NAME}/ area`);
}

/** True for the errors that mean "this path does not exist". */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
