// Replication while etcd members fail, on real 3-member clusters. One member
// down in each region: replication continues. Two of the destination
// region's three down (no majority): no checkpoint is committed and the
// durable position does not move; after the members return, replication
// resumes and ends identical with every sequence number applied once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { DEST, SOURCE, moveTreeInto, startAcpFederation, tempDir } from '../helpers/acp-federation.ts';

const MiB = 1024 * 1024;
/** How long the majority stays down while data waits at the source. */
const OUTAGE_MS = 5000;

test('etcd: one member down per region keeps replicating; two down stops commits; after they return nothing is lost', { timeout: 240_000 }, async () => {
  const dir = await tempDir('dwcp-acp-etcd-loss-');
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  await mkdir(sourcePath, { recursive: true });
  const batch1 = await generateSampleTree(join(dir, 'batch1'), { totalBytes: 30 * MiB, seed: 11 });
  await generateSampleTree(join(dir, 'batch2', 'later'), { totalBytes: 30 * MiB, seed: 12 });
  const fed = await startAcpFederation({ dir, agentsPerRegion: 1, streams: [{ id: 'objs', sourcePath, destPath }], leaseTtl: '3s' });
  const source = fed.agents[SOURCE][0];
  const dest = fed.agents[DEST][0];
  const identical = async (): Promise<boolean> => (await compareTrees(sourcePath, destPath)).identical;
  try {
    // One member of each region down: replication continues.
    await fed.etcd[SOURCE].kill(0);
    await fed.etcd[DEST].kill(0);
    await moveTreeInto(join(dir, 'batch1'), sourcePath);
    await waitFor('batch 1 replicated with one etcd member down per region', identical, 90_000, 500);
    assert.ok(batch1.files > 0);

    // A second destination member down: no majority, no commit, no durable progress.
    await fed.etcd[DEST].kill(1);
    await sleep(1500);
    const checkpointsBefore = await dest.metric('dwcp_checkpoints_total');
    const durableBefore = (await dest.status()).receivers[0].durableSeq;
    const goodputBefore = await source.metric('dwcp_goodput_bytes_total');
    await moveTreeInto(join(dir, 'batch2'), sourcePath);
    await sleep(OUTAGE_MS);
    assert.equal(await dest.metric('dwcp_checkpoints_total'), checkpointsBefore, 'no checkpoint committed without a majority');
    assert.equal((await dest.status()).receivers[0].durableSeq, durableBefore, 'the durable position did not move');
    assert.equal(await source.metric('dwcp_goodput_bytes_total'), goodputBefore, 'the source saw nothing acknowledged');
    const auditDuringOutage = await fed.auditSeqs('objs');

    // The members return: replication resumes, nothing lost, nothing applied twice.
    await fed.etcd[DEST].restart(1);
    await fed.etcd[DEST].restart(0);
    await waitFor('batch 2 replicated after the majority returned', identical, 120_000, 500);
    await waitFor('everything acknowledged', async () => (await source.status()).senders.some((s) => s.progress?.inSync === true && s.durableSeq === s.sentSeq), 60_000, 250);
    assert.deepEqual(await fed.auditProblems('objs'), []);
    assert.ok((await fed.auditSeqs('objs')).length > auditDuringOutage.filter((s) => s <= durableBefore).length, 'frames were applied after the majority returned');
    assert.ok((await dest.metric('dwcp_checkpoints_total')) > checkpointsBefore);
  } catch (err) {
    console.error(fed.tail(25));
    throw err;
  } finally {
    await fed.cleanup();
  }
});
