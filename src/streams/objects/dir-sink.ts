// The destination end of an objects stream: applies ObjectOps to an object
// store (store/object-store.ts; a directory by default, store/dir-store.ts).
// A file arrives as PutChunks into one upload (a temp file under
// <root>/.dwcp-tmp/ for a directory) and becomes visible only whole: mode,
// mtime, fsync, rename over the target; the store syncs its names with the
// next flush, before the checkpoint. A small file whole in one frame is
// written in the background instead and sealed without an fsync (one store
// call, one native job for a directory); the next flush (or an op that must
// see it) syncs every sealed file's content at once (syncfs for a
// directory) and only then publishes them at their paths, in op order. Its
// path is resolved when it is published, so a refusal (a symlink on the
// way) is thrown by that flush or op. At most one file is partial at a time;
// the checkpointed sink state names it and how far it is durable, so a
// restart resumes mid-file instead of from zero.
//
// Several sinks may share one root, one per shard of a sharded stream: each
// is given the filter of its shard (its manifest covers only those paths,
// and it refuses ops on any other) and its own temp area under .dwcp-tmp/,
// so one shard's recover never drops another shard's partial file.
//
// Every path is checked (object-paths.ts) before it reaches the store, and
// the store resolves it confined to its root (for a directory: by the
// kernel, never following a symlink, see dir-store.ts). An op is checked
// whole (paths, shard, versions, what a rename would do to its own source)
// before its first change.
//
// Stage dedup@1 (when given an index and a staging directory): chunks
// received as PutChunkData wait in the staging directory; a PutRecipe is
// assembled into an upload from its inline bytes, staged chunks and chunks
// of files already here (the chunk index), each checked against its hash,
// then committed like any file (fsync, rename) and its chunks recorded. A
// chunk that cannot be produced fails the op with a MissingChunksError
// (retryable: the session restarts and the source asks again).
// A file of at least DEDUP_MIN_FILE_BYTES that arrives as PutChunks in a
// session whose source asks chunk queries (a file the destination held
// nothing of) is chunked at its commit and recorded too, so its copies
// and edits dedup later.

import { manifestCodec, objectOpCodec } from '../../wire/messages.ts';
import type { ChunkHave, ChunkQuery, DeltaBase, FileVersion, ObjectOp, PartialFile, PutChunk, PutChunkDelta, PutRecipe } from '../../wire/messages.ts';
import { checkChunkDelta, deltaQueryRanges } from '../../wire/delta-messages.ts';
import { deltaBasesFor, rebuildDeltaChunk } from './chunks/delta-bases.ts';
import { DICT_MAX_FILE_BYTES } from './chunks/small-file-dictionary.ts';
import { InvalidDictionaryError, UnknownDictionaryError, type DictionaryStore } from '../../encoding/hde/dictionary-store.ts';
import { DedupMessageError, checkChunkData, checkPutRecipe, missingBitmap, queryHashes } from '../../wire/dedup-messages.ts';
import type { ChunkFiles } from './chunks/chunk-files.ts';
import { ChunkIndex } from './chunks/chunk-index.ts';
import { ChunkStage } from './chunks/chunk-stage.ts';
import { assembleRecipe } from './chunks/recipe-assembly.ts';
import { DEDUP_MIN_FILE_BYTES } from './chunks/recipe-plan.ts';
import { readChunks, type RangeRead } from '../../encoding/hde/file-chunks.ts';
import type { RecordedChunk } from './chunks/chunk-index.ts';
import { SinkError } from '../stream.ts';
import type { Sink, StreamKind } from '../stream.ts';
import { MTIME_TOLERANCE_US, identicalVersion } from './file-version.ts';
import { validateRelativePath } from './object-paths.ts';
import type { ObjectsLogger } from './objects-logger.ts';
import type { PathFilter } from './path-filter.ts';
import { DirStore } from './store/dir-store.ts';
import type { ObjectStore, ObjectUpload, SealedObject } from './store/object-store.ts';
import { publishSealedObjects, putWholeObject } from './store/whole-object.ts';

