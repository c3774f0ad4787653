// Assembling a file from a recipe on a real sink: an edited large file is
// rebuilt from the chunks the sink already holds plus the few it was sent,
// byte for byte; a chunk no source can produce (unknown, damaged in the
// stage, wrong inline bytes) is reported missing and nothing more is written.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BeneathRoot } from '../../src/streams/objects/beneath-root.ts';
import { directoryChunkFiles } from '../../src/streams/objects/chunks/chunk-files.ts';
import { ChunkIndex } from '../../src/streams/objects/chunks/chunk-index.ts';
import { ChunkStage } from '../../src/streams/objects/chunks/chunk-stage.ts';
import { assembleRecipe, type RecipeChunkSources } from '../../src/streams/objects/chunks/recipe-assembly.ts';
import { chunkBuffer, chunkHash } from '../../src/encoding/hde/fastcdc.ts';
import { checkPutRecipe, MAX_INLINE_CHUNK_BYTES } from '../../src/wire/dedup-messages.ts';
import type { PutRecipe } from '../../src/wire/messages.ts';
import { seededBytes as bytes } from '../helpers/seeded-bytes.ts';

const MiB = 1024 * 1024;

interface Fixture {
  root: string;
  index: ChunkIndex;
  stage: ChunkStage;
  sources: RecipeChunkSources;
}

async function fixture(t: TestContext): Promise<Fixture> {
  const base = await mkdtemp(join(tmpdir(), 'dwcp-recipe-'));
  const root = join(base, 'root');
  await mkdir(root);
  const beneath = await BeneathRoot.open(root);
  const index = await ChunkIndex.open(join(base, 'index'), directoryChunkFiles(beneath));
  const stage = await ChunkStage.open(join(base, 'stage'));
  t.after(async () => {
    await index.close();
    await beneath.close();
    await rm(base, { recursive: true, force: true });
  });
  return { root, index, stage, sources: { staged: (h) => stage.get(h), held: (h) => index.locate(h) } };
}

/** Assemble into a file; returns the assembly and the file's bytes. */
async function assembleTo(path: string, recipe: PutRecipe, inline: Buffer, sources: RecipeChunkSources) {
  const fh = await open(path, 'w');
  try {
    const result = await assembleRecipe(recipe, inline, sources, async (b, position) => {
      await fh.write(b, 0, b.length, position);
    });
    return { result, written: await readFile(path) };
  } finally {
    await fh.close();
  }
}

test('an edited 4 MiB file is assembled from held chunks plus the few sent, byte for byte', async (t) => {
  const f = await fixture(t);
  // The sink holds version 1, recorded in its index.
  const v1 = bytes(4 * MiB, 1);
  await writeFile(join(f.root, 'big'), v1);
  const st = await stat(join(f.root, 'big'), { bigint: true });
  await f.index.record('big', { size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n) }, chunkBuffer(v1));

  // Version 2: 1 KiB inserted at the start. The source asks, then sends what is missing.
  const v2 = Buffer.concat([bytes(1024, 2), v1]);
  const chunks = chunkBuffer(v2);
  const missing = new Set((await f.index.has(chunks.map((c) => c.hash))).map((h) => h.toString('hex')));
  assert.ok(missing.size >= 1 && missing.size <= 2, `${missing.size} of ${chunks.length} missing`);
  const inlineParts: Buffer[] = [];
  const recipe: PutRecipe = {
    path: 'big',
    version: { size: v2.length, mtimeUs: 1, mode: 0o644 },
    chunks: chunks.map((c) => {
      const isMissing = missing.has(c.hash.toString('hex'));
      const inline = isMissing && c.length <= MAX_INLINE_CHUNK_BYTES;
      if (inline) inlineParts.push(v2.subarray(c.offset, c.offset + c.length));
      return { hash: c.hash, length: c.length, inline };
    }),
  };
  for (const c of chunks) if (missing.has(c.hash.toString('hex')) && c.length > MAX_INLINE_CHUNK_BYTES) await f.stage.put(c.hash, v2.subarray(c.offset, c.offset + c.length));
  const inline = Buffer.concat(inlineParts);
  checkPutRecipe(recipe, inline.length);

  const { result, written } = await assembleTo(join(f.root, '.tmp-big'), recipe, inline, f.sources);
  assert.deepEqual(result.missing, []);
  assert.ok(written.equals(v2));
  assert.equal(result.inlineBytes + result.stagedBytes + result.heldBytes, v2.length);
  assert.ok(result.heldBytes > v2.length - 2 * 256 * 1024, `held ${result.heldBytes} of ${v2.length}`);
  assert.deepEqual(result.chunks.map((c) => [c.offset, c.length]), chunks.map((c) => [c.offset, c.length]));
  // Resending a staged chunk (a frame replayed after kill -9) is harmless.
  const first = chunks[0];
  await f.stage.put(first.hash, v2.subarray(first.offset, first.offset + first.length));
  await f.stage.put(first.hash, v2.subarray(first.offset, first.offset + first.length));
});

test('a chunk no source can produce is reported missing and writing stops there', async (t) => {
  const f = await fixture(t);
  const a = bytes(100_000, 3);
  const b = bytes(50_000, 4);
  const c = bytes(30_000, 5);
  await f.stage.put(chunkHash(a), a);
  await f.stage.put(chunkHash(c), c);
  // Damage c in the stage: its bytes no longer match its name.
  await writeFile(join(f.stage.dir, chunkHash(c).toString('hex')), bytes(30_000, 6));
  const recipe: PutRecipe = {
    path: 'x',
    version: { size: 180_000, mtimeUs: 1, mode: 0o644 },
    chunks: [
      { hash: chunkHash(a), length: a.length, inline: false },
      { hash: chunkHash(b), length: b.length, inline: false },
      { hash: chunkHash(c), length: c.length, inline: false },
    ],
  };
  const writes: number[] = [];
  const result = await assembleRecipe(recipe, Buffer.alloc(0), f.sources, async (_bytes, position) => {
    writes.push(position);
  });
  assert.deepEqual(result.missing.map((h) => h.toString('hex')), [chunkHash(b), chunkHash(c)].map((h) => h.toString('hex')));
  assert.deepEqual(writes, [0]);
  // The damaged staged chunk was dropped.
  assert.equal(await f.stage.get(chunkHash(c)), null);
});

test('inline bytes that are not the chunk named are never written; the stage refuses wrong bytes', async (t) => {
  const f = await fixture(t);
  const good = bytes(1000, 7);
  const recipe: PutRecipe = { path: 'y', version: { size: 1000, mtimeUs: 1, mode: 0o644 }, chunks: [{ hash: chunkHash(good), length: 1000, inline: true }] };
  let wrote = false;
  const result = await assembleRecipe(recipe, bytes(1000, 8), f.sources, async () => {
    wrote = true;
  });
  assert.equal(result.missing.length, 1);
  assert.equal(wrote, false);
  await assert.rejects(f.stage.put(chunkHash(good), bytes(1000, 9)), /chunk stage: bytes do not hash to [0-9a-f]{64}/);
});
