// The POSIX directory as an ObjectStore, the first implementation of the
// seam. Reading (the source side) opens files by path with O_NOFOLLOW and
// pins each to its inode and stat. Writing (the sink side) never checks a
// path first and uses it by name afterwards: the root and the temp area
// (<root>/.dwcp-tmp, or .dwcp-tmp/<tempName> when sinks share a root) are
// held open, every path below the root is resolved by the kernel without
// following a symlink (beneath-root.ts), and entries change through their
// directory's fd. A symlink at the temp area is refused, never followed or
// emptied. Names are made durable by sync(), one fsync per touched
// directory (not one per file). A small file is read whole (readWhole),
// written and sealed (putWhole) in one native job each, and a checkpoint's
// sealed files published in one native job per PUBLISH_BATCH (publishMany).

import { close, constants, fchmod, fsync, ftruncate, watch } from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { native } from '../../../../native-bindings/index.ts';
import type { FileVersion } from '../../../wire/messages.ts';
import { SinkError } from '../../stream.ts';
import { BeneathRoot, DIR_FLAGS, closeEntryDir, isDirectory, isRegularFile, isSymlink, openPrivateDir, splitParent } from '../beneath-root.ts';
import type { EntryDir } from '../beneath-root.ts';
import { directoryChunkFiles } from '../chunks/chunk-files.ts';
import type { ChunkFiles } from '../chunks/chunk-files.ts';
import { MODE_MASK, sameVersion, versionOf } from '../file-version.ts';
import { TEMP_DIR_NAME, isMissing } from '../object-paths.ts';
import type { PathFilter } from '../path-filter.ts';
import { scanTree } from '../tree-scan.ts';
import { DirUpload, SealedFile, writeSealed } from './dir-upload.ts';
import type { ObjectListing, ObjectReader, ObjectStore, ObjectUpload, PublishOutcome, SealedObject, StoreWatcher, WholeObject } from './object-store.ts';

const closeFd = promisify(close);
const fchmodFd = promisify(fchmod);
const fsyncFd = promisify(fsync);
const ftruncateFd = promisify(ftruncate);

/** Paths below the temp area start with this. */
const TEMP_AREA_PREFIX = `${TEMP_DIR_NAME}/`;

/**
 * Sealed files renamed in one native job by publishMany, at most. Each job
 * holds its names (two strings a file) and keeps one thread-pool thread
 * busy for its renames; a checkpoint holds at most MAX_UNSYNCED_FILES
 * (4,096), so a few jobs per flush instead of one a file.
 */
export const PUBLISH_BATCH = 1024;

/** What a temp area name may look like: one plain path segment. */
const TEMP_NAME_PATTERN = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/** Options of a DirStore. */
export interface DirStoreOptions {
  /** The directory; must exist. */
  root: string;
  /** Name of this writer's own temp area, <root>/.dwcp-tmp/<tempName>/, when writers share a root. Default .dwcp-tmp itself. */
  tempName?: string;
}

/** The open root and temp area: every write starts from one of these fds. */
interface OpenArea {
  root: BeneathRoot;
  /** This store's temp area. */
  tempFd: number;
  /** <root>/.dwcp-tmp when the temp area is a directory inside it (shared root), else undefined. */
  sharedFd?: number;
}

/** A directory tree as an ObjectStore. */
export class DirStore implements ObjectStore {
  readonly description: string;
  /** The directory as configured. */
  readonly root: string;
  readonly #tempName?: string;
  /** The temp area relative to the root: .dwcp-tmp or .dwcp-tmp/<tempName>. */
  readonly #tempRel: string;
  #area?: OpenArea;
  /** Directories (relative to the root) whose entries changed since the last sync. */
  readonly #dirtyDirs = new Set<string>();
  /** Serializes renames into the tree (they may create parent directories). */
  #renames: Promise<unknown> = Promise.resolve();

  constructor(options: DirStoreOptions) {
    if (!options.root) throw new Error('dir store: root must be set');
    if (options.tempName !== undefined && !TEMP_NAME_PATTERN.test(options.tempName)) {
      throw new Error(`dir store: tempName must be one plain path segment, got ${JSON.stringify(options.tempName)}`);
    }
    this.root = options.root;
    this.description = `dir ${options.root}`;
    this.#tempName = options.tempName;
    this.#tempRel = options.tempName === undefined ? TEMP_DIR_NAME : `${TEMP_DIR_NAME}/${options.tempName}`;
  }

