// The destination's chunk index over a real sink directory: it answers which
// chunks the sink holds and hands out their bytes only after checking them;
// it survives restarts (journal, segments, merges), rebuilds when lost or
// damaged, never returns a chunk whose file changed behind its back, and
// keeps its memory bound with many chunks.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BeneathRoot } from '../../src/streams/objects/beneath-root.ts';
import { directoryChunkFiles } from '../../src/streams/objects/chunks/chunk-files.ts';
import { ChunkIndex, MEMTABLE_ENTRY_BYTES, type ChunkIndexOptions } from '../../src/streams/objects/chunks/chunk-index.ts';
import { chunkHash } from '../../src/encoding/hde/fastcdc.ts';
import { fileChunks } from '../../src/encoding/hde/file-chunks.ts';
import { seededBytes as bytes } from '../helpers/seeded-bytes.ts';

const MiB = 1024 * 1024;

interface Sink {
  root: string;
  indexDir: string;
  beneath: BeneathRoot;
  open(options?: ChunkIndexOptions): Promise<ChunkIndex>;
}

async function sink(t: TestContext): Promise<Sink> {
  const base = await mkdtemp(join(tmpdir(), 'dwcp-chunk-index-'));
  const root = join(base, 'root');
  const indexDir = join(base, 'index');
  await writeFile(join(base, '.keep'), '');
  await rm(root, { recursive: true, force: true });
  await (await import('node:fs/promises')).mkdir(root);
  const beneath = await BeneathRoot.open(root);
  const opened: ChunkIndex[] = [];
  t.after(async () => {
    for (const index of opened) await index.close().catch(() => undefined);
    await beneath.close();
    await rm(base, { recursive: true, force: true });
  });
  return {
    root,
    indexDir,
    beneath,
    async open(options = {}) {
      const index = await ChunkIndex.open(indexDir, directoryChunkFiles(beneath), options);
      opened.push(index);
      return index;
    },
  };
}

/** Write a file into the sink and record it, as the sink does after applying it. */
async function put(s: Sink, index: ChunkIndex, path: string, data: Buffer, mtimeSec?: number): Promise<Buffer[]> {
  await writeFile(join(s.root, path), data);
  if (mtimeSec !== undefined) await utimes(join(s.root, path), mtimeSec, mtimeSec);
  const chunks = [];
  for await (const c of fileChunks(join(s.root, path))) chunks.push({ hash: c.hash, offset: c.offset, length: c.length });
  const st = await stat(join(s.root, path), { bigint: true });
  await index.record(path, { size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n) }, chunks);
  return chunks.map((c) => c.hash);
}

test('has() names exactly the missing chunks and locate() returns the bytes, across restarts, segments and merges', async (t) => {
  const s = await sink(t);
  // A small table forces segments (every 8 entries) and merges (beyond 2).
  const options = { memtableEntries: 8, maxSegments: 2 };
  const index = await s.open(options);
  const files = new Map<string, Buffer>();
  const held: Buffer[] = [];
  for (let i = 0; i < 6; i++) {
    const data = bytes(MiB / 2 + i * 1000, 10 + i);
    files.set(`f${i}`, data);
    held.push(...(await put(s, index, `f${i}`, data)));
  }
  const unknown = [randomBytes(32), chunkHash(Buffer.from('never written'))];
  assert.ok(index.stats().segments >= 1, JSON.stringify(index.stats()));

  const check = async (ix: ChunkIndex): Promise<void> => {
    assert.deepEqual(await ix.has([...held, ...unknown]), unknown);
    const f3 = files.get('f3')!;
    for await (const c of fileChunks(join(s.root, 'f3'))) {
      const got = await ix.locate(c.hash);
      assert.ok(got && got.equals(f3.subarray(c.offset, c.offset + c.length)));
    }
    assert.equal(await ix.locate(unknown[0]), null);
  };
  await check(index);
  await index.close();
  const reopened = await s.open(options);
  assert.equal(reopened.stats().rebuiltOnOpen, false);
  await check(reopened);
});

