// Stage dict@1's dictionaries in the region consensus store: trained from a
// stream's small files, stored once by id in the source region's store,
// shipped to the destination region's own store (accepted only when the
// bytes are the id), kept across a restart of the destination (embedded
// store reopened from its file; a new etcd client on a real 3-member
// cluster), and a frame naming a dictionary the destination does not hold
// is refused with an error naming the id, never decoded. Also prints the
// ratio the dictionary gains on many small JSON/text files.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedStore } from '../../../src/consensus/embedded-store.ts';
import { EtcdStore } from '../../../src/consensus/etcd-store.ts';
import type { ConsensusStore } from '../../../src/consensus/consensus-store.ts';
import { DictionaryStore, MAX_DICTIONARY_BYTES, UnknownDictionaryError, dictionaryKey } from '../../../src/encoding/hde/dictionary-store.ts';
import { DictionaryCodec } from '../../../src/encoding/hde/dictionary-codec.ts';
import { buildRawDictionary } from '../../../src/encoding/hde/raw-dictionary.ts';
import { zstd } from '../../../src/encoding/zstd-binding.ts';
import { prng } from '../../../src/cli/sample-tree.ts';
import { startEtcdCluster } from '../../helpers/etcd-cluster.ts';

const LEVEL = 3;

/** Small JSON and log files of one stream (a config/status tree). */
function smallFiles(n: number, seed: number): Buffer[] {
  const rnd = prng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
  const regions = ['eu-west-1', 'us-east-1', 'ap-south-1'];
  return Array.from({ length: n }, (_, i) =>
    i % 2 === 0
      ? Buffer.from(JSON.stringify({ apiVersion: 'dwcp.io/v1', kind: 'Status', metadata: { name: `stream-${Math.floor(rnd() * 1000)}`, region: pick(regions) }, status: { lagSeconds: Math.floor(rnd() * 100), durableSeq: Math.floor(rnd() * 1e6), conditions: [{ type: 'Ready', status: pick(['True', 'False']) }] } }, null, 2))
      : Buffer.from(Array.from({ length: 4 + Math.floor(rnd() * 10) }, () => `2026-11-${10 + Math.floor(rnd() * 18)}T0${Math.floor(rnd() * 9)}:00Z ${pick(['INFO', 'WARN'])} ${pick(regions)} ${pick(['checkpoint committed', 'lease renewed'])} seq=${Math.floor(rnd() * 1e6)}`).join('\n')),
  );
}

function plainZstd(data: Buffer): number {
  const out = Buffer.allocUnsafe(zstd.compressBound(data.length));
  return new zstd.CCtx().compressUsingDict(out, data, new Uint8Array(0), LEVEL);
}

/** Source trains and stores; the destination refuses a frame until the dictionary is shipped, then decodes it. */
async function shipAndUse(source: ConsensusStore, dest: ConsensusStore, diagnostic: (msg: string) => void): Promise<{ id: string; frame: Buffer; plain: Buffer }> {
  const src = new DictionaryStore(source, 'fed');
  const dst = new DictionaryStore(dest, 'fed');
  const dictionary = buildRawDictionary(smallFiles(300, 1));
  const first = await src.put(dictionary);
  assert.equal(first.created, true);
  assert.deepEqual(await src.put(dictionary), { id: first.id, created: false }, 'stored once');
  await src.setStreamDictionary('objects-a', first.id);
  assert.equal(await src.streamDictionary('objects-a'), first.id);

  // Ratio on files not in the sample: independent frames with and without the dictionary.
  const codec = await src.codec(first.id);
  const held = smallFiles(600, 2);
  const raw = held.reduce((n, f) => n + f.length, 0);
  const without = held.reduce((n, f) => n + plainZstd(f), 0);
  const withDict = held.reduce((n, f) => n + codec.compress(f, LEVEL).length, 0);
  diagnostic(`${held.length} small files, ${raw} bytes: zstd-${LEVEL} alone ${(raw / without).toFixed(2)}x, with a ${dictionary.length}-byte dictionary ${(raw / withDict).toFixed(2)}x`);
  assert.ok(withDict < without, `dictionary frames ${withDict} bytes, plain ${without}`);

  // The destination does not hold it: the frame is refused, naming the id.
  const plain = held[0];
  const frame = codec.compress(plain, LEVEL);
  await assert.rejects(dst.decompress(first.id, frame, plain.length), (err: Error) => err instanceof UnknownDictionaryError && err.id === first.id && err.message.includes(`dictionary ${first.id} is not in`));

  // Shipped bytes that are not the id are refused; the real ones are stored once.
  const lie = Buffer.from(dictionary);
  lie[0] ^= 1;
  await assert.rejects(dst.accept(first.id, lie), new RegExp(`shipped dictionary ${first.id}: its ${lie.length} bytes are dictionary [0-9a-f]{16}`));
  assert.deepEqual(await dst.accept(first.id, dictionary), { created: true });
  assert.deepEqual(await dst.accept(first.id, dictionary), { created: false });
  assert.ok((await dst.decompress(first.id, frame, plain.length)).equals(plain));
  return { id: first.id, frame, plain };
}

