// Stage dedup@1 end to end in one process, with the real parts of both
// sides and the wire codecs between them (no agents, no sockets: the lead
// wires these into the objects stream): the source chunks a file and asks,
// the destination answers from its chunk index, the source sends only what
// is missing, the destination assembles, commits and records. A copied or
// renamed file sends no chunk data, an insert sends a chunk or two, and a
// destination whose index was lost rebuilds it and still dedups.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileChunks } from '../../src/encoding/hde/file-chunks.ts';
import { BeneathRoot } from '../../src/streams/objects/beneath-root.ts';
import { directoryChunkFiles } from '../../src/streams/objects/chunks/chunk-files.ts';
import { ChunkIndex } from '../../src/streams/objects/chunks/chunk-index.ts';
import { ChunkStage } from '../../src/streams/objects/chunks/chunk-stage.ts';
import { assembleRecipe } from '../../src/streams/objects/chunks/recipe-assembly.ts';
import { chunkQueryFor, planRecipe, type ChunkedFile } from '../../src/streams/objects/chunks/recipe-plan.ts';
import { checkChunkHave, checkChunkQuery, checkPutRecipe, missingBitmap, queryHashes } from '../../src/wire/dedup-messages.ts';
import { envelopeCodec, objectOpCodec } from '../../src/wire/messages.ts';
import { seededBytes as bytes } from '../helpers/seeded-bytes.ts';

const MiB = 1024 * 1024;

async function readRange(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(length);
    await fh.read(b, 0, length, offset);
    return b;
  } finally {
    await fh.close();
  }
}

test('copied, renamed and edited files send only their new chunks; a lost index is rebuilt and dedup goes on', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'dwcp-dedup-flow-'));
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(src);
  await mkdir(join(root, '.dwcp-tmp'), { recursive: true });
  const beneath = await BeneathRoot.open(root);
  let index = await ChunkIndex.open(join(base, 'index'), directoryChunkFiles(beneath));
  const stage = await ChunkStage.open(join(base, 'stage'));
  t.after(async () => {
    await index.close();
    await beneath.close();
    await rm(base, { recursive: true, force: true });
  });
  let queryId = 0;

  /** Replicate one source file to the same path at the destination; returns the chunk bytes that crossed. */
  async function replicate(path: string): Promise<number> {
    // Source: chunk and ask.
    const st = await stat(join(src, path), { bigint: true });
    const version = { size: Number(st.size), mtimeUs: Number(st.mtimeNs / 1000n), mode: Number(st.mode) & 0o7777 };
    const file: ChunkedFile = { path, version, chunks: [] };
    for await (const c of fileChunks(join(src, path))) file.chunks.push({ offset: c.offset, length: c.length, hash: c.hash });
    const query = checkChunkQuery(envelopeCodec.decode(envelopeCodec.encode({ chunkQuery: chunkQueryFor('objects-a', ++queryId, file) })).chunkQuery!);

    // Destination: answer from the index.
    const asked = queryHashes(query);
    const missing = new Set((await index.has(asked)).map((h) => h.toString('hex')));
    const answer = { streamId: query.streamId, queryId: query.queryId, count: asked.length, missing: missingBitmap(asked.map((h) => missing.has(h.toString('hex')))), refusal: '' };
    const have = checkChunkHave(envelopeCodec.decode(envelopeCodec.encode({ chunkHave: answer })).chunkHave!, asked.length);

    // Source: send the missing chunks, then the recipe (through the ObjectOp codec).
    const plan = planRecipe(file, have);
    let sent = 0;
    for (const c of plan.chunkData) {
      const data = await readRange(join(src, path), c.offset, c.length);
      const op = objectOpCodec.decode(objectOpCodec.encode({ chunkData: { hash: c.hash } }));
      await stage.put(op.chunkData!.hash, data);
      sent += data.length;
    }
    const payload = Buffer.concat(await Promise.all(plan.inline.map((c) => readRange(join(src, path), c.offset, c.length))));
    sent += payload.length;
    const recipe = checkPutRecipe(objectOpCodec.decode(objectOpCodec.encode({ recipe: plan.recipe })).recipe!, payload.length);

    // Destination: assemble a temp file, commit it, record its chunks.
    const temp = join(root, '.dwcp-tmp', `recv-${queryId}`);
    const fh = await open(temp, 'w');
    const result = await assembleRecipe(recipe, payload, { staged: (h) => stage.get(h), held: (h) => index.locate(h) }, async (b, position) => {
      await fh.write(b, 0, b.length, position);
    });
    await fh.sync();
    await fh.close();
    assert.deepEqual(result.missing, [], `${path}: chunks missing at apply`);
    await utimes(temp, version.mtimeUs / 1e6, version.mtimeUs / 1e6);
    await rename(temp, join(root, path));
    const applied = await stat(join(root, path), { bigint: true });
    await index.record(path, { size: Number(applied.size), mtimeUs: Number(applied.mtimeNs / 1000n) }, result.chunks);
    await stage.remove(plan.chunkData.map((c) => c.hash));
    assert.ok((await readFile(join(root, path))).equals(await readFile(join(src, path))), `${path} differs`);
    return sent;
  }

  // A new file crosses whole.
  const a = bytes(3 * MiB, 1);
  await writeFile(join(src, 'a.bin'), a);
  assert.equal(await replicate('a.bin'), a.length);

  // A copy and a rename send no chunk data.
  await copyFile(join(src, 'a.bin'), join(src, 'copy.bin'));
  assert.equal(await replicate('copy.bin'), 0);
  await rename(join(src, 'copy.bin'), join(src, 'moved.bin'));
  assert.equal(await replicate('moved.bin'), 0);

  // A 1 KiB insert at the start sends a chunk or two, not the file.
  await writeFile(join(src, 'a.bin'), Buffer.concat([bytes(1024, 2), a]));
  const edited = await replicate('a.bin');
  assert.ok(edited > 0 && edited <= 2 * 256 * 1024 + 1024, `insert sent ${edited} bytes`);

  // The destination loses its index: it rebuilds from its files, and a copy still sends nothing.
  await index.close();
  await rm(join(base, 'index'), { recursive: true, force: true });
  index = await ChunkIndex.open(join(base, 'index'), directoryChunkFiles(beneath));
  assert.equal(index.stats().rebuiltOnOpen, true);
  await copyFile(join(src, 'a.bin'), join(src, 'again.bin'));
  assert.equal(await replicate('again.bin'), 0);
});