test('a copied file is found by its chunks wherever they are; forget() and deletion make them missing', async (t) => {
  const s = await sink(t);
  const index = await s.open({ memtableEntries: 4 });
  const data = bytes(MiB, 20);
  const hashes = await put(s, index, 'a', data);
  await put(s, index, 'b', data);
  // Forget a: the chunks are still held by b.
  await index.forget('a');
  await rm(join(s.root, 'a'));
  assert.deepEqual(await index.has(hashes), []);
  assert.ok((await index.locate(hashes[0]))!.equals(data.subarray(0, (await index.locate(hashes[0]))!.length)));
  // Delete b behind the index's back: nothing is held any more.
  await rm(join(s.root, 'b'));
  assert.equal((await index.has(hashes)).length, hashes.length);
  for (const h of hashes) assert.equal(await index.locate(h), null);
});

test('a stale entry (file changed behind its back, even with size and mtime kept) is never returned', async (t) => {
  const s = await sink(t);
  for (const memtableEntries of [1000, 1]) {
    const index = await s.open({ memtableEntries });
    const data = bytes(MiB, 30);
    const path = `f-${memtableEntries}`;
    const mtimeSec = 1_700_000_000.25;
    const hashes = await put(s, index, path, data, mtimeSec);
    const before = await stat(join(s.root, path), { bigint: true });

    // Overwrite the first chunk's bytes in place, then put size and mtime back.
    const fh = await open(join(s.root, path), 'r+');
    await fh.write(bytes(4096, 31), 0, 4096, 100);
    await fh.close();
    await utimes(join(s.root, path), mtimeSec, mtimeSec);
    const after = await stat(join(s.root, path), { bigint: true });
    assert.deepEqual([after.size, after.mtimeNs], [before.size, before.mtimeNs]);

    assert.equal(await index.locate(hashes[0]), null);
    assert.ok(index.stats().staleDropped >= 1);
    // The untouched chunks are still good.
    assert.ok((await index.locate(hashes[1]))!.equals(await chunkAt(join(s.root, path), hashes[1])));

    // A change with a new mtime: has() reports the file's chunks as missing.
    await utimes(join(s.root, path), new Date(), new Date(Date.now() + 5000));
    assert.equal((await index.has(hashes)).length, hashes.length);
    await index.close();
  }
});

async function chunkAt(path: string, hash: Buffer): Promise<Buffer> {
  for await (const c of fileChunks(path)) if (c.hash.equals(hash)) return Buffer.from(c.bytes);
  throw new Error('chunk not in file');
}

test('a lost index is rebuilt by chunking the sink files again', async (t) => {
  const s = await sink(t);
  const index = await s.open();
  const hashes = [...(await put(s, index, 'x', bytes(MiB, 40))), ...(await put(s, index, 'y', bytes(300_000, 41)))];
  await index.close();
  await rm(s.indexDir, { recursive: true, force: true });
  const rebuilt = await s.open();
  assert.equal(rebuilt.stats().rebuiltOnOpen, true);
  assert.deepEqual(await rebuilt.has(hashes), []);
  assert.ok(await rebuilt.locate(hashes[hashes.length - 1]));
});

test('a damaged segment, or a rebuild cut short, rebuilds; a torn journal tail keeps the records before it', async (t) => {
  const s = await sink(t);
  let index = await s.open({ memtableEntries: 4 });
  const hashes = await put(s, index, 'x', bytes(MiB, 50));
  await index.close();

  // Flip one byte inside a segment's entries.
  const segment = (await readdir(s.indexDir)).find((n) => n.startsWith('seg-'))!;
  const seg = await readFile(join(s.indexDir, segment));
  seg[40] ^= 0xff;
  await writeFile(join(s.indexDir, segment), seg);
  index = await s.open({ memtableEntries: 4 });
  assert.equal(index.stats().rebuiltOnOpen, true);
  assert.deepEqual(await index.has(hashes), []);
  await index.close();

  // No COMPLETE marker: a rebuild was cut short.
  await rm(join(s.indexDir, 'COMPLETE'));
  index = await s.open();
  assert.equal(index.stats().rebuiltOnOpen, true);

  // Two records in the journal, the second torn by a crash mid-append.
  const yHashes = await put(s, index, 'y', bytes(200_000, 51));
  await put(s, index, 'z', bytes(200_000, 52));
  await index.close();
  const journal = join(s.indexDir, 'journal.log');
  await truncate(journal, (await stat(journal)).size - 10);
  index = await s.open();
  assert.equal(index.stats().rebuiltOnOpen, false);
  assert.deepEqual(await index.has(yHashes), []);
});

