// The destination end of an objects stream: applies ObjectOps to a directory.
// A file arrives as PutChunks into one temp file under <root>/.dwcp-tmp/ and
// becomes visible only whole: fsync, mode, mtime, rename over the target,
// fsync of its directory. At most one file is partial at a time; the
// checkpointed sink state names it and how far it is durable, so a restart
// resumes mid-file instead of from zero.
//
// Several sinks may share one root, one per shard of a sharded stream: each
// is given the filter of its shard (its manifest covers only those paths,
// and it refuses ops on any other) and its own temp area under .dwcp-tmp/,
// so one shard's recover never drops another shard's partial file.

import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm, stat, truncate, chmod } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { manifestCodec, objectOpCodec } from '../../wire/messages.ts';
import type { FileVersion, ObjectOp, PartialFile, PutChunk } from '../../wire/messages.ts';
import { SinkError } from '../stream.ts';
import type { Sink, StreamKind } from '../stream.ts';
import { MODE_MASK, identicalVersion, sameVersion, versionOf } from './file-version.ts';
import { TEMP_DIR_NAME, isMissing, resolveInside, validateRelativePath } from './object-paths.ts';
import type { ObjectsLogger } from './objects-logger.ts';
import type { PathFilter } from './path-filter.ts';
import { scanTree } from './tree-scan.ts';

/** Options of a DirSink. */
export interface DirSinkOptions {
  streamId: string;
  /** Directory that receives the tree; must exist. */
  root: string;
  /** Where refusals and recoveries are reported. Default: silent. */
  logger?: ObjectsLogger;
  /** Only these paths are this sink's (one shard of a shared root): the manifest lists only them, ops on others are refused. Default all. */
  include?: PathFilter;
  /** Name of this sink's own temp area, <root>/.dwcp-tmp/<tempName>/, when sinks share a root. Default .dwcp-tmp itself. */
  tempName?: string;
}

/** What a temp area name may look like: one plain path segment. */
const TEMP_NAME_PATTERN = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/** The file being received: its identity, how far it is written, its temp file. */
interface PartialState {
  path: string;
  version: FileVersion;
  /** Bytes written to the temp file so far (all of them applied, not all durable). */
  offset: number;
  tempPath: string;
  /** Open handle, or undefined after recover (reopened on the next chunk). */
  handle?: FileHandle;
}

const MICROS_PER_SECOND = 1e6;

/** A Sink writing an objects stream into a directory tree. */
export class DirSink implements Sink {
  readonly streamId: string;
  readonly kind: StreamKind = 'objects';
  readonly #root: string;
  readonly #tempDir: string;
  readonly #logger?: ObjectsLogger;
  readonly #include?: PathFilter;
  #partial?: PartialState;
  /** Directories whose entries changed since the last flush (fsynced by flush). */
  #dirtyDirs = new Set<string>();
  /** Serializes apply, flush, recover and close: each sees the others whole. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: DirSinkOptions) {
    if (!options.root) throw new Error('dir sink: root must be set');
    if (options.tempName !== undefined && !TEMP_NAME_PATTERN.test(options.tempName)) {
      throw new Error(`dir sink: tempName must be one plain path segment, got ${JSON.stringify(options.tempName)}`);
    }
    this.streamId = options.streamId;
    this.#root = options.root;
    this.#tempDir = options.tempName === undefined ? join(options.root, TEMP_DIR_NAME) : join(options.root, TEMP_DIR_NAME, options.tempName);
    this.#logger = options.logger;
    this.#include = options.include;
  }

  /** Roll the temp area back to the checkpoint and return the destination manifest. */
  recover(sinkState: Uint8Array, seq: number): Promise<Uint8Array> {
    return this.#serial(() => this.#recover(sinkState, seq));
  }

  /** Apply one ObjectOp (meta) with its data; throws SinkError on refusal. */
  apply(seq: number, meta: Uint8Array, data: Uint8Array): Promise<void> {
    return this.#serial(() => this.#apply(seq, meta, data));
  }

  /** fsync the partial file and touched directories; return the sink state. */
  flush(): Promise<Uint8Array> {
    return this.#serial(() => this.#flush());
  }

