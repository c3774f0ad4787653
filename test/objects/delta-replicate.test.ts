// Stage delta@1 through the objects stream's real source and sink
// (DirSource -> link harness -> DirSink, chunk queries through the Envelope
// codec as over the link): a changed small file and a large file edited in
// its middle cross as deltas against the destination's older version and
// end identical, with fewer content bytes than dedup alone sends; a peer
// without delta@1 still replicates; a lying delta is refused and never
// applied; a base that changed after the query is never used (the recipe
// fails retryably and the next session completes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, utimesSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { objectOpCodec, type ObjectOp } from '../../src/wire/messages.ts';
import type { LinkEstimate } from '../../src/streams/stream.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { DEFAULT_MUTATION, mutateTree } from '../../netbench/tree-mutation.ts';
import { seededBytes } from '../helpers/seeded-bytes.ts';
import { chunkLab, opsOf, pump, treeDifferences, type ChunkLab, type PumpResult } from './link-harness.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

type Lab = ChunkLab;

function lab(t: { after(fn: () => void): void }): Lab {
  return chunkLab(t, 'delta-replicate');
}

/** A second destination holding what l's holds now (its own index, rebuilt from the tree on open). */
function twin(l: Lab, name: string): Lab {
  const base = join(l.base, name);
  const t = { base, src: l.src, dst: join(base, 'dst'), chunks: { indexDir: join(base, 'data/chunk-index/s'), stageDir: join(base, 'data/chunk-stage/s') } };
  cpSync(l.dst, t.dst, { recursive: true, preserveTimestamps: true });
  return t;
}

async function session(l: Lab, options: { dedup: boolean; delta: boolean; link?: LinkEstimate }): Promise<PumpResult> {
  const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true });
  const sink = new DirSink({ streamId: 's', root: l.dst, chunks: l.chunks });
  return pump(source, sink, options);
}

/** Overwrite length bytes at offset of a file with seeded bytes, and give it a new mtime. */
async function edit(path: string, offset: number, length: number, seed: number): Promise<void> {
  const handle = await open(path, 'r+');
  await handle.write(seededBytes(length, seed), 0, length, offset);
  await handle.close();
  utimesSync(path, 1_700_000_000 + seed, 1_700_000_000 + seed);
}

test('a changed small file and a large file edited in its middle cross as deltas, fewer bytes than dedup alone, identical', async (t) => {
  const l = lab(t);
  // Text-like small files (compressible but distinct) and one 8 MiB file.
  for (let i = 0; i < 8; i++) writeFileSync(join(l.src, `doc-${i}.json`), JSON.stringify({ id: i, rows: Array.from({ length: 600 }, (_, r) => ({ r, v: (r * 7919 + i) % 1000 })) }));
  writeFileSync(join(l.src, 'big.bin'), seededBytes(8 * MiB, 1));
  await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);

  // 2 KiB changed in each small file, 4 KiB in the middle of the large one.
  for (let i = 0; i < 8; i++) await edit(join(l.src, `doc-${i}.json`), 5 * KiB + i, 2 * KiB, 10 + i);
  await edit(join(l.src, 'big.bin'), 4 * MiB + 123, 4 * KiB, 20);
  const dedupOnly = twin(l, 'dedup-only');

  const withDelta = await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  const alone = await session(dedupOnly, { dedup: true, delta: false });
  assert.deepEqual(treeDifferences(l.src, dedupOnly.dst), []);

  // Every changed file went as deltas plus a recipe; dedup alone sent no delta.
  assert.equal(opsOf(withDelta.ops, 'recipe').length, 9);
  assert.ok(opsOf(withDelta.ops, 'chunkDelta').length >= 9, `${opsOf(withDelta.ops, 'chunkDelta').length} deltas`);
  assert.equal(opsOf(alone.ops, 'chunkDelta').length, 0);
  t.diagnostic(`content bytes: dedup alone ${alone.bytes}, dedup+delta ${withDelta.bytes}`);
  // Each edit costs its own bytes plus the blocks it straddles (512 B blocks for
  // the small files, 2 KiB around the large file's chunk), not the chunk or file around it.
  assert.ok(withDelta.bytes < 8 * (2 * KiB + 2 * KiB) + 4 * KiB + 8 * KiB, `delta sent ${withDelta.bytes} bytes`);
  assert.ok(withDelta.bytes * 4 < alone.bytes, `delta ${withDelta.bytes} vs dedup alone ${alone.bytes}`);

  // In sync: nothing more.
  assert.deepEqual((await session(l, { dedup: true, delta: true })).ops, []);
});

