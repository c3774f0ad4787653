// The sending end of an objects stream: an object store (store/
// object-store.ts; a directory tree by default). Each pass lists the store, diffs it against a view of the destination (first the manifest
// the destination sent at session start, then that view as updated by every
// op this session yielded) and yields the ops that close the gap, in an
// order the sink can apply one by one:
//   1. MakeDir for missing directories, parents first;
//   2. Rename where a file vanished here and a file of the same version
//      (size, mode, mtime to the microsecond) appeared elsewhere: a move
//      costs one record, not a copy;
//   3. PutChunks for new or changed files, read lazily as the link pulls
//      (when the link negotiated stage dedup@1, a file of at least
//      DEDUP_MIN_FILE_BYTES is chunked and the destination asked which
//      chunks it lacks: only those travel, as PutChunkData, then the file's
//      PutRecipe; a file the destination holds nothing of, and a refused or
//      failed query, go as PutChunks);
//   4. Delete for what is gone here: files, then directories deepest first.
// Then it waits for the watch or the periodic scan, and diffs again.

import { readChunks } from '../../encoding/hde/file-chunks.ts';
import { CHUNK_HASH_BYTES, MAX_QUERY_CHUNKS, checkChunkHave } from '../../wire/dedup-messages.ts';
import { manifestCodec, objectOpCodec } from '../../wire/messages.ts';
import type { ChunkHave, ChunkQuery, FileVersion, Manifest, ManifestEntry, ObjectOp, PartialFile } from '../../wire/messages.ts';
import { DELTA_MIN_FILE_BYTES, chunkOpFor } from './chunks/delta-plan.ts';
import { changedFileGoesWhole } from './chunks/whole-or-delta.ts';
import { StreamDictionary, samplePaths } from './chunks/small-file-dictionary.ts';
import type { DictionaryStore } from '../../encoding/hde/dictionary-store.ts';
import { DEDUP_MIN_FILE_BYTES, chunkQueryFor, distinctHashes, planRecipe, type ChunkedFile, type RecipePlan } from './chunks/recipe-plan.ts';
import type { LinkEstimate, ResumePoint, Source, SourceRecord, StreamKind } from '../stream.ts';
import { ChangeTrigger } from './change-trigger.ts';
import { MTIME_TOLERANCE_US, identicalVersion, sameVersion } from './file-version.ts';
import type { ObjectsLogger } from './objects-logger.ts';
import type { PathFilter } from './path-filter.ts';
import { DirStore } from './store/dir-store.ts';
import type { ObjectReader, ObjectStore } from './store/object-store.ts';
import { readWholeObject } from './store/whole-object.ts';
import { comparePaths } from './tree-scan.ts';
import { allocFramePayload } from '../../wire/frame-headroom.ts';

/** Default PutChunk payload size in bytes. */
export const DEFAULT_CHUNK_BYTES = 256 * 1024;

/** Largest PutChunk payload in bytes (well under the 64 MiB frame limit). */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;

/** Default time between full scans in ms, whatever the watch reports. */
export const DEFAULT_SCAN_INTERVAL_MS = 30_000;

/** Restarts of a file that keeps changing while sent, per pass, before it waits for the next pass. */
export const MAX_CHANGED_RESTARTS = 3;

/** Passes a `once` sync makes at most before it ends (a tree that never settles). */
export const MAX_ONCE_PASSES = 10;

/**
 * Small files (one chunk each) read ahead of the one being sent. Reading a
 * file is a thread-pool round trip (one native job for a directory, five
 * through a store's ranged reader); one file at a time, a tree of thousands
 * of small files kept the sender waiting on its own reads. Memory: this
 * many chunks at most.
 */
export const READ_AHEAD_FILES = 16;

/**
 * Files that go by recipe (stage dedup@1) chunked and asked about ahead of
 * their turn, at most: each holds a reader and one chunk query open (within
 * MAX_OPEN_CHUNK_QUERIES), and each query costs a round trip, so on a
 * 100 ms path 1,738 changed files took ~11 s of round trips 16 at a time.
 * They are chunked one after another in queue order (the next file's turn
 * never waits on chunking a later one); only the round trips overlap.
 * Memory: this many chunk lists and answers (delta signatures: ~600 bytes a
 * base, at most MAX_DELTA_BASES a file).
 */
export const PLAN_AHEAD_FILES = 48;

