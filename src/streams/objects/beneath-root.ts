// The sink root as an open directory, and every path below it resolved by
// the kernel (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, native-bindings)
// instead of checked first and used by name afterwards: a symlink anywhere
// on the way, or a directory swapped for one between two calls, fails the
// call itself (ELOOP) and becomes a SinkError naming the path. Entries are
// then changed through their parent's fd (mkdirat, unlinkat, renameat2),
// which never follows the entry when it is a symlink.

import { close, constants, fsync, open } from 'node:fs';
import { promisify } from 'node:util';
import { native } from '../../../native-bindings/index.ts';
import type { EntryStat } from '../../../native-bindings/index.ts';
import { SinkError } from '../stream.ts';
import { isMissing } from './object-paths.ts';

const closeFd = promisify(close);
const fsyncFd = promisify(fsync);
const openPath = promisify(open);

/** Open flags of a directory the sink changes entries of (readable, so it can be fsynced). */
export const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

/** Mode of a directory created on the way to a path (umask applies), as mkdir -p. */
const PARENT_DIR_MODE = 0o777;

/** Mode of a directory only the sink uses (its temp area). */
const PRIVATE_DIR_MODE = 0o700;

/** A directory below the root, open, and one entry name in it. */
export interface EntryDir {
  /** Fd of the directory (DIR_FLAGS), or undefined when the directory does not exist. */
  fd: number | undefined;
  /** The directory, relative to the root ('' for the root itself). */
  dirRel: string;
  /** The entry's name in it (one segment). */
  name: string;
}

