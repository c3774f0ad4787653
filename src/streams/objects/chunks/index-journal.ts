// The chunk index's journal: the entries recorded since the last segment was
// written, as checksummed records appended to one file. Opening replays it
// up to the first record that is torn or fails its checksum and cuts the file
// there (a crash mid-append loses that record only). Appends are not fsynced:
// the index is a cache of what the sink's files hold, so a lost tail costs
// chunks that are sent again, never a wrong byte (every lookup is verified
// against the file before use).
//
// Record: length u32 | crc32(payload) u32 | payload, little-endian.
// Payload: kind u8 (1 record, 2 forget) | pathLength u16 | path utf8, then
// for a record: size f64 | mtimeUs f64 | count u32 | count x { hash[32] | offset f64 | length u32 }.

import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

/** A file's chunks, as recorded. */
export interface JournalChunk {
  hash: Buffer;
  offset: number;
  length: number;
}

/** One journal record. */
export type JournalRecord =
  | { kind: 'record'; path: string; size: number; mtimeUs: number; chunks: JournalChunk[] }
  | { kind: 'forget'; path: string };

const KIND_RECORD = 1;
const KIND_FORGET = 2;
const RECORD_HEADER_BYTES = 8;
const CHUNK_BYTES = 44;
/** Largest payload accepted on replay (a file of 16 M chunks); larger means a damaged length. */
export const MAX_JOURNAL_PAYLOAD_BYTES = 1 << 30;

/** The journal file, open for appending. */
export class IndexJournal {
  readonly path: string;
  readonly #fh: FileHandle;
  #size: number;

  private constructor(path: string, fh: FileHandle, size: number) {
    this.path = path;
    this.#fh = fh;
    this.#size = size;
  }

  /** Open (creating) the journal, replay its intact records to onRecord, and cut any damaged tail. */
  static async open(path: string, onRecord: (record: JournalRecord) => void | Promise<void>): Promise<IndexJournal> {
    const fh = await open(path, 'a+');
    try {
      const size = (await fh.stat()).size;
      let at = 0;
      const header = Buffer.alloc(RECORD_HEADER_BYTES);
      while (at + RECORD_HEADER_BYTES <= size) {
        await fh.read(header, 0, RECORD_HEADER_BYTES, at);
        const length = header.readUInt32LE(0);
        if (length === 0 || length > MAX_JOURNAL_PAYLOAD_BYTES || at + RECORD_HEADER_BYTES + length > size) break;
        const payload = Buffer.allocUnsafe(length);
        await fh.read(payload, 0, length, at + RECORD_HEADER_BYTES);
        if (crc32(payload) >>> 0 !== header.readUInt32LE(4)) break;
        const record = decodeRecord(payload);
        if (!record) break;
        await onRecord(record);
        at += RECORD_HEADER_BYTES + length;
      }
      if (at < size) await fh.truncate(at);
      return new IndexJournal(path, fh, at);
    } catch (err) {
      await fh.close();
      throw new Error(`chunk index journal ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Bytes in the journal. */
  get size(): number {
    return this.#size;
  }

  /** Append one record. */
  append(record: JournalRecord): Promise<void> {
    return this.appendMany([record]);
  }

  /** Append records in order, in one write (a checkpoint's files: one write, not one each). */
  async appendMany(records: readonly JournalRecord[]): Promise<void> {
    const buffers: Buffer[] = [];
    let bytes = 0;
    for (const record of records) {
      const payload = encodeRecord(record);
      const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
      header.writeUInt32LE(payload.length, 0);
      header.writeUInt32LE(crc32(payload) >>> 0, 4);
      buffers.push(header, payload);
      bytes += RECORD_HEADER_BYTES + payload.length;
    }
    if (bytes === 0) return;
    await this.#fh.writev(buffers);
    this.#size += bytes;
  }

  /** Empty the journal (its records are in a segment now). */
  async reset(): Promise<void> {
    await this.#fh.truncate(0);
    await this.#fh.sync();
    this.#size = 0;
  }

  /** Close the file. */
  async close(): Promise<void> {
    await this.#fh.close();
  }
}

function encodeRecord(record: JournalRecord): Buffer {
  const path = Buffer.from(record.path, 'utf8');
  const chunks = record.kind === 'record' ? record.chunks : [];
  const buf = Buffer.allocUnsafe(3 + path.length + (record.kind === 'record' ? 20 + chunks.length * CHUNK_BYTES : 0));
  let o = buf.writeUInt8(record.kind === 'record' ? KIND_RECORD : KIND_FORGET, 0);
  o = buf.writeUInt16LE(path.length, o);
  o += path.copy(buf, o);
  if (record.kind === 'record') {
    o = buf.writeDoubleLE(record.size, o);
    o = buf.writeDoubleLE(record.mtimeUs, o);
    o = buf.writeUInt32LE(chunks.length, o);
    for (const c of chunks) {
      o += c.hash.copy(buf, o, 0, 32);
      o = buf.writeDoubleLE(c.offset, o);
      o = buf.writeUInt32LE(c.length, o);
    }
  }
  return buf;
}

/** Decode a payload; null when its layout is inconsistent. */
function decodeRecord(buf: Buffer): JournalRecord | null {
  if (buf.length < 3) return null;
  const kind = buf.readUInt8(0);
  const pathLength = buf.readUInt16LE(1);
  if (3 + pathLength > buf.length) return null;
  const path = buf.toString('utf8', 3, 3 + pathLength);
  let o = 3 + pathLength;
  if (kind === KIND_FORGET) return o === buf.length ? { kind: 'forget', path } : null;
  if (kind !== KIND_RECORD || o + 20 > buf.length) return null;
  const size = buf.readDoubleLE(o);
  const mtimeUs = buf.readDoubleLE(o + 8);
  const count = buf.readUInt32LE(o + 16);
  o += 20;
  if (o + count * CHUNK_BYTES !== buf.length) return null;
  const chunks: JournalChunk[] = [];
  for (let i = 0; i < count; i++, o += CHUNK_BYTES) {
    chunks.push({ hash: Buffer.from(buf.subarray(o, o + 32)), offset: buf.readDoubleLE(o + 32), length: buf.readUInt32LE(o + 40) });
  }
  return { kind: 'record', path, size, mtimeUs, chunks };
}