/** Options of a DirSource. */
export interface DirSourceOptions {
  streamId: string;
  /** Directory to replicate; must exist. Give either root or store. */
  root?: string;
  /** The store to replicate instead of a directory at root. */
  store?: ObjectStore;
  /** Bytes per PutChunk. Default DEFAULT_CHUNK_BYTES (256 KiB). */
  chunkBytes?: number;
  /** Longest time between full scans, in ms. Default 30000. */
  scanIntervalMs?: number;
  /** Watch the tree (fs.watch, recursive; where the store can watch) to notice changes sooner. Default true. */
  watch?: boolean;
  /** End records() once the tree is in sync instead of waiting for changes. Default false. */
  once?: boolean;
  /**
   * Only these paths are sent (one shard of a tree shared by sub-streams);
   * destination entries it refuses are neither compared nor deleted. Default all.
   */
  include?: PathFilter;
  /** Called when a file's last chunk is durable at the destination ("done"). */
  onReplicated?: (path: string, version: FileVersion) => void;
  /** Where skipped files and resumes are reported. Default: silent. */
  logger?: ObjectsLogger;
  /** Stage dict@1: the source region's dictionaries (the stream's is trained and stored there once). Default none: no dictionary. */
  dictionaries?: DictionaryStore;
}

/** Where a DirSource stands in its current session. */
export interface SyncProgress {
  /** Files (puts) queued this session, and how many are durable at the destination. */
  filesTotal: number;
  filesDone: number;
  /** Bytes of file content queued this session, and how many are durable. */
  bytesTotal: number;
  bytesDone: number;
  /** The last diff found nothing and every yielded record is durable. */
  inSync: boolean;
}

/** Counters of one session (one records() call). */
class Session {
  filesTotal = 0;
  filesDone = 0;
  bytesTotal = 0;
  bytesDone = 0;
  /** Records yielded and not yet durable. */
  pending = 0;
  lastDiffEmpty = false;
  /** Asks the destination which chunks it lacks (the link negotiated dedup@1), else undefined. */
  queryChunks?: (query: ChunkQuery) => Promise<ChunkHave>;
  /** A chunk query was refused this session (logged once). */
  queryRefused = false;
  /** Stage delta@1: queries ask for delta bases, and a changed file goes by recipe unless changedFileGoesWhole. */
  deltaBases = false;
  /** The link's round trip and rate, when the sender measures them (small changed files go whole when that is quicker). */
  link?: () => LinkEstimate | null;
  /** Stage dict@1 negotiated and a dictionary store given: small files may go as PutDictFile. */
  useDictionary = false;
  /** Dictionary ids the destination holds (its manifest, then what this session shipped). */
  heldDictionaries = new Set<string>();
}

/** What one pass did, deciding whether to diff again at once. */
interface PassOutcome {
  /** Ops fully yielded, or files that vanished mid-pass: look again right away. */
  again: boolean;
  /** Any record yielded at all. */
  yielded: boolean;
  /** Files left behind (unreadable, or changing faster than they can be sent). */
  unsynced: number;
}

type SendResult = 'sent' | 'changed' | 'gone' | 'unreadable' | 'aborted';

/** A file #sendRecipe leaves to PutChunks (too small, too many chunks, the query refused or failed). */
const WHOLE = 'whole';

/** A file chunked, asked about and planned (stage dedup@1), ready to send by recipe; its reader stays open until sent. */
interface PreparedRecipe {
  /** Pinned to the version chunked: the send checks the file is still that. */
  reader: ObjectReader;
  version: FileVersion;
  plan: RecipePlan;
}

/** A file chunked (stage dedup@1) and still open, about to be asked about. */
interface ChunkedReader {
  reader: ObjectReader;
  file: ChunkedFile;
}

/** The destination as this session believes it is, by path. */
type DestView = Map<string, ManifestEntry>;

const EMPTY = new Uint8Array(0);

/** A Source replicating a directory tree as an objects stream. */
export class DirSource implements Source {
  readonly streamId: string;
  readonly kind: StreamKind = 'objects';
  readonly #store: ObjectStore;
  readonly #chunkBytes: number;
  readonly #scanIntervalMs: number;
  readonly #watch: boolean;
  readonly #once: boolean;
  readonly #include?: PathFilter;
  readonly #onReplicated?: (path: string, version: FileVersion) => void;
  readonly #logger?: ObjectsLogger;
  readonly #closed = new AbortController();
  #session = new Session();
  #waiters = new Set<() => void>();
  /** Chunk query ids, unique across this source's sessions (answers are matched by them). */
  #queryIds = 0;
  readonly #dictionaries?: DictionaryStore;
  /** The stream's dictionary once opened (stage dict@1); null when there is none to train. */
  #dictionary?: StreamDictionary | null;

