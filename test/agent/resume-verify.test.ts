// The sender checks the destination's resume position against the source
// region's chain record before the source hears of it. Two real agents in
// this process over real TLS; the destination's checkpoint is rewritten
// while it is stopped; the source is wrapped by the test to see every
// resume point it is given (what a pg-wal source would report to its slot).
// A claim beyond anything ever sent halts the stream and never reaches the
// source; a claim ahead of the record but within what was sent (as after a
// sender died between an ack and its record) reaches it marked unverified.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { SENT_RESERVE_FRAMES } from '../../src/agent/stream-sender.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import type { Config } from '../../src/config/config.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { writeTwoRegion } from '../../src/cli/two-region.ts';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import { checkpointKey, commitCheckpoint, loadCheckpoint } from '../../src/consensus/checkpoints.ts';
import type { ResumePoint, Source } from '../../src/streams/stream.ts';
import type { DirSource } from '../../src/streams/objects/dir-source.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;

/** Run a federation to sync, rewrite the destination's checkpoint to seq+ahead with a made-up chain, restart the destination. */
async function claimAhead(ahead: number, after: (ctx: { source: Agent; resumes: ResumePoint[]; claimed: number; committedSeq: number }) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-resume-'));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(dst, { recursive: true });
  await generateSampleTree(src, { totalBytes: 1 * MiB, largestBytes: 128 * 1024, seed: 5 });
  const setup = await writeTwoRegion({ dir, sourcePath: src, destPath: dst, carriers: 1, amstExtra: '  initialBackoff: 100ms\n  maxBackoff: 1s' });
  const logger = pino({ level: 'warn' });
  const resumes: ResumePoint[] = [];
  // Same prototype, so the agent's status still sees a DirSource; every method runs on the real source.
  const wrapSource = (inner: Source): Source => {
    const real = inner as DirSource;
    const wrapped = Object.create(real) as DirSource;
    Object.assign(wrapped, {
      records: (resume: ResumePoint, signal: AbortSignal) => {
        resumes.push({ ...resume, state: new Uint8Array(0) });
        return real.records(resume, signal);
      },
      close: () => real.close(),
      progress: () => real.progress(),
    });
    return wrapped;
  };
  const destConfig: Config = await loadConfig(setup.destConfig);
  let dest = await Agent.start(destConfig, { logger });
  const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger, wrapSource });
  try {
    await waitFor('in sync', async () => {
      const s = source.status().senders;
      return s.length === 1 && s[0].progress?.inSync === true && s[0].durableSeq === s[0].sentSeq && s[0].durableSeq > 0;
    }, 120_000, 100);
    await dest.stop();
    const store = await EmbeddedStore.open(destConfig.acp.backend === 'embedded' ? destConfig.acp.path : '');
    const key = checkpointKey('demo', 'sample', 'us-east');
    const loaded = (await loadCheckpoint(store, key))!;
    const committedSeq = loaded.checkpoint.seq;
    const claimed = committedSeq + ahead;
    await commitCheckpoint(store, key, loaded.modRevision, { ...loaded.checkpoint, seq: claimed, chain: randomBytes(32).toString('hex') });
    await store.close();
    dest = await Agent.start(destConfig, { logger });
    await after({ source, resumes, claimed, committedSeq });
  } finally {
    await Promise.allSettled([source.stop(), dest.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

test('a destination claiming a seq beyond anything sent: the stream halts naming both positions; the source never hears the claim', { timeout: 180_000 }, async () => {
  await claimAhead(100 * SENT_RESERVE_FRAMES, async ({ source, resumes, claimed, committedSeq }) => {
    await waitFor('the sender halted', async () => source.status().senders.some((s) => s.halted !== null), 60_000, 100);
    assert.match(source.status().senders[0].halted!, new RegExp(`destination claims durable seq ${claimed}, beyond seq \\d+ that the source region ever sent \\(committed seq ${committedSeq}\\)`));
    assert.equal(source.status().senders[0].durableSeq, committedSeq, 'the sender did not adopt the claim');
    assert.deepEqual(resumes.filter((r) => r.seq === claimed), [], 'no resume point with the claimed position reached the source');
  });
});

test('a destination ahead of the record but within what was sent: resumed from, marked unverified for the source', { timeout: 180_000 }, async () => {
  await claimAhead(3, async ({ source, resumes, claimed }) => {
    await waitFor('the source got the claimed position', async () => resumes.some((r) => r.seq === claimed), 60_000, 100);
    assert.deepEqual(resumes.filter((r) => r.seq === claimed).map((r) => r.verified), [false]);
    assert.ok(resumes.slice(0, 1).every((r) => r.verified === true), 'the first session started from a verified position');
    assert.equal(source.status().senders[0].halted, null);
  });
});
