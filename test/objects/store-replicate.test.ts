// The objects source and sink over a store that is not a directory: a tree
// held in the in-memory test double replicates into another one through
// DirSource and DirSink unchanged (moves as renames, deletes, a large file
// in chunks, a session stopped mid-file that resumes at its durable offset),
// so a new store (an S3 bucket) is a new ObjectStore, not a new stream kind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import type { ObjectStore } from '../../src/streams/objects/store/object-store.ts';
import { manifestCodec } from '../../src/wire/messages.ts';
import type { FileVersion } from '../../src/wire/messages.ts';
import { pump } from './link-harness.ts';
import { MemoryStore } from './memory-store.ts';

const CHUNK = 1024;
const BIG_CHUNKS = 12;
const MTIME_US = 1_700_000_000_654_321;

async function put(store: ObjectStore, path: string, data: Buffer, mode = 0o644): Promise<void> {
  const version: FileVersion = { size: data.length, mtimeUs: MTIME_US, mode };
  const upload = await store.beginUpload(path, version);
  await upload!.write(data, 0);
  await upload!.commit();
}

/** Every entry of a store with its version and content digest (directory mtimes are not replicated), for comparing two stores. */
async function snapshot(store: ObjectStore): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await store.list()).entries) {
    if (e.directory) {
      out.push(`${e.path}/ mode=${e.version.mode.toString(8)}`);
      continue;
    }
    {
      const reader = await store.openRead(e.path);
      const data = Buffer.alloc(e.version.size);
      await reader!.read(data, 0, data.length, 0);
      await reader!.close();
      const digest = createHash('sha256').update(data).digest('hex').slice(0, 16);
      out.push(`${e.path} size=${e.version.size} mode=${e.version.mode.toString(8)} mtime=${e.version.mtimeUs} sha256=${digest}`);
    }
  }
  return out;
}

function source(store: ObjectStore): DirSource {
  return new DirSource({ streamId: 's', store, chunkBytes: CHUNK, once: true, watch: false });
}

test('a tree in a memory store replicates into another memory store through the objects source and sink, resuming mid-file', async () => {
  const src = new MemoryStore();
  const dst = new MemoryStore();
  await src.makeDir('docs', 0o750);
  await put(src, 'docs/readme.txt', Buffer.from('hello, stores'));
  await put(src, 'a-big.bin', Buffer.alloc(BIG_CHUNKS * CHUNK - 100, 7), 0o600);
  await put(src, 'tiny', Buffer.from('t'));

  // Session 1 stops inside the big file; its durable part is the checkpoint's partial.
  const first = await pump(source(src), new DirSink({ streamId: 's', store: dst }), { stopAfter: 5, flushEvery: 2 });
  const partial = manifestCodec.decode(first.checkpoint).partial;
  assert.equal(partial?.path, 'a-big.bin');
  assert.equal(partial?.offset, 4 * CHUNK);

  // Session 2 resumes there and finishes.
  const second = await pump(source(src), new DirSink({ streamId: 's', store: dst }), { seq: first.seq, checkpoint: first.checkpoint });
  const bigPuts = second.ops.filter((op) => op.put?.path === 'a-big.bin');
  assert.equal(bigPuts[0].put!.offset, 4 * CHUNK, 'the big file resumed at its durable offset');
  assert.deepEqual(await snapshot(dst), await snapshot(src));

  // A move and a delete travel as a rename and a delete.
  await src.rename('a-big.bin', 'moved/big.bin', { size: BIG_CHUNKS * CHUNK - 100, mtimeUs: MTIME_US, mode: 0o600 });
  await src.remove('tiny');
  const third = await pump(source(src), new DirSink({ streamId: 's', store: dst }), { seq: second.seq, checkpoint: second.checkpoint });
  assert.ok(third.ops.some((op) => op.rename?.from === 'a-big.bin' && op.rename.to === 'moved/big.bin'), 'the move is one rename');
  assert.ok(third.ops.some((op) => op.delete?.path === 'tiny'));
  assert.equal(third.ops.filter((op) => op.put).length, 0, 'nothing is sent again');
  assert.deepEqual(await snapshot(dst), await snapshot(src));
});