/** The sink root, opened once; every path below it is resolved without following symlinks. */
export class BeneathRoot {
  /** The root as configured (reached through symlinks, if the operator's path has them). */
  readonly path: string;
  /** Fd of the root directory. */
  readonly fd: number;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.fd = fd;
  }

  /** Open the root directory; the configured path itself may contain symlinks, nothing below it may. */
  static async open(path: string): Promise<BeneathRoot> {
    try {
      return new BeneathRoot(path, await openPath(path, DIR_FLAGS));
    } catch (err) {
      throw new Error(`open sink root ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Close the root's fd. */
  async close(): Promise<void> {
    await closeFd(this.fd);
  }

  /**
   * Open the directory rel ('' for the root) beneath the root: undefined
   * when it (or a parent) is missing or not a directory; a SinkError naming
   * forPath (default rel) when a symlink is on the way.
   */
  async openDir(rel: string, forPath = rel): Promise<number | undefined> {
    try {
      return await native().openBeneath(this.fd, rel === '' ? '.' : rel, DIR_FLAGS, 0);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw await this.refusal(forPath, err, `open directory ${JSON.stringify(rel)}`, rel);
    }
  }

  /** The parent directory of rel, open if it exists (nothing is created); close it with closeEntryDir. */
  async openParent(rel: string): Promise<EntryDir> {
    const { dirRel, name } = splitParent(rel);
    return { fd: await this.openDir(dirRel, rel), dirRel, name };
  }

  /**
   * mkdir -p of rel's parent directories, confined: a missing directory is
   * created and a file in the way replaced (the tree being replicated says a
   * directory goes there); a symlink on the way is refused, never followed
   * or removed. onChanged is told each directory whose entries changed.
   * Returns the parent, open.
   */
  async makeParent(rel: string, onChanged: (dirRel: string) => void): Promise<EntryDir> {
    // Usually the parent is there already: one call.
    const { dirRel, name } = splitParent(rel);
    const existing = await this.openDir(dirRel, rel);
    if (existing !== undefined || dirRel === '') return { fd: existing ?? (await this.#reopenRoot()), dirRel, name };

    // Otherwise walk down from the root, one directory fd at a time.
    const segments = dirRel.split('/');
    let fd = await this.#reopenRoot();
    try {
      for (let i = 0; i < segments.length; i++) {
        const here = segments.slice(0, i).join('/');
        const next = segments.slice(0, i + 1).join('/');
        const st = await native().statAt(fd, segments[i]);
        if (st !== undefined && isSymlink(st)) throw symlinkRefusal(rel, next);
        if (st === undefined || !isDirectory(st)) {
          if (st !== undefined) await native().unlinkAt(fd, segments[i]);
          await mkdirTolerant(fd, segments[i], PARENT_DIR_MODE);
          onChanged(here);
        }
        const child = await native().openBeneath(fd, segments[i], DIR_FLAGS, 0).catch(async (err: unknown) => {
          throw await this.refusal(rel, err, `open directory ${JSON.stringify(next)}`, next);
        });
        await closeFd(fd);
        fd = child;
      }
    } catch (err) {
      await closeFd(fd);
      throw err instanceof SinkError ? err : new Error(`make parents of ${JSON.stringify(rel)}: ${(err as Error).message}`, { cause: err });
    }
    return { fd, dirRel, name };
  }

  /** fsync the directory rel, if it is still there (a directory replaced since has nothing of ours to keep). */
  async fsyncDir(rel: string): Promise<void> {
    let fd: number | undefined;
    try {
      fd = await this.openDir(rel);
    } catch (err) {
      if (err instanceof SinkError) return;
      throw err;
    }
    if (fd === undefined) return;
    try {
      await fsyncFd(fd);
    } finally {
      await closeFd(fd);
    }
  }

  /**
   * The error for a failed resolution of resolved (default rel) on the way
   * to rel: ELOOP and EXDEV mean it escapes the root and become a SinkError
   * naming rel and the symlink when one can be found; anything else keeps
   * its errno with `what` as context.
   */
  async refusal(rel: string, err: unknown, what: string, resolved = rel): Promise<Error> {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ELOOP' && code !== 'EXDEV') return new Error(`${what}: ${(err as Error).message}`, { cause: err });
    const link = await this.#findSymlink(resolved).catch(() => undefined);
    if (link !== undefined) return symlinkRefusal(rel, link);
    // Gone again by the time of the walk (a racing writer): the kernel's word stands.
    const why = code === 'ELOOP' ? 'a symlink is on the way' : 'it escapes the sink root';
    return new SinkError(`path ${JSON.stringify(rel)} refused: ${why} (${code})`);
  }

  // Which component of rel is a symlink, for the message only (the refusal itself is the kernel's).
  async #findSymlink(rel: string): Promise<string | undefined> {
    const segments = rel.split('/');
    let fd = await this.#reopenRoot();
    try {
      for (let i = 0; i < segments.length; i++) {
        const st = await native().statAt(fd, segments[i]);
        if (st === undefined) return undefined;
        if (isSymlink(st)) return segments.slice(0, i + 1).join('/');
        if (!isDirectory(st) || i === segments.length - 1) return undefined;
        const child = await native().openBeneath(fd, segments[i], DIR_FLAGS, 0);
        await closeFd(fd);
        fd = child;
      }
      return undefined;
    } finally {
      await closeFd(fd);
    }
  }

  // A second fd of the root, owned by the caller.
  async #reopenRoot(): Promise<number> {
    return native().openBeneath(this.fd, '.', DIR_FLAGS, 0);
  }
}

/**
 * Open (creating it if missing) a directory the sink owns, name in dirFd,
 * such as its temp area: a symlink or anything but a directory there is
 * refused with a SinkError naming label, never followed or removed.
 */
export async function openPrivateDir(dirFd: number, name: string, label: string): Promise<number> {
  const refuse = (what: string): SinkError => new SinkError(`refusing ${label}: it is ${what}`);
  const st = await native().statAt(dirFd, name);
  if (st !== undefined && isSymlink(st)) throw refuse('a symlink');
  if (st !== undefined && !isDirectory(st)) throw refuse('not a directory');
  try {
    if (st === undefined) await mkdirTolerant(dirFd, name, PRIVATE_DIR_MODE);
    return await native().openBeneath(dirFd, name, DIR_FLAGS, 0);
  } catch (err) {
    // Swapped since the stat: the kernel refused to follow it.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw refuse('a symlink');
    if (code === 'ENOTDIR') throw refuse('not a directory');
    throw new Error(`open ${label}: ${(err as Error).message}`, { cause: err });
  }
}

/** Close an EntryDir's fd, if it has one. */
export async function closeEntryDir(dir: EntryDir | undefined): Promise<void> {
  if (dir?.fd !== undefined) await closeFd(dir.fd);
}

/** True when a stat is of a directory. */
export function isDirectory(st: EntryStat): boolean {
  return (Number(st.mode) & constants.S_IFMT) === constants.S_IFDIR;
}

/** True when a stat is of a regular file. */
export function isRegularFile(st: EntryStat): boolean {
  return (Number(st.mode) & constants.S_IFMT) === constants.S_IFREG;
}

/** True when a stat is of a symlink. */
export function isSymlink(st: EntryStat): boolean {
  return (Number(st.mode) & constants.S_IFMT) === constants.S_IFLNK;
}

function symlinkRefusal(rel: string, link: string): SinkError {
  const which = link === rel ? 'it is a symlink' : `parent ${JSON.stringify(link)} is a symlink`;
  return new SinkError(`path ${JSON.stringify(rel)} refused: ${which}`);
}

/** rel's parent directory ('' for the root) and last segment. */
export function splitParent(rel: string): { dirRel: string; name: string } {
  const slash = rel.lastIndexOf('/');
  return slash < 0 ? { dirRel: '', name: rel } : { dirRel: rel.slice(0, slash), name: rel.slice(slash + 1) };
}

// mkdirat that accepts a directory made meanwhile (the open after it checks what is there).
async function mkdirTolerant(dirFd: number, name: string, mode: number): Promise<void> {
  try {
    await native().mkdirAt(dirFd, name, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
}
