// The destination's chunk index: which chunks (by SHA-256) the sink already
// holds, and where (path, offset, length, file version), so a source sends
// only the chunks a destination lacks (stage dedup@1).
//
// Shape (a small log-structured merge):
// - record() appends to a journal (index-journal.ts) and adds to an
//   in-memory table of at most memtableEntries entries;
// - a full table is written as a sorted, checksummed segment
//   (index-segment.ts) and the journal emptied; more than maxSegments
//   segments are merged into one, dropping entries whose file changed or
//   went away;
// - a lookup asks the table, then each segment newest first (Bloom filter,
//   fence keys, one block read).
// Memory bound: memtableEntries x ~MEMTABLE_ENTRY_BYTES, plus ~1.8 bytes per
// chunk held (10-bit Bloom filter and a 32-byte fence per 64 entries), plus
// at most DEAD_ENTRIES_MAX dropped hashes: 1 TiB of 64 KiB chunks (16 M) is
// ~29 MiB of filters and fences plus ~5 MiB of table.
//
// Trust: the index is a cache of the files, never the truth. has() counts a
// chunk only when its file still has the recorded version; locate() re-reads
// the bytes and checks their SHA-256 before returning them, so a stale entry
// (file changed behind the index's back) is dropped, never returned.
// Crash: the journal replays up to its first damaged record; a missing
// index, or a damaged segment, is rebuilt by chunking the sink's files again
// (rebuild()), and only a finished rebuild writes the COMPLETE marker.

