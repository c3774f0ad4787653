// A destination that claims to be further than the source region ever sent
// (its checkpoint rewritten to a durable seq far beyond the source's
// committed chain record, with a made-up chain): at the next session start
// the sender halts with a reason naming the claimed and the committed
// positions, before the source is asked for anything (so a pg-wal source
// never hears the claimed LSN), and the halt is visible in metrics.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import { checkpointKey, commitCheckpoint, loadCheckpoint } from '../../src/consensus/checkpoints.ts';
import { SENT_RESERVE_FRAMES } from '../../src/agent/stream-sender.ts';
import { startFederation } from '../helpers/federation.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;

test('a destination claiming a durable seq beyond what the source region ever sent halts the stream with both positions named', { timeout: 300_000 }, async () => {
  const fed = await startFederation({ totalBytes: 4 * MiB, largestBytes: 1 * MiB, carriers: 1 });
  try {
    await fed.waitInSync(120_000);
    const before = (await fed.source.status()).senders[0];
    assert.ok(before.durableSeq > 0);

    // Rewrite the destination's checkpoint while it is down: far ahead, another chain.
    await fed.dest.kill9();
    const store = await EmbeddedStore.open(join(fed.dir, 'us-east', 'acp.log'));
    const key = checkpointKey('demo', 'sample', 'us-east');
    const loaded = await loadCheckpoint(store, key);
    assert.ok(loaded, 'the destination committed a checkpoint');
    const committedSeq = loaded.checkpoint.seq;
    const claimed = committedSeq + 100 * SENT_RESERVE_FRAMES;
    await commitCheckpoint(store, key, loaded.modRevision, { ...loaded.checkpoint, seq: claimed, chain: randomBytes(32).toString('hex') });
    await store.close();

    await fed.dest.start();
    await waitFor('the sender halted', async () => (await fed.source.status()).senders.some((s) => s.halted !== null), 60_000, 200);
    const halted = (await fed.source.status()).senders[0].halted!;
    assert.match(halted, new RegExp(`StreamDivergedError: stream sample: destination claims durable seq ${claimed}, beyond seq \\d+ that the source region ever sent \\(committed seq ${committedSeq}\\)`));
    assert.equal(await fed.source.metric('dwcp_stream_halted', 'stream="sample"'), 1);
    assert.ok((await fed.source.metric('dwcp_stream_faults_total', 'reason="diverged"')) >= 1);
    assert.ok(fed.source.logs.some((l) => l.includes('"msg":"stream halted"') && l.includes(`claims durable seq ${claimed}`)), 'the halt is logged');
    // Nothing was taken on the liar's word: the sender's positions stay what they were.
    const after = (await fed.source.status()).senders[0];
    assert.equal(after.durableSeq, before.durableSeq);
    assert.equal(after.sentSeq, before.sentSeq);
  } finally {
    await fed.cleanup();
  }
});
