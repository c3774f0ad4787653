// A sender's epoch must be one the source region's consensus issued. Each
// region runs a real 3-member etcd; the destination agents can read the
// source region's etcd (regions[].consensus) and accept a StreamOpen only
// at the epoch, and from the node, the leader key names there. A genuine
// eu-west agent that is not the elected sender (its own, valid certificate)
// tries the poison epoch 2^53-1, then the leader's real epoch: both are
// refused at StreamOpen, nothing is written, the checkpoint in us-east's
// etcd keeps its epoch, and the elected sender carries on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { EtcdStore } from '../../src/consensus/etcd-store.ts';
import { checkpointKey, leaderKey, loadCheckpoint } from '../../src/consensus/checkpoints.ts';
import { currentLeader } from '../../src/consensus/election.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { DEST, FEDERATION, SOURCE, startAcpFederation, tempDir, waitForSender } from '../helpers/acp-federation.ts';
import { playImpostor, POISON_EPOCH } from '../helpers/impostor.ts';

const STREAM = 'objs';

test("a source-region agent that is not the elected sender cannot open the stream at an epoch the source region's consensus did not give it", { timeout: 300_000 }, async () => {
  const dir = await tempDir('dwcp-trust-epoch-');
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  await generateSampleTree(sourcePath, { totalBytes: 1024 * 1024, largestBytes: 128 * 1024 });
  const fed = await startAcpFederation({ dir, agentsPerRegion: 2, streams: [{ id: STREAM, sourcePath, destPath }], leaseTtl: '2s', verifyEpochs: true });
  const sourceEtcd = await EtcdStore.connect({ endpoints: fed.etcd[SOURCE].endpoints });
  const destEtcd = await EtcdStore.connect({ endpoints: fed.etcd[DEST].endpoints });
  let files = 0;
  const genuineContinues = async (): Promise<void> => {
    const name = `genuine-${++files}.txt`;
    await writeFile(join(sourcePath, name), `${name}\n`);
    await waitFor(`${name} replicated by the elected sender`, async () => (await readFile(join(destPath, name), 'utf8').catch(() => '')) === `${name}\n`, 60_000, 200);
  };
  try {
    const sender = await waitForSender(fed, STREAM, 60_000);
    await genuineContinues();
    const leader = await currentLeader(sourceEtcd, leaderKey(FEDERATION, STREAM, DEST));
    assert.ok(leader, 'eu-west elected a sender');
    const before = await loadCheckpoint(destEtcd, checkpointKey(FEDERATION, STREAM, DEST));
    assert.equal(before?.checkpoint.epoch, leader.epoch, "us-east's checkpoint carries the elected sender's epoch (verified and accepted)");

    // The other eu-west agent, with its own genuine certificate, at the receiving agents of us-east.
    const other = fed.specs[SOURCE][1 - sender];
    for (const epoch of [POISON_EPOCH, leader.epoch]) {
      for (const target of fed.specs[DEST]) {
        const path = `forged-${epoch}-${target.nodeId}.txt`;
        const refusedBefore = await fed.agents[DEST][fed.specs[DEST].indexOf(target)].metric('dwcp_stream_source_refusals_total', 'message="epoch"');
        const outcome = await playImpostor({
          port: target.port,
          federation: FEDERATION,
          cert: { caFile: join(dir, 'tls', 'dwcp-dev-ca.crt'), certFile: join(dir, 'tls', `${other.nodeId}.crt`), keyFile: join(dir, 'tls', `${other.nodeId}.key`) },
          region: SOURCE,
          nodeId: other.nodeId,
          peerRegion: DEST,
          streamId: STREAM,
          epoch,
          path,
          contents: 'forged\n',
          afterData: (received) => waitFor('an answer to the data frame', async () => received.some((e) => e.ack || e.nack || e.error), 5_000, 50).catch(() => {}),
        });
        assert.equal(outcome.helloRefusal, null, 'a genuine eu-west agent is let in');
        assert.match(outcome.openRefusal ?? `epoch ${epoch} was accepted at ${target.nodeId}`, new RegExp(`epoch ${epoch} of node "${other.nodeId}" is not in the source region's consensus: .* is led by "${leader.candidateId}" at epoch ${leader.epoch}`));
        assert.equal(await fed.agents[DEST][fed.specs[DEST].indexOf(target)].metric('dwcp_stream_source_refusals_total', 'message="epoch"'), refusedBefore + 1, 'counted');
        assert.equal(existsSync(join(destPath, path)), false, 'nothing written');
      }
    }
    const after = await loadCheckpoint(destEtcd, checkpointKey(FEDERATION, STREAM, DEST));
    assert.equal(after?.checkpoint.epoch, leader.epoch, 'the checkpoint keeps the elected sender\'s epoch');
    await genuineContinues();
  } finally {
    await sourceEtcd.close();
    await destEtcd.close();
    await fed.cleanup();
  }
});
