// ACP failover of a pg-wal stream on real etcd: two regions, three agents
// each, one WAL stream from a PostgreSQL 15 primary to a far standby. kill -9
// of the sending agent during pgbench load: another agent of the source
// region is elected within the lease TTL and resumes from the destination's
// checkpoint; the standby ends identical to the primary (no gap), every
// frame is applied once (merged audit of the destination agents), and the
// slot's restart_lsn never passes what the destination holds durably.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { SOURCE, tempDir } from '../helpers/acp-federation.ts';
import { PG_SLOT, startAcpPgFederation } from '../helpers/acp-pg-federation.ts';
import { assertSameData, replayLsn, slotRestartLsn, spoolFlushLsn } from '../pg-wal-e2e/pg-federation.ts';

/** Lease TTL of the agents, seconds. */
const LEASE_TTL_S = 2;
/** Slack on top of the TTL for the successor's election, ms. */
const ELECTION_SLACK_MS = 3_000;
/** pgbench: fixed seed, 2 clients x 800 transactions at 200 tps (about 8 s), so the kill lands mid-load. */
const PGBENCH_RUN = ['-n', '--random-seed=7', '-c', '2', '-t', '800', '-R', '200'];
const TRANSACTIONS = 1600;
/** How long into the load the sender is killed, ms. */
const KILL_AFTER_MS = 2_500;
/** Interval of the slot-vs-spool sampler, ms. */
const SAMPLE_INTERVAL_MS = 50;

test('pg-wal: kill -9 of the sending agent under pgbench: another agent takes over within the lease TTL; standby identical, no gap, no double apply', { timeout: 180_000 }, async () => {
  const started = Date.now();
  const fed = await startAcpPgFederation({ dir: await tempDir('dwcp-acp-wal-failover-'), agentsPerRegion: 3, leaseTtl: `${LEASE_TTL_S}s` });
  const violations: string[] = [];
  let samples = 0;
  let sampling = true;
  let sampler: Promise<void> = Promise.resolve();
  try {
    const setupMs = Date.now() - started;
    await fed.primary.pgbench(['-i', '-s', '1', '-q']);
    // restart_lsn read first, the destination's durable spool end second: a pass is real.
    sampler = (async () => {
      while (sampling) {
        const slot = await slotRestartLsn(fed.primary, PG_SLOT);
        const durable = await spoolFlushLsn(fed.spoolDir);
        samples++;
        if (slot > durable && violations.length < 10) violations.push(`slot restart_lsn ${formatLsn(slot)} > destination durable ${formatLsn(durable)}`);
        await sleep(SAMPLE_INTERVAL_MS);
      }
    })();
    sampler.catch(() => undefined);

    const first = await fed.sendingAgent();
    assert.ok(first >= 0, 'a source agent sends the stream before the load');
    const load = fed.primary.pgbench(PGBENCH_RUN);
    load.catch(() => undefined); // awaited below

    // Kill the sender mid-load, once the spool has moved on under the load.
    const spoolBefore = await spoolFlushLsn(fed.spoolDir);
    await sleep(KILL_AFTER_MS);
    await waitFor('the spool to advance under load', async () => (await spoolFlushLsn(fed.spoolDir)) > spoolBefore, 30_000, 50);
    const spoolAtKill = await spoolFlushLsn(fed.spoolDir);
    const loadRunning = await Promise.race([load.then(() => false, () => false), sleep(0).then(() => true)]);
    const killedAt = Date.now();
    await fed.agents[SOURCE][first].kill9();
    let next = -1;
    await waitFor('another source agent to send the stream', async () => {
      next = await fed.sendingAgent();
      return next >= 0 && next !== first;
    }, LEASE_TTL_S * 1000 + 15_000, 100);
    const electedMs = Date.now() - killedAt;
    await waitFor('the successor to make WAL durable at the destination', async () => (await spoolFlushLsn(fed.spoolDir)) > spoolAtKill, 30_000, 50);
    const resumedMs = Date.now() - killedAt;

    await load;
    const target = parseLsn((await fed.primary.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn'))[0].lsn);
    await waitFor(`standby replay to reach the primary's ${formatLsn(target)}`, async () => (await replayLsn(fed.standby)) >= target, 60_000, 100);
    sampling = false;
    await sampler;
    const totalMs = Date.now() - started;
    console.log(`wal failover: agent ${first} killed, agent ${next} elected after ${electedMs} ms, WAL durable again after ${resumedMs} ms (lease ttl ${LEASE_TTL_S} s); setup ${setupMs} ms, total ${totalMs} ms, ${samples} slot samples`);

    assert.ok(loadRunning, 'pgbench was still running when the sender was killed');
    assert.ok(electedMs < LEASE_TTL_S * 1000 + ELECTION_SLACK_MS, `successor elected after ${electedMs} ms, more than the ${LEASE_TTL_S} s ttl plus ${ELECTION_SLACK_MS} ms`);
    assert.deepEqual(violations, []);
    assert.ok(samples > 20, `sampler ran ${samples} times`);
    await assertSameData(fed.primary, fed.standby, TRANSACTIONS);
    assert.deepEqual(await fed.auditProblems(), []);
    assert.ok((await fed.auditCount()) > 0, 'the audit recorded applied frames');
    // The slot does follow the destination (it is not simply stuck).
    await waitFor('slot to advance to what the destination holds', async () => (await slotRestartLsn(fed.primary, PG_SLOT)) >= target, 30_000);
  } catch (err) {
    console.error(fed.tail(30));
    throw err;
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    await fed.cleanup();
  }
});
