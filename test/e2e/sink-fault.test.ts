// One stream's disk fills up (a real tmpfs, mounted by this test as root,
// with a filler file taking most of it): that stream's sink fails with
// ENOSPC mid-transfer. The agent stays up, the other stream on the same
// agents keeps replicating, the failing stream shows as faulted/retrying in
// /status and metrics on both sides, and once the filler is removed it
// resumes and completes identical with an exact audit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { writeFederationFiles, SOURCE_REGION, DEST_REGION } from '../../src/cli/two-region.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { AgentProcess, waitFor } from '../helpers/agent-process.ts';
import { auditProblems } from '../helpers/federation.ts';

const MiB = 1024 * 1024;
/** The tmpfs holding the failing stream's destination. */
const TMPFS_MIB = 48;
/** Filler that leaves too little room for the tree. */
const FILLER_MIB = 40;
/** The failing stream's tree: more than the room left, less than the whole tmpfs. */
const TREE_BYTES = 20 * MiB;

async function auditSeqs(dir: string, streamId: string): Promise<number[]> {
  const text = await readFile(join(dir, DEST_REGION, 'audit', `${streamId}.log`), 'utf8');
  return text.split('\n').filter((l) => l !== '').map(Number);
}

test('ENOSPC on one stream\'s sink: the agent stays up, the other stream replicates, the stream retries and completes identical once space is freed', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-sinkfault-'));
  const full = { src: join(dir, 'full-src'), dst: join(dir, 'full-dst') };
  const ok = { src: join(dir, 'ok-src'), dst: join(dir, 'ok-dst') };
  await mkdir(full.dst, { recursive: true });
  await mkdir(ok.dst, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MIB}m`, 'dwcp-test-full', full.dst]);
  let source: AgentProcess | null = null;
  let dest: AgentProcess | null = null;
  try {
    const filler = join(full.dst, 'filler.bin');
    await writeFile(filler, Buffer.alloc(FILLER_MIB * MiB, 1));
    // The filler is not in the source tree: compare the trees without it (the test removes it before comparing).
    await generateSampleTree(full.src, { totalBytes: TREE_BYTES, largestBytes: 4 * MiB, seed: 11 });
    await generateSampleTree(ok.src, { totalBytes: 4 * MiB, largestBytes: 1 * MiB, seed: 12 });
    const stream = (id: string, p: { src: string; dst: string }): string => `  - id: ${id}
    kind: objects
    source: { region: ${SOURCE_REGION}, path: ${p.src}, scanInterval: 2s }
    destinations:
      - { region: ${DEST_REGION}, path: ${p.dst} }
`;
    const setup = await writeFederationFiles({ dir, carriers: 2, streams: stream('full', full) + stream('ok', ok), amstExtra: '  initialBackoff: 200ms\n  maxBackoff: 2s' });
    dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
    source = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
    await dest.start();
    await source.start();
    const src = source;
    const dst = dest;

    // The full stream faults with ENOSPC; both sides say so.
    await waitFor('ENOSPC fault counted at the destination', async () => (await dst.metric('dwcp_stream_faults_total', 'reason="ENOSPC"')) >= 1, 120_000, 200);
    await waitFor('the sender retries', async () => (await src.metric('dwcp_stream_faults_total', 'stream="full",side="sender"')) >= 1, 60_000, 200);
    const destStatus = await dst.status();
    const receiver = destStatus.receivers.find((r) => r.streamId === 'full')!;
    assert.match(receiver.faulted ?? '', /ENOSPC|no space/i, `receiver status names the fault: ${JSON.stringify(receiver)}`);
    assert.equal(receiver.halted, null, 'ENOSPC may pass: retried, not halted');
    assert.equal(await dst.metric('dwcp_stream_retrying', 'stream="full",side="receiver"'), 1);
    assert.equal(await dst.metric('dwcp_stream_halted', 'stream="full"'), 0);
    assert.ok(dst.logs.some((l) => l.includes('"msg":"stream fault; the session ends and the sender retries with backoff"') && l.includes('ENOSPC')), 'the fault is logged with its code');
    const sender = (await src.status()).senders.find((s) => s.streamId === 'full')!;
    assert.equal(sender.halted, null, `the sender retries, it does not halt: ${JSON.stringify(sender)}`);

    // The agent is up and the other stream keeps replicating, new files too.
    assert.equal((await fetch(`http://127.0.0.1:${setup.ports.destHttp}/healthz`)).status, 200);
    await writeFile(join(ok.src, 'while-full.txt'), 'arrives while the other stream is stuck\n');
    await waitFor('the ok stream replicates a new file', async () => existsSync(join(ok.dst, 'while-full.txt')), 60_000, 200);

    // Space is freed: the stream resumes and completes.
    await rm(filler);
    await waitFor('both streams in sync', async () => {
      const st = await src.status();
      return st.senders.length === 2 && st.senders.every((s) => s.progress?.inSync === true && s.durableSeq === s.sentSeq);
    }, 180_000, 250);
    for (const [id, p] of [['full', full], ['ok', ok]] as const) {
      const cmp = await compareTrees(p.src, p.dst);
      assert.deepEqual(cmp.differences, [], `${id}: trees identical`);
      assert.deepEqual(auditProblems(await auditSeqs(dir, id)), [], `${id}: every seq applied exactly once`);
    }
    assert.equal(await dst.metric('dwcp_stream_retrying', 'stream="full",side="receiver"'), 0, 'no longer retrying');
    assert.equal((await dst.status()).receivers.find((r) => r.streamId === 'full')!.faulted, null);
  } finally {
    await Promise.allSettled([source?.kill9(), dest?.kill9()]);
    execFileSync('umount', ['-l', full.dst]);
    await rm(dir, { recursive: true, force: true });
  }
});
