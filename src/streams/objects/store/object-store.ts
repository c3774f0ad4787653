// The seam under the objects stream: what a place that holds objects (a
// POSIX directory today, an S3-compatible bucket tomorrow) must do for the
// objects source to read it and the objects sink to write it. The source
// and sink keep the stream's logic (diffing, ordering, resume, dedup,
// background writes); a store only stores. docs/object-store.md says how a
// new store maps onto these calls.
//
// Paths are relative, '/'-separated and already checked by
// validateRelativePath (object-paths.ts) before they reach a store; a store
// still refuses, with a SinkError naming the path, whatever would take a
// path outside its root (a symlink on the way, for a directory).

import type { FileVersion } from '../../../wire/messages.ts';
import type { ChunkFiles } from '../chunks/chunk-files.ts';
import type { PathFilter } from '../path-filter.ts';
import type { TreeScan } from '../tree-scan.ts';

/** Everything a store holds: files and directories with their versions, sorted by path. */
export type ObjectListing = TreeScan;

/** An object open for ranged reads, pinned to the version it had when opened. */
export interface ObjectReader {
  /** Its version when opened. */
  readonly version: FileVersion;
  /** Read up to length bytes at position into into[at..]; 0 at the end. */
  read(into: Buffer, at: number, length: number, position: number): Promise<number>;
  /** True while the object is still the one opened, unmodified: what was read is one version. */
  unchanged(): Promise<boolean>;
  /** Release it. */
  close(): Promise<void>;
}

/**
 * A new version of one object being written. Nothing of it is visible at its
 * path until commit(), which replaces what was there whole (temp file,
 * fsync, rename for a directory; one PUT for a bucket).
 */
export interface ObjectUpload {
  /** The path it will have. */
  readonly path: string;
  /** The version it will have (size, mode and mtime are given at commit). */
  readonly version: FileVersion;
  /** Write data at position. */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Read back up to length written bytes at position into into[at..]; 0 past the end. */
  read(into: Buffer, at: number, length: number, position: number): Promise<number>;
  /** Make what was written so far durable, still invisible (a resume point for resumeUpload). */
  sync(): Promise<void>;
  /**
   * Give it its version's mode and mtime, make it durable and visible at its
   * path whole. The new name is durable after the store's next sync().
   */
  commit(): Promise<void>;
  /**
   * Give it its version's mode and mtime and release it, neither durable nor
   * visible yet: the store's syncSealed() then makes the content of every
   * sealed upload durable at once, and publish() puts each at its path (for
   * a directory: one syncfs for many small files instead of an fsync each).
   */
  seal(): Promise<void>;
  /** Put a sealed upload at its path; only after the store's syncSealed(). The name is durable after the next sync(). */
  publish(): Promise<void>;
  /** Drop it and what was written. */
  abort(): Promise<void>;
  /** Release what it holds open; what was written stays for resumeUpload. */
  close(): Promise<void>;
}

/** A whole object written and sealed (as ObjectUpload.seal leaves one): invisible until published. */
export interface SealedObject {
  /** The path it will have. */
  readonly path: string;
  /** The version it has. */
  readonly version: FileVersion;
  /** Put it at its path; only after the store's syncSealed(). The name is durable after the next sync(). */
  publish(): Promise<void>;
}

/** What publishing sealed objects in order did: the first `published` are at their paths; error is the next one's failure (none after it was tried). */
export interface PublishOutcome {
  published: number;
  error?: unknown;
}

/** A small object read whole: its bytes and the version they are. */
export interface WholeObject {
  /** Its version while it was read. */
  version: FileVersion;
  /** All of its bytes. */
  data: Buffer;
}

/** A watch on a store's objects: a hint that a listing may differ now. */
export interface StoreWatcher {
  /** Stop watching. */
  close(): void;
}

/** Where objects live, as the objects source and sink use it. */
export interface ObjectStore {
  /** What it is, for logs and errors (e.g. `dir /srv/data`). */
  readonly description: string;

  /** Every object and directory with its version (include: only the paths it accepts). */
  list(include?: PathFilter): Promise<ObjectListing>;
  /**
   * Open the regular file at path for ranged reads; null when it is not
   * there, or not a regular file (a symlink is never followed). Throws when
   * it is there but cannot be read.
   */
  openRead(path: string): Promise<ObjectReader | null>;
  /**
   * Optional, for small objects: path read whole in one go when it is a
   * regular file of at most maxBytes; null when openRead would be null,
   * 'changed' when it is larger or changed while read. Throws when it is
   * there but cannot be read. Without it readWholeObject (whole-object.ts)
   * reads through openRead.
   */
  readWhole?(path: string, maxBytes: number): Promise<WholeObject | 'changed' | null>;
  /**
   * Call onChange when something may have changed (rel: the path, or '' when
   * unknown); undefined when the store cannot watch (scans alone find changes).
   */
  watch?(onChange: (rel: string) => void, onError: (err: Error) => void): StoreWatcher | undefined;

  /** True when path holds a regular file of version (an apply that is already done). */
  holds(path: string, version: FileVersion): Promise<boolean>;
  /** Start writing version of path; null when path already holds that version (nothing to write). */
  beginUpload(path: string, version: FileVersion): Promise<ObjectUpload | null>;
  /**
   * Optional, for small objects: write version of path whole from data and
   * seal it in one go (beginUpload, write, seal); null when there is nothing
   * to write (a store may also write a held version again). data is not
   * changed or kept. Without it putWholeObject (whole-object.ts) makes those
   * three calls.
   */
  putWhole?(path: string, version: FileVersion, data: Uint8Array): Promise<SealedObject | null>;
  /**
   * Reopen the unfinished upload of version of path with its first `length`
   * bytes (what a checkpoint counted durable); null when it no longer holds that much.
   */
  resumeUpload(path: string, version: FileVersion, length: number): Promise<ObjectUpload | null>;
  /** Drop every unfinished upload but keep (uploads since a checkpoint are replayed). */
  clearUploads(keep?: ObjectUpload): Promise<void>;
  /** Remove path, a directory with everything below it; nothing when missing. */
  remove(path: string): Promise<void>;
  /**
   * Move the regular file at from, which must be of version, to to,
   * replacing a file there and making to's parents. A repeat (from gone, to
   * of version) does nothing; anything else refuses with a SinkError.
   */
  rename(from: string, to: string, version: FileVersion): Promise<void>;
  /** Make path a directory with mode (replacing a file there), parents too. */
  makeDir(path: string, mode: number): Promise<void>;
  /** Make every commit, rename, removal and made directory so far durable. */
  sync(): Promise<void>;
  /** Make the content of every sealed upload durable (they stay invisible until published). */
  syncSealed(): Promise<void>;
  /**
   * Optional, for many small objects: publish objects this store sealed
   * (after its syncSealed()) at their paths in order, as their publish()
   * one after another would, in fewer calls (a directory: one native job
   * per batch). The first failure stops it, as a SinkError naming its path
   * when publish() would refuse; nothing after it is published. Without it
   * publishSealedObjects (whole-object.ts) calls publish() one by one.
   */
  publishMany?(objects: readonly SealedObject[]): Promise<PublishOutcome>;

  /** The files as the chunk index reads them (stage dedup@1); close it when done. */
  openChunkFiles(): Promise<ChunkFiles & { close(): Promise<void> }>;
  /** Release what it holds open (it reopens on next use); unfinished uploads stay for resumeUpload. */
  close(): Promise<void>;
}
