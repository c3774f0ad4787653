// kill -9 of agent A, then of agent B, twice each, while pgbench writes on
// the primary: the standby catches up with identical tables (no gap), and
// the slot's restart_lsn is never past what agent B holds durably in its
// spool (sampled all along: slot first, then spool, so a pass is real).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import {
  assertSameData,
  primaryFlushLsn,
  slotRestartLsn,
  spoolFlushLsn,
  startPgFederation,
  waitStandbyCaughtUp,
} from './pg-federation.ts';

/** pgbench: fixed seed, 2 clients x 1500 transactions, rate-limited so the kills land mid-load. */
const PGBENCH_RUN = ['-n', '--random-seed=7', '-c', '2', '-t', '1500', '-R', '400'];
const TRANSACTIONS = 3000;
/** Interval of the slot-vs-spool sampler, ms. */
const SAMPLE_INTERVAL_MS = 50;

test('kill -9 of agent A and of agent B under load: no gap, slot never past B durable WAL', { timeout: 300_000 }, async () => {
  const fed = await startPgFederation();
  const violations: string[] = [];
  let samples = 0;
  let sampling = true;
  try {
    await fed.primary.pgbench(['-i', '-s', '1', '-q']);
    // Sampler: restart_lsn (read first) must not exceed B's durable spool end (read second).
    const sampler = (async () => {
      while (sampling) {
        const slot = await slotRestartLsn(fed.primary, fed.setup.slot);
        const durable = await spoolFlushLsn(fed.setup.spoolDir);
        samples++;
        if (slot > durable && violations.length < 10) violations.push(`slot restart_lsn ${formatLsn(slot)} > B durable ${formatLsn(durable)}`);
        await sleep(SAMPLE_INTERVAL_MS);
      }
    })();
    sampler.catch(() => undefined);
    const load = fed.primary.pgbench(PGBENCH_RUN);
    load.catch(() => undefined); // awaited below; a failure of the kill loop must not hide behind it

    // Kill A, then B, twice, each time after the spool moved on.
    for (let round = 0; round < 2; round++) {
      for (const agent of [fed.source, fed.dest]) {
        const before = await spoolFlushLsn(fed.setup.spoolDir);
        await waitFor('spool to advance before the next kill', async () => (await spoolFlushLsn(fed.setup.spoolDir)) > before, 60_000, 50);
        await sleep(200 + Math.floor(Math.random() * 400));
        await agent.kill9();
        await sleep(300);
        await agent.start([]);
      }
    }
    await load;
    const target = await waitStandbyCaughtUp(fed, 120_000);
    sampling = false;
    await sampler;

    assert.deepEqual(violations, []);
    assert.ok(samples > 20, `sampler ran ${samples} times`);
    await assertSameData(fed.primary, fed.standby, TRANSACTIONS);
    // The slot does move once B holds the WAL (it is not simply stuck).
    await waitFor('slot to advance to what B holds', async () => (await slotRestartLsn(fed.primary, fed.setup.slot)) >= target, 30_000);
    assert.ok((await spoolFlushLsn(fed.setup.spoolDir)) >= (await primaryFlushLsn(fed.primary)) - 1024 * 1024);
  } finally {
    sampling = false;
    await fed.cleanup();
  }
});
