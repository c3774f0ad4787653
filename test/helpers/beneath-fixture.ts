// A directory tree for the native beneath-root tests: root/a/b, a directory
// outside the root holding a file to protect, and symlinks inside the root
// pointing out of it (root/link -> outside, root/a/file-link -> outside/victim).
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Flags to open a directory fd. */
export const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

/** The fixture's paths, an fd of its root, and its removal. */
export interface BeneathFixture {
  base: string;
  root: string;
  outside: string;
  rootFd: number;
  done(): void;
}

/** Make the tree in a fresh temp directory named after prefix and name. */
export function beneathFixture(prefix: string, name: string): BeneathFixture {
  const base = mkdtempSync(join(tmpdir(), `${prefix}-${name}-`));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  mkdirSync(join(root, 'a', 'b'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(outside, 'victim'), 'keep me');
  symlinkSync(outside, join(root, 'link'));
  symlinkSync(join(outside, 'victim'), join(root, 'a', 'file-link'));
  const rootFd = openSync(root, DIR_FLAGS);
  return { base, root, outside, rootFd, done: () => { closeSync(rootFd); rmSync(base, { recursive: true, force: true }); } };
}
