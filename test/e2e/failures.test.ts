// End to end under failure: kill -9 of either agent mid-transfer, a carrier
// destroyed mid-transfer, and a byte flipped in transit by a peer that lies.
// Each ends byte-identical, with every sequence number applied exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { startFederation, auditProblems, type Federation } from '../helpers/federation.ts';
import { waitFor, sleep } from '../helpers/agent-process.ts';
import { startTcpRelay, startFlippingRelay } from '../helpers/relay.ts';

const MiB = 1024 * 1024;
const TREE_BYTES = 320 * MiB;

/** Wait until the destination holds at least `fraction` of the tree durably (goodput seen at the source). */
async function waitForProgress(fed: Federation, fraction: number): Promise<void> {
  await waitFor(`${fraction * 100}% durable`, async () => (await fed.source.metric('dwcp_goodput_bytes_total')) >= fed.tree.bytes * fraction, 240_000, 100);
}

async function assertIdentical(fed: Federation): Promise<void> {
  const cmp = await compareTrees(fed.sourcePath, fed.destPath);
  assert.deepEqual(cmp.differences, []);
  assert.equal(cmp.files, fed.tree.files);
  assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
}

test('kill -9 of the receiving agent mid-transfer: completes, nothing missing, nothing applied twice', { timeout: 600_000 }, async () => {
  const fed = await startFederation({ totalBytes: TREE_BYTES, largestBytes: 100 * MiB, carriers: 4 });
  try {
    await waitForProgress(fed, 0.3);
    await fed.dest.kill9();
    await sleep(500);
    await fed.dest.start();
    await fed.waitInSync(300_000);
    await assertIdentical(fed);
    assert.ok((await fed.source.metric('dwcp_link_reconnects_total')) >= 1, 'the link reconnected');
  } finally {
    await fed.cleanup();
  }
});

test('kill -9 of the sending agent mid-transfer: resumes from the durable position, not from zero', { timeout: 600_000 }, async () => {
  const fed = await startFederation({ totalBytes: TREE_BYTES, largestBytes: 100 * MiB, carriers: 4 });
  try {
    await waitForProgress(fed, 0.4);
    const durableBefore = (await fed.dest.status()).receivers[0].durableSeq;
    await fed.source.kill9();
    await fed.source.start();
    await fed.waitInSync(300_000);
    await assertIdentical(fed);
    // The restarted sender sent only what was not yet durable.
    const resent = await fed.source.metric('dwcp_goodput_bytes_total');
    assert.ok(resent < fed.tree.bytes * 0.75, `restarted sender moved ${resent} bytes of ${fed.tree.bytes}: it did not resume`);
    assert.ok(durableBefore > 0);
  } finally {
    await fed.cleanup();
  }
});

test('a carrier socket destroyed mid-transfer: completes identical, only its undelivered frames are resent', { timeout: 600_000 }, async () => {
  const fed = await startFederation({ totalBytes: 160 * MiB, largestBytes: 60 * MiB, carriers: 4, start: false });
  const relay = await startTcpRelay(fed.setup.ports.dest);
  try {
    await fed.startThroughRelay(relay.port);
    await waitForProgress(fed, 0.2);
    assert.ok(relay.destroyOne(), 'a carrier connection was open');
    await fed.waitInSync(300_000);
    await assertIdentical(fed);
    const lost = fed.source.logs.filter((l) => l.includes('carrier lost')).length;
    assert.ok(lost >= 1, `the source saw the carrier die (relay connections: ${relay.connections()})\n${fed.source.logs.slice(-8).join('\n')}`);
    // Delivered frames are not resent (amst:delivered@1): every duplicate the destination dropped came from a resend of an undelivered frame or a hedge.
    const resent = (await fed.source.metric('dwcp_frames_resent_total', 'reason="carrier_lost"')) + (await fed.source.metric('dwcp_frames_resent_total', 'reason="hedge"'));
    assert.ok((await fed.dest.metric('dwcp_frames_duplicate_total')) <= resent, 'duplicates only from resends');
  } finally {
    await relay.close();
    await fed.cleanup();
  }
});

test('a byte flipped in transit is never applied: resent, result identical, verify failure counted', { timeout: 600_000 }, async () => {
  const fed = await startFederation({ totalBytes: 64 * MiB, largestBytes: 20 * MiB, carriers: 2, start: false });
  const relay = await startFlippingRelay(fed.setup.ports.dest, fed.setup.certs['us-east'], fed.setup.certs['eu-west'], 2);
  try {
    await fed.startThroughRelay(relay.port);
    await fed.waitInSync(300_000);
    assert.equal(relay.flips(), 2, 'the relay flipped two frames');
    await assertIdentical(fed);
    assert.ok((await fed.dest.metric('dwcp_verify_failures_total')) >= 2, 'verify failures counted');
    assert.ok((await fed.source.metric('dwcp_frames_resent_total', 'reason="nack"')) >= 2, 'frames resent after a nack');
  } finally {
    await relay.close();
    await fed.cleanup();
  }
});
