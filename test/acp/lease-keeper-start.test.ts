// The first lease grant retries at start: a consensus member may go down
// while an agent starts (the etcd member-loss test killed one mid-start and
// the agent gave up at its first grant). A store that keeps failing still
// makes start fail, with the cause named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LeaseKeeper } from '../../src/acp/lease-keeper.ts';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import type { ConsensusStore } from '../../src/consensus/consensus-store.ts';

/** The store, with its first `failures` lease grants failing like an etcd call without quorum. */
function flakyGrants(store: ConsensusStore, failures: number): { store: ConsensusStore; grants: () => number } {
  let grants = 0;
  const flaky = new Proxy(store, {
    get(target, name) {
      if (name === 'grantLease') {
        return async (ttlSeconds: number) => {
          grants++;
          if (grants <= failures) throw new Error('etcd grant lease: no answer within 1000 ms (deadline exceeded)');
          return target.grantLease(ttlSeconds);
        };
      }
      const value = Reflect.get(target, name, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: flaky, grants: () => grants };
}

test('start retries a failing first grant and reports each retry', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-lease-start-'));
  const store = await EmbeddedStore.open(join(dir, 'store.log'));
  t.after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const flaky = flakyGrants(store, 2);
  const errors: string[] = [];
  const keeper = new LeaseKeeper(flaky.store, 5, (err) => errors.push(err.message));
  const lease = await keeper.start();
  assert.ok(lease.id, 'no lease');
  assert.equal(flaky.grants(), 3);
  assert.equal(errors.length, 2);
  assert.match(errors[0]!, /grant lease \(retrying in \d+ ms\): etcd grant lease: no answer/);
  await keeper.close();
});