test('memory stays bounded with many chunks: a capped table plus ~2 bytes per chunk held', async (t) => {
  const s = await sink(t);
  const memtableEntries = 2048;
  const index = await s.open({ memtableEntries, maxSegments: 4 });
  // 100,000 chunks over 200 real files (entries of 1 byte each: the index
  // does not care how large a chunk is).
  const FILES = 200;
  const PER_FILE = 500;
  const sample: Buffer[] = [];
  for (let f = 0; f < FILES; f++) {
    const path = `many-${f}`;
    await writeFile(join(s.root, path), Buffer.alloc(PER_FILE));
    const st = await stat(join(s.root, path), { bigint: true });
    const chunks = Array.from({ length: PER_FILE }, (_, i) => ({ hash: randomBytes(32), offset: i, length: 1 }));
    if (f % 10 === 0) sample.push(...chunks.slice(0, 50).map((c) => c.hash));
    await index.record(path, { size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n) }, chunks);
    assert.ok(index.stats().memtableEntries < memtableEntries);
  }
  const stats = index.stats();
  const held = stats.memtableEntries + stats.segmentEntries;
  assert.equal(held, FILES * PER_FILE);
  assert.ok(stats.segments <= 5, `${stats.segments} segments`);
  const segmentBytes = stats.memoryBytes - stats.memtableEntries * MEMTABLE_ENTRY_BYTES;
  assert.ok(segmentBytes <= 2 * stats.segmentEntries, `${segmentBytes} bytes for ${stats.segmentEntries} entries`);
  assert.ok(stats.memoryBytes <= memtableEntries * MEMTABLE_ENTRY_BYTES + 2 * held);
  // Still exact: every sampled chunk held, random ones missing.
  const strangers = Array.from({ length: 500 }, () => randomBytes(32));
  assert.deepEqual(await index.has([...sample, ...strangers]), strangers);
});

test('recordMany records files in order as record() would, writing a segment whenever the table fills, and a bad file records none of them', async (t) => {
  const s = await sink(t);
  // A table of 8 entries: this batch (~4 chunks a file) fills it several times over.
  const index = await s.open({ memtableEntries: 8, maxSegments: 100 });
  const files = [];
  for (let i = 0; i < 6; i++) {
    const path = `f${i}`;
    const data = bytes(MiB / 4 + i * 1000, 40 + i);
    await writeFile(join(s.root, path), data);
    const chunks = [];
    for await (const c of fileChunks(join(s.root, path))) chunks.push({ hash: c.hash, offset: c.offset, length: c.length });
    const st = await stat(join(s.root, path), { bigint: true });
    files.push({ path, version: { size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n) }, chunks });
  }
  const hashes = files.flatMap((f) => f.chunks.map((c) => c.hash));
  assert.ok(hashes.length > 16, `want several tables' worth of chunks, got ${hashes.length}`);

  // A file with a chunk beyond its size is refused before anything is recorded.
  const bad = { ...files[5], path: 'bad', chunks: [{ ...files[5].chunks[0], offset: files[5].version.size }] };
  await assert.rejects(index.recordMany([files[0], bad]), /beyond size/);
  assert.equal((await index.has(hashes)).length, hashes.length, 'a batch with a bad file recorded some of it');

  await index.recordMany(files);
  assert.deepEqual(await index.has(hashes), [], 'every chunk of the batch is held');
  const stats = index.stats();
  assert.ok(stats.segments >= 2, `the table was written out as it filled: ${JSON.stringify(stats)}`);
  assert.ok(stats.memtableEntries < 8, `the table stayed bounded: ${JSON.stringify(stats)}`);
  assert.deepEqual(await index.locate(files[3].chunks[1].hash), (await readFile(join(s.root, 'f3'))).subarray(files[3].chunks[1].offset, files[3].chunks[1].offset + files[3].chunks[1].length));

  // After a restart (journal replay and segments) the same holds.
  await index.close();
  const reopened = await s.open({ memtableEntries: 8, maxSegments: 100 });
  assert.deepEqual(await reopened.has(hashes), []);
});
