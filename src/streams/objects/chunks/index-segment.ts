// One sorted, immutable run of the chunk index on disk. Entries are fixed
// size and sorted by chunk hash, so a lookup is a binary search over a few
// in-memory fence keys and one read of a block of entries; a Bloom filter
// answers most misses without touching the disk. What stays in memory per
// segment is the filter (10 bits per entry) and one 32-byte fence per
// FENCE_STRIDE entries: ~1.8 bytes per chunk held.
//
// Layout (little-endian), format 1:
//   header  magic "DWCS" | format u32 | count u32 | 0 u32 | pathTable u64
//   entries count x { hash[32] | fileOffset u64 | length u32 | 0 u32 | pathRef u64 }
//   paths   per referenced path { length u16 | utf8 | size f64 | mtimeUs f64 }
//   footer  crc32 u32 of everything before it
// A segment is written to a temp name, fsynced and renamed: it exists whole
// or not at all, and a bad checksum on open means the index is rebuilt.

import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { BloomFilter } from './bloom-filter.ts';

/** A chunk the sink holds: where, and in which version of its file. */
export interface IndexEntry {
  hash: Buffer;
  path: string;
  /** Version of the file the chunk was recorded in (size and mtime). */
  size: number;
  mtimeUs: number;
  /** Position of the chunk in the file. */
  offset: number;
  length: number;
}

const MAGIC = 0x53435744; // "DWCS" read as a little-endian u32
const FORMAT = 1;
const HEADER_BYTES = 24;
/** Bytes of one entry. */
export const ENTRY_BYTES = 56;
/** Entries per fence key (one block read per lookup: 64 x 56 = 3.5 KiB). */
export const FENCE_STRIDE = 64;
const HASH_BYTES = 32;
/** Largest path record: u16 length, MAX_PATH_BYTES of utf8, two f64. */
const MAX_PATH_RECORD_BYTES = 2 + 4095 + 16;
/** Write and scan buffer, bytes. */
const IO_BYTES = 1024 * 1024;
/** Recently written paths remembered to share one path record (bounded). */
const PATH_DEDUP_ENTRIES = 1024;

/** Writes a segment from entries given in ascending hash order (unique hashes). */
export class SegmentWriter {
  readonly #path: string;
  readonly #tempPath: string;
  #entries!: FileHandle;
  #paths!: FileHandle;
  #entryBuf = Buffer.allocUnsafe(IO_BYTES);
  #entryLen = 0;
  #entryPos = HEADER_BYTES;
  #pathBuf = Buffer.allocUnsafe(IO_BYTES);
  #pathLen = 0;
  #pathPos = 0;
  #count = 0;
  #last: Buffer | null = null;
  readonly #recentPaths = new Map<string, number>();

  private constructor(path: string) {
    this.#path = path;
    this.#tempPath = `${path}.tmp`;
  }

  /** Start writing the segment that will be at path once finished. */
  static async create(path: string): Promise<SegmentWriter> {
    const w = new SegmentWriter(path);
    w.#entries = await open(w.#tempPath, 'w+');
    w.#paths = await open(`${w.#tempPath}.paths`, 'w+');
    return w;
  }