/** Options of a DirSink. */
export interface DirSinkOptions {
  streamId: string;
  /** Directory that receives the tree; must exist. Give either root or store. */
  root?: string;
  /** The store that receives the tree instead of a directory at root. */
  store?: ObjectStore;
  /** Where refusals and recoveries are reported. Default: silent. */
  logger?: ObjectsLogger;
  /** Only these paths are this sink's (one shard of a shared root): the manifest lists only them, ops on others are refused. Default all. */
  include?: PathFilter;
  /** With root: name of this sink's own temp area, <root>/.dwcp-tmp/<tempName>/, when sinks share a root. Default .dwcp-tmp itself. */
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
  /** The store's files as the index reads held chunks from them. */
  files: ChunkFiles & { close(): Promise<void> };
  index: ChunkIndex;
  stage: ChunkStage;
}

/** The file being received: its identity, how far it is written, its upload. */
interface PartialState {
  path: string;
  version: FileVersion;
  /** Bytes written to the upload so far (all of them applied, not all durable). */
  offset: number;
  upload: ObjectUpload;
}

/**
 * Whole files (one frame each) being written at once, at most. A small file
 * once cost two fsyncs' worth of disk latency and ten thread-pool round
 * trips; one at a time, thousands of them left both agents idle most of a
 * run (measured: 2,952 files of 1-64 KiB, ~10 ms a file). Now it is one job
 * to write and one to publish, and the disk is synced per flush. Memory: at
 * most this many frames' data, each at most one frame.
 */
export const MAX_BACKGROUND_FILES = 16;

/**
 * Whole files sealed and not yet made durable, at most: the next one waits
 * for a sync of them all (one syncfs, then their renames). Each costs a
 * short record (its upload, chunk names), not its data.
 */
export const MAX_UNSYNCED_FILES = 4096;

/** A whole file written and sealed, waiting for the sync that lets it be published at its path. */
interface UnsyncedFile {
  path: string;
  version: FileVersion;
  /** Undefined until its bytes are written and sealed; null when the store had nothing to write. */
  sealed: SealedObject | null | undefined;
  /** Its chunks for the index (null: not indexed), known once written. */
  chunks: RecordedChunk[] | null;
}

/** A Sink writing an objects stream into an object store (a directory tree by default). */
export class DirSink implements Sink {
  readonly streamId: string;
  readonly kind: StreamKind = 'objects';
  readonly #store: ObjectStore;
  readonly #logger?: ObjectsLogger;
  readonly #include?: PathFilter;
  #partial?: PartialState;
  /** Serializes apply, flush, recover and close: each sees the others whole. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Whole files being written in the background, by path; each resolves once its rename is done. */
  #background = new Map<string, Promise<void>>();
  /** The first failure of background work, thrown by the next apply or flush. */
  #backgroundError: unknown = undefined;
  /**
   * Whole files sealed and not yet synced, in op order (a Map keeps
   * insertion order), by unsyncedKey: a flush (or an op that must see them)
   * syncs their content once and publishes them all (measured: an fsync per
   * small file was ~40 % of a many-small-files run and ~3 CPU s per 5,000
   * files). Keyed so that a file sent twice is found without a scan.
   */
  #unsynced = new Map<string, UnsyncedFile>();
  readonly #chunkDirs?: { indexDir: string; stageDir: string };
  readonly #dictionaries?: DictionaryStore;
  /** The chunk index and staging directory, opened on first use. */
  #chunkStore?: Promise<ChunkStore>;
  /** This session's source asked a chunk query (the link negotiated dedup@1): files arriving whole are indexed too. */
  #dedupSession = false;

