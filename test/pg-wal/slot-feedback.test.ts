// The slot is told only what the destination made durable: its restart_lsn
// never passes the sink's flushed end, and without durable acks it does not
// move at all (so the primary keeps the WAL).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from '../helpers/postgres.ts';
import { pump, waitFor } from './pump.ts';

const SLOT = 'dwcp_feedback';

async function slotRestartLsn(server: Pg): Promise<number> {
  const rows = await server.query<{ lsn: string | null }>('SELECT restart_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1', [SLOT]);
  assert.equal(rows.length, 1, `slot ${SLOT} exists`);
  return rows[0].lsn ? parseLsn(rows[0].lsn) : 0;
}

test('slot restart_lsn never passes what the sink made durable', { timeout: 180_000 }, async () => {
  const primary = await startPostgres();
  const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-spool-'));
  const abort1 = new AbortController();
  const abort2 = new AbortController();
  const options = { streamId: 'fb', connection: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER }, slot: SLOT, statusIntervalMs: 200 };
  try {
    // Phase 1: WAL is received and applied but never acknowledged durable.
    const undurableSink = new WalSink({ streamId: 'fb', spoolDir });
    const source1 = new WalSource(options);
    const p1 = pump(source1, undurableSink, { seq: 0, state: await undurableSink.recover(new Uint8Array(0), 0) }, abort1.signal, { durable: false });
    p1.done.catch(() => undefined);
    await waitFor('slot creation', 30_000, async () => p1.applied > 0);
    const initial = await slotRestartLsn(primary);
    await primary.pgbench(['-i', '-s', '1', '-q']);
    const written = await primary.query<{ lsn: string }>('SELECT pg_current_wal_flush_lsn()::text AS lsn');
    await waitFor('WAL to be applied to the sink', 60_000, async () => p1.applied > 20);
    await new Promise((r) => setTimeout(r, 1000)); // several status intervals
    await primary.query('CHECKPOINT');
    assert.equal(await slotRestartLsn(primary), initial, 'restart_lsn moved without durable acks');
    assert.ok(parseLsn(written[0].lsn) > initial + 8 * 1024 * 1024, 'pgbench wrote WAL past the slot');
    const kept = await primary.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_ls_waldir() WHERE name = (SELECT pg_walfile_name(restart_lsn) FROM pg_replication_slots WHERE slot_name = '${SLOT}')`,
    );
    assert.equal(Number(kept[0].n), 1, 'primary kept the segment at the slot position');
    abort1.abort();
    await p1.done.catch(() => undefined);
    await source1.close();
    await undurableSink.close();

    // Phase 2: durable acks; sample the slot while WAL flows, it stays at or behind the sink.
    const sink = new WalSink({ streamId: 'fb', spoolDir });
    const source2 = new WalSource(options);
    const p2 = pump(source2, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort2.signal);
    p2.done.catch(() => undefined);
    const bench = primary.pgbench(['-n', '-c', '2', '-t', '300']);
    let samples = 0;
    let advanced = false;
    let benchDone = false;
    void bench.finally(() => (benchDone = true)).catch(() => undefined);
    while (!benchDone || !advanced) {
      const restart = await slotRestartLsn(primary);
      const durable = sink.flushLsn; // read after the slot: durable only grows
      assert.ok(restart <= durable || restart === initial, `slot restart_lsn ${restart} passed durable ${durable}`);
      if (restart > initial) advanced = true;
      samples += 1;
      if (samples > 600) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await bench;
    assert.ok(advanced, 'restart_lsn advanced once the sink acknowledged durable WAL');
    assert.ok(source2.durableLsn <= sink.flushLsn);
    abort2.abort();
    await p2.done.catch(() => undefined);
    await source2.close();
    await sink.close();
  } finally {
    abort1.abort();
    abort2.abort();
    await primary.stop();
    rmSync(spoolDir, { recursive: true, force: true });
  }
});
