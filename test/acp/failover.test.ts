// ACP failover on real etcd: two regions, three agents each, one objects
// stream. kill -9 of the sending agent mid-transfer: another agent of the
// source region is elected within the lease TTL, resumes from the
// destination's checkpoint, and the result is identical with every
// sequence number applied exactly once (merged audit of the destination
// agents).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { SOURCE, moveTreeInto, startAcpFederation, tempDir, waitForSender } from '../helpers/acp-federation.ts';

const MiB = 1024 * 1024;
/** Lease TTL of the agents, seconds. */
const LEASE_TTL_S = 2;

test('kill -9 of the sending agent: another agent takes over within the lease TTL; identical, no gap, no double apply', { timeout: 240_000 }, async () => {
  const dir = await tempDir('dwcp-acp-failover-');
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  await mkdir(sourcePath, { recursive: true });
  const tree = await generateSampleTree(join(dir, 'staging'), { totalBytes: 120 * MiB, largestBytes: 30 * MiB });
  const fed = await startAcpFederation({ dir, agentsPerRegion: 3, streams: [{ id: 'objs', sourcePath, destPath }], leaseTtl: `${LEASE_TTL_S}s` });
  try {
    await moveTreeInto(join(dir, 'staging'), sourcePath);
    const first = await waitForSender(fed, 'objs', 30_000);
    const sender = fed.agents[SOURCE][first];
    await waitFor('some progress', async () => (await sender.metric('dwcp_goodput_bytes_total')) >= tree.bytes * 0.15, 120_000, 50);
    const progressAtKill = await sender.metric('dwcp_goodput_bytes_total');
    assert.ok(progressAtKill < tree.bytes, 'the transfer was still running when the sender was killed');

    // Kill the sender; measure election and first durable progress of the successor.
    const killedAt = Date.now();
    await sender.kill9();
    const next = await waitForSender(fed, 'objs', LEASE_TTL_S * 1000 + 10_000, first);
    const electedMs = Date.now() - killedAt;
    const successor = fed.agents[SOURCE][next];
    await waitFor('successor progress', async () => (await successor.metric('dwcp_goodput_bytes_total')) > 0, 60_000, 50);
    const resumedMs = Date.now() - killedAt;
    console.log(`failover: elected after ${electedMs} ms, first durable ack after ${resumedMs} ms (lease ttl ${LEASE_TTL_S} s)`);
    assert.ok(electedMs < LEASE_TTL_S * 1000 + 2_000, `successor elected after ${electedMs} ms, more than the ${LEASE_TTL_S} s ttl plus 2 s`);

    // Finish and audit.
    await waitFor('successor in sync', async () => {
      const st = await successor.status();
      return st.senders.some((s) => s.progress?.inSync === true);
    }, 180_000, 250);
    const cmp = await compareTrees(sourcePath, destPath);
    assert.deepEqual(cmp.differences, []);
    assert.equal(cmp.files, tree.files);
    assert.deepEqual(await fed.auditProblems('objs'), []);
    assert.ok((await fed.auditSeqs('objs')).length > 0, 'the audit recorded applied frames');
  } catch (err) {
    console.error(fed.tail(40));
    throw err;
  } finally {
    await fed.cleanup();
  }
});
