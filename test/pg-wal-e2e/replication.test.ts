// Primary -> agent A -> agent B -> real standby under pgbench load: the
// standby reaches the primary's final LSN with identical tables; both agents
// report pg-wal positions in /status and /metrics; and bad clients on agent
// B's walsender endpoint are refused with PostgreSQL errors while the
// standby keeps streaming.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { rawExchange } from '../helpers/raw-exchange.ts';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { startPostgres } from '../helpers/postgres.ts';
import {
  assertSameData,
  WALSENDER_PASSWORD,
  WALSENDER_USER,
  primaryFlushLsn,
  replayLsn,
  startPgFederation,
  waitStandbyCaughtUp,
  type PgFederation,
} from './pg-federation.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const run = promisify(execFile);
/** pgbench: fixed seed, clients and transactions per client. */
const PGBENCH_RUN = ['-n', '--random-seed=42', '-c', '2', '-t', '300'];

let fed: PgFederation | undefined;

before(async () => {
  fed = await startPgFederation();
});

after(async () => {
  await fed?.cleanup();
});

test('pgbench through two agents: the standby reaches the final LSN with identical tables', { timeout: 240_000 }, async () => {
  const f = fed!;
  await f.primary.pgbench(['-i', '-s', '2', '-q']);
  await f.primary.pgbench(PGBENCH_RUN);
  const target = await waitStandbyCaughtUp(f, 120_000);
  // The standby streams from agent B's endpoint, not from the primary.
  const receiver = await f.standby.query<{ status: string; sender_port: number }>('SELECT status, sender_port FROM pg_stat_wal_receiver');
  assert.equal(receiver[0]?.status, 'streaming');
  assert.equal(receiver[0]?.sender_port, f.setup.ports.walsender);
  await assertSameData(f.primary, f.standby, 600);

  // Metrics: A's durable-remote LSN and B's replayed LSN reach the target.
  await waitFor('agent metrics to reach the target LSN', async () => {
    const durable = await f.source.metric('dwcp_pg_wal_durable_lsn', 'role="source"');
    const replayed = await f.dest.metric('dwcp_pg_wal_replayed_lsn');
    return durable >= target && replayed >= target;
  }, 30_000);
  assert.ok((await f.source.metric('dwcp_pg_wal_sent_lsn')) >= target);
  const ratio = await f.source.metric('dwcp_pg_wal_wire_ratio');
  assert.ok(ratio > 1, `pgbench WAL compresses on the wire (ratio ${ratio})`);

  // `dwcp status` prints the same positions for each agent.
  const { stdout: a } = await run(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${f.setup.ports.sourceHttp}/status`]);
  const srcStream = (JSON.parse(a) as { pgWal: Array<{ role: string; durableLsn: string; sentLsn: string; lagBytes: number }> }).pgWal.find((s) => s.role === 'source');
  assert.ok(srcStream, `source pg-wal status in: ${a}`);
  assert.ok(parseLsn(srcStream.durableLsn) >= target);
  const { stdout: b } = await run(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${f.setup.ports.destHttp}/status`]);
  const dstStream = (JSON.parse(b) as { pgWal: Array<{ role: string; replayedLsn: string; standbys: number }> }).pgWal.find((s) => s.role === 'destination');
  assert.ok(dstStream, `destination pg-wal status in: ${b}`);
  assert.ok(parseLsn(dstStream.replayedLsn) >= target);
  assert.equal(dstStream.standbys, 1);
});