  /** Entries written so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Append one entry (hashes must ascend strictly). Synchronous: it only
   * fills buffers; when it returns true they are full and flush() must be
   * awaited before the next add.
   */
  add(entry: IndexEntry): boolean {
    if (this.#last && Buffer.compare(this.#last, entry.hash) >= 0) throw new Error('index segment: entries out of hash order');
    this.#last = entry.hash;
    const pathRef = this.#pathRecord(entry);
    const b = this.#entryBuf;
    const o = this.#entryLen;
    entry.hash.copy(b, o, 0, HASH_BYTES);
    b.writeBigUInt64LE(BigInt(entry.offset), o + 32);
    b.writeUInt32LE(entry.length, o + 40);
    b.writeUInt32LE(0, o + 44);
    b.writeBigUInt64LE(BigInt(pathRef), o + 48);
    this.#entryLen += ENTRY_BYTES;
    this.#count++;
    return this.#entryLen + ENTRY_BYTES > b.length || this.#pathLen + MAX_PATH_RECORD_BYTES > this.#pathBuf.length;
  }

  /** Write out the buffers filled by add. */
  async flush(): Promise<void> {
    await this.#flushEntries();
    await this.#flushPaths();
  }

  /** Write the path table and footer, fsync and rename into place. */
  async finish(): Promise<void> {
    await this.#flushEntries();
    await this.#flushPaths();
    const pathTable = this.#entryPos;
    // Copy the path table after the entries.
    const copyBuf = this.#pathBuf;
    for (let at = 0; at < this.#pathPos; ) {
      const { bytesRead } = await this.#paths.read(copyBuf, 0, Math.min(copyBuf.length, this.#pathPos - at), at);
      if (bytesRead === 0) throw new Error('index segment: path table shorter than written');
      await this.#entries.write(copyBuf, 0, bytesRead, pathTable + at);
      at += bytesRead;
    }
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt32LE(MAGIC, 0);
    header.writeUInt32LE(FORMAT, 4);
    header.writeUInt32LE(this.#count, 8);
    header.writeBigUInt64LE(BigInt(pathTable), 16);
    await this.#entries.write(header, 0, HEADER_BYTES, 0);
    // Checksum everything written, then append it.
    const end = pathTable + this.#pathPos;
    let crc = 0;
    for (let at = 0; at < end; ) {
      const { bytesRead } = await this.#entries.read(copyBuf, 0, Math.min(copyBuf.length, end - at), at);
      if (bytesRead === 0) throw new Error('index segment: shorter than written');
      crc = crc32(copyBuf.subarray(0, bytesRead), crc);
      at += bytesRead;
    }
    const footer = Buffer.alloc(4);
    footer.writeUInt32LE(crc >>> 0, 0);
    await this.#entries.write(footer, 0, 4, end);
    await this.#entries.sync();
    await this.#closeTemps();
    await rename(this.#tempPath, this.#path);
  }

  /** Give up: close and remove the temp files. */
  async abort(): Promise<void> {
    await this.#closeTemps();
    await rm(this.#tempPath, { force: true });
  }

  async #closeTemps(): Promise<void> {
    await this.#entries.close().catch(() => undefined);
    await this.#paths.close().catch(() => undefined);
    await rm(`${this.#tempPath}.paths`, { force: true });
  }

  /** Where the entry's path record is: a recent one, or one added to the buffer (which add keeps room for). */
  #pathRecord(entry: IndexEntry): number {
    const key = `${entry.size}:${entry.mtimeUs}:${entry.path}`;
    const known = this.#recentPaths.get(key);
    if (known !== undefined) return known;
    const utf8 = Buffer.from(entry.path, 'utf8');
    if (utf8.length + 18 > MAX_PATH_RECORD_BYTES) throw new Error(`index segment: path too long: ${entry.path.slice(0, 80)}`);
    const ref = this.#pathPos + this.#pathLen;
    const b = this.#pathBuf;
    let o = this.#pathLen;
    o = b.writeUInt16LE(utf8.length, o);
    o += utf8.copy(b, o);
    o = b.writeDoubleLE(entry.size, o);
    o = b.writeDoubleLE(entry.mtimeUs, o);
    this.#pathLen = o;
    if (this.#recentPaths.size >= PATH_DEDUP_ENTRIES) this.#recentPaths.clear();
    this.#recentPaths.set(key, ref);
    return ref;
  }

  async #flushEntries(): Promise<void> {
    await this.#entries.write(this.#entryBuf, 0, this.#entryLen, this.#entryPos);
    this.#entryPos += this.#entryLen;
    this.#entryLen = 0;
  }

  async #flushPaths(): Promise<void> {
    await this.#paths.write(this.#pathBuf, 0, this.#pathLen, this.#pathPos);
    this.#pathPos += this.#pathLen;
    this.#pathLen = 0;
  }
}

/** An open segment: its filter and fences in memory, entries read on demand. */
export class Segment {
  readonly path: string;
  readonly count: number;
  readonly #fh: FileHandle;
  readonly #pathTable: number;
  readonly #filter: BloomFilter;
  /** The hash of every FENCE_STRIDE-th entry, concatenated. */
  readonly #fences: Buffer;
  /** Path records read lately, by position (bounded: cleared when full). */
  readonly #recentPaths = new Map<number, { path: string; size: number; mtimeUs: number }>();

  private constructor(path: string, fh: FileHandle, count: number, pathTable: number, filter: BloomFilter, fences: Buffer) {
    this.path = path;
    this.#fh = fh;
    this.count = count;
    this.#pathTable = pathTable;
    this.#filter = filter;
    this.#fences = fences;
  }