  constructor(options: DirSinkOptions) {
    if (!options.root === !options.store) throw new Error('dir sink: exactly one of root and store must be set');
    if (options.store && options.tempName !== undefined) throw new Error('dir sink: tempName belongs to a root; give it to the store instead');
    this.streamId = options.streamId;
    this.#store = options.store ?? sinkDirStore(options.root!, options.tempName);
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
      await this.#abandonBackground();
      await this.#partial?.upload.close();
      await this.#store.close();
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
    // Background files finish first; they are rolled back with the rest.
    await this.#abandonBackground();
    // Start from fresh handles: the root or temp area may have been replaced since.
    await this.#partial?.upload.close();
    await this.#store.close();
    this.#partial = undefined;
    this.#dedupSession = false;

    // Keep the checkpointed partial if its upload still holds that much.
    const wanted = decodeSinkState(sinkState);
    if (wanted) {
      validateRelativePath(wanted.path);
      this.#checkIncluded(wanted.path, `checkpoint at seq ${seq}`);
      const upload = await this.#store.resumeUpload(wanted.path, wanted.version, wanted.offset);
      if (upload) {
        this.#partial = { path: wanted.path, version: wanted.version, offset: wanted.offset, upload };
      } else {
        this.#logger?.warn({ streamId: this.streamId, seq, path: wanted.path }, 'checkpointed partial file is gone; it will be resent');
      }
    }

    // Staged chunks serve recipes after the checkpoint only: the source asks again and resends them.
    const store = await this.#chunks();
    await store?.stage.clear();

    // Any other upload is from after the checkpoint: drop it.
    await this.#store.clearUploads(this.#partial?.upload);

    // The tree itself (this sink's part of it) is the truth about what is here.
    const scan = await this.#store.list(this.#include);
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

    // The target is resolved when a file starts and when a chunk does not
    // continue the partial; middle chunks only write to the open upload.
    if (offset === 0) {
      // A first chunk always starts over: whatever was partial is abandoned.
      await this.#dropPartial();
      const upload = await this.#store.beginUpload(put.path, version);
      if (upload === null) return;
      this.#partial = { path: put.path, version, offset: 0, upload };
    } else {
      // A later chunk continues the partial exactly, or repeats a committed file.
      const p = this.#partial;
      const continues = p !== undefined && p.path === put.path && identicalVersion(p.version, version) && p.offset === offset;
      if (!continues) {
        const held = await this.#store.holds(put.path, version);
        if (p === undefined && held) return;
        const have = p ? `partial ${JSON.stringify(p.path)} at ${p.offset}` : 'no partial file';
        throw new SinkError(`chunk of ${JSON.stringify(put.path)} at offset ${offset} does not continue the partial (${have})`);
      }
    }

    const partial = this.#partial!;
    await partial.upload.write(data, offset);
    partial.offset = offset + data.length;
    if (partial.offset === version.size) await this.#commit(partial);
  }

