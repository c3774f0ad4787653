// Streams checked against the source region's consensus, on real etcd: the
// destination's checkpoint of one stream is altered (its chain no longer
// matches what the source region recorded at that seq); at the next link
// start that stream halts with StreamDivergedError and the halted metric,
// applies nothing more, and the other stream keeps replicating.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir, writeFile, readFile, access } from 'node:fs/promises';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { EtcdStore } from '../../src/consensus/etcd-store.ts';
import { checkpointKey, loadCheckpoint } from '../../src/consensus/checkpoints.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { DEST, FEDERATION, SOURCE, startAcpFederation, tempDir } from '../helpers/acp-federation.ts';

const MiB = 1024 * 1024;

test('a destination chain that does not match the source region\'s record halts that stream with StreamDivergedError; the other stream continues', { timeout: 180_000 }, async () => {
  const dir = await tempDir('dwcp-acp-diverge-');
  const paths = { a: { src: join(dir, 'a-src'), dst: join(dir, 'a-dst') }, b: { src: join(dir, 'b-src'), dst: join(dir, 'b-dst') } };
  for (const p of Object.values(paths)) await mkdir(p.dst, { recursive: true });
  await generateSampleTree(paths.a.src, { totalBytes: 8 * MiB, seed: 1 });
  await generateSampleTree(paths.b.src, { totalBytes: 8 * MiB, seed: 2 });
  const fed = await startAcpFederation({
    dir, agentsPerRegion: 1, leaseTtl: '2s',
    streams: [{ id: 'forked', sourcePath: paths.a.src, destPath: paths.a.dst }, { id: 'healthy', sourcePath: paths.b.src, destPath: paths.b.dst }],
  });
  const store = await EtcdStore.connect({ endpoints: fed.etcd[DEST].endpoints, callTimeoutMs: 2000 });
  try {
    const source = fed.agents[SOURCE][0];
    const dest = fed.agents[DEST][0];
    await waitFor('both streams in sync', async () => {
      const st = await source.status();
      return st.senders.length === 2 && st.senders.every((s) => s.progress?.inSync === true && s.durableSeq === s.sentSeq && s.durableSeq > 0);
    }, 60_000, 200);
    await sleep(500);

    // Fork the destination's history of one stream: same seq, another chain.
    await dest.kill9();
    const key = checkpointKey(FEDERATION, 'forked', DEST);
    const loaded = await loadCheckpoint(store, key);
    assert.ok(loaded, 'the destination committed a checkpoint');
    const chain = Buffer.from(loaded.checkpoint.chain, 'hex');
    chain[0] ^= 0xff;
    const res = await store.compareAndSwap(key, loaded.modRevision, Buffer.from(JSON.stringify({ ...loaded.checkpoint, chain: chain.toString('hex') })));
    assert.ok(res.ok, 'the checkpoint was altered');
    const auditBefore = (await fed.auditSeqs('forked')).length;

    // The link restarts: the forked stream halts with the named error.
    await dest.start();
    await waitFor('the forked stream halted', async () => (await source.status()).senders.some((s) => s.halted !== null), 30_000, 200);
    const halted = (await source.status()).senders.find((s) => s.halted !== null)!;
    assert.match(halted.halted!, new RegExp(`StreamDivergedError: stream forked: destination chain at seq ${loaded.checkpoint.seq} does not match the source region's`));
    assert.equal(await source.metric('dwcp_stream_halted', 'stream="forked"'), 1);
    assert.equal(await source.metric('dwcp_stream_halted', 'stream="healthy"'), 0);

    // New files: the healthy stream replicates them, the forked one applies nothing.
    await writeFile(join(paths.a.src, 'after-fork.txt'), 'must not arrive\n');
    await writeFile(join(paths.b.src, 'after-fork.txt'), 'must arrive\n');
    await waitFor('the healthy stream replicated the new file', async () => (await readFile(join(paths.b.dst, 'after-fork.txt'), 'utf8')) === 'must arrive\n', 30_000, 200);
    await sleep(2000);
    await assert.rejects(access(join(paths.a.dst, 'after-fork.txt')), 'the halted stream applied nothing');
    assert.equal((await fed.auditSeqs('forked')).length, auditBefore, 'no frame of the halted stream was applied');
  } catch (err) {
    console.error(fed.tail(20));
    throw err;
  } finally {
    await store.close();
    await fed.cleanup();
  }
});