  constructor(options: DirSourceOptions) {
    if (!options.root === !options.store) throw new Error('dir source: exactly one of root and store must be set');
    const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
      throw new Error(`dir source: chunkBytes must be an integer in 1..${MAX_CHUNK_BYTES}, got ${chunkBytes}`);
    }
    const scanIntervalMs = options.scanIntervalMs ?? DEFAULT_SCAN_INTERVAL_MS;
    if (!Number.isFinite(scanIntervalMs) || scanIntervalMs <= 0) {
      throw new Error(`dir source: scanIntervalMs must be a positive number, got ${scanIntervalMs}`);
    }
    this.streamId = options.streamId;
    this.#store = options.store ?? new DirStore({ root: options.root! });
    this.#chunkBytes = chunkBytes;
    this.#scanIntervalMs = scanIntervalMs;
    this.#watch = options.watch ?? true;
    this.#once = options.once ?? false;
    this.#include = options.include;
    this.#onReplicated = options.onReplicated;
    this.#logger = options.logger;
    this.#dictionaries = options.dictionaries;
  }

  /**
   * Ops that bring the destination (resume.state: its Manifest) to this
   * tree, then its changes as they happen. Ends when the signal aborts (seen
   * at the next pull; return() the iterator to release its open file at
   * once), or by itself in `once` mode when the tree is in sync.
   */
  records(resume: ResumePoint, signal: AbortSignal): AsyncIterable<SourceRecord> {
    return this.#run(resume, AbortSignal.any([signal, this.#closed.signal]));
  }

  /** Stop every session's watch and waits; records() iterations end. */
  async close(): Promise<void> {
    this.#closed.abort(new Error('dir source closed'));
  }

  /** Progress of the current session. */
  progress(): SyncProgress {
    const s = this.#session;
    return {
      filesTotal: s.filesTotal,
      filesDone: s.filesDone,
      bytesTotal: s.bytesTotal,
      bytesDone: s.bytesDone,
      inSync: s.lastDiffEmpty && s.pending === 0,
    };
  }

  /** Resolve once progress().inSync is true; reject when the signal aborts. */
  whenInSync(signal?: AbortSignal): Promise<void> {
    if (this.progress().inSync) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!this.progress().inSync) return;
        cleanup();
        resolve();
      };
      const onAbort = () => {
        cleanup();
        reject(signal!.reason);
      };
      const cleanup = () => {
        this.#waiters.delete(check);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) return reject(signal.reason);
      this.#waiters.add(check);
      signal?.addEventListener('abort', onAbort);
    });
  }

  #notify(): void {
    for (const check of [...this.#waiters]) check();
  }

  async *#run(resume: ResumePoint, signal: AbortSignal): AsyncGenerator<SourceRecord> {
    const session = new Session();
    session.queryChunks = resume.queryChunks;
    session.link = resume.link;
    session.deltaBases = resume.queryChunks !== undefined && resume.deltaBases === true;
    session.useDictionary = resume.dictionary === true && this.#dictionaries !== undefined;
    this.#session = session;
    const manifest = decodeResume(resume.state);
    session.heldDictionaries = new Set(manifest.dictionaries ?? []);
    // Another shard's paths in the destination's manifest are none of this session's business.
    const include = this.#include ?? (() => true);
    const view: DestView = new Map(manifest.entries.filter((e) => include(e.path)).map((e) => [e.path, e]));
    let partial = manifest.partial && include(manifest.partial.path) ? manifest.partial : undefined;

    // Watch before the first scan, so a change during the scan is not missed.
    const trigger = new ChangeTrigger({ store: this.#store, watch: this.#watch && !this.#once, intervalMs: this.#scanIntervalMs, logger: this.#logger });
    // Release the watch on abort even while suspended at a yield nobody resumes.
    const release = () => trigger.close();
    signal.addEventListener('abort', release, { once: true });
    try {
      for (let pass = 1; !signal.aborted; pass++) {
        trigger.clear();
        const scan = await this.#store.list(this.#include);
        const outcome: PassOutcome = { again: false, yielded: false, unsynced: 0 };
        yield* this.#syncPass(scan.entries, view, partial, session, outcome, signal);
        partial = undefined;
        if (signal.aborted) break;
        session.lastDiffEmpty = !outcome.yielded && outcome.unsynced === 0;
        this.#notify();

        // After a pass that did something, diff again at once: it confirms the sync.
        if (this.#once) {
          if (!outcome.again) break;
          if (pass >= MAX_ONCE_PASSES) {
            this.#logger?.warn({ streamId: this.streamId, passes: pass }, 'tree did not settle; one-shot sync ends unsynced');
            break;
          }
        } else if (!outcome.again) {
          await trigger.wait(signal);
        }
      }
    } finally {
      signal.removeEventListener('abort', release);
      trigger.close();
    }
  }

  async *#syncPass(
    entries: ManifestEntry[],
    view: DestView,
    partial: PartialFile | undefined,
    session: Session,
    outcome: PassOutcome,
    signal: AbortSignal,
  ): AsyncGenerator<SourceRecord> {
    const source = new Map(entries.map((e) => [e.path, e]));
    const emit = (op: ObjectOp, data: Uint8Array = EMPTY, onDone?: () => void): SourceRecord => {
      outcome.yielded = true;
      return this.#record(session, objectOpCodec.encode(op), data, onDone);
    };

    // 1. Directories missing at the destination (or a file in their place), parents first.
    for (const e of entries) {
      if (!e.directory) continue;
      const have = view.get(e.path);
      if (have?.directory && have.version.mode === e.version.mode) continue;
      if (signal.aborted) return;
      view.set(e.path, e);
      outcome.again = true;
      yield emit({ mkdir: { path: e.path, mode: e.version.mode, mtimeUs: e.version.mtimeUs } });
    }

    // 2. Moves: a destination file gone here whose exact version appeared at a new path.
    const vanished = new Map<string, string[]>();
    for (const [path, e] of view) {
      if (e.directory || source.has(path)) continue;
      const key = versionKey(e.version);
      const paths = vanished.get(key);
      if (paths) paths.push(path);
      else vanished.set(key, [path]);
    }
    for (const e of entries) {
      if (e.directory || view.has(e.path)) continue;
      const from = takeVanished(vanished, e.version);
      if (from === undefined) continue;
      if (signal.aborted) return;
      view.delete(from);
      view.set(e.path, e);
      outcome.again = true;
      yield emit({ rename: { from, to: e.path, version: e.version } });
    }

    // 3. New and changed files, a file that changes while sent goes to the back of the queue.
    const queue = entries
      .filter((e) => !e.directory && !isSameFile(view.get(e.path), e.version))
      .map((e) => ({ path: e.path, restarts: 0 }));
    // The destination's partial file goes first: the sink abandons its partial at any
    // other file's first chunk, and the resumed chunk would then be refused.
    const resumeAt = partial === undefined ? -1 : queue.findIndex((job) => job.path === partial.path);
    if (resumeAt > 0) queue.unshift(...queue.splice(resumeAt, 1));
    // Small files (by the scan) are read ahead, in queue order, a few at a time.
    const scanned = new Map(entries.map((e) => [e.path, e.version.size]));
    // Stage dict@1: the stream's dictionary, trained from this tree's small files the first time.
    if (session.useDictionary && this.#dictionary === undefined && queue.some((job) => (scanned.get(job.path) ?? 0) <= this.#chunkBytes)) {
      this.#dictionary = await this.#openDictionary(entries);
    }
    const readAhead = new Map<number, Promise<WholeFile>>();
    // Stage delta@1: a changed file the destination holds an older version of goes by recipe,
    // with bases, unless the link carries it whole in less than the query's round trip.
    const link = session.deltaBases ? (session.link?.() ?? null) : null;
    const byDelta = (path: string): boolean => session.deltaBases && view.get(path)?.directory === false && !changedFileGoesWhole(scanned.get(path) ?? 0, link);
    const isSmall = (job: { path: string; restarts: number }): boolean =>
      job.restarts === 0 && partial?.path !== job.path && (scanned.get(job.path) ?? Infinity) <= this.#chunkBytes && !byDelta(job.path);
    // Files that go by recipe are chunked and asked about ahead, so their
    // queries' round trips overlap (one at a time, each cost a round trip);
    // chunked in queue order, one file after another.
    const planAhead = new Map<number, Promise<PreparedRecipe | SendResult | typeof WHOLE>>();
    const byRecipe = (path: string): boolean => (scanned.get(path) ?? 0) >= DEDUP_MIN_FILE_BYTES || byDelta(path);
    const plansAhead = (job: { path: string; restarts: number }): boolean =>
      session.queryChunks !== undefined && job.restarts === 0 && partial?.path !== job.path && byRecipe(job.path);
    let chunking: Promise<unknown> = Promise.resolve();
    try {
      for (let i = 0; i < queue.length; i++) {
        for (let j = i; j < queue.length && j < i + Math.max(READ_AHEAD_FILES, PLAN_AHEAD_FILES); j++) {
          if (j < i + READ_AHEAD_FILES && !readAhead.has(j) && isSmall(queue[j])) readAhead.set(j, this.#readWhole(queue[j].path));
          if (j < i + PLAN_AHEAD_FILES && !planAhead.has(j) && plansAhead(queue[j])) {
            const path = queue[j].path;
            const chunked = chunking.then(() => this.#chunkFile(path, session, signal));
            chunking = chunked.catch(() => undefined);
            const planned = chunked.then((c) => (typeof c === 'string' ? c : this.#planChunked(c, session, signal)));
            planned.catch(() => undefined); // awaited in its turn; not an unhandled rejection meanwhile
            planAhead.set(j, planned);
          }
        }
        const job = queue[i];
        const prefetched = readAhead.get(i);
        readAhead.delete(i);
        const planned = planAhead.get(i);
        planAhead.delete(i);
        const resumeFrom = partial?.path === job.path && job.restarts === 0 ? partial : undefined;
        let result: SendResult | typeof WHOLE = WHOLE;
        if (prefetched) result = yield* this.#sendWhole(job.path, await prefetched, view, session, outcome, signal);
        else {
          // A destination's partial file resumes as PutChunks; other large files go by recipe when the link has dedup.
          if (session.queryChunks && !resumeFrom && byRecipe(job.path)) result = yield* this.#sendRecipe(job.path, view, session, outcome, signal, planned);
          if (result === WHOLE) result = yield* this.#sendFile(job.path, resumeFrom, view, session, outcome, signal);
        }
        if (result === 'aborted') return;
        if (result === 'sent' || result === 'gone') outcome.again = true;
        if (result === 'unreadable') outcome.unsynced++;
        if (result === 'changed') {
          if (job.restarts < MAX_CHANGED_RESTARTS) {
            queue.push({ path: job.path, restarts: job.restarts + 1 });
          } else {
            this.#logger?.warn({ streamId: this.streamId, path: job.path }, 'file keeps changing while sent; retrying next pass');
            outcome.unsynced++;
          }
        }
      }
    } finally {
      // Files planned ahead and never sent (the pass ended early): let go of them.
      for (const planned of planAhead.values()) void planned.then((r) => (typeof r === 'string' ? undefined : r.reader.close()), () => undefined);
    }

    // 4. What is gone here: files first, then directories deepest first. Entries
    // below a deleted directory go with it (the sink deletes recursively).
    const missing = [...view.keys()].filter((p) => !source.has(p)).sort(comparePaths);
    const missingDirs = new Set(missing.filter((p) => view.get(p)!.directory));
    const top = missing.filter((p) => !hasAncestorIn(p, missingDirs));
    const ordered = [...top.filter((p) => !view.get(p)!.directory), ...top.filter((p) => view.get(p)!.directory).reverse()];
    for (const path of ordered) {
      if (signal.aborted) return;
      removeSubtree(view, path);
      outcome.again = true;
      yield emit({ delete: { path } });
    }
  }

  // Read a small file whole (read ahead of its turn): its bytes and the version they are.
  async #readWhole(path: string): Promise<WholeFile> {
    try {
      // One store call (one native job for a directory); grown since the scan: sent the usual way.
      const read = await readWholeObject(this.#store, path, this.#chunkBytes);
      if (read === null) return { kind: 'gone' };
      if (read === 'changed') return { kind: 'changed' };
      return { kind: 'data', version: read.version, data: read.data };
    } catch (err) {
      return { kind: 'unreadable', reason: (err as Error).message };
    }
  }

  // Yield a small file read ahead as its one PutChunk (what #sendFile does for a one-chunk file).
  async *#sendWhole(path: string, file: WholeFile, view: DestView, session: Session, outcome: PassOutcome, signal: AbortSignal): AsyncGenerator<SourceRecord, SendResult> {
    if (file.kind === 'gone' || file.kind === 'changed') return file.kind;
    if (file.kind === 'unreadable') {
      if (file.reason !== undefined) this.#logger?.warn({ streamId: this.streamId, path, err: file.reason }, 'cannot read file; skipped');
      return 'unreadable';
    }
    if (signal.aborted) return 'aborted';
    const { version, data } = file;
    session.filesTotal++;
    session.bytesTotal += version.size;
    removeSubtree(view, path);
    view.set(path, { path, version, directory: false });
    outcome.yielded = true;
    // Stage dict@1: with the stream's dictionary when it pays, shipped first if the destination lacks it.
    const dictionary = session.useDictionary ? this.#dictionary : null;
    const packed = dictionary?.compress(data) ?? null;
    if (dictionary && packed) {
      if (!session.heldDictionaries.has(dictionary.id)) {
        session.heldDictionaries.add(dictionary.id);
        yield this.#record(session, objectOpCodec.encode({ dictionary: { id: dictionary.id } }), dictionary.bytes);
      }
    }
    const meta = dictionary && packed ? { dictFile: { path, version, dictionaryId: dictionary.id } } : { put: { path, version, offset: 0 } };
    const record = this.#record(session, objectOpCodec.encode(meta), packed ?? data, () => {
      session.bytesDone += version.size;
      session.filesDone++;
      this.#onReplicated?.(path, version);
    });
    if (packed) record.contentBytes = version.size;
    yield record;
    return 'sent';
  }

  // Yield one file by recipe (stage dedup@1): chunk it, ask the destination,
  // send the chunks it lacks (read back by offset, the file unchanged), then
  // the recipe with the small missing chunks inline. WHOLE leaves the file to #sendFile.
  // prepared: #prepareRecipe started ahead of the file's turn (small changed files, stage delta@1).
  async *#sendRecipe(
    path: string,
    view: DestView,
    session: Session,
    outcome: PassOutcome,
    signal: AbortSignal,
    prepared?: Promise<PreparedRecipe | SendResult | typeof WHOLE>,
  ): AsyncGenerator<SourceRecord, SendResult | typeof WHOLE> {
    const ready = await (prepared ?? this.#prepareRecipe(path, session, signal));
    if (typeof ready === 'string') return ready;
    const { reader, version, plan } = ready;
    const unchanged = (): Promise<boolean> => reader.unchanged();
    try {
      // From here the file counts as queued; take it back if it is not sent after all.
      session.filesTotal++;
      session.bytesTotal += version.size;
      const abandon = (result: SendResult): SendResult => {
        session.filesTotal--;
        session.bytesTotal -= version.size;
        this.#notify();
        return result;
      };

      // The chunks the destination lacks, each once, read as the link pulls.
      for (const c of plan.chunkData) {
        if (signal.aborted) return abandon('aborted');
        const data = Buffer.allocUnsafe(c.length);
        if ((await readFully(reader, data, c.offset)) < c.length || !(await unchanged())) return abandon('changed');
        outcome.yielded = true;
        yield this.#record(session, objectOpCodec.encode({ chunkData: { hash: c.hash } }), data);
      }

      // Stage delta@1: chunks with a base, as deltas when that pays, read the same way.
      for (const { chunk, base } of plan.deltas) {
        if (signal.aborted) return abandon('aborted');
        const data = Buffer.allocUnsafe(chunk.length);
        if ((await readFully(reader, data, chunk.offset)) < chunk.length || !(await unchanged())) return abandon('changed');
        const { op, payload } = chunkOpFor(path, chunk, data, base);
        outcome.yielded = true;
        yield this.#record(session, objectOpCodec.encode(op), payload);
      }

      // The recipe, with the small missing chunks inline; it commits the file at the destination.
      if (signal.aborted) return abandon('aborted');
      const inline = Buffer.allocUnsafe(plan.inline.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of plan.inline) {
        if ((await readFully(reader, inline.subarray(at, at + c.length), c.offset)) < c.length) return abandon('changed');
        at += c.length;
      }
      if (!(await unchanged())) return abandon('changed');
      removeSubtree(view, path);
      view.set(path, { path, version, directory: false });
      outcome.yielded = true;
      yield this.#record(session, objectOpCodec.encode({ recipe: plan.recipe }), inline, () => {
        session.bytesDone += version.size;
        session.filesDone++;
        this.#onReplicated?.(path, version);
      });
      return 'sent';
    } finally {
      await reader.close();
    }
  }

  // Chunk a file (bounded memory: one read buffer), ask which chunks the
  // destination lacks, and plan what to send; the file stays open for the
  // send. A result instead (the reader closed) when it goes another way.
  async #prepareRecipe(path: string, session: Session, signal: AbortSignal): Promise<PreparedRecipe | SendResult | typeof WHOLE> {
    const chunked = await this.#chunkFile(path, session, signal);
    return typeof chunked === 'string' ? chunked : this.#planChunked(chunked, session, signal);
  }

  // The first half of #prepareRecipe: open and chunk the file (the reader
  // stays open on success), or a result instead (the reader closed).
  async #chunkFile(path: string, session: Session, signal: AbortSignal): Promise<ChunkedReader | SendResult | typeof WHOLE> {
    const reader = await this.#openFile(path);
    if (typeof reader === 'string') return reader;
    let keep = false;
    try {
      const { version } = reader;
      if (version.size < (session.deltaBases ? DELTA_MIN_FILE_BYTES : DEDUP_MIN_FILE_BYTES)) return WHOLE;
      const file: ChunkedFile = { path, version, chunks: [] };
      for await (const c of readChunks((into, at, length, position) => reader.read(into, at, length, position))) {
        if (signal.aborted) return 'aborted';
        file.chunks.push({ offset: c.offset, length: c.length, hash: c.hash });
      }
      if (!(await reader.unchanged())) return 'changed';
      if (distinctHashes(file).length > MAX_QUERY_CHUNKS) return WHOLE;
      keep = true;
      return { reader, file };
    } finally {
      if (!keep) await reader.close();
    }
  }

  // The second half: ask the destination and plan; the reader stays open for the send, or is closed with a result instead.
  async #planChunked({ reader, file }: ChunkedReader, session: Session, signal: AbortSignal): Promise<PreparedRecipe | SendResult | typeof WHOLE> {
    const { path, version } = file;
    let keep = false;
    try {
      let plan: RecipePlan;
      try {
        const query = chunkQueryFor(this.streamId, ++this.#queryIds, file, session.deltaBases);
        const have = checkChunkHave(await session.queryChunks!(query), query.hashes.length / CHUNK_HASH_BYTES);
        if (have.refusal) {
          // Said once per session: a destination without an index refuses every query.
          if (!session.queryRefused) this.#logger?.info({ streamId: this.streamId, path, refusal: have.refusal }, 'destination refused a chunk query; sending files whole');
          session.queryRefused = true;
          return WHOLE;
        }
        plan = planRecipe(file, have);
        // Nothing of it is there: PutChunks carry the same bytes without
        // staging them chunk by chunk at the destination (measured: a new
        // 128 MiB file took 6.4 s of CPU by recipe, 1.0 s as PutChunks).
        if (plan.heldBytes === 0 && plan.deltas.length === 0) return WHOLE;
      } catch (err) {
        if (signal.aborted) return 'aborted';
        this.#logger?.warn({ streamId: this.streamId, path, err: (err as Error).message }, 'chunk query failed; sending the file whole');
        return WHOLE;
      }
      keep = true;
      return { reader, version, plan };
    } finally {
      if (!keep) await reader.close();
    }
  }

  // The stream's dictionary (stage dict@1), trained from a sample of entries' small files when it has none; null when it cannot be had (logged).
  async #openDictionary(entries: ManifestEntry[]): Promise<StreamDictionary | null> {
    const samples = async (): Promise<Buffer[]> => {
      const out: Buffer[] = [];
      for (const path of samplePaths(entries.filter((e) => !e.directory).map((e) => ({ path: e.path, size: e.version.size })))) {
        const file = await this.#readWhole(path);
        if (file.kind === 'data') out.push(file.data);
      }
      return out;
    };
    try {
      const dictionary = await StreamDictionary.open(this.#dictionaries!, this.streamId, samples);
      if (dictionary) this.#logger?.info({ streamId: this.streamId, dictionary: dictionary.id, bytes: dictionary.bytes.length }, 'small files go with the stream dictionary');
      return dictionary;
    } catch (err) {
      this.#logger?.warn({ streamId: this.streamId, err: (err as Error).message }, 'stream dictionary unavailable; small files go without it');
      return null;
    }
  }

  // Open a file to send; gone (or turned into a symlink or not a file) since the scan, or unreadable, instead.
  #openFile(path: string): Promise<ObjectReader | 'gone' | 'unreadable'> {
    // A promise chain, not an async function: one allocation less per file (measured).
    return this.#store.openRead(path).then(
      (reader) => reader ?? 'gone',
      (err: unknown) => {
        this.#logger?.warn({ streamId: this.streamId, path, err: (err as Error).message }, 'cannot read file; skipped');
        return 'unreadable' as const;
      },
    );
  }

  // Yield one file as PutChunks, read at yield time; stop if it changes underneath.
  async *#sendFile(
    path: string,
    resumeFrom: PartialFile | undefined,
    view: DestView,
    session: Session,
    outcome: PassOutcome,
    signal: AbortSignal,
  ): AsyncGenerator<SourceRecord, SendResult> {
    // Gone (or turned into a symlink) since the scan: the next pass sees it as it is.
    const reader = await this.#openFile(path);
    if (typeof reader === 'string') return reader;
    try {
      const { version } = reader;

      // Resume where the destination's durable partial copy ends, if it is this very version.
      let offset = 0;
      if (resumeFrom && identicalVersion(resumeFrom.version, version) && resumeFrom.offset < version.size) {
        offset = resumeFrom.offset;
        this.#logger?.info({ streamId: this.streamId, path, offset }, 'resuming partial file');
      }
      session.filesTotal++;
      session.bytesTotal += version.size - offset;

      do {
        // Take back what will not be sent after all (aborted, or changed underneath).
        const abandon = (result: SendResult): SendResult => {
          session.filesTotal--;
          session.bytesTotal -= version.size - offset;
          this.#notify();
          return result;
        };
        if (signal.aborted) return abandon('aborted');
        const len = Math.min(this.#chunkBytes, version.size - offset);
        // Room in front for the frame's head: the frame is then written around the bytes, not copied.
        const data = allocFramePayload(len);
        const read = await readFully(reader, data, offset);
        if (read < len || !(await reader.unchanged())) return abandon('changed');

        // The last chunk commits the file at the destination; the view follows.
        const last = offset + len === version.size;
        const onDone = () => {
          session.bytesDone += len;
          if (!last) return;
          session.filesDone++;
          this.#onReplicated?.(path, version);
        };
        if (last) {
          removeSubtree(view, path);
          view.set(path, { path, version, directory: false });
        }
        outcome.yielded = true;
        yield this.#record(session, objectOpCodec.encode({ put: { path, version, offset } }), data, onDone);
        offset += len;
      } while (offset < version.size);
      return 'sent';
    } finally {
      await reader.close();
    }
  }

  // A record counted as pending until the link reports it durable.
  #record(session: Session, meta: Uint8Array, data: Uint8Array, onDone?: () => void): SourceRecord {
    session.pending++;
    session.lastDiffEmpty = false;
    let durable = false;
    return {
      meta,
      data,
      onDurable: () => {
        if (durable) return;
        durable = true;
        session.pending--;
        onDone?.();
        this.#notify();
      },
    };
  }
}

