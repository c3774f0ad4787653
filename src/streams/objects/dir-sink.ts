// The destination end of an objects stream: applies ObjectOps to a directory.
// A file arrives as PutChunks into one temp file under <root>/.dwcp-tmp/ and
// becomes visible only whole: mode, mtime, fsync, rename over the target;
// its directory is fsynced with the next flush, before the checkpoint. At most one file is partial at a time; the
// checkpointed sink state names it and how far it is durable, so a restart
// resumes mid-file instead of from zero.
//
// Several sinks may share one root, one per shard of a sharded stream: each
// is given the filter of its shard (its manifest covers only those paths,
// and it refuses ops on any other) and its own temp area under .dwcp-tmp/,
// so one shard's recover never drops another shard's partial file.
//
// No path is checked first and used by name afterwards: the root and the
// temp area are held open, every path below the root is resolved by the
// kernel without following a symlink (beneath-root.ts), and entries change
// through their directory's fd. A symlink at the temp area is refused, never
// followed or emptied. An op is checked whole (paths, shard, versions, what
// a rename would do to its own source) before its first change.
//
// Stage dedup@1 (when given an index and a staging directory): chunks
// received as PutChunkData wait in the staging directory; a PutRecipe is
// assembled into a temp file from its inline bytes, staged chunks and chunks
// of files already here (the chunk index), each checked against its hash,
// then committed like any file (fsync, rename) and its chunks recorded. A
// chunk that cannot be produced fails the op with a MissingChunksError
// (retryable: the session restarts and the source asks again).
// A file of at least DEDUP_MIN_FILE_BYTES that arrives as PutChunks in a
// session whose source asks chunk queries (a file the destination held
// nothing of) is chunked at its commit and recorded too, so its copies
// and edits dedup later.

import { createHash } from 'node:crypto';
import { close, constants, fchmod, fsync, ftruncate, futimes, read, write } from 'node:fs';
import { promisify } from 'node:util';
import { native } from '../../../native-bindings/index.ts';
import { manifestCodec, objectOpCodec } from '../../wire/messages.ts';
import type { ChunkHave, ChunkQuery, DeltaBase, FileVersion, ObjectOp, PartialFile, PutChunk, PutChunkDelta, PutRecipe } from '../../wire/messages.ts';
import { checkChunkDelta, deltaQueryRanges } from '../../wire/delta-messages.ts';
import { deltaBasesFor, rebuildDeltaChunk } from './chunks/delta-bases.ts';
import { DICT_MAX_FILE_BYTES } from './chunks/small-file-dictionary.ts';
import { InvalidDictionaryError, UnknownDictionaryError, type DictionaryStore } from '../../encoding/hde/dictionary-store.ts';
import { DedupMessageError, checkChunkData, checkPutRecipe, missingBitmap, queryHashes } from '../../wire/dedup-messages.ts';
import { directoryChunkFiles } from './chunks/chunk-files.ts';
import { ChunkIndex } from './chunks/chunk-index.ts';
import { ChunkStage } from './chunks/chunk-stage.ts';
import { assembleRecipe } from './chunks/recipe-assembly.ts';
import { DEDUP_MIN_FILE_BYTES } from './chunks/recipe-plan.ts';
import { readChunks, type RangeRead } from '../../encoding/hde/file-chunks.ts';
import type { RecordedChunk } from './chunks/chunk-index.ts';
import { SinkError } from '../stream.ts';
import type { Sink, StreamKind } from '../stream.ts';
import { BeneathRoot, DIR_FLAGS, closeEntryDir, isDirectory, isRegularFile, isSymlink, openPrivateDir } from './beneath-root.ts';
import type { EntryDir } from './beneath-root.ts';
import { MODE_MASK, identicalVersion, sameVersion, versionOf } from './file-version.ts';
import { TEMP_DIR_NAME, validateRelativePath } from './object-paths.ts';
import type { ObjectsLogger } from './objects-logger.ts';
import type { PathFilter } from './path-filter.ts';
import { scanTree } from './tree-scan.ts';

