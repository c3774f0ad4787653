// Stage dict@1 through the objects stream's real source and sink, each with
// its own region's consensus store (two embedded stores on files): the
// source trains the stream's dictionary from its small files and stores it
// once; it ships it to the destination once (PutDictionary), which stores it
// in its own store and lists it in its manifest, so later sessions, also
// after the destination restarts, do not ship it again; small files travel
// as PutDictFile with fewer bytes than without; a PutDictFile naming a
// dictionary the destination does not hold is refused with an error naming
// the id, and the next session ships the dictionary first and completes; a
// peer without dict@1 gets plain puts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import { DictionaryStore, UnknownDictionaryError } from '../../src/encoding/hde/dictionary-store.ts';
import { DirSink } from '../../src/streams/objects/dir-sink.ts';
import { DirSource } from '../../src/streams/objects/dir-source.ts';
import { objectOpCodec } from '../../src/wire/messages.ts';
import { writeSmallTree } from '../helpers/small-text-tree.ts';
import { opsOf, pump, treeDifferences, type PumpResult } from './link-harness.ts';

interface Lab {
  base: string;
  src: string;
  sourceStore: EmbeddedStore;
  destStorePath: string;
}

async function lab(t: { after(fn: () => Promise<void> | void): void }): Promise<Lab> {
  const base = mkdtempSync(join(tmpdir(), 'dwcp-dict-replicate-'));
  const l = { base, src: join(base, 'src'), sourceStore: await EmbeddedStore.open(join(base, 'source-region.db')), destStorePath: join(base, 'dest-region.db') };
  mkdirSync(l.src);
  t.after(async () => {
    await l.sourceStore.close();
    rmSync(base, { recursive: true, force: true });
  });
  return l;
}

/** One session into dst, the destination's store opened for it and closed after (a restart each time). */
async function session(l: Lab, dst: string, storePath: string, dictionary: boolean): Promise<PumpResult> {
  mkdirSync(dst, { recursive: true });
  const destStore = await EmbeddedStore.open(storePath);
  try {
    const source = new DirSource({ streamId: 's', root: l.src, watch: false, once: true, dictionaries: new DictionaryStore(l.sourceStore, 'fed') });
    const sink = new DirSink({ streamId: 's', root: dst, dictionaries: new DictionaryStore(destStore, 'fed') });
    return await pump(source, sink, { dictionary });
  } finally {
    await destStore.close();
  }
}

test('the dictionary is trained and stored once, shipped once, kept across a destination restart, and small files cost fewer bytes', async (t) => {
  const l = await lab(t);
  writeSmallTree(l.src, 400, 1);
  const dst = join(l.base, 'dst');

  const first = await session(l, dst, l.destStorePath, true);
  assert.deepEqual(treeDifferences(l.src, dst), []);
  assert.equal(opsOf(first.ops, 'dictionary').length, 1, 'shipped once');
  assert.ok(opsOf(first.ops, 'dictFile').length >= 390, `${opsOf(first.ops, 'dictFile').length} dict files`);
  const id = await new DictionaryStore(l.sourceStore, 'fed').streamDictionary('s');
  assert.match(id ?? '', /^[0-9a-f]{16}$/);
  assert.equal(opsOf(first.ops, 'dictionary')[0].dictionary!.id, id);

  // The same tree without dict@1: plain puts; compare the bytes that crossed (before the frame's own zstd).
  const plain = await session(l, join(l.base, 'dst-plain'), join(l.base, 'plain-region.db'), false);
  assert.deepEqual(treeDifferences(l.src, join(l.base, 'dst-plain')), []);
  assert.equal(opsOf(plain.ops, 'dictFile').length + opsOf(plain.ops, 'dictionary').length, 0);
  const dictBytes = opsOf(first.ops, 'dictionary').length && first.bytes;
  t.diagnostic(`400 small files: ${plain.bytes} bytes as puts, ${dictBytes} with the dictionary (its own bytes included, shipped once)`);
  assert.ok(first.bytes < plain.bytes, `${first.bytes} with the dictionary, ${plain.bytes} without`);

  // New and changed files after the destination restarted (its store reopened): the dictionary is not shipped again.
  writeSmallTree(join(l.src, 'more'), 40, 2);
  const second = await session(l, dst, l.destStorePath, true);
  assert.deepEqual(treeDifferences(l.src, dst), []);
  assert.equal(opsOf(second.ops, 'dictionary').length, 0, 'not shipped again');
  assert.ok(opsOf(second.ops, 'dictFile').length >= 38);
  // The source keeps the stream's dictionary too: still the same id.
  assert.equal(await new DictionaryStore(l.sourceStore, 'fed').streamDictionary('s'), id);
});