  // Stage delta@1: bases for the missing chunks a query asked them for, from the file at its path (none outside this shard).
  async #deltaBases(store: ChunkStore, query: ChunkQuery, missing: boolean[]): Promise<DeltaBase[]> {
    const ranges = deltaQueryRanges(query);
    if (!ranges || !isValidRelativePath(query.path) || (this.#include !== undefined && !this.#include(query.path))) return [];
    const wanted = missing.flatMap((m, index) => (m ? [{ index, offset: ranges.offsets[index], length: ranges.lengths[index] }] : []));
    return wanted.length === 0 ? [] : deltaBasesFor(store.files, query.path, wanted);
  }

  // Stage delta@1: a chunk rebuilt from a base here and staged like chunk data; a base changed since is left to the recipe's retry.
  async #applyChunkDelta(op: PutChunkDelta, data: Uint8Array): Promise<void> {
    checkChunkDelta(op, data.length);
    const store = await this.#chunks();
    if (!store) throw new SinkError('put chunk delta refused: this sink keeps no chunk index (stage dedup@1 not set up)');
    const chunk = await rebuildDeltaChunk(store.files, op, data);
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

    // As any first chunk: what was partial is abandoned; a repeated recipe finds its work done.
    await this.#dropPartial();
    const staged = recipe.chunks.filter((c) => !c.inline).map((c) => c.hash);
    const upload = await this.#store.beginUpload(recipe.path, version);
    if (upload === null) return await store.stage.remove(staged);

    // Assemble; nothing is committed unless every chunk was produced and checked.
    let assembly;
    try {
      const inline = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      const sources = { staged: (h: Buffer) => store.stage.get(h), held: (h: Buffer) => store.index.locate(h) };
      assembly = await assembleRecipe(recipe, inline, sources, (bytes, position) => upload.write(bytes, position));
    } catch (err) {
      await upload.abort().catch(() => undefined);
      throw err;
    }
    if (assembly.missing.length > 0) {
      await upload.abort().catch(() => undefined);
      const first = assembly.missing[0].toString('hex');
      throw new MissingChunksError(`put recipe ${JSON.stringify(recipe.path)}: ${assembly.missing.length} chunks neither sent nor held here (first ${first}); the source asks again`);
    }

    // Commit like a whole file, then remember where its chunks are.
    await upload.commit();
    await store.index.record(recipe.path, { size: version.size, mtimeUs: version.mtimeUs }, assembly.chunks);
    await store.stage.remove(staged);
  }
  // The chunk index and staging directory, opened once (again after a failed open); null when not set up.
  async #chunks(): Promise<ChunkStore | null> {
    const dirs = this.#chunkDirs;
    if (!dirs) return null;
    this.#chunkStore ??= (async () => {
      const files = await this.#store.openChunkFiles();
      try {
        const stage = await ChunkStage.open(dirs.stageDir);
        const index = await ChunkIndex.open(dirs.indexDir, files);
        return { files, index, stage };
      } catch (err) {
        await files.close();
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
    await store.files.close();
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

  // Record the chunks of published whole files (those indexed), in one journal write.
  async #recordChunksOf(files: readonly UnsyncedFile[]): Promise<void> {
    const indexed = files.filter((f) => f.chunks !== null);
    if (indexed.length === 0) return;
    const store = await this.#chunks();
    await store?.index.recordMany(indexed.map((f) => ({ path: f.path, version: { size: f.version.size, mtimeUs: f.version.mtimeUs }, chunks: f.chunks! })));
  }

