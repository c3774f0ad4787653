// A pg-wal stream with two destination regions, one of them down (its agent
// killed -9): under pgbench load the primary never lets go of WAL the
// stopped destination has not made durable (no slot's restart_lsn passes
// its durable position), the other destination keeps replicating, and when
// the stopped one returns it catches up and its standby holds the primary's
// data. Each destination streams through its own slot: the first keeps the
// configured name, the second is <slot>_<region>.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { assertSameData, primaryFlushLsn, replayLsn, spoolFlushLsn } from './pg-federation.ts';
import { FIRST_DEST, SECOND_DEST, SLOT, startAgent, startPgTwoDestinations, type PgTwoDestinations } from './pg-two-destinations.ts';

/** pgbench: fixed seed, clients and transactions per client. */
const PGBENCH_CLIENTS = 2;
const PGBENCH_TRANSACTIONS = 300;
/** How often restart_lsn is sampled while pgbench runs, ms. */
const SAMPLE_INTERVAL_MS = 100;

let run: PgTwoDestinations | undefined;

before(async () => {
  run = await startPgTwoDestinations();
});

after(async () => {
  await run?.cleanup();
});

/** The lowest restart_lsn over the primary's slots (what bounds WAL removal), with every slot's name. */
async function slots(r: PgTwoDestinations): Promise<{ minRestart: number; names: string[] }> {
  const rows = await r.primary.query<{ slot_name: string; lsn: string | null }>('SELECT slot_name, restart_lsn::text AS lsn FROM pg_replication_slots ORDER BY slot_name');
  const lsns = rows.map((row) => (row.lsn ? parseLsn(row.lsn) : 0));
  return { minRestart: Math.min(...lsns), names: rows.map((row) => row.slot_name) };
}

test('one destination down: the slots keep its WAL under load, the other goes on, and it catches up when back', { timeout: 420_000 }, async () => {
  const r = run!;
  try {
    await r.primary.pgbench(['-i', '-s', '1', '-q']);
    // The second destination's standby, cloned now; it follows the ap-south agent's endpoint.
    const standby = await r.startStandby(SECOND_DEST);
    const initTarget = await primaryFlushLsn(r.primary);
    await waitFor('ap-south spool to hold the pgbench init', async () => (await spoolFlushLsn(r.regions[SECOND_DEST].spoolDir)) >= initTarget, 120_000, 200);
    await waitFor('ap-south standby to stream from its agent', async () => (await standby.query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver'))[0]?.status === 'streaming', 120_000, 200);

    // Each destination has its own slot on the primary.
    assert.deepEqual((await slots(r)).names, [SLOT, `${SLOT}_ap_south`].sort());

    // Stop ap-south: kill -9 its agent. What it made durable is what its spool holds now.
    await r.regions[SECOND_DEST].agent.kill9();
    const stoppedDurable = await spoolFlushLsn(r.regions[SECOND_DEST].spoolDir);
    assert.ok(stoppedDurable >= initTarget, 'ap-south had the init WAL before it stopped');

    // Load, while sampling the slots: WAL past ap-south's durable end must stay on the primary.
    let sampling = true;
    let highest = 0;
    const sampler = (async () => {
      while (sampling) {
        highest = Math.max(highest, (await slots(r)).minRestart);
        await new Promise((resolve) => setTimeout(resolve, SAMPLE_INTERVAL_MS));
      }
    })();
    await r.primary.pgbench(['-n', '--random-seed=42', '-c', String(PGBENCH_CLIENTS), '-t', String(PGBENCH_TRANSACTIONS)]);
    await r.primary.query('CHECKPOINT');
    const target = await primaryFlushLsn(r.primary);
    // us-east keeps replicating the whole load.
    await waitFor('us-east spool to reach the primary', async () => (await spoolFlushLsn(r.regions[FIRST_DEST].spoolDir)) >= target, 120_000, 200);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a few more samples after us-east's acks
    sampling = false;
    await sampler;
    assert.ok(highest > 0, 'slots sampled');
    assert.ok(highest <= stoppedDurable, `a slot's restart_lsn ${highest.toString(16)} passed ap-south's durable end ${stoppedDurable.toString(16)}`);

    // ap-south returns: it resumes from its checkpoint and its standby ends with the primary's data.
    await startAgent(r.regions[SECOND_DEST].agent);
    await waitFor('ap-south spool to catch up', async () => (await spoolFlushLsn(r.regions[SECOND_DEST].spoolDir)) >= target, 120_000, 200);
    await waitFor('ap-south standby to replay the load', async () => (await replayLsn(standby)) >= target, 120_000, 200);
    await assertSameData(r.primary, standby, PGBENCH_CLIENTS * PGBENCH_TRANSACTIONS);
    // Both slots follow their destination again.
    await waitFor('both slots to advance past the load', async () => (await slots(r)).minRestart >= target, 60_000, 200);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${r.tail(20)}`, { cause: err });
  }
});