test('a dict file naming a dictionary the destination does not hold is refused naming the id; the next session ships it first', async (t) => {
  const l = await lab(t);
  writeSmallTree(l.src, 100, 3);
  const dst = join(l.base, 'dst');
  const first = await session(l, dst, l.destStorePath, true);
  const id = opsOf(first.ops, 'dictionary')[0].dictionary!.id;
  writeSmallTree(join(l.src, 'new'), 1, 5);

  // A destination whose region store does not hold the dictionary (lost, or never shipped there).
  const emptyStore = await EmbeddedStore.open(join(l.base, 'other-region.db'));
  try {
    const sink = new DirSink({ streamId: 's', root: dst, dictionaries: new DictionaryStore(emptyStore, 'fed') });
    const frame = (await new DictionaryStore(l.sourceStore, 'fed').codec(id)).compress(Buffer.from('{"kind":"x"}'.repeat(20)), 3);
    const meta = objectOpCodec.encode({ dictFile: { path: 'new/status/0.json', version: { size: 240, mtimeUs: 1, mode: 0o644 }, dictionaryId: id } });
    await sink.recover(new Uint8Array(0), 0);
    await assert.rejects(sink.apply(1, meta, frame), (err: Error) => err instanceof UnknownDictionaryError && err.message === `dictionary ${id} is not in this region's consensus store: frame refused until the dictionary arrives`);
    await sink.close();
    assert.deepEqual(treeDifferences(l.src, dst), ['new: missing at destination', 'new/logs: missing at destination', 'new/status: missing at destination', 'new/status/0.json: missing at destination']);
  } finally {
    await emptyStore.close();
  }

  // The next session against that store: its manifest does not list the id, so the dictionary goes first.
  const retried = await session(l, dst, join(l.base, 'other-region.db'), true);
  assert.deepEqual(treeDifferences(l.src, dst), []);
  assert.equal(opsOf(retried.ops, 'dictionary').length, 1);
  assert.equal(opsOf(retried.ops, 'dictFile').length, 1);
});

test('a peer without dict@1 gets plain puts; a shipped dictionary whose bytes are not its id is refused', async (t) => {
  const l = await lab(t);
  writeSmallTree(l.src, 40, 4);
  const dst = join(l.base, 'dst');
  const r = await session(l, dst, l.destStorePath, false);
  assert.deepEqual(treeDifferences(l.src, dst), []);
  assert.equal(opsOf(r.ops, 'dictFile').length + opsOf(r.ops, 'dictionary').length, 0);
  assert.equal(opsOf(r.ops, 'put').length, 40);

  const destStore = await EmbeddedStore.open(l.destStorePath);
  try {
    const sink = new DirSink({ streamId: 's', root: dst, dictionaries: new DictionaryStore(destStore, 'fed') });
    await sink.recover(new Uint8Array(0), 0);
    await assert.rejects(sink.apply(1, objectOpCodec.encode({ dictionary: { id: '0123456789abcdef' } }), Buffer.alloc(4096, 7)), (err: Error) => err.name === 'SinkError' && /put dictionary 0123456789abcdef at seq 1: shipped dictionary 0123456789abcdef: its 4096 bytes are dictionary [0-9a-f]{16}/.test(err.message));
    await sink.close();
  } finally {
    await destStore.close();
  }
});
