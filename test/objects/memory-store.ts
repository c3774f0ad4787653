// TEST DOUBLE: an ObjectStore held in memory, for the store conformance
// suite (store-conformance.ts) only. It is not a production store and no
// configuration can select it: nothing is durable, nothing is shared between
// processes. It exists to show that the seam in src/streams/objects/store/
// is a real interface (a second implementation passes the same suite as the
// POSIX directory) and to pin down what a new store (an S3 bucket) must do.

import type { FileVersion } from '../../src/wire/messages.ts';
import type { ChunkFiles } from '../../src/streams/objects/chunks/chunk-files.ts';
import type { PathFilter } from '../../src/streams/objects/path-filter.ts';
import { validateRelativePath } from '../../src/streams/objects/object-paths.ts';
import type { ObjectListing, ObjectReader, ObjectStore, ObjectUpload, SealedObject, WholeObject } from '../../src/streams/objects/store/object-store.ts';
import { comparePaths } from '../../src/streams/objects/tree-scan.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { MODE_MASK, sameVersion } from '../../src/streams/objects/file-version.ts';

/** Mode of a directory made on the way to a path. */
const PARENT_DIR_MODE = 0o755;

/** One object: a file's bytes, or a directory. Replaced, never changed in place. */
type Entry = { kind: 'file'; version: FileVersion; data: Buffer } | { kind: 'dir'; version: FileVersion };

/** An unfinished upload's bytes, by (path, version). */
interface Pending {
  path: string;
  version: FileVersion;
  data: Buffer;
  length: number;
}

/** An ObjectStore in memory (a test double, see the file comment). */
export class MemoryStore implements ObjectStore {
  readonly description = 'memory (test double)';
  readonly #entries = new Map<string, Entry>();
  readonly #uploads = new Map<string, Pending>();

