// Node's on-disk compile cache, shared with this process's worker threads
// and child processes. Node 24 strips the types of every .ts module and
// compiles it again in every thread at every start; the cache keeps the
// result on disk. Measured here: `dwcp --help` 1.6 -> 0.95 CPU s; an agent
// and each of its HDE workers start faster alike. The main thread of a
// process benefits only when the variable is set before Node starts
// (bin/dwcp and the Dockerfile set it); this module makes every thread and
// child started later use it.

import module from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The environment variable Node reads at start (threads and children inherit it). */
export const COMPILE_CACHE_ENV = 'NODE_COMPILE_CACHE';

/** Turn the cache on for what this process loads from now on, and for its workers and children. */
export function shareCompileCache(): void {
  if (process.env[COMPILE_CACHE_ENV]) return; // set at start: Node uses it already
  const dir = join(tmpdir(), 'dwcp-compile-cache');
  const { status } = module.enableCompileCache(dir);
  // Only point threads and children at a directory that works (not writable: no cache, no harm).
  if (status === module.constants.compileCacheStatus.ENABLED) process.env[COMPILE_CACHE_ENV] = dir;
}
