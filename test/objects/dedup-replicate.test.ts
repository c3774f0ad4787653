// Stage dedup@1 through the objects stream's real source and sink
// (DirSource -> link harness -> DirSink, the chunk queries through the
// Envelope codec as over the link): copied, renamed and edited large files
// cost only their new chunks; a peer without dedup, a sink without an index
// and a destination that lost its index all end with an identical tree; a
// recipe whose held chunk vanished after the query is refused without
// touching the tree, and the next session completes it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import type { FileVersion, ObjectOp } from '../../src/wire/messages.ts';
import { seededBytes } from '../helpers/seeded-bytes.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { scanTree } from '../../src/streams/objects/tree-scan.ts';
import { sameVersion } from '../../src/streams/objects/file-version.ts';
import { DEFAULT_MUTATION, mutateTree } from '../../netbench/tree-mutation.ts';
import { chunkLab, opsOf, pump, treeDifferences, type ChunkLab, type PumpResult } from './link-harness.ts';

const MiB = 1024 * 1024;
/** cdc@1's largest chunk, bytes: an edit touches at most a couple of them. */
const MAX_CDC_CHUNK_BYTES = 256 * 1024;

type Lab = ChunkLab;

function lab(t: { after(fn: () => void): void }): Lab {
  return chunkLab(t, 'dedup-replicate');
}

/** One one-shot session from src to dst; a fresh source and sink each time, as after a restart. */
async function session(l: Lab, options: { dedup: boolean; sinkIndex?: boolean }): Promise<PumpResult> {
  const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true });
  const sink = new DirSink({ streamId: 's', root: l.dst, chunks: options.sinkIndex === false ? undefined : l.chunks });
  return pump(source, sink, { dedup: options.dedup });
}

/** Payload bytes of chunk data and inline recipe bytes, i.e. file content that crossed. */
function chunkBytes(r: PumpResult): number {
  return r.bytes;
}

function kinds(ops: ObjectOp[]): string[] {
  return ops.map((op) => Object.keys(op).find((k) => op[k as keyof ObjectOp] !== undefined)!);
}

test('a copied and a renamed 8 MiB file send no chunk data; a 1 KiB insert at the start of 16 MiB sends a few chunks', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'a.bin'), seededBytes(8 * MiB, 1));
  writeFileSync(join(l.src, 'big.bin'), seededBytes(16 * MiB, 2));

  // New files (nothing of them at the destination) cross once as PutChunks; the sink indexes them.
  const first = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.equal(opsOf(first.ops, 'recipe').length + opsOf(first.ops, 'chunkData').length, 0);
  assert.equal(chunkBytes(first), 24 * MiB);

  // A copy (new path, new mtime) is assembled from the chunks the destination holds.
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy.bin'));
  const copied = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(copied.ops), ['recipe']);
  assert.equal(chunkBytes(copied), 0);

  // A rename with a new mtime (not a plain move the source spots by version): still no chunk data.
  renameSync(join(l.src, 'copy.bin'), join(l.src, 'moved.bin'));
  utimesSync(join(l.src, 'moved.bin'), 1_700_000_000, 1_700_000_000);
  const moved = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(moved.ops).sort(), ['delete', 'recipe']);
  assert.equal(chunkBytes(moved), 0);

  // A plain move is one rename op.
  renameSync(join(l.src, 'moved.bin'), join(l.src, 'moved-again.bin'));
  const renamed = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(renamed.ops), ['rename']);

  // 1 KiB inserted at the start of the 16 MiB file: the chunks around the edit, not the file.
  writeFileSync(join(l.src, 'big.bin'), Buffer.concat([seededBytes(1024, 3), seededBytes(16 * MiB, 2)]));
  const edited = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.equal(opsOf(edited.ops, 'recipe').length, 1);
  assert.ok(chunkBytes(edited) > 0 && chunkBytes(edited) <= 2 * MAX_CDC_CHUNK_BYTES + 1024, `insert sent ${chunkBytes(edited)} bytes`);

  // In sync: nothing more.
  const again = await session(l, { dedup: true });
  assert.deepEqual(again.ops, []);
});

test('without dedup on the link, or without an index at the sink, files go whole and the tree is identical', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'a.bin'), seededBytes(2 * MiB, 4));
  writeFileSync(join(l.src, 'small.txt'), 'small files always go whole');

  // The link did not negotiate dedup: PutChunks as before.
  const plain = await session(l, { dedup: false });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.equal(opsOf(plain.ops, 'recipe').length + opsOf(plain.ops, 'chunkData').length, 0);

  // The link has dedup but the sink keeps no index: it refuses the query, the file goes whole.
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy.bin'));
  const refused = await session(l, { dedup: true, sinkIndex: false });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(refused.ops), ['put', 'put', 'put', 'put', 'put', 'put', 'put', 'put']);
  assert.equal(chunkBytes(refused), 2 * MiB);

  // The same sink with its index: the next copy is a recipe of held chunks.
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy-2.bin'));
  await session(l, { dedup: true }); // the index is built from the tree on first open
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy-3.bin'));
  const deduped = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(deduped.ops), ['recipe']);
  assert.equal(chunkBytes(deduped), 0);
});