test('embedded stores: a dictionary is stored once, shipped, refused before it arrives, and kept across a destination restart', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'dwcp-dict-store-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const source = await EmbeddedStore.open(path.join(dir, 'source-region.db'));
  let dest = await EmbeddedStore.open(path.join(dir, 'dest-region.db'));
  try {
    const { id, frame, plain } = await shipAndUse(source, dest, (m) => t.diagnostic(m));
    // Restart: the destination's store reopened from its file still holds it.
    await dest.close();
    dest = await EmbeddedStore.open(path.join(dir, 'dest-region.db'));
    assert.ok((await new DictionaryStore(dest, 'fed').decompress(id, frame, plain.length)).equals(plain));

    // Damaged stored bytes are never used as the dictionary.
    const key = dictionaryKey('fed', id);
    const kv = (await dest.get(key))!;
    await dest.compareAndSwap(key, kv.modRevision, Buffer.concat([kv.value, Buffer.from('x')]));
    await assert.rejects(new DictionaryStore(dest, 'fed').decompress(id, frame, plain.length), /stored bytes are dictionary [0-9a-f]{16} \(damaged\)/);

    // Sizes etcd could not hold, and made-up ids, are refused.
    await assert.rejects(new DictionaryStore(source, 'fed').put(Buffer.alloc(MAX_DICTIONARY_BYTES + 1, 1)), /dictionary of 262145 bytes: want 256\.\.262144/);
    await assert.rejects(new DictionaryStore(source, 'fed').get('../../x'), /dictionary id "\.\.\/\.\.\/x": want 16 lowercase hex digits/);
  } finally {
    await source.close();
    await dest.close();
  }
});

test('etcd (3 members): two regions store, ship and decode by id; a new client after a restart still holds it', { timeout: 120_000 }, async (t) => {
  const cluster = await startEtcdCluster({ members: 3 });
  const stores: EtcdStore[] = [];
  try {
    const connect = async () => {
      const s = await EtcdStore.connect({ endpoints: cluster.endpoints });
      stores.push(s);
      return s;
    };
    // One cluster stands in for both regions' stores: the federations differ, so their keys do too.
    const source = await connect();
    const dest = await connect();
    const src = new DictionaryStore(source, 'fed');
    const dictionary = buildRawDictionary(smallFiles(300, 3));
    const { id } = await src.put(dictionary);
    const codec = new DictionaryCodec(dictionary);
    const plain = smallFiles(1, 4)[0];
    const frame = codec.compress(plain, LEVEL);
    await assert.rejects(new DictionaryStore(dest, 'fed-dest').decompress(id, frame, plain.length), UnknownDictionaryError);
    assert.deepEqual(await new DictionaryStore(dest, 'fed-dest').accept(id, dictionary), { created: true });
    await dest.close();
    const again = await connect();
    assert.ok((await new DictionaryStore(again, 'fed-dest').decompress(id, frame, plain.length)).equals(plain));
    t.diagnostic(`dictionary ${id}: ${dictionary.length} bytes in etcd`);
  } finally {
    await Promise.allSettled(stores.map((s) => s.close()));
    await cluster.stop();
  }
});
