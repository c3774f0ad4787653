// A real timeline switch: the source streams from a standby S (slot on S);
// S is promoted to timeline 2. The source follows (CopyDone, next timeline,
// TIMELINE_HISTORY), the spool gets 00000002.history, and a second standby
// fed only by the walsender endpoint follows onto timeline 2 as well.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walResumeCodec } from '../../src/wire/messages.ts';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from '../helpers/postgres.ts';
import { pump, waitFor } from './pump.ts';

async function lsnOf(server: Pg, sql: string): Promise<number> {
  const rows = await server.query<{ l: string | null }>(`SELECT ${sql}::text AS l`);
  return rows[0].l ? parseLsn(rows[0].l) : 0;
}

test('source and walsender endpoint follow a promotion to timeline 2', { timeout: 240_000 }, async () => {
  const servers: Pg[] = [];
  const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-spool-'));
  const abort = new AbortController();
  let walsender: Awaited<ReturnType<typeof startWalsenderServer>> | undefined;
  const sink = new WalSink({ streamId: 'tl', spoolDir });
  try {
    const primary = await startPostgres();
    servers.push(primary);
    const upstream = await startPostgres({ standbyOf: { host: '127.0.0.1', port: primary.port } });
    servers.push(upstream);
    const src = new WalSource({ streamId: 'tl', connection: { host: '127.0.0.1', port: upstream.port, user: PG_SUPERUSER }, slot: 'dwcp_tl', statusIntervalMs: 500 });
    const p = pump(src, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort.signal);
    p.done.catch(() => undefined);
    await primary.query('CREATE TABLE before_switch AS SELECT generate_series(1, 1000) AS x');
    await primary.query('CHECKPOINT');
    await waitFor('first durable WAL', 60_000, async () => sink.flushLsn > 0);

    walsender = await startWalsenderServer({ spool: spoolDir, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
    const downstream = await startPostgres({
      standbyOf: { host: '127.0.0.1', port: upstream.port, conninfo: `host=127.0.0.1 port=${walsender.port} user=standby sslmode=disable` },
    });
    servers.push(downstream);
    const t1 = await lsnOf(primary, 'pg_current_wal_flush_lsn()');
    await waitFor('downstream to replay timeline 1', 60_000, async () => (await lsnOf(downstream, 'pg_last_wal_replay_lsn()')) >= t1);

    await upstream.promote();
    await upstream.query('CREATE TABLE after_switch AS SELECT generate_series(1, 1000) AS x');
    const t2 = await lsnOf(upstream, 'pg_current_wal_flush_lsn()');
    await waitFor('spool to reach timeline 2', 60_000, async () => sink.flushLsn >= t2);
    const state = walResumeCodec.decode(p.checkpoints.at(-1)!);
    assert.equal(state.timeline, 2);
    assert.ok(readFileSync(join(spoolDir, '00000002.history')).equals(readFileSync(join(upstream.dataDir, 'pg_wal', '00000002.history'))));

    await waitFor('downstream to replay timeline 2', 90_000, async () => (await lsnOf(downstream, 'pg_last_wal_replay_lsn()')) >= t2);
    const rows = await downstream.query<{ n: string }>('SELECT count(*) AS n FROM after_switch');
    assert.equal(Number(rows[0].n), 1000);
    const rcv = await downstream.query<{ received_tli: number }>('SELECT received_tli FROM pg_stat_wal_receiver');
    assert.equal(rcv[0]?.received_tli, 2);
    abort.abort();
    await p.done.catch(() => undefined);
    await src.close();
  } finally {
    abort.abort();
    await sink.close();
    for (const s of servers.reverse()) await s.stop().catch(() => undefined);
    await walsender?.close();
    rmSync(spoolDir, { recursive: true, force: true });
  }
});