test("bad clients on agent B's walsender endpoint get PostgreSQL errors; the standby keeps streaming", { timeout: 120_000 }, async () => {
  const f = fed!;
  const port = f.setup.ports.walsender;
  // Wrong password: SCRAM fails with 28P01.
  const wrong = new pg.Client({ host: '127.0.0.1', port, user: WALSENDER_USER, password: 'not-it', replication: true } as pg.ClientConfig);
  await assert.rejects(wrong.connect(), (err: Error & { code?: string }) => {
    assert.equal(err.code, '28P01');
    return true;
  });
  // Unknown command: 42601, the connection is closed.
  const odd = new pg.Client({ host: '127.0.0.1', port, user: WALSENDER_USER, password: WALSENDER_PASSWORD, replication: true } as pg.ClientConfig);
  odd.on('error', () => undefined);
  await odd.connect();
  await assert.rejects(odd.query('DROP EVERYTHING'), (err: Error & { code?: string }) => {
    assert.equal(err.code, '42601');
    return true;
  });
  await odd.end().catch(() => undefined);
  // Garbage bytes: an ErrorResponse ('E') with 08P01, then close.
  const reply = await rawExchange(port, Buffer.from('\x00\x00\x00\x10garbage-garbage!'));
  assert.equal(String.fromCharCode(reply[0]), 'E');
  assert.match(reply.toString('latin1'), /08P01/);

  // Writes made after the attacks reach the standby over the same stream.
  await f.primary.query('CREATE TABLE after_attack (x int); INSERT INTO after_attack SELECT generate_series(1, 1000)');
  const target = await primaryFlushLsn(f.primary);
  await waitFor('standby to replay writes made after the attacks', async () => (await replayLsn(f.standby)) >= target, 60_000, 100);
  const rows = await f.standby.query<{ n: string }>('SELECT count(*) AS n FROM after_attack');
  assert.equal(Number(rows[0].n), 1000);
  const receiver = await f.standby.query<{ status: string }>('SELECT status FROM pg_stat_wal_receiver');
  assert.equal(receiver[0]?.status, 'streaming');
});

test("`dwcp wal-restore %f %p` serves agent B's complete segments (exit 0) and reports missing ones (exit 1)", { timeout: 120_000 }, async () => {
  const f = fed!;
  // Fill at least one whole segment, so the spool holds a complete one.
  await f.primary.query('SELECT pg_switch_wal()');
  await f.primary.query('CREATE TABLE filler AS SELECT generate_series(1, 10) AS x; SELECT pg_switch_wal()');
  await waitStandbyCaughtUp(f, 60_000);
  const segments = (await readdir(f.setup.spoolDir)).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  assert.ok(segments.length > 0, `complete segments in the spool: ${segments.join(',')}`);
  const target = join(f.dir, 'restored');
  // By config (as in restore_command), then by --spool.
  const byConfig = await runCli(['wal-restore', '--config', f.setup.destConfig, segments[0], target]);
  assert.equal(byConfig.code, 0, byConfig.stderr);
  assert.ok((await readFile(target)).equals(await readFile(join(f.setup.spoolDir, segments[0]))));
  const missing = await runCli(['wal-restore', '--spool', f.setup.spoolDir, 'FFFFFFFF0000000000000001', target + '.2']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /not in spool/);
  const usage = await runCli(['wal-restore', segments[0]]);
  assert.equal(usage.code, 2);
});

test("a standby whose only WAL source is restore_command = curl against agent B's /wal/ endpoint replays committed segments", { timeout: 240_000 }, async () => {
  const f = fed!;
  const url = `http://127.0.0.1:${f.setup.ports.destHttp}/wal/${f.setup.streamId}`;
  // Cloned from the primary, no primary_conninfo: every later segment comes over HTTP.
  const restored = await startPostgres({
    standbyOf: { host: '127.0.0.1', port: f.primary.port, conninfo: '' },
    settings: {
      restore_command: `'curl -sfo %p -u ${WALSENDER_USER}:${WALSENDER_PASSWORD} ${url}/%f'`,
      wal_retrieve_retry_interval: "'200ms'",
    },
  });
  try {
    await f.primary.query('CREATE TABLE restored_over_http AS SELECT generate_series(1, 500) AS x');
    await f.primary.query('SELECT pg_switch_wal()');
    // One more record and switch, so the segment with the table is complete and committed in B's spool.
    await f.primary.query('CREATE TABLE restored_over_http_2 (x int); SELECT pg_switch_wal()');
    await waitFor('the restore_command standby to replay the table', async () => {
      const rows = await restored.query<{ n: string }>("SELECT count(*) AS n FROM pg_class WHERE relname = 'restored_over_http'").catch(() => []);
      return Number(rows[0]?.n ?? 0) === 1;
    }, 180_000, 200);
    const rows = await restored.query<{ n: string }>('SELECT count(*) AS n FROM restored_over_http');
    assert.equal(Number(rows[0].n), 500);
    const receiver = await restored.query('SELECT pid FROM pg_stat_wal_receiver');
    assert.equal(receiver.length, 0, 'no streaming: the WAL came through restore_command');
  } finally {
    await restored.stop();
  }
});

async function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [CLI, ...args]);
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}