  /** Open and verify a segment (checksum, layout); throws naming the file when it is damaged. */
  static async open(path: string): Promise<Segment> {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const header = Buffer.alloc(HEADER_BYTES);
      await fh.read(header, 0, HEADER_BYTES, 0);
      const count = header.readUInt32LE(8);
      const pathTable = Number(header.readBigUInt64LE(16));
      if (size < HEADER_BYTES + 4 || header.readUInt32LE(0) !== MAGIC || header.readUInt32LE(4) !== FORMAT) {
        throw new Error('not a format 1 segment');
      }
      if (pathTable !== HEADER_BYTES + count * ENTRY_BYTES || pathTable > size - 4) throw new Error('entry count does not match its size');

      // The checksum over everything before the footer, then the filter
      // and fences from the entries, each read in IO_BYTES pieces.
      const buf = Buffer.allocUnsafe(IO_BYTES - (IO_BYTES % ENTRY_BYTES));
      let crc = 0;
      for (let at = 0; at < size - 4; ) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - 4 - at), at);
        if (bytesRead === 0) throw new Error('short read');
        crc = crc32(buf.subarray(0, bytesRead), crc);
        at += bytesRead;
      }
      const stored = Buffer.alloc(4);
      await fh.read(stored, 0, 4, size - 4);
      if (crc >>> 0 !== stored.readUInt32LE(0)) throw new Error('checksum mismatch');
      const filter = new BloomFilter(count);
      const fences = Buffer.allocUnsafe(Math.ceil(count / FENCE_STRIDE) * HASH_BYTES);
      const per = buf.length / ENTRY_BYTES;
      for (let first = 0; first < count; first += per) {
        const n = Math.min(per, count - first);
        await fh.read(buf, 0, n * ENTRY_BYTES, HEADER_BYTES + first * ENTRY_BYTES);
        for (let i = 0; i < n; i++) {
          const hash = buf.subarray(i * ENTRY_BYTES, i * ENTRY_BYTES + HASH_BYTES);
          filter.add(hash);
          if ((first + i) % FENCE_STRIDE === 0) hash.copy(fences, ((first + i) / FENCE_STRIDE) * HASH_BYTES);
        }
      }
      return new Segment(path, fh, count, pathTable, filter, fences);
    } catch (err) {
      await fh.close();
      throw new Error(`index segment ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Memory held for this segment, bytes (filter and fences). */
  get memoryBytes(): number {
    return this.#filter.bytes + this.#fences.length;
  }

  /** The entry for hash, or null. */
  async find(hash: Buffer): Promise<IndexEntry | null> {
    if (this.count === 0 || !this.#filter.mayHave(hash)) return null;
    // The last fence at or below the hash names the block.
    let lo = 0;
    let hi = this.#fences.length / HASH_BYTES - 1;
    if (Buffer.compare(this.#fences.subarray(0, HASH_BYTES), hash) > 0) return null;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (Buffer.compare(this.#fences.subarray(mid * HASH_BYTES, (mid + 1) * HASH_BYTES), hash) <= 0) lo = mid;
      else hi = mid - 1;
    }
    const first = lo * FENCE_STRIDE;
    const n = Math.min(FENCE_STRIDE, this.count - first);
    const block = Buffer.allocUnsafe(n * ENTRY_BYTES);
    await this.#readExactly(block, HEADER_BYTES + first * ENTRY_BYTES);
    for (let i = 0; i < n; i++) {
      const o = i * ENTRY_BYTES;
      if (block.compare(hash, 0, HASH_BYTES, o, o + HASH_BYTES) === 0) return this.#entryAt(block, o);
    }
    return null;
  }

  /** Every entry in hash order (for a merge), in blocks of one IO_BYTES read. */
  async *blocks(): AsyncGenerator<IndexEntry[]> {
    const per = Math.floor(IO_BYTES / ENTRY_BYTES);
    const buf = Buffer.allocUnsafe(per * ENTRY_BYTES);
    for (let first = 0; first < this.count; first += per) {
      const n = Math.min(per, this.count - first);
      await this.#readExactly(buf.subarray(0, n * ENTRY_BYTES), HEADER_BYTES + first * ENTRY_BYTES);
      const block: IndexEntry[] = [];
      for (let i = 0; i < n; i++) block.push(await this.#entryAt(buf, i * ENTRY_BYTES));
      yield block;
    }
  }

  /** Close the file. */
  async close(): Promise<void> {
    await this.#fh.close();
  }

  #entryAt(block: Buffer, o: number): IndexEntry | Promise<IndexEntry> {
    const hash = Buffer.from(block.subarray(o, o + HASH_BYTES));
    const offset = Number(block.readBigUInt64LE(o + 32));
    const length = block.readUInt32LE(o + 40);
    const ref = this.#pathTable + Number(block.readBigUInt64LE(o + 48));
    const known = this.#recentPaths.get(ref);
    if (known) return { hash, ...known, offset, length };
    return this.#readPathRecord(ref).then((file) => ({ hash, ...file, offset, length }));
  }

  async #readPathRecord(ref: number): Promise<{ path: string; size: number; mtimeUs: number }> {
    const rec = Buffer.allocUnsafe(MAX_PATH_RECORD_BYTES);
    const { bytesRead } = await this.#fh.read(rec, 0, rec.length, ref);
    const len = rec.readUInt16LE(0);
    if (bytesRead < 2 + len + 16) throw new Error(`index segment ${this.path}: path record at ${ref} cut short`);
    const file = { path: rec.toString('utf8', 2, 2 + len), size: rec.readDoubleLE(2 + len), mtimeUs: rec.readDoubleLE(10 + len) };
    if (this.#recentPaths.size >= PATH_DEDUP_ENTRIES) this.#recentPaths.clear();
    this.#recentPaths.set(ref, file);
    return file;
  }

  async #readExactly(into: Buffer, position: number): Promise<void> {
    const { bytesRead } = await this.#fh.read(into, 0, into.length, position);
    if (bytesRead !== into.length) throw new Error(`index segment ${this.path}: short read at ${position}`);
  }
}