const closeFd = promisify(close);
const fchmodFd = promisify(fchmod);
const fsyncFd = promisify(fsync);
const ftruncateFd = promisify(ftruncate);
const futimesFd = promisify(futimes);

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
  /**
   * Stage dedup@1: the directory of this sink's chunk index and the one
   * where received chunks wait for their recipe, both outside the tree.
   * Without them the sink refuses chunk queries (the source sends files
   * whole) and refuses recipes. Default none.
   */
  chunks?: { indexDir: string; stageDir: string };
  /**
   * Stage dict@1: this region's dictionaries (consensus store). Shipped ones
   * are stored there; the manifest lists what it holds. Without it the sink
   * refuses PutDictionary and PutDictFile. Default none.
   */
  dictionaries?: DictionaryStore;
}

/** A recipe named chunks that were neither sent nor held here (retryable: the source asks again). */
export class MissingChunksError extends Error {
  override name = 'MissingChunksError';
}

/** The open chunk index and staging directory of a sink (stage dedup@1). */
interface ChunkStore {
  /** Its own handle on the root: the index reads held chunks beneath it. */
  root: BeneathRoot;
  index: ChunkIndex;
  stage: ChunkStage;
}

/** What a temp area name may look like: one plain path segment. */
const TEMP_NAME_PATTERN = /^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$/;

/** The file being received: its identity, how far it is written, its temp file. */
interface PartialState {
  path: string;
  version: FileVersion;
  /** Bytes written to the temp file so far (all of them applied, not all durable). */
  offset: number;
  /** Name of the temp file in the temp area. */
  tempName: string;
  /** Open fd, or undefined after recover (reopened on the next chunk). */
  fd?: number;
}

/** The open root and temp area: every file operation starts from one of these fds. */
interface OpenArea {
  root: BeneathRoot;
  /** This sink's temp area. */
  tempFd: number;
  /** <root>/.dwcp-tmp when the temp area is a directory inside it (shared root), else undefined. */
  sharedFd?: number;
}

/** Open flags of a temp file started by a first chunk: always a new file of ours, never one found there. */
const TEMP_CREATE_FLAGS = constants.O_RDWR | constants.O_CREAT | constants.O_EXCL;
/** Mode of a temp file until its commit sets the file's own. */
const TEMP_FILE_MODE = 0o600;

const MICROS_PER_SECOND = 1e6;

/**
 * Whole files (one frame each) written and fsynced at once, at most. A small
 * file costs two fsyncs' worth of disk latency and ten thread-pool round
 * trips; one at a time, thousands of them left both agents idle most of a
 * run (measured: 2,952 files of 1-64 KiB, ~10 ms a file). Memory: at most
 * this many frames' data, each at most one frame.
 */
export const MAX_BACKGROUND_FILES = 16;

/** A Sink writing an objects stream into a directory tree. */
export class DirSink implements Sink {
  readonly streamId: string;
  readonly kind: StreamKind = 'objects';
  readonly #rootPath: string;
  /** The temp area relative to the root: .dwcp-tmp or .dwcp-tmp/<tempName>. */
  readonly #tempRel: string;
  readonly #tempName?: string;
  readonly #logger?: ObjectsLogger;
  readonly #include?: PathFilter;
  #area?: OpenArea;
  #partial?: PartialState;
  /** Directories (relative to the root) whose entries changed since the last flush (fsynced by flush). */
  #dirtyDirs = new Set<string>();
  /** Serializes apply, flush, recover and close: each sees the others whole. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Whole files being written in the background, by path; each resolves once its rename is done. */
  #background = new Map<string, Promise<void>>();
  /** The first failure of background work, thrown by the next apply or flush. */
  #backgroundError: unknown = undefined;
  /** Serializes the renames of background files (they may create parent directories). */
  #renames: Promise<unknown> = Promise.resolve();
  readonly #chunkDirs?: { indexDir: string; stageDir: string };
  readonly #dictionaries?: DictionaryStore;
  /** The chunk index and staging directory, opened on first use. */
  #chunkStore?: Promise<ChunkStore>;
  /** This session's source asked a chunk query (the link negotiated dedup@1): files arriving whole are indexed too. */
  #dedupSession = false;

