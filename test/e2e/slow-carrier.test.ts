// End to end with one carrier on a slow path: a TCP relay between the
// agents passes one carrier connection's bytes at a crawl. With delivery
// acknowledgements (amst:delivered@1) that carrier no longer holds the link
// window: its stuck frames are hedged onto the fast carriers, the transfer
// completes byte-identical with every sequence number applied exactly once,
// and the slow copies, once they arrive, are dropped at the destination as
// duplicates and counted.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { startFederation, auditProblems } from '../helpers/federation.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { startTcpRelay } from '../helpers/relay.ts';

const MiB = 1024 * 1024;
/** The slow carrier's rate, bytes/s (the others run at loopback speed). */
const SLOW_BYTES_PER_S = 256 * 1024;

test('one carrier slowed to a crawl: completes identical, stuck frames hedged, late copies dropped as duplicates', { timeout: 600_000 }, async () => {
  const fed = await startFederation({ totalBytes: 96 * MiB, largestBytes: 32 * MiB, carriers: 4, start: false, amstExtra: '  adaptive: false\n' });
  const relay = await startTcpRelay(fed.setup.ports.dest);
  try {
    await fed.startThroughRelay(relay.port);
    await waitFor('four carriers through the relay', async () => relay.connections() >= 4, 60_000, 50);
    assert.ok(relay.throttleOne(SLOW_BYTES_PER_S), 'a carrier to slow down');
    await fed.waitInSync(400_000);
    const cmp = await compareTrees(fed.sourcePath, fed.destPath);
    assert.deepEqual(cmp.differences, []);
    assert.equal(cmp.files, fed.tree.files);
    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
    assert.ok((await fed.source.metric('dwcp_link_delivered_frames_total')) > 0, 'the destination reported deliveries');
    const hedged = await fed.source.metric('dwcp_frames_resent_total', 'reason="hedge"');
    assert.ok(hedged > 0, 'frames stuck on the slow carrier were hedged');
    // Lift the throttle: the slow copies arrive, and are dropped as duplicates.
    relay.throttleOne(null);
    await waitFor('duplicates counted at the destination', async () => (await fed.dest.metric('dwcp_frames_duplicate_total')) > 0, 120_000, 200);
    assert.deepEqual(auditProblems(await fed.auditSeqs()), [], 'duplicates were never applied');
  } finally {
    await relay.close();
    await fed.cleanup();
  }
});
