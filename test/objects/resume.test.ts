// Resuming mid-file: a session that stops after some chunks of a big file
// leaves a durable partial at the sink; the next session sends only the rest.
// And recover() rolls back a partial written past its checkpoint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { manifestCodec, objectOpCodec } from '../../src/wire/messages.ts';
import { opsOf, pump, takeRecords, treeDifferences } from './link-harness.ts';

const CHUNK = 64 * 1024;
const BIG_CHUNKS = 20;

function setup(name: string) {
  const base = mkdtempSync(join(tmpdir(), `dwcp-objects-${name}-`));
  const src = join(base, 'src');
  const dst = join(base, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  // Sorted first, so the big file's chunks are the first records.
  writeFileSync(join(src, 'a-big.bin'), randomBytes(BIG_CHUNKS * CHUNK - 100));
  writeFileSync(join(src, 'b-small.txt'), 'small');
  return { base, src, dst };
}

function tempFiles(dst: string): string[] {
  return readdirSync(join(dst, '.dwcp-tmp'));
}

test('a session stopped mid-file resumes at the durable offset and sends only the rest', async (t) => {
  const { base, src, dst } = setup('resume');
  t.after(() => rmSync(base, { recursive: true, force: true }));

  // Session 1 stops after 7 chunks; the harness flushes and acks at the stop.
  const source1 = new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false });
  const first = await pump(source1, new DirSink({ streamId: 's', root: dst }), { stopAfter: 7, flushEvery: 3 });
  assert.equal(first.ops.length, 7);
  const state = manifestCodec.decode(first.checkpoint);
  assert.equal(state.partial?.path, 'a-big.bin');
  assert.equal(state.partial?.offset, 7 * CHUNK);
  assert.equal(source1.progress().inSync, false);

  // Session 2 (new agents): recover names the partial, the source resumes there.
  const sink2 = new DirSink({ streamId: 's', root: dst });
  const source2 = new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false });
  const second = await pump(source2, sink2, { seq: first.seq, checkpoint: first.checkpoint });
  const bigPuts = opsOf(second.ops, 'put').filter((op) => op.put!.path === 'a-big.bin');
  assert.equal(bigPuts.length, BIG_CHUNKS - 7);
  assert.equal(bigPuts[0].put!.offset, 7 * CHUNK);
  assert.equal(source2.progress().bytesTotal, BIG_CHUNKS * CHUNK - 100 - 7 * CHUNK + 'small'.length);
  assert.equal(source2.progress().inSync, true);
  assert.deepEqual(treeDifferences(src, dst), []);
  assert.deepEqual(tempFiles(dst), []);
  assert.equal(second.checkpoint.length, 0, 'no partial left, so the sink state is empty');
});

test('recover() truncates a partial written past its checkpoint and drops stray temp files', async (t) => {
  const { base, src, dst } = setup('truncate');
  t.after(() => rmSync(base, { recursive: true, force: true }));

  const source = new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false });
  const records = await takeRecords(source, new Uint8Array(0), 7);
  const sink = new DirSink({ streamId: 's', root: dst });
  await sink.recover(new Uint8Array(0), 0);

  // Chunks 0..3 are checkpointed; 4..6 are applied after it (then the agent dies).
  for (let i = 0; i < 4; i++) await sink.apply(i + 1, records[i].meta, records[i].data);
  const checkpoint = await sink.flush();
  for (let i = 4; i < 7; i++) await sink.apply(i + 1, records[i].meta, records[i].data);
  await sink.close();
  writeFileSync(join(dst, '.dwcp-tmp', 'stray.part'), 'left by a crash');
  const [partialTemp] = tempFiles(dst).filter((n) => n !== 'stray.part');
  assert.equal(statSync(join(dst, '.dwcp-tmp', partialTemp)).size, 7 * CHUNK);

  // Recover: back to 4 chunks, stray gone, the manifest names the partial.
  const restarted = new DirSink({ streamId: 's', root: dst });
  const manifest = manifestCodec.decode(await restarted.recover(checkpoint, 4));
  assert.deepEqual(tempFiles(dst), [partialTemp]);
  assert.equal(statSync(join(dst, '.dwcp-tmp', partialTemp)).size, 4 * CHUNK);
  assert.equal(manifest.partial?.offset, 4 * CHUNK);
  assert.equal(manifest.partial?.path, 'a-big.bin');

  // A chunk beyond the checkpoint no longer continues the partial; the next one does.
  await assert.rejects(restarted.apply(5, records[5].meta, records[5].data), SinkError);
  await restarted.apply(5, records[4].meta, records[4].data);
  await restarted.close();
});