  constructor(options: DirSinkOptions) {
    if (!options.root) throw new Error('dir sink: root must be set');
    if (options.tempName !== undefined && !TEMP_NAME_PATTERN.test(options.tempName)) {
      throw new Error(`dir sink: tempName must be one plain path segment, got ${JSON.stringify(options.tempName)}`);
    }
    this.streamId = options.streamId;
    this.#rootPath = options.root;
    this.#tempName = options.tempName;
    this.#tempRel = options.tempName === undefined ? TEMP_DIR_NAME : `${TEMP_DIR_NAME}/${options.tempName}`;
    this.#logger = options.logger;
    this.#include = options.include;
    this.#chunkDirs = options.chunks;
    this.#dictionaries = options.dictionaries;
  }

  /** Which of the query's chunks this sink lacks (from its chunk index; a refusal when it keeps none). */
  async chunkHave(query: ChunkQuery): Promise<ChunkHave> {
    const answer = { streamId: query.streamId, queryId: query.queryId };
    const store = await this.#chunks();
    if (!store) return { ...answer, count: 0, missing: Buffer.alloc(0), refusal: 'this sink keeps no chunk index' };
    this.#dedupSession = true;
    const asked = queryHashes(query);
    const missing = new Set((await store.index.has(asked)).map((h) => h.toString('hex')));
    const flags = asked.map((h) => missing.has(h.toString('hex')));
    return { ...answer, count: asked.length, missing: missingBitmap(flags), refusal: '', bases: await this.#deltaBases(store, query, flags) };
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

  /** Close the partial file and the root (the partial's content stays for recover). */
  close(): Promise<void> {
    return this.#serial(async () => {
      await this.#settleBackground().catch(() => undefined);
      await this.#closeFile();
      await this.#closeArea();
      await this.#closeChunks();
    });
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #recover(sinkState: Uint8Array, seq: number): Promise<Uint8Array> {
    try {
      return await this.#rollBack(sinkState, seq);
    } catch (err) {
      if (err instanceof SinkError) throw err;
      throw new Error(`recover objects sink at seq ${seq}: ${(err as Error).message}`, { cause: err });
    }
  }

  async #rollBack(sinkState: Uint8Array, seq: number): Promise<Uint8Array> {
    // Background files finish first; their failures are rolled back with the rest.
    await this.#settleBackground().catch(() => undefined);
    // Start from fresh fds: the root or temp area may have been replaced since.
    await this.#closeFile();
    await this.#closeArea();
    this.#partial = undefined;
    this.#dirtyDirs.clear();
    this.#dedupSession = false;
    const area = await this.#open();

    // Keep the checkpointed partial if its temp file still holds that much.
    const wanted = decodeSinkState(sinkState);
    if (wanted) {
      validateRelativePath(wanted.path);
      this.#checkIncluded(wanted.path, `checkpoint at seq ${seq}`);
      const tempName = tempNameFor(wanted.path, wanted.version);
      const st = await native().statAt(area.tempFd, tempName);
      if (st !== undefined && isRegularFile(st) && Number(st.size) >= wanted.offset) {
        const fd = await native().openBeneath(area.tempFd, tempName, constants.O_RDWR, 0);
        this.#partial = { path: wanted.path, version: wanted.version, offset: wanted.offset, tempName, fd };
        await ftruncateFd(fd, wanted.offset);
      } else {
        this.#logger?.warn({ streamId: this.streamId, seq, path: wanted.path }, 'checkpointed partial file is gone; it will be resent');
      }
    }

    // Staged chunks serve recipes after the checkpoint only: the source asks again and resends them.
    const store = await this.#chunks();
    await store?.stage.clear();

