// One upload into a directory store: a temp file in the store's temp area
// (one name per path and version, so a checkpoint never names another
// file's bytes), created at the first write through the temp area's fd and
// never found there (a stale file or planted link is removed first), then
// given mode and mtime, fsynced, closed and renamed over its target by
// commit. The directory the target goes in was opened when the upload
// began; a commit in the same breath uses that fd, a later one resolves it
// again beneath the root (it may have been moved or replaced meanwhile).
// A small file whole is written and sealed by writeSealed in one native job
// (create, write, mode, mtime, close) instead of an upload's several.

import { close, constants, fchmod, fsync, futimes, read, write } from 'node:fs';
import { promisify } from 'node:util';
import { native } from '../../../../native-bindings/index.ts';
import type { FileVersion } from '../../../wire/messages.ts';
import { closeEntryDir } from '../beneath-root.ts';
import type { EntryDir } from '../beneath-root.ts';
import { MODE_MASK } from '../file-version.ts';
import type { ObjectUpload, SealedObject } from './object-store.ts';

const closeFd = promisify(close);
const fchmodFd = promisify(fchmod);
const fsyncFd = promisify(fsync);
const futimesFd = promisify(futimes);

const MICROS_PER_SECOND = 1e6;

/** Open flags of a temp file at its first write: always a new file of ours, never one found there. */
const TEMP_CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL;
/** Mode of a temp file until its commit sets the file's own. */
const TEMP_FILE_MODE = 0o600;

/** What an upload needs of its directory store. */
export interface UploadArea {
  /** The fd of the temp area as the store has it open now (opened again after a close). */
  tempFd(): number | Promise<number>;
  /** Rename the finished temp file to path (in `opened` when given); the store fsyncs the directory on its next sync. */
  renameInto(path: string, tempName: string, opened: EntryDir | undefined): Promise<void>;
}

/** An upload into a directory store (see the file comment). */
export class DirUpload implements ObjectUpload {
  readonly path: string;
  readonly version: FileVersion;
  /** Name of the temp file in the store's temp area. */
  readonly tempName: string;
  readonly #area: UploadArea;
  /** The temp file's fd; undefined before the first write or after close. */
  #fd: number | undefined;
  /** The temp file exists (created, or found by a resume). */
  #created: boolean;
  /** The target's directory, opened when the upload began; kept only for a commit in the same breath. */
  #parent: EntryDir | undefined;

  constructor(area: UploadArea, path: string, version: FileVersion, tempName: string, opened: { fd?: number; parent?: EntryDir }) {
    this.#area = area;
    this.path = path;
    this.version = version;
    this.tempName = tempName;
    this.#fd = opened.fd;
    this.#created = opened.fd !== undefined;
    this.#parent = opened.parent;
  }

