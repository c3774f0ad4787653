// Synchronous mode: the primary lists agent A's application_name in
// synchronous_standby_names, so a commit returns only once agent B holds its
// WAL durably. With B stopped a commit blocks; it completes once B is back.
// The commit latency with and without waiting for the far region is
// printed (a diagnostic, not asserted: timing depends on the machine).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { PG_SUPERUSER } from '../helpers/postgres.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { primaryFlushLsn, spoolFlushLsn, startPgFederation, waitStandbyCaughtUp } from './pg-federation.ts';

const APPLICATION_NAME = 'dwcp_sync_e2e';
/** Commits timed per mode. */
const LATENCY_COMMITS = 100;
/** How long a commit must stay blocked while B is down to count as blocked, ms. */
const BLOCKED_FOR_MS = 3_000;

/** Median and p95 of commit times (ms) of single-row inserts under a synchronous_commit setting. */
async function commitLatency(client: pg.Client, mode: 'on' | 'local'): Promise<{ p50: number; p95: number }> {
  await client.query(`SET synchronous_commit = ${mode}`);
  const times: number[] = [];
  for (let i = 0; i < LATENCY_COMMITS; i++) {
    const t0 = performance.now();
    await client.query('INSERT INTO sync_probe (mode) VALUES ($1)', [mode]);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length * 0.5)], p95: times[Math.floor(times.length * 0.95)] };
}

test('synchronous mode: with agent B stopped a commit blocks, and completes once B is back', { timeout: 240_000 }, async (t) => {
  const fed = await startPgFederation({
    streamId: 'pg-sync',
    synchronous: true,
    applicationName: APPLICATION_NAME,
    primarySettings: { synchronous_standby_names: `'${APPLICATION_NAME}'` },
  });
  const client = new pg.Client({ host: '127.0.0.1', port: fed.primary.port, user: PG_SUPERUSER, database: 'postgres' });
  client.on('error', () => undefined);
  try {
    await client.connect();
    // The primary sees agent A as its synchronous standby.
    await waitFor('agent A to be the synchronous standby', async () => {
      const rows = await fed.primary.query<{ sync_state: string }>('SELECT sync_state FROM pg_stat_replication WHERE application_name = $1', [APPLICATION_NAME]);
      return rows[0]?.sync_state === 'sync';
    }, 30_000);
    await client.query('CREATE TABLE sync_probe (id serial PRIMARY KEY, mode text)');

    // Commit latency: waiting for B's durable ack vs local flush only.
    const local = await commitLatency(client, 'local');
    const remote = await commitLatency(client, 'on');
    t.diagnostic(`commit latency on loopback: local p50 ${local.p50.toFixed(2)} ms p95 ${local.p95.toFixed(2)} ms; synchronous via dwcp p50 ${remote.p50.toFixed(2)} ms p95 ${remote.p95.toFixed(2)} ms`);

    // B down: a synchronous commit does not return.
    await fed.dest.kill9();
    let committed = false;
    const commit = client.query("INSERT INTO sync_probe (mode) VALUES ('while-b-down')").then(() => {
      committed = true;
    });
    commit.catch(() => undefined);
    await sleep(BLOCKED_FOR_MS);
    assert.equal(committed, false, 'a synchronous commit returned while agent B was down');
    const waiting = await fed.primary.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
    assert.equal(Number(waiting[0].n), 1, 'the commit waits for synchronous replication');

    // B back: the commit completes, and its WAL is in B's spool.
    await fed.dest.start([]);
    await commit;
    assert.equal(committed, true);
    const committedLsn = await primaryFlushLsn(fed.primary);
    assert.ok((await spoolFlushLsn(fed.setup.spoolDir)) > 0);
    await waitStandbyCaughtUp(fed, 60_000);
    const rows = await fed.standby.query<{ n: string }>("SELECT count(*) AS n FROM sync_probe WHERE mode = 'while-b-down'");
    assert.equal(Number(rows[0].n), 1);
    assert.ok((await spoolFlushLsn(fed.setup.spoolDir)) >= committedLsn - 1024 * 1024);
  } finally {
    await client.end().catch(() => undefined);
    await fed.cleanup();
  }
});