  // A path renamed away or deleted: its chunks are no longer there (the index also checks versions on use).
  async #forgetChunks(path: string): Promise<void> {
    const store = this.#chunkStore ? await this.#chunks() : null;
    await store?.index.forget(path);
  }

  // Make the completed upload the target: durable content and metadata first.
  async #commit(partial: PartialState): Promise<void> {
    const { upload } = partial;
    const chunks = await this.#chunksOf(partial.version, (into, at, length, position) => upload.read(into, at, length, position));
    await upload.commit();
    this.#partial = undefined;
    await this.#recordChunks(partial.path, partial.version, chunks);
  }

  // A whole file in one frame: checked and started here, in order; written
  // and sealed in the background (one store call, putWholeObject), then
  // synced and published with the others of its checkpoint
  // (#settleBackground waits for the writes and does that).
  async #startWholeFile(put: PutChunk, data: Uint8Array): Promise<void> {
    if (this.#backgroundError !== undefined) await this.#settleBackground();
    const earlier = this.#background.get(put.path);
    if (earlier) await earlier; // the same path again: the older version is written first
    while (this.#background.size >= MAX_BACKGROUND_FILES) await Promise.race(this.#background.values());
    if (this.#unsynced.size >= MAX_UNSYNCED_FILES) await this.#settleBackground();
    await this.#dropPartial(); // as any first chunk: what was partial is abandoned
    // The same version already waits for its sync (sent twice): one copy is enough.
    if (this.#isUnsynced(put.path, put.version)) return;
    // Its place in op order is taken now; it is published after the sync.
    const pending: UnsyncedFile = { path: put.path, version: put.version, sealed: undefined, chunks: null };
    this.#unsynced.set(unsyncedKey(put.path, put.version), pending);
    const work = (async () => {
      pending.sealed = await putWholeObject(this.#store, put.path, put.version, data);
      if (pending.sealed === null) return;
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      pending.chunks = await this.#chunksOf(put.version, async (into, at, length, position) => (position >= bytes.length ? 0 : bytes.copy(into, at, position, Math.min(position + length, bytes.length))));
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

  // True when this version of path (mtime within MTIME_TOLERANCE_US, as sameVersion) waits for its sync.
  #isUnsynced(path: string, version: FileVersion): boolean {
    for (let delta = -MTIME_TOLERANCE_US; delta <= MTIME_TOLERANCE_US; delta++) {
      if (this.#unsynced.has(unsyncedKey(path, { ...version, mtimeUs: version.mtimeUs + delta }))) return true;
    }
    return false;
  }

  // Wait for every background file and publish the sealed ones; throw the
  // first failure among them (once). What follows sees them all.
  async #settleBackground(): Promise<void> {
    while (this.#background.size > 0) await Promise.all(this.#background.values());
    const err = this.#backgroundError;
    if (err !== undefined) {
      this.#backgroundError = undefined;
      this.#unsynced = new Map(); // left as unfinished uploads: recover clears them and the source resends
      throw err;
    }
    await this.#publishSealed();
  }

  // Wait for background writes and drop them unpublished (recover, close):
  // they stay as unfinished uploads, which recover clears; the source resends them.
  async #abandonBackground(): Promise<void> {
    while (this.#background.size > 0) await Promise.all(this.#background.values());
    this.#backgroundError = undefined;
    this.#unsynced = new Map();
  }

  // One sync of every sealed file's content, then each published at its path
  // in op order: no name ever points at content that is not on disk. The
  // store publishes them in a few calls (a directory: one native job per
  // PUBLISH_BATCH; one job and two awaits a file cost ~0.27 ms of flush
  // wall time a file, measured with 5,966 small files on a shared machine).
  // A refusal stops it there, as when they went one by one: the files after
  // it stay unfinished uploads, which recover clears; it is thrown once the
  // chunks of those published are recorded.
  async #publishSealed(): Promise<void> {
    if (this.#unsynced.size === 0) return;
    const files = [...this.#unsynced.values()];
    this.#unsynced = new Map();
    for (const file of files) {
      if (file.sealed === undefined) throw new Error(`publish ${JSON.stringify(file.path)}: its upload was never sealed`);
    }
    const sealed = files.filter((f) => f.sealed !== null);
    await this.#store.syncSealed();
    const outcome = await publishSealedObjects(this.#store, sealed.map((f) => f.sealed!));
    await this.#recordChunksOf(sealed.slice(0, outcome.published));
    if (outcome.error !== undefined) throw outcome.error;
  }

  async #applyDelete(path: string): Promise<void> {
    await this.#store.remove(path);
    await this.#forgetChunks(path);
  }

  async #applyRename(from: string, to: string, version: FileVersion): Promise<void> {
    // Every check before any change: a refused rename leaves the tree as it was.
    const what = `rename ${JSON.stringify(from)} -> ${JSON.stringify(to)}`;
    if (from === to) throw new SinkError(`${what} refused: source and target are the same path`);
    if (to.startsWith(`${from}/`)) throw new SinkError(`${what} refused: target is inside the source`);
    if (from.startsWith(`${to}/`)) throw new SinkError(`${what} refused: target is a parent of the source`);
    await this.#store.rename(from, to, version);
    await this.#forgetChunks(from);
  }

  async #applyMakeDir(path: string, mode: number): Promise<void> {
    await this.#store.makeDir(path, mode);
  }

  async #flush(): Promise<Uint8Array> {
    await this.#settleBackground();
    await this.#partial?.upload.sync();
    await this.#store.sync();
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
    await p.upload.abort();
    this.#partial = undefined;
  }
}

/** The directory store of a sink at root (its own temp area when sinks share the root). */
function sinkDirStore(root: string, tempName: string | undefined): DirStore {
  try {
    return new DirStore({ root, tempName });
  } catch (err) {
    throw new Error(`dir sink: ${(err as Error).message.replace(/^dir store: /, '')}`, { cause: err });
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

/** The key of a whole file waiting for its sync: path and exact version. */
function unsyncedKey(path: string, version: FileVersion): string {
  return `${path}\0${version.size}\0${version.mtimeUs}\0${version.mode}`;
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

