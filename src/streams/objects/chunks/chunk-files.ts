// What the chunk index reads: the files a sink holds. The index never trusts
// itself; it re-reads these files to check a chunk before handing it out and
// to rebuild. ChunkFiles is the narrow part of the object store the index
// needs; directoryChunkFiles is the POSIX sink root's, opened beneath the
// root (no symlink is followed, as the directory sink does).

import { constants, fstat, close, read } from 'node:fs';
import { promisify } from 'node:util';
import type { BigIntStats } from 'node:fs';
import { native } from '../../../../native-bindings/index.ts';
import type { BeneathRoot } from '../beneath-root.ts';
import { versionOf } from '../file-version.ts';
import { isMissing } from '../object-paths.ts';
import { scanTree } from '../tree-scan.ts';

/** The version of a file the index compares: size and mtime (microseconds). */
export interface ChunkFileVersion {
  size: number;
  mtimeUs: number;
}

/** A file open for reading. */
export interface ChunkFileReader {
  /** Its version when opened. */
  readonly version: ChunkFileVersion;
  /** Read up to length bytes at position into into[at..]; 0 at the end. */
  read(into: Buffer, at: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/** The sink's files, as the chunk index sees them. */
export interface ChunkFiles {
  /** Every regular file with its version (for a rebuild). */
  list(): AsyncIterable<{ path: string; version: ChunkFileVersion }>;
  /** Open a file by its relative path; null when it is not there. */
  open(path: string): Promise<ChunkFileReader | null>;
}

const fstatFd = promisify(fstat) as unknown as (fd: number, options: { bigint: true }) => Promise<BigIntStats>;
const closeFd = promisify(close);
// promisify(fs.read) resolves to { bytesRead, buffer }.
const readFd = promisify(read) as unknown as (fd: number, buffer: Buffer, offset: number, length: number, position: number) => Promise<{ bytesRead: number }>;

/** The files below a sink root, read beneath it (symlinks refused by the kernel). */
export function directoryChunkFiles(root: BeneathRoot): ChunkFiles {
  return {
    async *list() {
      const scan = await scanTree(root.path);
      for (const entry of scan.entries) {
        if (!entry.directory) yield { path: entry.path, version: { size: entry.version.size, mtimeUs: entry.version.mtimeUs } };
      }
    },
    async open(path) {
      let fd: number;
      try {
        fd = await native().openBeneath(root.fd, path, constants.O_RDONLY, 0);
      } catch (err) {
        // Missing, or not reachable without a symlink: not a file the index may use.
        if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') return null;
        throw new Error(`open ${JSON.stringify(path)} beneath the sink root: ${(err as Error).message}`, { cause: err });
      }
      try {
        const st = await fstatFd(fd, { bigint: true });
        if (!st.isFile()) {
          await closeFd(fd);
          return null;
        }
        const v = versionOf(st);
        return {
          version: { size: v.size, mtimeUs: v.mtimeUs },
          read: async (into, at, length, position) => (await readFd(fd, into, at, length, position)).bytesRead,
          close: () => closeFd(fd),
        };
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        throw err;
      }
    },
  };
}