test('recover() drops a checkpointed partial whose temp file is gone', async (t) => {
  const { base, src, dst } = setup('gone');
  t.after(() => rmSync(base, { recursive: true, force: true }));

  const first = await pump(new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false }), new DirSink({ streamId: 's', root: dst }), { stopAfter: 3 });
  rmSync(join(dst, '.dwcp-tmp'), { recursive: true });
  const manifest = manifestCodec.decode(await new DirSink({ streamId: 's', root: dst }).recover(first.checkpoint, first.seq));
  assert.equal(manifest.partial, null);

  // The next session then starts the file from zero, and it still arrives whole.
  const second = await pump(new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false }), new DirSink({ streamId: 's', root: dst }), { seq: first.seq, checkpoint: first.checkpoint });
  assert.equal(opsOf(second.ops, 'put')[0].put!.offset, 0);
  assert.deepEqual(treeDifferences(src, dst), []);
});

test('a chunk at offset > 0 with no matching partial is refused, and a replayed commit is a no-op', async (t) => {
  const { base, src, dst } = setup('refuse');
  t.after(() => rmSync(base, { recursive: true, force: true }));

  const records = await takeRecords(new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false }), new Uint8Array(0), BIG_CHUNKS);
  const sink = new DirSink({ streamId: 's', root: dst });
  await sink.recover(new Uint8Array(0), 0);
  assert.equal(objectOpCodec.decode(records[2].meta).put?.offset, 2 * CHUNK);
  await assert.rejects(sink.apply(1, records[2].meta, records[2].data), (err: Error) => err instanceof SinkError && /does not continue the partial/.test(err.message));
  assert.deepEqual(readdirSync(dst).filter((n) => n !== '.dwcp-tmp'), []);

  // Apply the whole file, then replay two of its chunks: nothing changes, nothing is refused.
  for (let i = 0; i < records.length; i++) await sink.apply(i + 1, records[i].meta, records[i].data);
  const before = statSync(join(dst, 'a-big.bin'), { bigint: true });
  await sink.apply(100, records[0].meta, records[0].data);
  await sink.apply(101, records[5].meta, records[5].data);
  const after = statSync(join(dst, 'a-big.bin'), { bigint: true });
  assert.equal(after.ino, before.ino);
  assert.equal(after.mtimeNs, before.mtimeNs);
  assert.deepEqual(treeDifferences(join(src), dst).filter((p) => !p.startsWith('b-small')), []);
  await sink.close();
});

test('a file that changes while it is sent starts over from offset 0 in its new version', async (t) => {
  const { base, src, dst } = setup('changing');
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const source = new DirSource({ streamId: 's', root: src, chunkBytes: CHUNK, once: true, watch: false });
  const sink = new DirSink({ streamId: 's', root: dst });
  await sink.recover(new Uint8Array(0), 0);

  // Three chunks go out, then the file is rewritten with another size.
  const applied: Array<{ put?: { path: string; offset: number; size: number }; onDurable?: () => void }> = [];
  let seq = 0;
  let changed = false;
  for await (const record of source.records({ seq: 0, state: new Uint8Array(0) }, new AbortController().signal)) {
    await sink.apply(++seq, record.meta, record.data);
    const put = objectOpCodec.decode(record.meta).put;
    applied.push({ put: put && { path: put.path, offset: put.offset, size: put.version.size }, onDurable: record.onDurable });
    if (seq === 3 && !changed) {
      writeFileSync(join(src, 'a-big.bin'), randomBytes(BIG_CHUNKS * CHUNK + 12345));
      changed = true;
    }
  }
  await sink.flush();
  for (const a of applied) a.onDurable?.();
  await sink.close();

  const big = applied.filter((a) => a.put?.path === 'a-big.bin').map((a) => a.put!);
  assert.deepEqual(big.slice(0, 4).map((p) => p.offset), [0, CHUNK, 2 * CHUNK, 0]);
  assert.equal(big[3].size, BIG_CHUNKS * CHUNK + 12345);
  assert.equal(big.length, 3 + BIG_CHUNKS + 1);
  assert.deepEqual(treeDifferences(src, dst), []);
  assert.deepEqual(tempFiles(dst), []);
  const p = source.progress();
  assert.equal(p.inSync, true);
  assert.equal(p.filesDone, p.filesTotal);
  assert.equal(p.bytesDone, p.bytesTotal);
});