test('a modified tree (10 % changed by 4 KiB, 1 % added, 1 % deleted) ends identical with delta on, and without it', async (t) => {
  const l = lab(t);
  await generateSampleTree(l.src, { totalBytes: 16 * MiB, smallShare: 0.5, largeFiles: 2, seed: 7 });
  await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  await mutateTree(l.src, { ...DEFAULT_MUTATION, seed: 8 });
  const dedupOnly = twin(l, 'dedup-only');
  const withDelta = await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  const alone = await session(dedupOnly, { dedup: true, delta: false });
  assert.deepEqual(treeDifferences(l.src, dedupOnly.dst), []);
  t.diagnostic(`content bytes: dedup alone ${alone.bytes}, dedup+delta ${withDelta.bytes}`);
  assert.ok(withDelta.bytes < alone.bytes, `delta ${withDelta.bytes} vs dedup alone ${alone.bytes}`);
});

test('a small changed file goes whole over a link that carries it within a round trip, by delta over one that does not; a large one by delta on both', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'small.bin'), seededBytes(40 * KiB, 1));
  writeFileSync(join(l.src, 'large.bin'), seededBytes(2 * MiB, 2));
  await session(l, { dedup: true, delta: true });
  const slow = twin(l, 'slow-link');
  await edit(join(l.src, 'small.bin'), 1000, 1000, 3);
  await edit(join(l.src, 'large.bin'), MiB, 1000, 4);

  // 1 Gbit/s, 100 ms: 12.5 MB a round trip, the small file goes whole without a query.
  const fast = await session(l, { dedup: true, delta: true, link: { rttMs: 100, bytesPerS: 125_000_000 } });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(opsOf(fast.ops, 'put').map((op) => op.put!.path), ['small.bin']);
  assert.deepEqual(opsOf(fast.ops, 'recipe').map((op) => op.recipe!.path), ['large.bin']);

  // 1 Mbit/s, 20 ms: 2,500 bytes a round trip, both by delta.
  const slowOps = await session(slow, { dedup: true, delta: true, link: { rttMs: 20, bytesPerS: 125_000 } });
  assert.deepEqual(treeDifferences(l.src, slow.dst), []);
  assert.equal(opsOf(slowOps.ops, 'put').length, 0);
  assert.deepEqual(opsOf(slowOps.ops, 'recipe').map((op) => op.recipe!.path).sort(), ['large.bin', 'small.bin']);
  assert.ok(opsOf(slowOps.ops, 'chunkDelta').length >= 2);
});

test('large changed files are asked about ahead of their turn (queries overlap) and still cross as deltas in order', async (t) => {
  const l = lab(t);
  const names = Array.from({ length: 6 }, (_, i) => `large-${i}.bin`);
  for (const [i, name] of names.entries()) writeFileSync(join(l.src, name), seededBytes(256 * KiB, 30 + i));
  await session(l, { dedup: true, delta: true });
  for (const [i, name] of names.entries()) await edit(join(l.src, name), 100 * KiB, 1000, 40 + i);
  const second = await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.deepEqual(opsOf(second.ops, 'recipe').map((op) => op.recipe!.path), names, 'every file by recipe, in queue order');
  assert.ok(opsOf(second.ops, 'chunkDelta').length >= names.length);
  assert.ok(second.maxOpenQueries > 1, `queries overlapped (at most ${second.maxOpenQueries} open at once)`);
});

test('a peer without delta@1 (no bases asked, none offered) replicates a changed tree as dedup alone', async (t) => {
  const l = lab(t);
  writeFileSync(join(l.src, 'a.txt'), seededBytes(20 * KiB, 1));
  writeFileSync(join(l.src, 'b.bin'), seededBytes(2 * MiB, 2));
  await session(l, { dedup: true, delta: false });
  await edit(join(l.src, 'a.txt'), 1000, 1000, 3);
  await edit(join(l.src, 'b.bin'), MiB, 1000, 4);
  const second = await session(l, { dedup: true, delta: false });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  assert.equal(opsOf(second.ops, 'chunkDelta').length, 0);
  assert.equal(opsOf(second.ops, 'put').length, 1); // the small file whole, as before delta@1
});

