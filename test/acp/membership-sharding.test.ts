// Membership on real etcd (records under leases, watched live set, records
// gone when a lease expires, re-registered after a new lease) and the shard
// placement it feeds (rendezvous hashing: a join or leave moves only the
// shards of the member that came or went).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from '../../src/consensus/etcd-store.ts';
import { LeaseKeeper } from '../../src/acp/lease-keeper.ts';
import { MemberView, registerMember } from '../../src/acp/membership.ts';
import { ownerOf, shardOf, shardsOwnedBy } from '../../src/acp/shard-ring.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { startEtcdCluster } from '../helpers/etcd-cluster.ts';

test('membership: live set follows registrations and lease expiry (real etcd)', { timeout: 60_000 }, async () => {
  const cluster = await startEtcdCluster({ members: 3 });
  const stores: EtcdStore[] = [];
  try {
    const open = async (): Promise<EtcdStore> => {
      const s = await EtcdStore.connect({ endpoints: cluster.endpoints, callTimeoutMs: 1000 });
      stores.push(s);
      return s;
    };
    const viewStore = await open();
    const view = await MemberView.open(viewStore, 'f', 'r1');
    const keeper = new LeaseKeeper(viewStore, 1, () => {});
    await keeper.start();
    await registerMember(viewStore, 'f', keeper, { nodeId: 'n1', region: 'r1', capabilities: ['objects'], address: '127.0.0.1:1' }, () => {});

    // n2 registers from another process, which is then killed -9 (no revoke).
    const dir = await mkdtemp(join(tmpdir(), 'dwcp-member-'));
    const script = join(dir, 'member.ts');
    await writeFile(script, [
      `import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdStore } from ${JSON.stringify(new URL('../../src/consensus/etcd-store.ts', import.meta.url).pathname)};`,
      `import { LeaseKeeper } from ${JSON.stringify(new URL('../../src/acp/lease-keeper.ts', import.meta.url).pathname)};`,
      `import { registerMember } from ${JSON.stringify(new URL('../../src/acp/membership.ts', import.meta.url).pathname)};`,
      `const store = await EtcdStore.connect({ endpoints: ${JSON.stringify(cluster.endpoints)}, callTimeoutMs: 1000 });`,
      `const keeper = new LeaseKeeper(store, 1, () => {}); await keeper.start();`,
      `await registerMember(store, 'f', keeper, { nodeId: 'n2', region: 'r1', capabilities: ['objects'], address: '127.0.0.1:2' }, () => {});`,
      `console.log('registered'); setInterval(() => {}, 1000);`,
    ].join('\n'));
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await waitFor('two live members', async () => view.live().map((m) => m.nodeId).join() === 'n1,n2', 15_000, 50);
      assert.equal(view.live()[1].address, '127.0.0.1:2');
      process.kill(child.pid!, 'SIGKILL');
      await waitFor('n2 gone after its lease expired', async () => view.live().map((m) => m.nodeId).join() === 'n1', 10_000, 100);
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
    await view.close();
    await keeper.close();
  } finally {
    for (const s of stores) await s.close().catch(() => {});
    await cluster.stop();
  }
});

test('shard placement: every shard has one owner; a join or leave moves only that member\'s shards', () => {
  const shards = 64;
  const three = ['a', 'b', 'c'];
  const four = [...three, 'd'];
  const owned = three.flatMap((m) => shardsOwnedBy('s', shards, three, m));
  assert.deepEqual(owned.sort((x, y) => x - y), [...Array(shards).keys()], 'each shard owned exactly once');
  let moved = 0;
  for (let s = 0; s < shards; s++) {
    const before = ownerOf('s', s, three);
    const after = ownerOf('s', s, four);
    if (before !== after) {
      moved++;
      assert.equal(after, 'd', `shard ${s} moved from ${before} to ${after}, not to the new member`);
    }
    // Leaving: only the leaver's shards move.
    const left = ownerOf('s', s, ['a', 'c']);
    if (before !== 'b') assert.equal(left, before, `shard ${s} moved although its owner stayed`);
  }
  assert.ok(moved > 0 && moved < shards / 2, `a join moved ${moved} of ${shards} shards`);
  assert.equal(shardOf('dir-01/x/y.bin', 16), shardOf('dir-01/z.bin', 16), 'a top-level directory stays in one shard');
  assert.throws(() => shardOf('a', 0), /shards must be an integer >= 1/);
});