  /** Everything, sorted by path, parents first. */
  async list(include?: PathFilter): Promise<ObjectListing> {
    const entries = [...this.#entries]
      .filter(([path]) => include === undefined || include(path))
      .map(([path, e]) => ({ path, version: { ...e.version }, directory: e.kind === 'dir' }))
      .sort((a, b) => comparePaths(a.path, b.path));
    return { entries, skippedSymlinks: 0, skippedOther: 0 };
  }

  /** A reader pinned to the object as it is now. */
  async openRead(path: string): Promise<ObjectReader | null> {
    checkPath(path);
    const entry = this.#entries.get(path);
    if (entry?.kind !== 'file') return null;
    return {
      version: { ...entry.version },
      read: async (into, at, length, position) => (position >= entry.data.length ? 0 : entry.data.copy(into, at, position, Math.min(position + length, entry.data.length))),
      unchanged: async () => this.#entries.get(path) === entry,
      close: async () => undefined,
    };
  }

  /** A copy of the object's bytes when it is a file of at most maxBytes. */
  async readWhole(path: string, maxBytes: number): Promise<WholeObject | 'changed' | null> {
    checkPath(path);
    const entry = this.#entries.get(path);
    if (entry?.kind !== 'file') return null;
    if (entry.data.length > maxBytes) return 'changed';
    return { version: { ...entry.version }, data: Buffer.from(entry.data) };
  }

  /** True when path is a file of version. */
  async holds(path: string, version: FileVersion): Promise<boolean> {
    checkPath(path);
    const entry = this.#entries.get(path);
    return entry?.kind === 'file' && sameVersion(entry.version, version);
  }

  /** A new pending upload (an earlier one of the same path and version starts over). */
  async beginUpload(path: string, version: FileVersion): Promise<ObjectUpload | null> {
    checkPath(path);
    if (await this.holds(path, version)) return null;
    const pending: Pending = { path, version: { ...version }, data: Buffer.alloc(0), length: 0 };
    this.#uploads.set(uploadKey(path, version), pending);
    return this.#upload(pending);
  }

  /** A pending upload holding a copy of data, sealed. */
  async putWhole(path: string, version: FileVersion, data: Uint8Array): Promise<SealedObject | null> {
    const upload = await this.beginUpload(path, version);
    if (upload === null) return null;
    await upload.write(data, 0);
    await upload.seal();
    return upload;
  }

  /** The pending upload of (path, version), cut to length, if it holds that much. */
  async resumeUpload(path: string, version: FileVersion, length: number): Promise<ObjectUpload | null> {
    checkPath(path);
    const pending = this.#uploads.get(uploadKey(path, version));
    if (!pending || pending.length < length) return null;
    pending.length = length;
    return this.#upload(pending);
  }

  /** Forget every pending upload but keep's. */
  async clearUploads(keep?: ObjectUpload): Promise<void> {
    for (const key of [...this.#uploads.keys()]) {
      if (keep === undefined || key !== uploadKey(keep.path, keep.version)) this.#uploads.delete(key);
    }
  }

  /** Remove path and everything below it. */
  async remove(path: string): Promise<void> {
    checkPath(path);
    this.#removeTree(path);
  }

  /** Move a file of version; a repeat does nothing; anything else refuses. */
  async rename(from: string, to: string, version: FileVersion): Promise<void> {
    checkPath(from);
    checkPath(to);
    const what = `rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}`;
    const source = this.#entries.get(from);
    if (source?.kind !== 'file') {
      if (await this.holds(to, version)) return;
      throw new SinkError(`${what}: source is ${source === undefined ? 'missing' : 'not a regular file'}`);
    }
    if (!sameVersion(source.version, version)) throw new SinkError(`${what}: source has another version`);
    this.#makeParents(to);
    this.#removeTree(to);
    this.#entries.delete(from);
    this.#entries.set(to, source);
  }

  /** A directory with mode at path, replacing a file there. */
  async makeDir(path: string, mode: number): Promise<void> {
    checkPath(path);
    this.#makeParents(path);
    const existing = this.#entries.get(path);
    if (existing?.kind === 'file') this.#entries.delete(path);
    this.#entries.set(path, { kind: 'dir', version: { size: 0, mode: mode & MODE_MASK, mtimeUs: existing?.kind === 'dir' ? existing.version.mtimeUs : nowUs() } });
  }

  /** Nothing to make durable in memory. */
  async sync(): Promise<void> {}

  async syncSealed(): Promise<void> {}

  /** The files as the chunk index reads them. */
  async openChunkFiles(): Promise<ChunkFiles & { close(): Promise<void> }> {
    const store = this;
    return {
      async *list() {
        for (const e of (await store.list()).entries) {
          if (!e.directory) yield { path: e.path, version: { size: e.version.size, mtimeUs: e.version.mtimeUs } };
        }
      },
      async open(path) {
        const reader = await store.openRead(path).catch(() => null);
        return reader && { version: { size: reader.version.size, mtimeUs: reader.version.mtimeUs }, read: reader.read, close: reader.close };
      },
      close: async () => undefined,
    };
  }

  /** Nothing is held open. */
  async close(): Promise<void> {}

  // An upload writing into pending; commit replaces the entry at its path whole.
  #upload(pending: Pending): ObjectUpload {
    const store = this;
    const key = uploadKey(pending.path, pending.version);
    return {
      path: pending.path,
      version: { ...pending.version },
      async write(data, position) {
        const end = position + data.length;
        if (end > pending.data.length) {
          const grown = Buffer.alloc(Math.max(end, pending.data.length * 2));
          pending.data.copy(grown, 0, 0, pending.length);
          pending.data = grown;
        }
        pending.data.set(data, position);
        pending.length = Math.max(pending.length, end);
      },
      async read(into, at, length, position) {
        return position >= pending.length ? 0 : pending.data.copy(into, at, position, Math.min(position + length, pending.length));
      },
      async sync() {},
      async seal() {
        if (store.#uploads.get(key) !== pending) throw new Error(`seal ${JSON.stringify(pending.path)}: the upload was dropped`);
      },
      async publish() {
        await this.commit();
      },
      async commit() {
        if (store.#uploads.get(key) !== pending) throw new Error(`commit ${JSON.stringify(pending.path)}: the upload was dropped`);
        store.#uploads.delete(key);
        store.#makeParents(pending.path);
        store.#removeTree(pending.path);
        const data = Buffer.from(pending.data.subarray(0, pending.length));
        store.#entries.set(pending.path, { kind: 'file', version: { ...pending.version, mode: pending.version.mode & MODE_MASK }, data });
      },
      async abort() {
        if (store.#uploads.get(key) === pending) store.#uploads.delete(key);
      },
      async close() {},
    };
  }

  // Directories on the way to path, made where missing (a file in the way is replaced).
  #makeParents(path: string): void {
    const segments = path.split('/');
    for (let i = 1; i < segments.length; i++) {
      const dir = segments.slice(0, i).join('/');
      if (this.#entries.get(dir)?.kind !== 'dir') this.#entries.set(dir, { kind: 'dir', version: { size: 0, mode: PARENT_DIR_MODE, mtimeUs: nowUs() } });
    }
  }

  #removeTree(path: string): void {
    this.#entries.delete(path);
    const prefix = `${path}/`;
    for (const key of [...this.#entries.keys()]) if (key.startsWith(prefix)) this.#entries.delete(key);
  }
}

/** The same path rules the sink applies (a SinkError naming the path). */
function checkPath(path: string): void {
  validateRelativePath(path);
}

function uploadKey(path: string, version: FileVersion): string {
  return `${path}\0${version.size}\0${version.mtimeUs}\0${version.mode}`;
}

function nowUs(): number {
  return Date.now() * 1000;
}
