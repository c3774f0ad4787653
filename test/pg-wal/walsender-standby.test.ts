// End to end with real PostgreSQL 15: primary -> WalSource -> (in-process
// pump standing in for the link) -> WalSink spool -> walsender endpoint ->
// real standby. Then the endpoint is attacked (wrong password, unknown
// command, garbage bytes) while the standby keeps streaming.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { rawExchange } from '../helpers/raw-exchange.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from '../helpers/postgres.ts';
import { pump, waitFor, type Pump } from './pump.ts';

const WALSENDER_USER = 'replicator';
const WALSENDER_PASSWORD = 'rep-secret-7';
const TABLES = [
  ['pgbench_accounts', 'aid'],
  ['pgbench_branches', 'bid'],
  ['pgbench_tellers', 'tid'],
  ['pgbench_history', 'tid, bid, aid, delta, mtime'],
] as const;

let primary: Pg | undefined;
let standby: Pg | undefined;
let walsender: Awaited<ReturnType<typeof startWalsenderServer>> | undefined;
let spoolDir = '';
const abort = new AbortController();
let running: Pump | undefined;
let sink: WalSink | undefined;
let source: WalSource | undefined;

async function checksum(server: Pg, table: string, order: string): Promise<string> {
  const rows = await server.query<{ sum: string | null; n: string }>(
    `SELECT md5(string_agg(t::text, ',' ORDER BY ${order})) AS sum, count(*) AS n FROM ${table} t`,
  );
  return `${rows[0].n}:${rows[0].sum}`;
}

async function replayLsn(server: Pg): Promise<number> {
  const rows = await server.query<{ lsn: string | null }>('SELECT pg_last_wal_replay_lsn()::text AS lsn');
  return rows[0].lsn ? parseLsn(rows[0].lsn) : 0;
}

async function flushLsn(server: Pg): Promise<number> {
  const rows = await server.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
  return parseLsn(rows[0].lsn);
}

before(async () => {
  primary = await startPostgres();
  spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-spool-'));
  source = new WalSource({ streamId: 'pg-main', connection: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER }, slot: 'dwcp_e2e', statusIntervalMs: 1000 });
  sink = new WalSink({ streamId: 'pg-main', spoolDir });
  const resume = await sink.recover(new Uint8Array(0), 0);
  running = pump(source, sink, { seq: 0, state: resume }, abort.signal);
  running.done.catch(() => undefined);
  await waitFor('first durable WAL in the spool', 30_000, async () => sink!.flushLsn > 0);

  walsender = await startWalsenderServer({
    spool: spoolDir,
    host: '127.0.0.1',
    port: 0,
    auth: { users: { [WALSENDER_USER]: WALSENDER_PASSWORD }, trustCidrs: [] },
  });
  // The standby is cloned from the primary but streams from the walsender endpoint (SCRAM via libpq).
  standby = await startPostgres({
    standbyOf: {
      host: '127.0.0.1',
      port: primary.port,
      conninfo: `host=127.0.0.1 port=${walsender.port} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=dwcp_standby sslmode=disable`,
    },
  });
});

after(async () => {
  abort.abort();
  await running?.done.catch(() => undefined);
  await source?.close();
  await sink?.close();
  await standby?.stop();
  await walsender?.close();
  await primary?.stop();
  if (spoolDir) rmSync(spoolDir, { recursive: true, force: true });
});

test('pgbench on the primary reaches the standby through source, sink and walsender endpoint', { timeout: 180_000 }, async () => {
  await primary!.pgbench(['-i', '-s', '1', '-q']);
  await primary!.pgbench(['-n', '-c', '2', '-t', '150']);
  const target = await flushLsn(primary!);
  await waitFor('standby replay to reach the primary', 120_000, async () => (await replayLsn(standby!)) >= target);
  // Streaming from the endpoint, not from the primary, and reporting its position back to it.
  const receiver = await standby!.query<{ status: string; sender_port: number }>('SELECT status, sender_port FROM pg_stat_wal_receiver');
  assert.equal(receiver[0]?.status, 'streaming');
  assert.equal(receiver[0]?.sender_port, walsender!.port);
  const reported = [...walsender!.standbys.values()].map((s) => s.flushLsn);
  assert.ok(reported.some((lsn) => lsn > 0), `standby status updates seen: ${reported.join(',')}`);
  for (const [table, order] of TABLES) {
    assert.equal(await checksum(standby!, table, order), await checksum(primary!, table, order), `${table} differs`);
  }
  const history = await standby!.query<{ n: string }>('SELECT count(*) AS n FROM pgbench_history');
  assert.equal(Number(history[0].n), 300);
});

test('the walsender endpoint refuses bad clients with PostgreSQL errors and keeps streaming', { timeout: 120_000 }, async () => {
  const port = walsender!.port;
  // Wrong password: SCRAM fails.
  const wrong = new pg.Client({ host: '127.0.0.1', port, user: WALSENDER_USER, password: 'not-it', replication: true } as pg.ClientConfig);
  await assert.rejects(wrong.connect(), /password authentication failed for user "replicator"/);

  // Unknown command: ErrorResponse with a syntax-error SQLSTATE, connection closed.
  const odd = new pg.Client({ host: '127.0.0.1', port, user: WALSENDER_USER, password: WALSENDER_PASSWORD, replication: true } as pg.ClientConfig);
  odd.on('error', () => undefined);
  await odd.connect();
  const ident = await odd.query('IDENTIFY_SYSTEM');
  assert.equal(ident.rows.length, 1);
  await assert.rejects(odd.query('DROP EVERYTHING'), (err: Error & { code?: string }) => {
    assert.equal(err.code, '42601');
    assert.match(err.message, /unknown replication command/);
    return true;
  });
  await odd.end().catch(() => undefined);

  // Garbage bytes instead of a startup packet: an ErrorResponse ('E') comes back, then close.
  const reply = await rawExchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(String.fromCharCode(reply[0]), 'E');
  assert.match(reply.toString('latin1'), /08P01/);

  // The standby still streams: new writes on the primary arrive.
  await primary!.query('CREATE TABLE after_attack (x int); INSERT INTO after_attack SELECT generate_series(1, 1000)');
  const target = await flushLsn(primary!);
  await waitFor('standby to replay writes made after the attacks', 60_000, async () => (await replayLsn(standby!)) >= target);
  const rows = await standby!.query<{ n: string }>('SELECT count(*) AS n FROM after_attack');
  assert.equal(Number(rows[0].n), 1000);
  const receiver = await standby!.query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver');
  assert.equal(receiver[0]?.status, 'streaming');
});