  /** Write data at position (a short write continues where it stopped). */
  async write(data: Uint8Array, position: number): Promise<void> {
    const fd = this.#fd ?? (await this.#open());
    // A file not done by this write commits later: its directory is resolved again then.
    if (position + data.length !== this.version.size && this.#parent !== undefined) await this.#releaseParent();
    let done = 0;
    while (done < data.length) {
      done += await writeAt(fd, data, done, data.length - done, position + done);
    }
  }

  /** Read back written bytes. */
  async read(into: Buffer, at: number, length: number, position: number): Promise<number> {
    return readAt(this.#fd ?? (await this.#open()), into, at, length, position);
  }

  /** fsync the temp file. */
  async sync(): Promise<void> {
    if (this.#fd !== undefined) await fsyncFd(this.#fd);
  }

  /** Mode, mtime, fsync, close, rename over the target. */
  async commit(): Promise<void> {
    try {
      await this.#finish(true);
      await this.#area.renameInto(this.path, this.tempName, this.#parent);
    } finally {
      await this.#releaseParent();
    }
  }

  /** Mode, mtime, close: durable with the store's syncSealed (one syncfs), then published. */
  async seal(): Promise<void> {
    try {
      await this.#finish(false);
    } finally {
      await this.#releaseParent();
    }
  }

  /** Rename the sealed temp file over the target (its directory resolved again beneath the root). */
  async publish(): Promise<void> {
    await this.#area.renameInto(this.path, this.tempName, undefined);
  }

  // Give the temp file its mode and mtime, fsync it when asked, close it.
  async #finish(durable: boolean): Promise<void> {
    const fd = this.#fd ?? (await this.#open());
    this.#fd = undefined;
    try {
      const seconds = utimesSeconds(this.version.mtimeUs);
      await fchmodFd(fd, this.version.mode & MODE_MASK);
      await futimesFd(fd, seconds, seconds);
      if (durable) await fsyncFd(fd);
    } finally {
      await closeFd(fd);
    }
  }

  /** Close and remove the temp file. */
  async abort(): Promise<void> {
    await this.close();
    if (this.#created) await native().removeAt(await this.#area.tempFd(), this.tempName);
    this.#created = false;
  }

  /** Close the temp file (its bytes stay) and the target's directory. */
  async close(): Promise<void> {
    await this.#releaseParent();
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) await closeFd(fd);
  }

  // The temp file's fd: created at the first write, reopened after a close.
  #open(): Promise<number> {
    if (this.#fd !== undefined) return Promise.resolve(this.#fd);
    const tempFd = this.#area.tempFd();
    return typeof tempFd === 'number' ? this.#openIn(tempFd) : tempFd.then((fd) => this.#openIn(fd));
  }

  async #openIn(tempFd: number): Promise<number> {
    this.#fd = this.#created
      ? await native().openBeneath(tempFd, this.tempName, constants.O_RDWR, 0)
      : await createFresh(tempFd, this.tempName, () => native().openBeneath(tempFd, this.tempName, TEMP_CREATE_FLAGS, TEMP_FILE_MODE));
    this.#created = true;
    return this.#fd;
  }


  async #releaseParent(): Promise<void> {
    const parent = this.#parent;
    this.#parent = undefined;
    await closeEntryDir(parent);
  }
}

/**
 * Seconds for utimes that land on exactly mtimeUs: libuv truncates the
 * double to whole microseconds and the double itself is off by up to
 * ~0.12 us near today's dates, so aim at the middle of the microsecond.
 * (Node turns a negative time into "now": mtimes before 1970 are not kept.)
 */
export function utimesSeconds(mtimeUs: number): number {
  return (mtimeUs + 0.5) / MICROS_PER_SECOND;
}

/**
 * Write a whole file's data as the temp file tempName, with its version's
 * mode and mtime, in one native job (writeWholeBeneath): sealed, durable
 * with the store's syncSealed, then published at path.
 */
export async function writeSealed(area: UploadArea, path: string, version: FileVersion, tempName: string, data: Uint8Array): Promise<SealedObject> {
  const tempFd = await area.tempFd();
  const mode = version.mode & MODE_MASK;
  await createFresh(tempFd, tempName, () => native().writeWholeBeneath(tempFd, tempName, data, mode, version.mtimeUs));
  return new SealedFile(area, path, version, tempName);
}

/** A temp file written whole and sealed, waiting to be published. */
export class SealedFile implements SealedObject {
  readonly path: string;
  readonly version: FileVersion;
  /** The area it was written in (a store publishes many at once only its own). */
  readonly area: UploadArea;
  /** Name of the temp file in the area. */
  readonly tempName: string;

  constructor(area: UploadArea, path: string, version: FileVersion, tempName: string) {
    this.area = area;
    this.path = path;
    this.version = version;
    this.tempName = tempName;
  }

  /** Rename it over the target, its directory resolved beneath the root. */
  publish(): Promise<void> {
    return this.area.renameInto(this.path, this.tempName, undefined);
  }
}

// Create name in dirFd as a new file (create fails with EEXIST when anything
// has that name); whatever had it (a stale temp file, or a link someone
// planted) is removed first, never opened.
async function createFresh<T>(dirFd: number, name: string, create: () => Promise<T>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await native().removeAt(dirFd, name);
    return create();
  }
}

function readAt(fd: number, into: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, into, at, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

function writeAt(fd: number, data: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    write(fd, data, offset, length, position, (err, written) => (err ? reject(err) : resolve(written)));
  });
}