import { mkdir, readdir, rm, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { chunkHash, DEFAULT_CDC_PARAMS, type CdcParams } from '../../../encoding/hde/fastcdc.ts';
import { readChunks } from '../../../encoding/hde/file-chunks.ts';
import type { ChunkFiles, ChunkFileVersion } from './chunk-files.ts';
import { IndexJournal, type JournalChunk, type JournalRecord } from './index-journal.ts';
import { Segment, SegmentWriter, type IndexEntry } from './index-segment.ts';

/** Default entries kept in memory before a segment is written (~1 GiB of 64 KiB chunks). */
export const DEFAULT_MEMTABLE_ENTRIES = 16_384;
/** Default number of segments before they are merged into one. */
export const DEFAULT_MAX_SEGMENTS = 8;
/** Estimated heap bytes of one in-memory entry (object, hash buffer, map slots), for stats. */
export const MEMTABLE_ENTRY_BYTES = 320;
/** Most segment entries remembered as dropped (stale) until the next merge. */
export const DEAD_ENTRIES_MAX = 65_536;
/** File versions cached during a merge (bounded: cleared when full). */
const MERGE_VERSION_CACHE = 4096;

const JOURNAL_NAME = 'journal.log';
const COMPLETE_NAME = 'COMPLETE';
const SEGMENT_PATTERN = /^seg-(\d{8})\.idx$/;

/** Tuning of a chunk index. */
export interface ChunkIndexOptions {
  /** Entries kept in memory before they are written as a segment; default DEFAULT_MEMTABLE_ENTRIES. */
  memtableEntries?: number;
  /** Segments before they are merged; default DEFAULT_MAX_SEGMENTS. */
  maxSegments?: number;
  /** Chunking of a rebuild: must be the cdc parameters the stream uses; default cdc@1's. */
  cdc?: CdcParams;
}

/** A chunk of a recorded file. */
export interface RecordedChunk {
  hash: Buffer;
  offset: number;
  length: number;
}

/** A file's chunks to record, at its version. */
export interface RecordedFile {
  path: string;
  version: ChunkFileVersion;
  chunks: readonly RecordedChunk[];
}

/** What the index holds and what that costs in memory. */
export interface ChunkIndexStats {
  memtableEntries: number;
  segments: number;
  segmentEntries: number;
  /** Heap held: segment filters and fences (exact) plus memtable entries (estimated). */
  memoryBytes: number;
  /** Set when the last open had to rebuild (index missing, unfinished or damaged). */
  rebuiltOnOpen: boolean;
  /** Entries found stale (bytes or version changed) and dropped since open. */
  staleDropped: number;
}

/** The persistent index of the chunks a sink holds. */
export class ChunkIndex {
  readonly #dir: string;
  readonly #files: ChunkFiles;
  readonly #memtableMax: number;
  readonly #maxSegments: number;
  readonly #cdc: CdcParams;
  /** In-memory entries by hash (hex), and their hashes by path (for forget). */
  readonly #memtable = new Map<string, IndexEntry>();
  readonly #byPath = new Map<string, Set<string>>();
  /** Open segments, oldest first. */
  #segments: Segment[] = [];
  #nextGeneration = 1;
  #journal: IndexJournal | null = null;
  /** Segment entries found stale: `${segment path}\0${hash hex}`. */
  readonly #dead = new Set<string>();
  #rebuiltOnOpen = false;
  #staleDropped = 0;
  /** Operations run one at a time (a merge replaces the segments under a lookup). */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, files: ChunkFiles, options: ChunkIndexOptions) {
    this.#dir = dir;
    this.#files = files;
    this.#memtableMax = options.memtableEntries ?? DEFAULT_MEMTABLE_ENTRIES;
    this.#maxSegments = options.maxSegments ?? DEFAULT_MAX_SEGMENTS;
    this.#cdc = options.cdc ?? DEFAULT_CDC_PARAMS;
    if (!(Number.isInteger(this.#memtableMax) && this.#memtableMax >= 1)) throw new Error(`chunk index: memtableEntries must be a positive integer, got ${this.#memtableMax}`);
    if (!(Number.isInteger(this.#maxSegments) && this.#maxSegments >= 1)) throw new Error(`chunk index: maxSegments must be a positive integer, got ${this.#maxSegments}`);
  }

  /**
   * Open the index kept in dir (created when missing) over the sink's files.
   * A missing, unfinished or damaged index is rebuilt before this resolves.
   */
  static async open(dir: string, files: ChunkFiles, options: ChunkIndexOptions = {}): Promise<ChunkIndex> {
    const index = new ChunkIndex(dir, files, options);
    await mkdir(dir, { recursive: true });
    try {
      await access(join(dir, COMPLETE_NAME));
      await index.#load();
    } catch {
      // No marker (lost, or a rebuild cut short) or a damaged segment.
      index.#rebuiltOnOpen = true;
      await index.#rebuild();
    }
    return index;
  }

  /** The hashes (of those given) the sink does not hold in a file of the recorded version, in the order given. */
  has(hashes: readonly Buffer[]): Promise<Buffer[]> {
    return this.#exclusive(async () => {
      const versions = new Map<string, ChunkFileVersion | null>();
      const missing: Buffer[] = [];
      for (const hash of hashes) {
        let found = false;
        for await (const { entry } of this.#candidates(hash)) {
          if (!versions.has(entry.path)) versions.set(entry.path, await this.#versionOf(entry.path));
          const v = versions.get(entry.path);
          if (v && v.size === entry.size && v.mtimeUs === entry.mtimeUs && entry.offset + entry.length <= v.size) {
            found = true;
            break;
          }
        }
        if (!found) missing.push(hash);
      }
      return missing;
    });
  }

  /** The chunk's bytes, read from a file that holds it and checked against its hash; null when no entry checks out. */
  locate(hash: Buffer): Promise<Buffer | null> {
    return this.#exclusive(async () => {
      for await (const candidate of this.#candidates(hash)) {
        const bytes = await this.#readChunk(candidate.entry);
        if (bytes && chunkHash(bytes).equals(hash)) return bytes;
        this.#drop(candidate);
      }
      return null;
    });
  }

  /** Record the chunks of a file the sink made durable at version (replacing what was recorded for path). */
  record(path: string, version: ChunkFileVersion, chunks: readonly RecordedChunk[]): Promise<void> {
    return this.#exclusive(() => this.#record([{ path, version, chunks }]));
  }

  /** Record several files as record() does, in order, with one journal write per table's worth. */
  recordMany(files: readonly RecordedFile[]): Promise<void> {
    return this.#exclusive(() => this.#record(files));
  }

  /** Forget a path (deleted, or renamed away); its entries in segments go at the next merge. */
  forget(path: string): Promise<void> {
    return this.#exclusive(async () => {
      await this.#journal!.append({ kind: 'forget', path });
      this.#forgetInMemory(path);
    });
  }

  /** Throw the index away and chunk every file of the sink again. */
  rebuild(): Promise<void> {
    return this.#exclusive(() => this.#rebuild());
  }

  /** Sizes and memory (see the bound at the top of this file). */
  stats(): ChunkIndexStats {
    const segmentBytes = this.#segments.reduce((n, s) => n + s.memoryBytes, 0);
    return {
      memtableEntries: this.#memtable.size,
      segments: this.#segments.length,
      segmentEntries: this.#segments.reduce((n, s) => n + s.count, 0),
      memoryBytes: segmentBytes + this.#memtable.size * MEMTABLE_ENTRY_BYTES,
      rebuiltOnOpen: this.#rebuiltOnOpen,
      staleDropped: this.#staleDropped,
    };
  }

  /** Close files; the memtable stays in the journal for the next open. */
  close(): Promise<void> {
    return this.#exclusive(() => this.#closeFiles());
  }

  // ---- internals (each runs inside #exclusive) ----

  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Open the segments and replay the journal; throws when a segment is damaged. */
  async #load(): Promise<void> {
    const names = await readdir(this.#dir);
    for (const name of names) if (name.endsWith('.tmp') || name.endsWith('.tmp.paths')) await rm(join(this.#dir, name), { force: true });
    const generations = names.map((n) => SEGMENT_PATTERN.exec(n)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
    try {
      for (const gen of generations) this.#segments.push(await Segment.open(this.#segmentPath(gen)));
    } catch (err) {
      await this.#closeFiles();
      throw err;
    }
    this.#nextGeneration = (generations.at(-1) ?? 0) + 1;
    this.#journal = await IndexJournal.open(join(this.#dir, JOURNAL_NAME), (r) => this.#replay(r));
    if (this.#memtable.size >= this.#memtableMax) await this.#flush();
  }

  #replay(record: JournalRecord): void {
    if (record.kind === 'forget') this.#forgetInMemory(record.path);
    else this.#addToMemory(record.path, record, record.chunks);
  }

  // Every file checked before anything is written; then journal writes of
  // at most the table's free room in chunks each, so the table still holds
  // at most one file's chunks beyond its bound before it is written out.
  async #record(files: readonly RecordedFile[]): Promise<void> {
    const records = files.map(({ path, version, chunks }) => {
      const kept: JournalChunk[] = chunks.filter((c) => c.length > 0).map((c) => ({ hash: c.hash, offset: c.offset, length: c.length }));
      for (const c of kept) {
        if (c.hash.length !== 32) throw new Error(`chunk index: record ${path}: chunk hash of ${c.hash.length} bytes, want 32`);
        if (c.offset + c.length > version.size) throw new Error(`chunk index: record ${path}: chunk at ${c.offset}+${c.length} beyond size ${version.size}`);
      }
      return { kind: 'record' as const, path, size: version.size, mtimeUs: version.mtimeUs, chunks: kept };
    });
    let group: typeof records = [];
    let room = this.#memtableMax - this.#memtable.size;
    for (const [i, record] of records.entries()) {
      group.push(record);
      room -= record.chunks.length;
      if (room > 0 && i < records.length - 1) continue;
      await this.#journal!.appendMany(group);
      for (const r of group) this.#addToMemory(r.path, r, r.chunks);
      if (this.#memtable.size >= this.#memtableMax) await this.#flush();
      group = [];
      room = this.#memtableMax - this.#memtable.size;
    }
  }

  #addToMemory(path: string, version: ChunkFileVersion, chunks: readonly JournalChunk[]): void {
    this.#forgetInMemory(path);
    const hashes = new Set<string>();
    for (const c of chunks) {
      const key = c.hash.toString('hex');
      const previous = this.#memtable.get(key);
      if (previous && previous.path !== path) this.#byPath.get(previous.path)?.delete(key);
      this.#memtable.set(key, { hash: c.hash, path, size: version.size, mtimeUs: version.mtimeUs, offset: c.offset, length: c.length });
      hashes.add(key);
    }
    if (hashes.size > 0) this.#byPath.set(path, hashes);
  }

  #forgetInMemory(path: string): void {
    for (const key of this.#byPath.get(path) ?? []) {
      if (this.#memtable.get(key)?.path === path) this.#memtable.delete(key);
    }
    this.#byPath.delete(path);
  }

  /** Entries for a hash, newest first, skipping those already found stale. */
  async *#candidates(hash: Buffer): AsyncGenerator<{ entry: IndexEntry; segment: Segment | null }> {
    const inMemory = this.#memtable.get(hash.toString('hex'));
    if (inMemory) yield { entry: inMemory, segment: null };
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const segment = this.#segments[i];
      const entry = await segment.find(hash);
      if (entry && !this.#dead.has(deadKey(segment, hash))) yield { entry, segment };
    }
  }

  #drop(candidate: { entry: IndexEntry; segment: Segment | null }): void {
    this.#staleDropped++;
    const key = candidate.entry.hash.toString('hex');
    if (candidate.segment === null) {
      this.#memtable.delete(key);
      this.#byPath.get(candidate.entry.path)?.delete(key);
    } else if (this.#dead.size < DEAD_ENTRIES_MAX) {
      this.#dead.add(deadKey(candidate.segment, candidate.entry.hash));
    }
  }

  async #versionOf(path: string): Promise<ChunkFileVersion | null> {
    const reader = await this.#files.open(path);
    if (!reader) return null;
    await reader.close();
    return reader.version;
  }

  /** The entry's bytes as the file holds them now; null when the file is gone or shorter. */
  async #readChunk(entry: IndexEntry): Promise<Buffer | null> {
    const reader = await this.#files.open(entry.path);
    if (!reader) return null;
    try {
      const bytes = Buffer.allocUnsafe(entry.length);
      let got = 0;
      while (got < entry.length) {
        const n = await reader.read(bytes, got, entry.length - got, entry.offset + got);
        if (n === 0) return null;
        got += n;
      }
      return bytes;
    } finally {
      await reader.close();
    }
  }

  /** Write the memtable as a segment, empty the journal, merge when there are too many segments. */
  async #flush(): Promise<void> {
    if (this.#memtable.size > 0) {
      const entries = [...this.#memtable.values()].sort((a, b) => Buffer.compare(a.hash, b.hash));
      const segment = await this.#writeSegment(async (add) => {
        for (const e of entries) await add(e);
      });
      this.#segments.push(segment);
      this.#memtable.clear();
      this.#byPath.clear();
    }
    await this.#journal!.reset();
    if (this.#segments.length > this.#maxSegments) await this.#merge();
  }

  /** Merge every segment into one: newest entry per hash, without entries found stale or whose file changed. */
  async #merge(): Promise<void> {
    const old = this.#segments;
    const versions = new Map<string, ChunkFileVersion | null>();
    const merged = await this.#writeSegment(async (add) => {
      // One cursor per segment over its blocks of entries; the newest
      // segment wins a tie.
      const cursors = old.map((s) => ({ blocks: s.blocks(), block: [] as IndexEntry[], at: 0, done: false }));
      const head = async (c: (typeof cursors)[number]): Promise<IndexEntry | null> => {
        while (!c.done && c.at >= c.block.length) {
          const next = await c.blocks.next();
          if (next.done) c.done = true;
          else {
            c.block = next.value;
            c.at = 0;
          }
        }
        return c.done ? null : c.block[c.at];
      };
      let last: Buffer | null = null;
      for (;;) {
        let pick = -1;
        let pickEntry: IndexEntry | null = null;
        for (let i = cursors.length - 1; i >= 0; i--) {
          const e = cursors[i].at < cursors[i].block.length ? cursors[i].block[cursors[i].at] : await head(cursors[i]);
          if (e && (pickEntry === null || Buffer.compare(e.hash, pickEntry.hash) < 0)) {
            pick = i;
            pickEntry = e;
          }
        }
        if (pickEntry === null) break;
        const entry = pickEntry;
        cursors[pick].at++;
        if (last && last.equals(entry.hash)) continue;
        if (this.#dead.has(deadKey(old[pick], entry.hash))) continue;
        if (!versions.has(entry.path)) {
          if (versions.size >= MERGE_VERSION_CACHE) versions.clear();
          versions.set(entry.path, await this.#versionOf(entry.path));
        }
        const v = versions.get(entry.path);
        if (!v || v.size !== entry.size || v.mtimeUs !== entry.mtimeUs) continue;
        await add(entry);
        last = entry.hash;
      }
    });
    this.#segments = [merged];
    this.#dead.clear();
    for (const s of old) {
      await s.close();
      await rm(s.path, { force: true });
    }
  }

  async #writeSegment(fill: (add: (e: IndexEntry) => Promise<void>) => Promise<void>): Promise<Segment> {
    const path = this.#segmentPath(this.#nextGeneration++);
    const writer = await SegmentWriter.create(path);
    try {
      await fill(async (e) => {
        if (writer.add(e)) await writer.flush();
      });
      await writer.finish();
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return Segment.open(path);
  }

  async #rebuild(): Promise<void> {
    // Everything goes, the marker first: a rebuild cut short is redone.
    await this.#closeFiles();
    await rm(join(this.#dir, COMPLETE_NAME), { force: true });
    for (const name of await readdir(this.#dir)) await rm(join(this.#dir, name), { force: true, recursive: true });
    this.#memtable.clear();
    this.#byPath.clear();
    this.#dead.clear();
    this.#nextGeneration = 1;
    this.#journal = await IndexJournal.open(join(this.#dir, JOURNAL_NAME), () => undefined);

    // Chunk every file as it is now.
    for await (const { path } of this.#files.list()) {
      const reader = await this.#files.open(path);
      if (!reader) continue;
      const chunks: RecordedChunk[] = [];
      try {
        for await (const c of readChunks((into, at, length, position) => reader.read(into, at, length, position), this.#cdc)) {
          chunks.push({ hash: c.hash, offset: c.offset, length: c.length });
        }
      } finally {
        await reader.close();
      }
      const total = chunks.reduce((n, c) => n + c.length, 0);
      // A file that changed while read is left out (it is recorded when it is next applied).
      if (total !== reader.version.size) continue;
      await this.#record([{ path, version: reader.version, chunks }]);
    }
    await this.#flush();
    await writeFile(join(this.#dir, COMPLETE_NAME), 'chunk index format 1\n');
  }

  async #closeFiles(): Promise<void> {
    for (const s of this.#segments) await s.close().catch(() => undefined);
    this.#segments = [];
    await this.#journal?.close().catch(() => undefined);
    this.#journal = null;
  }

  #segmentPath(generation: number): string {
    return join(this.#dir, `seg-${String(generation).padStart(8, '0')}.idx`);
  }
}

function deadKey(segment: Segment, hash: Buffer): string {
  return `${segment.path}\0${hash.toString('hex')}`;
}