/** A small file read ahead: its bytes and version, or why not. */
type WholeFile =
  | { kind: 'data'; version: FileVersion; data: Buffer }
  | { kind: 'gone' }
  | { kind: 'changed' }
  | { kind: 'unreadable'; reason?: string }; // no reason: already logged when opening

/** The destination manifest from a ResumePoint's state (empty: empty destination). */
function decodeResume(state: Uint8Array): Manifest {
  if (state.length === 0) return { entries: [] };
  try {
    return manifestCodec.decode(state);
  } catch (err) {
    throw new Error(`decode resume manifest: ${(err as Error).message}`, { cause: err });
  }
}

function isSameFile(have: ManifestEntry | undefined, version: FileVersion): boolean {
  return have !== undefined && !have.directory && sameVersion(have.version, version);
}

function versionKey(v: FileVersion): string {
  return `${v.size}:${v.mtimeUs}:${v.mode}`;
}

/**
 * A vanished destination path with this version, taken out of the pool. The
 * destination's mtime may sit 1 us off the source's (utimes rounds), so the
 * neighbours count as the same version; the exact one is preferred.
 */
function takeVanished(vanished: Map<string, string[]>, v: FileVersion): string | undefined {
  for (const delta of [0, -MTIME_TOLERANCE_US, MTIME_TOLERANCE_US]) {
    const from = vanished.get(versionKey({ ...v, mtimeUs: v.mtimeUs + delta }))?.shift();
    if (from !== undefined) return from;
  }
  return undefined;
}

function hasAncestorIn(path: string, dirs: Set<string>): boolean {
  for (let cut = path.lastIndexOf('/'); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
    if (dirs.has(path.slice(0, cut))) return true;
  }
  return false;
}

/** Drop path and everything below it from the view (only a directory has anything below it). */
function removeSubtree(view: DestView, path: string): void {
  const entry = view.get(path);
  view.delete(path);
  if (!entry?.directory) return;
  const prefix = `${path}/`;
  for (const key of view.keys()) if (key.startsWith(prefix)) view.delete(key);
}

async function readFully(reader: ObjectReader, buffer: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buffer.length) {
    const bytesRead = await reader.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
