// Primary -> agent A (eu-west) -> agent B (us-east) -> standby, all real
// processes on loopback: a PostgreSQL 15 primary, two dwcp agent child
// processes and a PostgreSQL 15 standby whose primary_conninfo points at
// agent B's walsender endpoint.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePgTwoRegion, type PgTwoRegion, type PgTwoRegionOptions } from '../../src/cli/pg-two-region.ts';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { readSpoolState } from '../../src/streams/pg-wal/wal-spool.ts';
import { AgentProcess, waitFor } from '../helpers/agent-process.ts';
import { PG_SUPERUSER, startPostgres, type Pg, type StartPostgresOptions } from '../helpers/postgres.ts';

/** User and password the standby authenticates with on agent B's endpoint (SCRAM). */
export const WALSENDER_USER = 'replicator';
export const WALSENDER_PASSWORD = 'rep-secret-e2e';

/** pgbench tables and the order that makes a checksum deterministic. */
export const PGBENCH_TABLES = [
  ['pgbench_accounts', 'aid'],
  ['pgbench_branches', 'bid'],
  ['pgbench_tellers', 'tid'],
  ['pgbench_history', 'tid, bid, aid, delta, mtime'],
] as const;

/** A running primary -> A -> B -> standby chain. */
export interface PgFederation {
  dir: string;
  primary: Pg;
  standby: Pg;
  setup: PgTwoRegion;
  /** Agent A: streams from the primary. */
  source: AgentProcess;
  /** Agent B: spools and serves the standby. */
  dest: AgentProcess;
  cleanup(): Promise<void>;
}

/** Options: pg-two-region overrides plus primary settings. */
export interface PgFederationOptions extends Partial<Omit<PgTwoRegionOptions, 'dir' | 'primary'>> {
  primarySettings?: StartPostgresOptions['settings'];
  /** Extra standby settings (on top of a 200 ms wal_retrieve_retry_interval). */
  standbySettings?: StartPostgresOptions['settings'];
}

/** Start the primary, both agents, wait for WAL in B's spool, then clone and start the standby. */
export async function startPgFederation(options: PgFederationOptions = {}): Promise<PgFederation> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-pg-e2e-'));
  let primary: Pg | undefined;
  let standby: Pg | undefined;
  let source: AgentProcess | undefined;
  let dest: AgentProcess | undefined;
  const cleanup = async (): Promise<void> => {
    await standby?.stop().catch(() => undefined);
    await source?.kill9();
    await dest?.kill9();
    await primary?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    primary = await startPostgres({ settings: options.primarySettings });
    const { primarySettings: _, standbySettings, ...rest } = options;
    const setup = await writePgTwoRegion({
      walsenderUsers: { [WALSENDER_USER]: WALSENDER_PASSWORD },
      ...rest,
      dir,
      primary: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER },
    });
    dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
    source = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
    await dest.start([]);
    await source.start([]);
    await waitFor('first durable WAL in agent B spool', async () => (await spoolFlushLsn(setup.spoolDir)) > 0, 60_000);
    standby = await startPostgres({
      standbyOf: {
        host: '127.0.0.1',
        port: primary.port,
        conninfo: `host=127.0.0.1 port=${setup.ports.walsender} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=far_standby sslmode=disable`,
      },
      settings: { wal_retrieve_retry_interval: "'200ms'", ...standbySettings },
    });
    return { dir, primary, standby, setup, source, dest, cleanup };
  } catch (err) {
    const logs = [...(source?.logs.slice(-10) ?? []), ...(dest?.logs.slice(-10) ?? [])].join('\n');
    await cleanup();
    throw new Error(`start pg federation: ${(err as Error).message}\n${logs}`, { cause: err });
  }
}

/** Durable end of WAL in a spool (0 when empty). */
export async function spoolFlushLsn(spoolDir: string): Promise<number> {
  return Math.max(0, (await readSpoolState(spoolDir))?.flushLsn ?? 0);
}

/** The primary's flushed WAL end. */
export async function primaryFlushLsn(server: Pg): Promise<number> {
  const rows = await server.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

/** The standby's replayed WAL end (0 before any). */
export async function replayLsn(server: Pg): Promise<number> {
  const rows = await server.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
  return rows[0].lsn ? parseLsn(rows[0].lsn) : 0;
}

/** restart_lsn of a slot on the primary (0 when unset); fails when the slot is absent. */
export async function slotRestartLsn(server: Pg, slot: string): Promise<number> {
  const rows = await server.query<{ lsn: string | null }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [slot]);
  if (rows.length !== 1) throw new Error(`slot ${slot} missing on the primary`);
  return rows[0].lsn ? parseLsn(rows[0].lsn) : 0;
}

/** Row count and md5 of a table in a fixed order. */
export async function tableChecksum(server: Pg, table: string, order: string): Promise<string> {
  const rows = await server.query<{ sum: string | null; n: string }>(
    `SELECT md5(string_agg(t::text, ',' ORDER BY ${order})) AS sum, count(*) AS n FROM ${table} t`,
  );
  return `${rows[0].n}:${rows[0].sum}`;
}

/** The standby holds what the primary holds: every pgbench table's checksum, and all `transactions` history rows. */
export async function assertSameData(primary: Pg, standby: Pg, transactions: number): Promise<void> {
  for (const [table, order] of PGBENCH_TABLES) {
    assert.equal(await tableChecksum(standby, table, order), await tableChecksum(primary, table, order), `${table} differs`);
  }
  const history = await standby.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history');
  assert.equal(Number(history[0].n), transactions);
}

/** Wait until the standby replayed everything the primary flushed now. */
export async function waitStandbyCaughtUp(fed: PgFederation, timeoutMs: number): Promise<number> {
  const target = await primaryFlushLsn(fed.primary);
  await waitFor(`standby replay to reach the primary's ${target}`, async () => (await replayLsn(fed.standby)) >= target, timeoutMs, 100);
  return target;
}