    // Anything else in the temp area is from after the checkpoint: drop it (never through a link).
    await native().clearDirAt(area.tempFd, this.#partial?.tempName);
    await fsyncFd(area.tempFd);
    if (area.sharedFd !== undefined) await fsyncFd(area.sharedFd);

    // The tree itself (this sink's part of it) is the truth about what is here.
    const scan = await scanTree(this.#rootPath, { include: this.#include });
    return manifestCodec.encode({ entries: scan.entries, partial: this.#partialState(), dictionaries: await this.#dictionaries?.ids() });
  }

  async #apply(seq: number, meta: Uint8Array, data: Uint8Array): Promise<void> {
    let op: ObjectOp;
    try {
      op = objectOpCodec.decode(meta);
    } catch (err) {
      throw new SinkError(`decode object op at seq ${seq}: ${(err as Error).message}`);
    }
    for (const path of pathsOf(op)) {
      validateRelativePath(path);
      this.#checkIncluded(path, `object op at seq ${seq}`);
    }
    try {
      // Small whole files go to the background; every other op waits for them first, so ops stay in order.
      if (op.put && op.put.offset === 0 && data.length === op.put.version.size) return await this.#startWholeFile(op.put, data);
      if (op.dictFile) return await this.#startWholeFile({ path: op.dictFile.path, version: op.dictFile.version, offset: 0 }, await this.#undict(op.dictFile, data));
      await this.#settleBackground();
      if (op.put) return await this.#applyChunk(op.put, data);
      if (op.delete) return await this.#applyDelete(op.delete.path);
      if (op.rename) return await this.#applyRename(op.rename.from, op.rename.to, op.rename.version);
      if (op.mkdir) return await this.#applyMakeDir(op.mkdir.path, op.mkdir.mode);
      if (op.chunkData) return await this.#applyChunkData(op.chunkData, data);
      if (op.recipe) return await this.#applyRecipe(op.recipe, data);
      if (op.chunkDelta) return await this.#applyChunkDelta(op.chunkDelta, data);
      if (op.dictionary) return await this.#applyDictionary(op.dictionary.id, data);
    } catch (err) {
      // A refusal stands as it is; an I/O error gets the op as context.
      if (err instanceof SinkError || err instanceof MissingChunksError || err instanceof UnknownDictionaryError) throw err;
      if (err instanceof DedupMessageError || err instanceof InvalidDictionaryError) throw new SinkError(`${describeOp(op)} at seq ${seq}: ${err.message}`);
      throw new Error(`apply ${describeOp(op)} at seq ${seq}: ${(err as Error).message}`, { cause: err });
    }
    throw new SinkError(`object op at seq ${seq} has no operation`);
  }

  async #applyChunk(put: PutChunk, data: Uint8Array): Promise<void> {
    const { version, offset } = put;
    if (offset + data.length > version.size) {
      throw new SinkError(`chunk of ${put.path} at offset ${offset} (+${data.length}) runs past its size ${version.size}`);
    }
    const area = await this.#open();

    // The target's directory is resolved when a file starts and when a chunk
    // does not continue the partial; middle chunks only write to the open
    // temp file. A file done in this chunk commits into the same directory fd.
    let parent: EntryDir | undefined;
    try {
      if (offset === 0) {
        // A first chunk always starts over: whatever was partial is abandoned.
        parent = await area.root.openParent(put.path);
        await this.#dropPartial();
        if (await isCompleteIn(parent, version)) return;
        const tempName = tempNameFor(put.path, version);
        const fd = await createFresh(area.tempFd, tempName);
        this.#partial = { path: put.path, version, offset: 0, tempName, fd };
        this.#dirtyDirs.add(this.#tempRel);
      } else {
        // A later chunk continues the partial exactly, or repeats a committed file.
        const p = this.#partial;
        const continues = p !== undefined && p.path === put.path && identicalVersion(p.version, version) && p.offset === offset;
        if (!continues) {
          parent = await area.root.openParent(put.path);
          if (p === undefined && (await isCompleteIn(parent, version))) return;
          const have = p ? `partial ${JSON.stringify(p.path)} at ${p.offset}` : 'no partial file';
          throw new SinkError(`chunk of ${JSON.stringify(put.path)} at offset ${offset} does not continue the partial (${have})`);
        }
      }

      const partial = this.#partial!;
      partial.fd ??= await native().openBeneath(area.tempFd, partial.tempName, constants.O_RDWR, 0);
      await writeFully(partial.fd, data, offset);
      partial.offset = offset + data.length;
      if (partial.offset === version.size) await this.#commit(area, partial, parent);
    } finally {
      await closeEntryDir(parent);
    }
  }

  // Stage delta@1: bases for the missing chunks a query asked them for, from the file at its path (none outside this shard).
  async #deltaBases(store: ChunkStore, query: ChunkQuery, missing: boolean[]): Promise<DeltaBase[]> {
    const ranges = deltaQueryRanges(query);
    if (!ranges || !isValidRelativePath(query.path) || (this.#include !== undefined && !this.#include(query.path))) return [];
    const wanted = missing.flatMap((m, index) => (m ? [{ index, offset: ranges.offsets[index], length: ranges.lengths[index] }] : []));
    return wanted.length === 0 ? [] : deltaBasesFor(directoryChunkFiles(store.root), query.path, wanted);
  }

  // Stage delta@1: a chunk rebuilt from a base here and staged like chunk data; a base changed since is left to the recipe's retry.
  async #applyChunkDelta(op: PutChunkDelta, data: Uint8Array): Promise<void> {
    checkChunkDelta(op, data.length);
    const store = await this.#chunks();
    if (!store) throw new SinkError('put chunk delta refused: this sink keeps no chunk index (stage dedup@1 not set up)');
    const chunk = await rebuildDeltaChunk(directoryChunkFiles(store.root), op, data);
    if (!chunk) {
      this.#logger?.info({ streamId: this.streamId, path: op.basePath }, 'delta base changed since the chunk query; the recipe will ask again');
      return;
    }
    await store.stage.put(Buffer.from(op.hash), chunk, { durable: false });
  }

  // Stage dict@1: a shipped dictionary, stored in this region's consensus store by its id (its bytes must be that id).
  async #applyDictionary(id: string, data: Uint8Array): Promise<void> {
    if (!this.#dictionaries) throw new SinkError(`put dictionary ${id} refused: this sink keeps no dictionaries (stage dict@1 not set up)`);
    // Bytes that are not the id, or a size no store may hold, throw InvalidDictionaryError (a refusal); a store failure may pass.
    await this.#dictionaries.accept(id, data);
  }

  // Stage dict@1: a small file's bytes from its dictionary frame; UnknownDictionaryError (retryable) when the dictionary is not held here.
  async #undict(op: { path: string; version: FileVersion; dictionaryId: string }, data: Uint8Array): Promise<Buffer> {
    if (!this.#dictionaries) throw new SinkError(`put dict file ${JSON.stringify(op.path)} refused: this sink keeps no dictionaries (stage dict@1 not set up)`);
    if (op.version.size > DICT_MAX_FILE_BYTES) throw new SinkError(`put dict file ${JSON.stringify(op.path)}: ${op.version.size} bytes, at most ${DICT_MAX_FILE_BYTES} go with a dictionary`);
    const codec = await this.#dictionaries.codec(op.dictionaryId);
    try {
      return codec.decompress(data, op.version.size);
    } catch (err) {
      throw new SinkError(`put dict file ${JSON.stringify(op.path)}: ${(err as Error).message}`);
    }
  }

  // A chunk of a recipe to come: kept (checked against its hash) in the staging directory.
  async #applyChunkData(op: { hash: Uint8Array }, data: Uint8Array): Promise<void> {
    const hash = checkChunkData(op, data.length);
    const store = await this.#chunks();
    if (!store) throw new SinkError('put chunk data refused: this sink keeps no chunk index (stage dedup@1 not set up)');
    // Not fsynced: recover clears the stage, and the source asks again for what a recipe lacks.
    await store.stage.put(hash, data, { durable: false });
  }