  /** Scan the tree (tree-scan.ts): the temp area and symlinks are left out. */
  list(include?: PathFilter): Promise<ObjectListing> {
    return scanTree(this.root, { include });
  }

  /** Open a file by path (O_NOFOLLOW); null when it is gone, a symlink or not a regular file. */
  async openRead(path: string): Promise<ObjectReader | null> {
    confine(path);
    let handle: FileHandle;
    try {
      handle = await open(join(this.root, path), constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') return null;
      throw new Error(`open ${JSON.stringify(path)} in ${this.root}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const before = await handle.stat({ bigint: true });
      if (!before.isFile()) {
        await handle.close();
        return null;
      }
      return new DirReader(handle, before);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw new Error(`stat ${JSON.stringify(path)} in ${this.root}: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * A small file whole in one native job (readWholeBeneath): opened beneath
   * the root without following a symlink, read, checked unchanged by a
   * second fstat; null when it is gone, a symlink or not a regular file.
   */
  async readWhole(path: string, maxBytes: number): Promise<WholeObject | 'changed' | null> {
    confine(path);
    let read;
    try {
      read = await native().readWholeBeneath(this.root, path, maxBytes);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (isMissing(err) || code === 'ELOOP' || code === 'EXDEV') return null;
      throw new Error(`read ${JSON.stringify(path)} in ${this.root}: ${(err as Error).message}`, { cause: err });
    }
    if (!isRegularFile(read)) return null;
    if (read.data === undefined || read.changed) return 'changed';
    return { version: versionOf(read), data: read.data };
  }

  /** fs.watch of the tree, recursive. */
  watch(onChange: (rel: string) => void, onError: (err: Error) => void): StoreWatcher {
    try {
      const watcher = watch(this.root, { recursive: true }, (_event, name) => onChange(name?.toString() ?? ''));
      watcher.on('error', onError);
      return { close: () => watcher.close() };
    } catch (err) {
      throw new Error(`watch ${this.root}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** True when path is a regular file of version. */
  async holds(path: string, version: FileVersion): Promise<boolean> {
    confine(path);
    const { root } = await this.#open();
    const parent = await root.openParent(path);
    try {
      return await isCompleteIn(parent, version);
    } finally {
      await closeEntryDir(parent);
    }
  }

  /** A temp-file upload; its target's directory is resolved now (a symlink on the way refuses). */
  async beginUpload(path: string, version: FileVersion): Promise<ObjectUpload | null> {
    confine(path);
    const { root } = this.#area ?? (await this.#open());
    const parent = await root.openParent(path);
    try {
      if (await isCompleteIn(parent, version)) {
        await closeEntryDir(parent);
        return null;
      }
    } catch (err) {
      await closeEntryDir(parent);
      throw err;
    }
    this.#dirtyDirs.add(this.#tempRel);
    return new DirUpload(this.#uploadArea, path, version, tempNameFor(path, version), { parent });
  }

  /**
   * A small file's temp file written, given its mode and mtime and closed
   * in one native job (writeWholeBeneath), sealed: durable with syncSealed,
   * then published. Whether path holds the version already is not checked
   * (a sink sends a file it lacks; a repeat only writes it again): that
   * check would cost a job of its own.
   */
  async putWhole(path: string, version: FileVersion, data: Uint8Array): Promise<SealedObject> {
    confine(path);
    this.#dirtyDirs.add(this.#tempRel);
    return writeSealed(this.#uploadArea, path, version, tempNameFor(path, version), data);
  }

  /** The temp file of (path, version) if it still holds length bytes, cut to them. */
  async resumeUpload(path: string, version: FileVersion, length: number): Promise<ObjectUpload | null> {
    confine(path);
    const area = await this.#open();
    const tempName = tempNameFor(path, version);
    const st = await native().statAt(area.tempFd, tempName);
    if (st === undefined || !isRegularFile(st) || Number(st.size) < length) return null;
    const fd = await native().openBeneath(area.tempFd, tempName, constants.O_RDWR, 0);
    try {
      await ftruncateFd(fd, length);
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
    return new DirUpload(this.#uploadArea, path, version, tempName, { fd });
  }

  /** Empty the temp area but keep's temp file (never through a link), durably. */
  async clearUploads(keep?: ObjectUpload): Promise<void> {
    const area = await this.#open();
    await native().clearDirAt(area.tempFd, keep instanceof DirUpload ? keep.tempName : undefined);
    await fsyncFd(area.tempFd);
    if (area.sharedFd !== undefined) await fsyncFd(area.sharedFd);
  }

  /** rm -r of path beneath the root, never through a symlink. */
  async remove(path: string): Promise<void> {
    confine(path);
    const { root } = await this.#open();
    const parent = await root.openParent(path);
    try {
      if (parent.fd === undefined) return;
      await native().removeAt(parent.fd, parent.name);
      this.#dirtyDirs.add(parent.dirRel);
    } finally {
      await closeEntryDir(parent);
    }
  }

  /** renameat2 of a regular file of version, both ends resolved beneath the root. */
  async rename(from: string, to: string, version: FileVersion): Promise<void> {
    confine(from);
    confine(to);
    const what = `rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}`;
    const { root } = await this.#open();
    const source = await root.openParent(from);
    let target: EntryDir | undefined;
    let made: EntryDir | undefined;
    try {
      // Both ends resolve beneath the root (a symlink on the way refuses), then the source must be this version.
      target = await root.openParent(to);
      const st = source.fd === undefined ? undefined : await native().statAt(source.fd, source.name);
      if (st !== undefined && isSymlink(st)) throw new SinkError(`${what} refused: source is a symlink`);
      if (st === undefined || !isRegularFile(st)) {
        // A repeated rename finds its work done; a diverged tree is refused.
        if (await isCompleteIn(target, version)) return;
        throw new SinkError(`${what}: source is ${st === undefined ? 'missing' : 'not a regular file'}`);
      }
      if (!sameVersion(versionOf(st), version)) throw new SinkError(`${what}: source has another version`);

      // Checks passed: make the target's parents, then rename.
      if (target.fd === undefined) made = await root.makeParent(to, (dir) => this.#dirtyDirs.add(dir));
      const into = made ?? target;
      await renameReplacing(source.fd!, source.name, into);
      this.#dirtyDirs.add(source.dirRel);
      this.#dirtyDirs.add(into.dirRel);
    } finally {
      await closeEntryDir(source);
      await closeEntryDir(target);
      await closeEntryDir(made);
    }
  }

  /** mkdir -p, confined; a file or symlink in the way is replaced, never chmodded through. */
  async makeDir(path: string, mode: number): Promise<void> {
    confine(path);
    const { root } = await this.#open();
    const parent = await root.makeParent(path, (dir) => this.#dirtyDirs.add(dir));
    try {
      const fd = parent.fd!;
      const existing = await native().statAt(fd, parent.name);
      if (existing === undefined || !isDirectory(existing)) {
        if (existing !== undefined) await native().unlinkAt(fd, parent.name);
        await native().mkdirAt(fd, parent.name, mode & MODE_MASK & 0o777);
        this.#dirtyDirs.add(parent.dirRel);
      }
      const dirFd = await native().openBeneath(fd, parent.name, DIR_FLAGS, 0).catch(async (err: unknown) => {
        throw await root.refusal(path, err, 'open the new directory');
      });
      try {
        await fchmodFd(dirFd, mode & MODE_MASK);
      } finally {
        await closeFd(dirFd);
      }
    } finally {
      await closeEntryDir(parent);
    }
  }

  /** fsync every directory whose entries changed: the temp area through its fd, the rest by path beneath the root. */
  async sync(): Promise<void> {
    if (this.#dirtyDirs.size > 0) {
      const area = await this.#open();
      for (const dir of this.#dirtyDirs) {
        if (dir === this.#tempRel) await fsyncFd(area.tempFd);
        else await area.root.fsyncDir(dir);
      }
    }
    this.#dirtyDirs.clear();
  }

  /** One syncfs(2) of the filesystem under the temp area: every sealed upload's content reaches the disk. */
  async syncSealed(): Promise<void> {
    const area = this.#area ?? (await this.#open());
    await native().syncFs(area.tempFd);
  }

  /**
   * Publish files sealed by putWhole, in order, PUBLISH_BATCH to a native
   * job (renameManyBeneath), each as its publish() would: a missing parent
   * is made, a symlink on the way refuses with a SinkError naming the path.
   * Runs as one of the store's serialized renames.
   */
  publishMany(objects: readonly SealedObject[]): Promise<PublishOutcome> {
    const published = this.#renames.then(() => this.#publishMany(objects));
    this.#renames = published.catch(() => undefined);
    return published;
  }

  /** The files beneath the root, through a root fd of their own. */
  async openChunkFiles(): Promise<ChunkFiles & { close(): Promise<void> }> {
    const root = await BeneathRoot.open(this.root);
    const files = directoryChunkFiles(root);
    return { list: () => files.list(), open: (path) => files.open(path), close: () => root.close() };
  }

  /** Close the root and temp area fds (reopened on next use). */
  async close(): Promise<void> {
    const area = this.#area;
    if (!area) return;
    this.#area = undefined;
    await closeFd(area.tempFd);
    if (area.sharedFd !== undefined) await closeFd(area.sharedFd);
    await area.root.close();
  }

  // What an upload uses of this store: the temp area as open now, and serialized renames.
  readonly #uploadArea = {
    tempFd: (): number | Promise<number> => this.#area?.tempFd ?? this.#open().then((area) => area.tempFd),
    renameInto: (path: string, tempName: string, opened: EntryDir | undefined): Promise<void> => {
      // Renames one at a time: a parent directory may have to be made.
      const renamed = this.#renames.then(() => this.#renameInto(path, tempName, opened));
      this.#renames = renamed.catch(() => undefined);
      return renamed;
    },
  };

  // The sealed files in order, a batch per native job; a file whose batch
  // entry failed is renamed the slow way (or refused), then the rest go on.
  async #publishMany(objects: readonly SealedObject[]): Promise<PublishOutcome> {
    let done = 0;
    try {
      const area = this.#area ?? (await this.#open());
      while (done < objects.length) {
        const batch = objects.slice(done, done + PUBLISH_BATCH);
        const files = batch.map((o, i) => {
          if (o instanceof SealedFile && o.area === this.#uploadArea) return o;
          throw new Error(`publish ${JSON.stringify(o.path)}: not sealed by this store (object ${done + i} of ${objects.length})`);
        });
        const result = await native().renameManyBeneath(area.tempFd, files.map((f) => f.tempName), area.root.fd, files.map((f) => f.path));
        for (let i = 0; i < result.renamed; i++) this.#dirtyDirs.add(splitParent(files[i].path).dirRel);
        done += result.renamed;
        if (result.error === undefined) continue;
        const failed = files[result.renamed];
        await this.#renameAfter(area, failed.path, failed.tempName, undefined, result.error);
        done++;
      }
    } catch (error) {
      return { published: done, error };
    }
    return { published: done };
  }

  // Rename a finished temp file to path; its directory is fsynced with the next sync.
  async #renameInto(path: string, tempName: string, opened: EntryDir | undefined): Promise<void> {
    const area = this.#area ?? (await this.#open());
    // Usually its directory is there: resolved beneath the root and renamed into in one job.
    if (opened?.fd === undefined) {
      try {
        await native().renameBeneath(area.tempFd, tempName, area.root.fd, path);
        this.#dirtyDirs.add(splitParent(path).dirRel);
        return;
      } catch (err) {
        return this.#renameAfter(area, path, tempName, undefined, err);
      }
    }
    return this.#renameAfter(area, path, tempName, opened, undefined);
  }

  // The rename when renameBeneath failed (err) or was not tried (opened):
  // a missing directory is made, anything else refuses naming path.
  async #renameAfter(area: OpenArea, path: string, tempName: string, opened: EntryDir | undefined, err: unknown): Promise<void> {
    if (err !== undefined && !isMissing(err)) throw await area.root.refusal(path, err, `publish ${JSON.stringify(path)}`, splitParent(path).dirRel);
    // The directory it goes in: the one opened for it, or made now.
    const made = opened?.fd === undefined ? await area.root.makeParent(path, (dir) => this.#dirtyDirs.add(dir)) : undefined;
    const parent = made ?? opened!;
    try {
      // The name is made durable with the next sync (one fsync per directory
      // per checkpoint, not per file); the checkpoint that counts this file
      // applied is written only after that. A crash before it may lose the
      // rename, never the content behind a name: the file was fsynced
      // before the rename, and the op is resent from the checkpoint.
      await renameReplacing(area.tempFd, tempName, parent);
      this.#dirtyDirs.add(parent.dirRel);
    } finally {
      await closeEntryDir(made);
    }
  }

  // The root and temp area, opened on first use after a close.
  async #open(): Promise<OpenArea> {
    if (this.#area) return this.#area;
    const root = await BeneathRoot.open(this.root);
    let sharedFd: number | undefined;
    try {
      const topFd = await openPrivateDir(root.fd, TEMP_DIR_NAME, TEMP_DIR_NAME);
      if (this.#tempName === undefined) {
        this.#area = { root, tempFd: topFd };
      } else {
        sharedFd = topFd;
        this.#area = { root, tempFd: await openPrivateDir(topFd, this.#tempName, this.#tempRel), sharedFd };
      }
      return this.#area;
    } catch (err) {
      if (sharedFd !== undefined) await closeFd(sharedFd);
      await root.close();
      throw err;
    }
  }
}

/**
 * Refuse, with a SinkError naming it, a path that is not a relative path
 * inside the tree: absolute, empty, with a NUL or a '..' segment, or in the
 * temp area. (Callers check the full rules, validateRelativePath; this
 * cheap check, without allocations, keeps the store confined by itself.
 * Symlinks on the way are the kernel's to refuse, beneath-root.ts.)
 */
function confine(path: string): void {
  const why = escapeReason(path);
  if (why !== undefined) throw new SinkError(`path ${JSON.stringify(path)} refused: ${why}`);
}

function escapeReason(path: string): string | undefined {
  if (path === '' || path.startsWith('/') || path.includes('\0')) return 'not a relative path in the store';
  if (path === '..' || path.startsWith('../') || path.endsWith('/..') || path.includes('/../')) return 'it escapes the store root';
  if (path === TEMP_DIR_NAME || path.startsWith(TEMP_AREA_PREFIX)) return `inside the reserved ${TEMP_DIR_NAME}/ area`;
  return undefined;
}

/** A file open for reading, pinned to its inode and stat (a class, not closures: fewer allocations per file). */
class DirReader implements ObjectReader {
  readonly version: FileVersion;
  readonly #handle: FileHandle;
  readonly #before: BigIntStats;

  constructor(handle: FileHandle, before: BigIntStats) {
    this.#handle = handle;
    this.#before = before;
    this.version = versionOf(before);
  }

  /** Read at position (a plain promise chain, not an async function: one allocation less per read). */
  read(into: Buffer, at: number, length: number, position: number): Promise<number> {
    return this.#handle.read(into, at, length, position).then(bytesRead);
  }

  /** Same inode, size, mtime, ctime and mode as when opened. */
  async unchanged(): Promise<boolean> {
    return sameStat(this.#before, await this.#handle.stat({ bigint: true }));
  }

  /** Close the file. */
  close(): Promise<void> {
    return this.#handle.close();
  }
}

function bytesRead(result: { bytesRead: number }): number {
  return result.bytesRead;
}

/** Same file, untouched: inode, size, mtime, ctime and mode all equal. */
function sameStat(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.mode === b.mode;
}

/** True when the entry of dir is a regular file of this version. */
async function isCompleteIn(dir: EntryDir, version: FileVersion): Promise<boolean> {
  if (dir.fd === undefined) return false;
  const st = await native().statAt(dir.fd, dir.name);
  return st !== undefined && isRegularFile(st) && sameVersion(versionOf(st), version);
}

// Rename a file to dir's entry, replacing what is there: a file or symlink
// by the rename itself, a directory (EISDIR, the rare case) removed first.
async function renameReplacing(fromDirFd: number, fromName: string, dir: EntryDir): Promise<void> {
  try {
    await native().renameAt(fromDirFd, fromName, dir.fd!, dir.name, false);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EISDIR') throw err;
    await native().removeAt(dir.fd!, dir.name);
    await native().renameAt(fromDirFd, fromName, dir.fd!, dir.name, false);
  }
}

// One temp name per (path, version): a checkpoint never names another file's bytes.
function tempNameFor(path: string, version: FileVersion): string {
  const key = `${path}\0${version.size}\0${version.mtimeUs}\0${version.mode}`;
  return `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.part`;
}
