// A zombie sender on real etcd: the sending agent is paused (SIGSTOP) through
// a failover and then resumed (SIGCONT). Zero of its frames may be applied.
// Two layers, each tested on its own: (1) the zombie notices it lost
// leadership and stops itself before sending another frame; (2) a zombie
// that does not stop (fault injection DWCP_FAULT_ZOMBIE=1: it ignores the
// loss) keeps sending with its old epoch, and the destination fences every
// frame (dwcp_frames_fenced_total). Both end identical with every sequence
// number applied exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { FAULT_ZOMBIE_ENV } from '../../src/agent/agent.ts';
import { DEST, SOURCE, moveTreeInto, startAcpFederation, tempDir, waitForSender } from '../helpers/acp-federation.ts';

const MiB = 1024 * 1024;
/** Lease TTL of the agents, seconds. */
const LEASE_TTL_S = 2;

/** Epoch of the last "elected sender" log line of an agent. */
function electedEpoch(logs: string[]): number {
  for (let i = logs.length - 1; i >= 0; i--) {
    if (!logs[i].includes('"elected sender"')) continue;
    return (JSON.parse(logs[i]) as { epoch: number }).epoch;
  }
  return -1;
}

/** Run the pause-failover-resume scenario; returns counters for the caller's assertions. */
async function zombieScenario(ignoreLoss: boolean): Promise<{ zombieSentAfterResume: number; destFenced: number; zombieLostLogged: boolean }> {
  const dir = await tempDir('dwcp-acp-zombie-');
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  await mkdir(sourcePath, { recursive: true });
  const tree = await generateSampleTree(join(dir, 'staging'), { totalBytes: 120 * MiB, largestBytes: 30 * MiB });
  // Agents inherit the environment: the fault applies to every agent of this federation.
  if (ignoreLoss) process.env[FAULT_ZOMBIE_ENV] = '1';
  let fed;
  try {
    fed = await startAcpFederation({ dir, agentsPerRegion: 2, streams: [{ id: 'objs', sourcePath, destPath }], leaseTtl: `${LEASE_TTL_S}s` });
  } finally {
    delete process.env[FAULT_ZOMBIE_ENV];
  }
  let stopped = 0;
  try {
    await moveTreeInto(join(dir, 'staging'), sourcePath);
    const first = await waitForSender(fed, 'objs', 30_000);
    const zombie = fed.agents[SOURCE][first];
    await waitFor('some progress', async () => (await zombie.metric('dwcp_goodput_bytes_total')) >= tree.bytes * 0.15, 120_000, 50);
    const zombieEpoch = electedEpoch(zombie.logs);
    assert.ok(zombieEpoch > 0, 'the first sender logged its epoch');

    // Pause it through a failover: the other agent is elected and makes progress.
    process.kill(zombie.pid, 'SIGSTOP');
    stopped = zombie.pid;
    const other = fed.agents[SOURCE][1 - first];
    await waitFor('the other agent elected and progressing', async () => (await other.metric('dwcp_goodput_bytes_total')) > 0, LEASE_TTL_S * 1000 + 30_000, 100);
    const successorEpoch = electedEpoch(other.logs);
    assert.ok(successorEpoch > zombieEpoch, `successor epoch ${successorEpoch} is newer than the zombie's ${zombieEpoch}`);
    const destLogsAtResume = fed.agents[DEST].map((a) => a.logs.length);

    // Resume the zombie while the successor is still transferring.
    process.kill(zombie.pid, 'SIGCONT');
    stopped = 0;
    const sentAtResume = await zombie.metric('dwcp_frames_sent_total');
    await waitFor('successor in sync', async () => (await other.status()).senders.some((s) => s.progress?.inSync === true), 180_000, 250);
    await sleep(1000);

    // None of the zombie's frames applied: no destination accepted its epoch again, and the audit is exact.
    const reopened = fed.agents[DEST].flatMap((a, i) => a.logs.slice(destLogsAtResume[i])).filter((l) => l.includes('"stream session opened"') && l.includes(`"epoch":${zombieEpoch},`));
    assert.deepEqual(reopened, [], 'no destination opened a session for the zombie after it resumed');
    const cmp = await compareTrees(sourcePath, destPath);
    assert.deepEqual(cmp.differences, []);
    assert.equal(cmp.files, tree.files);
    assert.deepEqual(await fed.auditProblems('objs'), []);

    let destFenced = 0;
    for (const a of fed.agents[DEST]) destFenced += await a.metric('dwcp_frames_fenced_total');
    const zombieSentAfterResume = (await zombie.metric('dwcp_frames_sent_total')) - sentAtResume;
    console.log(`${ignoreLoss ? 'zombie ignoring its loss' : 'self-fencing zombie'}: epoch ${zombieEpoch} -> ${successorEpoch}; frames sent by the zombie after resume ${zombieSentAfterResume}, fenced at the destination ${destFenced}`);
    return { zombieSentAfterResume, destFenced, zombieLostLogged: zombie.logs.some((l) => l.includes('leadership lost')) };
  } catch (err) {
    console.error(fed.tail(30));
    throw err;
  } finally {
    if (stopped) process.kill(stopped, 'SIGCONT');
    await fed.cleanup();
  }
}

test('zombie sender (SIGSTOP through a failover, then SIGCONT) stops itself: sends nothing more, nothing of it applied', { timeout: 240_000 }, async () => {
  const r = await zombieScenario(false);
  assert.ok(r.zombieLostLogged, 'the zombie logged that it lost leadership');
  assert.equal(r.zombieSentAfterResume, 0, 'the zombie sent no frame after it resumed');
});

test('zombie sender that ignores its lost leadership: the destination fences all its frames, none applied', { timeout: 240_000 }, async () => {
  const r = await zombieScenario(true);
  assert.ok(r.zombieSentAfterResume > 0, 'the zombie kept sending after it resumed (the fault is in effect)');
  assert.ok(r.destFenced > 0, 'the fenced counter shows its frames');
});