  // A file from its recipe: assembled into a temp file, every chunk checked, then committed and recorded.
  async #applyRecipe(recipe: PutRecipe, data: Uint8Array): Promise<void> {
    checkPutRecipe(recipe, data.length);
    const store = await this.#chunks();
    if (!store) throw new SinkError(`put recipe ${JSON.stringify(recipe.path)} refused: this sink keeps no chunk index (stage dedup@1 not set up)`);
    const { version } = recipe;
    const area = await this.#open();
    const parent = await area.root.openParent(recipe.path);
    try {
      // As any first chunk: what was partial is abandoned; a repeated recipe finds its work done.
      await this.#dropPartial();
      const staged = recipe.chunks.filter((c) => !c.inline).map((c) => c.hash);
      if (await isCompleteIn(parent, version)) return await store.stage.remove(staged);
      const tempName = tempNameFor(recipe.path, version);
      const fd = await createFresh(area.tempFd, tempName);
      this.#dirtyDirs.add(this.#tempRel);

      // Assemble; nothing is committed unless every chunk was produced and checked.
      let assembly;
      try {
        const inline = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        const sources = { staged: (h: Buffer) => store.stage.get(h), held: (h: Buffer) => store.index.locate(h) };
        assembly = await assembleRecipe(recipe, inline, sources, (bytes, position) => writeFully(fd, bytes, position));
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        await native().removeAt(area.tempFd, tempName).catch(() => undefined);
        throw err;
      }
      if (assembly.missing.length > 0) {
        await closeFd(fd).catch(() => undefined);
        await native().removeAt(area.tempFd, tempName).catch(() => undefined);
        const first = assembly.missing[0].toString('hex');
        throw new MissingChunksError(`put recipe ${JSON.stringify(recipe.path)}: ${assembly.missing.length} chunks neither sent nor held here (first ${first}); the source asks again`);
      }

      // Commit like a whole file, then remember where its chunks are.
      await finishContent(fd, version);
      await this.#rename(area, recipe.path, tempName, parent);
      await store.index.record(recipe.path, { size: version.size, mtimeUs: version.mtimeUs }, assembly.chunks);
      await store.stage.remove(staged);
    } finally {
      await closeEntryDir(parent);
    }
  }

  // The chunk index and staging directory, opened once (again after a failed open); null when not set up.
  async #chunks(): Promise<ChunkStore | null> {
    const dirs = this.#chunkDirs;
    if (!dirs) return null;
    this.#chunkStore ??= (async () => {
      const root = await BeneathRoot.open(this.#rootPath);
      try {
        const stage = await ChunkStage.open(dirs.stageDir);
        const index = await ChunkIndex.open(dirs.indexDir, directoryChunkFiles(root));
        return { root, index, stage };
      } catch (err) {
        await root.close();
        throw new Error(`open chunk index ${dirs.indexDir}: ${(err as Error).message}`, { cause: err });
      }
    })();
    const opening = this.#chunkStore;
    try {
      return await opening;
    } catch (err) {
      if (this.#chunkStore === opening) this.#chunkStore = undefined;
      throw err;
    }
  }

  async #closeChunks(): Promise<void> {
    const opening = this.#chunkStore;
    this.#chunkStore = undefined;
    const store = await opening?.catch(() => undefined);
    if (!store) return;
    await store.index.close();
    await store.root.close();
  }

  // The chunks of a file that arrived whole, when this session dedups and the file is large enough; else null.
  async #chunksOf(version: FileVersion, read: RangeRead): Promise<RecordedChunk[] | null> {
    if (!this.#dedupSession || version.size < DEDUP_MIN_FILE_BYTES || !this.#chunkDirs) return null;
    const chunks: RecordedChunk[] = [];
    for await (const c of readChunks(read)) chunks.push({ hash: c.hash, offset: c.offset, length: c.length });
    return chunks;
  }

  // Record a committed file's chunks (null: not indexed).
  async #recordChunks(path: string, version: FileVersion, chunks: RecordedChunk[] | null): Promise<void> {
    if (chunks === null) return;
    const store = await this.#chunks();
    await store?.index.record(path, { size: version.size, mtimeUs: version.mtimeUs }, chunks);
  }

  // A path renamed away or deleted: its chunks are no longer there (the index also checks versions on use).
  async #forgetChunks(path: string): Promise<void> {
    const store = this.#chunkStore ? await this.#chunks() : null;
    await store?.index.forget(path);
  }

  // Make the completed temp file the target: durable content and metadata first.
  async #commit(area: OpenArea, partial: PartialState, opened: EntryDir | undefined): Promise<void> {
    const fd = partial.fd!;
    partial.fd = undefined;
    const chunks = await this.#chunksOf(partial.version, (into, at, length, position) => readAt(fd, into, at, length, position)).catch(async (err: unknown) => {
      await closeFd(fd).catch(() => undefined);
      throw err;
    });
    await finishContent(fd, partial.version);
    await this.#rename(area, partial.path, partial.tempName, opened);
    this.#partial = undefined;
    await this.#recordChunks(partial.path, partial.version, chunks);
  }

  // A whole file in one frame: checked and started here, in order; written,
  // fsynced and renamed in the background (#settleBackground waits for it).
  async #startWholeFile(put: PutChunk, data: Uint8Array): Promise<void> {
    if (this.#backgroundError !== undefined) await this.#settleBackground();
    const earlier = this.#background.get(put.path);
    if (earlier) await earlier; // the same path again: the older version lands first
    while (this.#background.size >= MAX_BACKGROUND_FILES) await Promise.race(this.#background.values());
    const area = await this.#open();
    await this.#dropPartial(); // as any first chunk: what was partial is abandoned
    const parent = await area.root.openParent(put.path);
    if (await isCompleteIn(parent, put.version)) {
      await closeEntryDir(parent);
      return;
    }
    const tempName = tempNameFor(put.path, put.version);
    this.#dirtyDirs.add(this.#tempRel);
    const work = (async () => {
      try {
        const fd = await createFresh(area.tempFd, tempName);
        try {
          await writeFully(fd, data, 0);
        } catch (err) {
          await closeFd(fd).catch(() => undefined);
          throw err;
        }
        await finishContent(fd, put.version);
        // Renames one at a time: a parent directory may have to be made.
        const renamed = this.#renames.then(() => this.#rename(area, put.path, tempName, parent));
        this.#renames = renamed.catch(() => undefined);
        await renamed;
        const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
        const chunks = await this.#chunksOf(put.version, async (into, at, length, position) => (position >= bytes.length ? 0 : bytes.copy(into, at, position, Math.min(position + length, bytes.length))));
        await this.#recordChunks(put.path, put.version, chunks);
      } finally {
        await closeEntryDir(parent);
      }
    })();
    const done: Promise<void> = work.then(
      () => undefined,
      (err: unknown) => {
        // Kept for the next apply or flush; a refusal stays a refusal.
        this.#backgroundError ??= err instanceof SinkError ? err : new Error(`apply put ${JSON.stringify(put.path)}: ${(err as Error).message}`, { cause: err });
      },
    ).finally(() => {
      if (this.#background.get(put.path) === done) this.#background.delete(put.path);
    });
    this.#background.set(put.path, done);
  }

  // Wait for every background file; throw the first failure among them (once).
  async #settleBackground(): Promise<void> {
    while (this.#background.size > 0) await Promise.all(this.#background.values());
    const err = this.#backgroundError;
    if (err === undefined) return;
    this.#backgroundError = undefined;
    throw err;
  }

  // Rename a finished temp file to path; its directory is fsynced with the next flush.
  async #rename(area: OpenArea, path: string, tempName: string, opened: EntryDir | undefined): Promise<void> {
    // The directory it goes in: the one opened for it, or made now.
    const made = opened?.fd === undefined ? await area.root.makeParent(path, (dir) => this.#dirtyDirs.add(dir)) : undefined;
    const parent = made ?? opened!;
    try {
      // The name is made durable with the next flush (one fsync per directory
      // per checkpoint, not per file); the checkpoint that counts this file
      // applied is written only after that flush. A crash before it may lose
      // the rename, never the content behind a name: the file was fsynced
      // before the rename, and the op is resent from the checkpoint.
      await renameReplacing(area.tempFd, tempName, parent);
      this.#dirtyDirs.add(parent.dirRel);
    } finally {
      await closeEntryDir(made);
    }
  }

  async #applyDelete(path: string): Promise<void> {
    const { root } = await this.#open();
    const parent = await root.openParent(path);
    try {
      if (parent.fd === undefined) return;
      await native().removeAt(parent.fd, parent.name);
      this.#dirtyDirs.add(parent.dirRel);
      await this.#forgetChunks(path);
    } finally {
      await closeEntryDir(parent);
    }
  }

  async #applyRename(from: string, to: string, version: FileVersion): Promise<void> {
    // Every check before any change: a refused rename leaves the tree as it was.
    const what = `rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}`;
    if (from === to) throw new SinkError(`${what} refused: source and target are the same path`);
    if (to.startsWith(`${from}/`)) throw new SinkError(`${what} refused: target is inside the source`);
    if (from.startsWith(`${to}/`)) throw new SinkError(`${what} refused: target is a parent of the source`);
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
      await this.#forgetChunks(from);
      this.#dirtyDirs.add(source.dirRel);
      this.#dirtyDirs.add(into.dirRel);
    } finally {
      await closeEntryDir(source);
      await closeEntryDir(target);
      await closeEntryDir(made);
    }
  }

  async #applyMakeDir(path: string, mode: number): Promise<void> {
    const { root } = await this.#open();
    const parent = await root.makeParent(path, (dir) => this.#dirtyDirs.add(dir));
    try {
      // Replace a file or symlink in the way; never chmod through a symlink.
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

  async #flush(): Promise<Uint8Array> {
    await this.#settleBackground();
    const fd = this.#partial?.fd;
    if (fd !== undefined) await fsyncFd(fd);
    if (this.#dirtyDirs.size > 0) {
      // The temp area through the fd its files went through, the rest by path beneath the root.
      const area = await this.#open();
      for (const dir of this.#dirtyDirs) {
        if (dir === this.#tempRel) await fsyncFd(area.tempFd);
        else await area.root.fsyncDir(dir);
      }
    }
    this.#dirtyDirs.clear();
    const partial = this.#partialState();
    return partial ? manifestCodec.encode({ entries: [], partial }) : new Uint8Array(0);
  }

  // The root and temp area, opened on first use after recover or close.
  async #open(): Promise<OpenArea> {
    if (this.#area) return this.#area;
    const root = await BeneathRoot.open(this.#rootPath);
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

  async #closeArea(): Promise<void> {
    const area = this.#area;
    if (!area) return;
    this.#area = undefined;
    await closeFd(area.tempFd);
    if (area.sharedFd !== undefined) await closeFd(area.sharedFd);
    await area.root.close();
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
    await this.#closeFile();
    const area = await this.#open();
    await native().removeAt(area.tempFd, p.tempName);
    this.#partial = undefined;
  }

  async #closeFile(): Promise<void> {
    const p = this.#partial;
    if (p?.fd !== undefined) {
      const fd = p.fd;
      p.fd = undefined;
      await closeFd(fd);
    }
  }
}

/** Whether a peer's path is one the sink would accept (validateRelativePath without the throw). */
function isValidRelativePath(path: string): boolean {
  try {
    validateRelativePath(path);
    return true;
  } catch {
    return false;
  }
}

/** Every path an op touches. */
function pathsOf(op: ObjectOp): string[] {
  if (op.put) return [op.put.path];
  if (op.delete) return [op.delete.path];
  if (op.rename) return [op.rename.from, op.rename.to];
  if (op.mkdir) return [op.mkdir.path];
  if (op.recipe) return [op.recipe.path];
  if (op.chunkDelta) return [op.chunkDelta.basePath];
  if (op.dictFile) return [op.dictFile.path];
  return [];
}

/** An op in a few words, for error messages. */
function describeOp(op: ObjectOp): string {
  if (op.put) return `put ${JSON.stringify(op.put.path)} at offset ${op.put.offset}`;
  if (op.delete) return `delete ${JSON.stringify(op.delete.path)}`;
  if (op.rename) return `rename ${JSON.stringify(op.rename.from)} -> ${JSON.stringify(op.rename.to)}`;
  if (op.mkdir) return `mkdir ${JSON.stringify(op.mkdir.path)}`;
  if (op.recipe) return `put recipe ${JSON.stringify(op.recipe.path)}`;
  if (op.chunkData) return 'put chunk data';
  if (op.chunkDelta) return `put chunk delta against ${JSON.stringify(op.chunkDelta.basePath)}`;
  if (op.dictionary) return `put dictionary ${op.dictionary.id}`;
  if (op.dictFile) return `put dict file ${JSON.stringify(op.dictFile.path)}`;
  return 'empty op';
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

/** True when the entry of dir is a regular file of this version. */
// Give a written temp file its mode and mtime, make it durable, close it.
async function finishContent(fd: number, version: FileVersion): Promise<void> {
  try {
    const seconds = utimesSeconds(version.mtimeUs);
    await fchmodFd(fd, version.mode & MODE_MASK);
    await futimesFd(fd, seconds, seconds);
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

async function isCompleteIn(dir: EntryDir, version: FileVersion): Promise<boolean> {
  if (dir.fd === undefined) return false;
  const st = await native().statAt(dir.fd, dir.name);
  return st !== undefined && isRegularFile(st) && sameVersion(versionOf(st), version);
}

// Create name in dirFd as a new file; whatever had that name (a stale temp
// file, or a link someone planted) is removed first, never opened.
async function createFresh(dirFd: number, name: string): Promise<number> {
  try {
    return await native().openBeneath(dirFd, name, TEMP_CREATE_FLAGS, TEMP_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    await native().removeAt(dirFd, name);
    return native().openBeneath(dirFd, name, TEMP_CREATE_FLAGS, TEMP_FILE_MODE);
  }
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

// Write all of data at position (a short write continues where it stopped).
async function writeFully(fd: number, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    done += await writeAt(fd, data, done, data.length - done, position + done);
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