test('the plan sends each missing chunk once, small ones inline, and everything when the destination refuses', () => {
  const h = (n: number): Buffer => Buffer.alloc(32, n);
  const file: ChunkedFile = {
    path: 'p',
    version: { size: 250_000, mtimeUs: 1, mode: 0o644 },
    chunks: [
      { offset: 0, length: 100_000, hash: h(1) },
      // The first chunk's content again (a copy within the file).
      { offset: 100_000, length: 100_000, hash: h(1) },
      { offset: 200_000, length: 40_000, hash: h(3) },
      { offset: 240_000, length: 10_000, hash: h(4) },
    ],
  };
  const query = chunkQueryFor('s', 1, file);
  assert.equal(queryHashes(query).length, 3);
  // The destination holds h(3); h(1) and h(4) are missing.
  const have = { streamId: 's', queryId: 1, count: 3, missing: missingBitmap([true, false, true]), refusal: '' };
  const plan = planRecipe(file, have);
  assert.deepEqual(plan.chunkData.map((c) => c.offset), [0]);
  assert.deepEqual(plan.inline.map((c) => c.offset), [240_000]);
  assert.deepEqual(plan.recipe.chunks.map((c) => c.inline), [false, false, false, true]);
  assert.equal(plan.heldBytes, 40_000);
  checkPutRecipe(plan.recipe, 10_000);
  const refused = planRecipe(file, { streamId: 's', queryId: 1, count: 0, missing: Buffer.alloc(0), refusal: 'no chunk index' });
  assert.equal(refused.heldBytes, 0);
  assert.deepEqual(refused.chunkData.map((c) => c.offset), [0, 200_000]);
});