  /** Close the partial file's handle (its content stays for recover). */
  close(): Promise<void> {
    return this.#serial(() => this.#closeHandle());
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #recover(sinkState: Uint8Array, seq: number): Promise<Uint8Array> {
    await this.#closeHandle();
    this.#partial = undefined;
    this.#dirtyDirs.clear();
    await mkdir(this.#tempDir, { recursive: true });

    // Keep the checkpointed partial if its temp file still holds that much.
    const wanted = decodeSinkState(sinkState);
    if (wanted) {
      validateRelativePath(wanted.path);
      this.#checkIncluded(wanted.path, `checkpoint at seq ${seq}`);
      const tempPath = this.#tempPathFor(wanted.path, wanted.version);
      const size = await fileSize(tempPath);
      if (size !== undefined && size >= wanted.offset) {
        await truncate(tempPath, wanted.offset);
        this.#partial = { path: wanted.path, version: wanted.version, offset: wanted.offset, tempPath };
      } else {
        this.#logger?.warn({ streamId: this.streamId, seq, path: wanted.path }, 'checkpointed partial file is gone; it will be resent');
      }
    }

    // Anything else in the temp area is from after the checkpoint: drop it.
    for (const name of await readdir(this.#tempDir)) {
      const path = join(this.#tempDir, name);
      if (path !== this.#partial?.tempPath) await rm(path, { recursive: true, force: true });
    }
    await fsyncDir(this.#tempDir);
    if (this.#tempDir !== join(this.#root, TEMP_DIR_NAME)) await fsyncDir(join(this.#root, TEMP_DIR_NAME));

    // The tree itself (this sink's part of it) is the truth about what is here.
    const scan = await scanTree(this.#root, { include: this.#include });
    return manifestCodec.encode({ entries: scan.entries, partial: this.#partialState() });
  }

  async #apply(seq: number, meta: Uint8Array, data: Uint8Array): Promise<void> {
    let op: ObjectOp;
    try {
      op = objectOpCodec.decode(meta);
    } catch (err) {
      throw new SinkError(`decode object op at seq ${seq}: ${(err as Error).message}`);
    }
    for (const path of pathsOf(op)) this.#checkIncluded(path, `object op at seq ${seq}`);
    if (op.put) return this.#applyChunk(op.put, data);
    if (op.delete) return this.#applyDelete(op.delete.path);
    if (op.rename) return this.#applyRename(op.rename.from, op.rename.to, op.rename.version);
    if (op.mkdir) return this.#applyMakeDir(op.mkdir.path, op.mkdir.mode);
    throw new SinkError(`object op at seq ${seq} has no operation`);
  }

  async #applyChunk(put: PutChunk, data: Uint8Array): Promise<void> {
    // The path is confined when a file starts, when a chunk does not continue
    // the partial, and again at commit; middle chunks of the partial (same
    // path, already checked) skip the lstat walk, which is per chunk otherwise.
    const resolve = (): Promise<string> => resolveInside(this.#root, put.path);
    const { version, offset } = put;
    if (offset + data.length > version.size) {
      throw new SinkError(`chunk of ${put.path} at offset ${offset} (+${data.length}) runs past its size ${version.size}`);
    }

    if (offset === 0) {
      // A first chunk always starts over: whatever was partial is abandoned.
      const target = await resolve();
      await this.#dropPartial();
      if (await isCompleteAt(target, version)) return;
      const tempPath = this.#tempPathFor(put.path, version);
      await mkdir(this.#tempDir, { recursive: true });
      const handle = await open(tempPath, 'w', 0o600);
      this.#partial = { path: put.path, version, offset: 0, tempPath, handle };
      this.#dirtyDirs.add(this.#tempDir);
    } else {
      // A later chunk continues the partial exactly, or repeats a committed file.
      const p = this.#partial;
      const continues = p !== undefined && p.path === put.path && identicalVersion(p.version, version) && p.offset === offset;
      if (!continues) {
        const target = await resolve();
        if (p === undefined && (await isCompleteAt(target, version))) return;
        const have = p ? `partial ${JSON.stringify(p.path)} at ${p.offset}` : 'no partial file';
        throw new SinkError(`chunk of ${JSON.stringify(put.path)} at offset ${offset} does not continue the partial (${have})`);
      }
    }

    const partial = this.#partial!;
    partial.handle ??= await open(partial.tempPath, 'r+');
    await writeFully(partial.handle, data, offset);
    partial.offset = offset + data.length;
    if (partial.offset === version.size) await this.#commit(partial, await resolve());
  }

  // Make the completed temp file the target: durable content and metadata first.
  async #commit(partial: PartialState, target: string): Promise<void> {
    const handle = partial.handle!;
    const seconds = utimesSeconds(partial.version.mtimeUs);
    await handle.chmod(partial.version.mode & MODE_MASK);
    await handle.utimes(seconds, seconds);
    await handle.sync();
    await handle.close();
    partial.handle = undefined;

    // Clear the way (a directory where the file goes is replaced), then rename.
    await this.#ensureParents(partial.path);
    const existing = await lstatOrUndefined(target);
    if (existing?.isDirectory()) await rm(target, { recursive: true, force: true });
    await rename(partial.tempPath, target);
    await fsyncDir(dirname(target));
    this.#partial = undefined;
  }

  async #applyDelete(path: string): Promise<void> {
    const target = await resolveInside(this.#root, path);
    try {
      await rm(target, { recursive: true, force: true });
    } catch (err) {
      if (!isMissing(err)) throw new Error(`delete ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.#dirtyDirs.add(dirname(target));
  }

  async #applyRename(from: string, to: string, version: FileVersion): Promise<void> {
    const source = await resolveInside(this.#root, from);
    const target = await resolveInside(this.#root, to);

    // A repeated rename finds its work done; a diverged tree is refused.
    const st = await lstatOrUndefined(source);
    if (st === undefined || !st.isFile()) {
      if (await isCompleteAt(target, version)) return;
      throw new SinkError(`rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}: source is missing`);
    }
    if (!sameVersion(versionOf(st), version)) {
      throw new SinkError(`rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}: source has another version`);
    }

    await this.#ensureParents(to);
    const existing = await lstatOrUndefined(target);
    if (existing?.isDirectory()) await rm(target, { recursive: true, force: true });
    await rename(source, target);
    this.#dirtyDirs.add(dirname(source));
    this.#dirtyDirs.add(dirname(target));
  }

  async #applyMakeDir(path: string, mode: number): Promise<void> {
    const target = await resolveInside(this.#root, path);
    await this.#ensureParents(path);

    // Replace a file or symlink in the way; never chmod through a symlink.
    const existing = await lstatOrUndefined(target);
    if (existing !== undefined && !existing.isDirectory()) await rm(target, { force: true });
    if (existing === undefined || !existing.isDirectory()) {
      await mkdir(target);
      this.#dirtyDirs.add(dirname(target));
    }
    await chmod(target, mode & MODE_MASK);
  }

  // mkdir -p for the parents of rel, confined: a symlink refuses, a file is replaced.
  async #ensureParents(rel: string): Promise<void> {
    const segments = rel.split('/');
    let current = this.#root;
    for (let i = 0; i < segments.length - 1; i++) {
      const parent = current;
      current = join(current, segments[i]);
      const st = await lstatOrUndefined(current);
      if (st?.isDirectory()) continue;
      if (st?.isSymbolicLink()) {
        throw new SinkError(`path ${JSON.stringify(rel)} refused: parent ${JSON.stringify(segments.slice(0, i + 1).join('/'))} is a symlink`);
      }
      if (st !== undefined) await rm(current, { force: true });
      await mkdir(current);
      this.#dirtyDirs.add(parent);
    }
  }

  async #flush(): Promise<Uint8Array> {
    await this.#partial?.handle?.sync();
    for (const dir of this.#dirtyDirs) await fsyncDir(dir);
    this.#dirtyDirs.clear();
    const partial = this.#partialState();
    return partial ? manifestCodec.encode({ entries: [], partial }) : new Uint8Array(0);
  }

  // A path outside this sink's shard is refused before anything is touched.
  #checkIncluded(path: string, what: string): void {
    if (this.#include !== undefined && !this.#include(path)) {
      throw new SinkError(`${what}: path ${JSON.stringify(path)} refused: not in this sink's shard of the tree`);
    }
  }

  #partialState(): PartialFile | undefined {
    const p = this.#partial;
    return p ? { path: p.path, version: p.version, offset: p.offset } : undefined;
  }

  async #dropPartial(): Promise<void> {
    const p = this.#partial;
    if (!p) return;
    await this.#closeHandle();
    await rm(p.tempPath, { force: true });
    this.#partial = undefined;
  }

  async #closeHandle(): Promise<void> {
    const p = this.#partial;
    if (p?.handle) {
      const handle = p.handle;
      p.handle = undefined;
      await handle.close();
    }
  }

  // One temp name per (path, version): a checkpoint never names another file's bytes.
  #tempPathFor(path: string, version: FileVersion): string {
    const key = `${path}\0${version.size}\0${version.mtimeUs}\0${version.mode}`;
    return join(this.#tempDir, `${createHash('sha256').update(key).digest('hex').slice(0, 32)}.part`);
  }
}

/** Every path an op touches. */
function pathsOf(op: ObjectOp): string[] {
  if (op.put) return [op.put.path];
  if (op.delete) return [op.delete.path];
  if (op.rename) return [op.rename.from, op.rename.to];
  if (op.mkdir) return [op.mkdir.path];
  return [];
}

/** The partial file named by a sink state (empty bytes: none). */
function decodeSinkState(sinkState: Uint8Array): PartialFile | undefined {
  if (sinkState.length === 0) return undefined;
  try {
    return manifestCodec.decode(sinkState).partial ?? undefined;
  } catch (err) {
    throw new SinkError(`decode objects sink state: ${(err as Error).message}`);
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

async function isCompleteAt(target: string, version: FileVersion): Promise<boolean> {
  const st = await lstatOrUndefined(target);
  return st !== undefined && st.isFile() && sameVersion(versionOf(st), version);
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    const st = await stat(path);
    return st.isFile() ? st.size : undefined;
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

async function writeFully(handle: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** fsync a directory so the entries created or removed in it survive a crash. */
async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await open(dir, 'r');
  } catch (err) {
    if (isMissing(err)) return;
    throw err;
  }
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