test('a destination that lost its chunk index rebuilds it from its files and still sends no chunk data for a copy', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'a.bin'), seededBytes(4 * MiB, 5));
  await session(l, { dedup: true });

  // Index and staging gone (a disk replaced, an operator's rm): rebuilt on open from the tree.
  rmSync(join(l.base, 'data'), { recursive: true, force: true });
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy.bin'));
  const copied = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(kinds(copied.ops), ['recipe']);
  assert.equal(chunkBytes(copied), 0);
});

test('a file sharing chunks with one the destination holds travels as its missing chunks plus a recipe', async (t) => {
  const l = lab(t);
  const shared = seededBytes(4 * MiB, 8);
  writeFileSync(join(l.src, 'a.bin'), shared);
  await session(l, { dedup: true });

  // Half old content, half new: chunk data for the new half only (small missing chunks ride inline).
  writeFileSync(join(l.src, 'b.bin'), Buffer.concat([shared.subarray(0, 2 * MiB), seededBytes(2 * MiB, 9)]));
  const mixed = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.equal(opsOf(mixed.ops, 'recipe').length, 1);
  assert.ok(opsOf(mixed.ops, 'chunkData').length > 0);
  assert.ok(chunkBytes(mixed) >= 2 * MiB && chunkBytes(mixed) <= 2 * MiB + 2 * MAX_CDC_CHUNK_BYTES, `sent ${chunkBytes(mixed)} bytes`);
});

test('a held chunk that changed after the query is never used: the recipe fails retryably, the next session completes', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'a.bin'), seededBytes(4 * MiB, 6));
  await session(l, { dedup: true });
  copyFileSync(join(l.src, 'a.bin'), join(l.src, 'copy.bin'));

  // The destination's a.bin changes between the answer and the recipe's apply.
  const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true });
  const sink = new DirSink({ streamId: 's', root: l.dst, chunks: l.chunks });
  const realApply = sink.apply.bind(sink);
  sink.apply = async (seq, meta, data) => {
    writeFileSync(join(l.dst, 'a.bin'), seededBytes(4 * MiB, 7));
    return realApply(seq, meta, data);
  };
  await assert.rejects(pump(source, sink, { dedup: true }), (err: Error) => err.name === 'MissingChunksError' || /chunks neither sent nor held/.test(err.message));
  await sink.close();
  assert.deepEqual(treeDifferences(l.src, l.dst).sort(), ['a.bin: content differs', 'copy.bin: missing at destination']);

  // The next session asks again: the chunks are missing now, so they travel.
  const retried = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.ok(chunkBytes(retried) >= 4 * MiB, `retry sent ${chunkBytes(retried)} bytes`);
});

test('a modified tree (10 % of files changed by 4 KiB, 1 % added, 1 % deleted) ends identical, its content bytes under the bound dedup promises', async (t) => {
  const l = lab(t);
  await generateSampleTree(l.src, { totalBytes: 24 * MiB, smallShare: 0.5, largeFiles: 2, seed: 7 });
  await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  const files = async (): Promise<Map<string, FileVersion>> => new Map((await scanTree(l.src)).entries.filter((e) => !e.directory).map((e) => [e.path, e.version]));
  const before = await files();

  const mutation = await mutateTree(l.src, { ...DEFAULT_MUTATION, seed: 8 });
  assert.ok(mutation.changed > 0 && mutation.added > 0 && mutation.deleted > 0, JSON.stringify(mutation));
  // The largest file changes too (by 4 KiB in its middle), whatever the seed picked.
  const [largest, largestVersion] = [...before].sort((a, b) => b[1].size - a[1].size)[0]!;
  const handle = await open(join(l.src, largest), 'r+');
  await handle.write(seededBytes(4096, 9), 0, 4096, Math.floor(largestVersion.size / 2));
  await handle.close();
  utimesSync(join(l.src, largest), 1_700_000_100, 1_700_000_100);
  // What dedup promises: a changed file the destination held costs at most
  // the chunks around its edit (one 4 KiB edit touches at most two
  // content-defined chunks, each at most cdc@1's largest; a third for slack),
  // or the whole file when that is smaller; a new file costs itself; an
  // unchanged file nothing.
  let bound = 0;
  let largeChanged = 0;
  for (const [path, version] of await files()) {
    const old = before.get(path);
    if (old === undefined) bound += version.size;
    else if (!sameVersion(old, version)) {
      bound += Math.min(version.size, 3 * MAX_CDC_CHUNK_BYTES);
      if (version.size > 3 * MAX_CDC_CHUNK_BYTES) largeChanged++;
    }
  }
  assert.ok(largeChanged > 0, 'the change set touched no file larger than three chunks: the bound would not test dedup');
  const second = await session(l, { dedup: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.ok(second.bytes <= bound, `content bytes ${second.bytes} above the bound ${bound} (${JSON.stringify(mutation)})`);
});
