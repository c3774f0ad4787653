// The source region's chain record as a bound on resume positions: a
// destination may be at the record (chains compared), ahead of it within
// what was ever sent (accepted, unverified), never beyond what was sent nor
// anywhere without a record; the recorder raises sentSeq before frames go
// out and never lowers it. On a real embedded store.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import { compareChains, loadChainRecord, positionVerified, sourceChainCheck, type ChainRecord } from '../../src/acp/chain-check.ts';

const chainA = Buffer.alloc(32, 0xaa);

test('compareChains: at the record the chain must match; ahead only up to sentSeq; without a record only position 0', () => {
  const record: ChainRecord = { seq: 10, chain: chainA.toString('hex'), epoch: 1, sentSeq: 50 };
  assert.equal(compareChains('s', record, 10, chainA), null);
  assert.match(compareChains('s', record, 10, Buffer.alloc(32))!.message, /destination chain at seq 10 does not match/);
  assert.match(compareChains('s', record, 9, chainA)!.message, /behind seq 10/);
  assert.equal(compareChains('s', record, 50, Buffer.alloc(32)), null, 'within what was sent: accepted');
  assert.match(compareChains('s', record, 51, Buffer.alloc(32))!.message, /destination claims durable seq 51, beyond seq 50 that the source region ever sent \(committed seq 10\)/);
  assert.equal(compareChains('s', undefined, 0, Buffer.alloc(32)), null);
  assert.match(compareChains('s', undefined, 7, Buffer.alloc(32))!.message, /claims durable seq 7, but the source region has no committed record .*\(committed seq 0\)/);
  assert.equal(positionVerified(record, 10), true);
  assert.equal(positionVerified(record, 30), false);
  assert.equal(positionVerified(undefined, 0), true);
  // Records of older versions carry no sentSeq: no bound is known, the old rule holds.
  assert.equal(compareChains('s', { seq: 10, chain: chainA.toString('hex'), epoch: 1 }, 1000, Buffer.alloc(32)), null);
});

test('reserve raises sentSeq before sending; record keeps it; a new leadership reads it back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-chain-'));
  const store = await EmbeddedStore.open(join(dir, 'acp.log'));
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const key = '/dwcp/f/chains/s/us-east';
  const errors: Error[] = [];
  const check = sourceChainCheck(store, key, 1, (err) => errors.push(err));
  assert.equal(await check.committed(), undefined);
  await check.reserve(1024);
  let stored = (await loadChainRecord(store, key))!.record;
  assert.equal(stored.sentSeq, 1024);
  assert.equal(compareChains('s', stored, 0, Buffer.alloc(32)), null, 'a record with only a bound compares no chain at 0');
  await check.reserve(10);
  check.record(5, chainA);
  await new Promise((r) => setTimeout(r, 50));
  stored = (await loadChainRecord(store, key))!.record;
  assert.deepEqual(stored, { seq: 5, chain: chainA.toString('hex'), epoch: 1, sentSeq: 1024 }, 'recording a position never lowers sentSeq');
  const next = sourceChainCheck(store, key, 2, (err) => errors.push(err));
  assert.equal((await next.committed())!.sentSeq, 1024);
  await next.reserve(3000);
  assert.equal((await loadChainRecord(store, key))!.record.sentSeq, 3000);
  assert.deepEqual(errors, []);
});