/**
 * a.txt synced, then edited in place; a source and a sink for the next
 * session whose apply goes through intercept (it calls apply itself).
 */
async function editedWithSink(
  l: Lab,
  intercept: (apply: DirSink['apply'], seq: number, meta: Uint8Array, data: Uint8Array) => Promise<void>,
): Promise<{ source: DirSource; sink: DirSink }> {
  writeFileSync(join(l.src, 'a.txt'), seededBytes(40 * KiB, 1));
  await session(l, { dedup: true, delta: true });
  await edit(join(l.src, 'a.txt'), 1000, 1000, 2);
  const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true });
  const sink = new DirSink({ streamId: 's', root: l.dst, chunks: l.chunks });
  const realApply = sink.apply.bind(sink);
  sink.apply = (seq, meta, data) => intercept(realApply, seq, meta, data);
  return { source, sink };
}

test('a lying delta (rebuilds a chunk other than the one named) is refused and nothing is applied', async (t) => {
  const l = lab(t);
  // Flip a literal byte of every delta on its way to the sink (its first op is
  // the literal of the edited blocks: a 2-byte varint, then the bytes).
  const { source, sink } = await editedWithSink(l, async (apply, seq, meta, data) => {
    const op: ObjectOp = objectOpCodec.decode(meta);
    if (op.chunkDelta) {
      const lie = Buffer.from(data);
      assert.equal(lie[0] & 1, 0, 'the first op is a literal');
      lie[10] ^= 0xff;
      return apply(seq, meta, lie);
    }
    return apply(seq, meta, data);
  });
  await assert.rejects(pump(source, sink, { dedup: true, delta: true }), (err: Error) => err.name === 'SinkError' && /put chunk delta against "a\.txt".*rebuilt chunk hashes to [0-9a-f]{64}, the op names/.test(err.message));
  await sink.close();
  assert.deepEqual(treeDifferences(l.src, l.dst), ['a.txt: content differs']);

  // An honest session completes.
  await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
});

test('a base that changed after the query is never used: the recipe fails retryably, the next session completes', async (t) => {
  const l = lab(t);
  // The destination's a.txt changes between the answer and the delta's apply.
  const { source, sink } = await editedWithSink(l, async (apply, seq, meta, data) => {
    if (objectOpCodec.decode(meta).chunkDelta) writeFileSync(join(l.dst, 'a.txt'), seededBytes(40 * KiB, 3));
    return apply(seq, meta, data);
  });
  await assert.rejects(pump(source, sink, { dedup: true, delta: true }), (err: Error) => err.name === 'MissingChunksError');
  await sink.close();
  assert.deepEqual(treeDifferences(l.src, l.dst), ['a.txt: content differs']);
  await session(l, { dedup: true, delta: true });
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
});

test('small changed files ask their chunk queries ahead of their turn: the round trips overlap', async (t) => {
  const l = lab(t);
  for (let i = 0; i < 20; i++) writeFileSync(join(l.src, `f-${i}.txt`), seededBytes(12 * KiB, 100 + i));
  await session(l, { dedup: true, delta: true });
  for (let i = 0; i < 20; i++) await edit(join(l.src, `f-${i}.txt`), 4 * KiB, 500, 200 + i);

  // A source asking a sink whose answers take a while (a long path): count the questions open at once.
  const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true });
  const sink = new DirSink({ streamId: 's', root: l.dst, chunks: l.chunks });
  const state = await sink.recover(new Uint8Array(0), 0);
  let open = 0;
  let mostOpen = 0;
  const queryChunks = async (query: Parameters<NonNullable<Parameters<DirSource['records']>[0]['queryChunks']>>[0]) => {
    open++;
    mostOpen = Math.max(mostOpen, open);
    const have = await sink.chunkHave!(query);
    await new Promise((resolve) => setTimeout(resolve, 20));
    open--;
    return have;
  };
  let seq = 0;
  for await (const record of source.records({ seq: 0, state, queryChunks, deltaBases: true }, new AbortController().signal)) {
    await sink.apply(++seq, record.meta, record.data);
    record.onDurable?.();
  }
  await sink.flush();
  await source.close();
  await sink.close();
  assert.deepEqual(treeDifferences(l.src, l.dst), []);
  t.diagnostic(`at most ${mostOpen} chunk queries open at once`);
  assert.ok(mostOpen > 1, `${mostOpen} chunk query open at once: one round trip per file`);
});
