// The source survives a crash (SIGKILL) and restart of the primary: it
// reconnects with backoff, resumes where it was, and the spool's complete
// segments are byte-identical to the primary's pg_wal.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLsn } from '../../src/streams/pg-wal/lsn.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { PG_SUPERUSER, startPostgres } from '../helpers/postgres.ts';
import { pump, waitFor } from './pump.ts';

test('source reconnects after the primary is killed and restarted, losing nothing', { timeout: 180_000 }, async () => {
  const primary = await startPostgres();
  const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-spool-'));
  const abort = new AbortController();
  const reconnects: Error[] = [];
  const source = new WalSource({
    streamId: 'r',
    connection: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER },
    slot: 'dwcp_restart',
    statusIntervalMs: 500,
    onReconnect: (err) => reconnects.push(err),
  });
  const sink = new WalSink({ streamId: 'r', spoolDir });
  try {
    const p = pump(source, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort.signal);
    p.done.catch(() => undefined);
    await waitFor('source to start', 30_000, async () => p.applied > 0);
    await primary.pgbench(['-i', '-s', '1', '-q']);
    const before = parseLsn((await primary.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l'))[0].l);
    await waitFor('spool to catch up before the crash', 60_000, async () => sink.flushLsn >= before);

    await primary.kill();
    await primary.restart();
    await primary.query('CREATE TABLE after_crash AS SELECT generate_series(1, 50000) AS x');
    await primary.query('SELECT pg_switch_wal()');
    await primary.query('CREATE TABLE after_switch (x int)');
    const target = parseLsn((await primary.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l'))[0].l);
    await waitFor('spool to catch up after the restart', 60_000, async () => sink.flushLsn >= target);
    assert.ok(reconnects.length >= 1, 'the source noticed the crash and reconnected');

    // Complete spool segments equal the primary's own segment files.
    const walDir = join(primary.dataDir, 'pg_wal');
    const onPrimary = new Set(readdirSync(walDir));
    const complete = readdirSync(spoolDir).filter((n) => /^[0-9A-F]{24}$/.test(n) && onPrimary.has(n));
    assert.ok(complete.length >= 2, `complete segments in both: ${complete.join(' ')}`);
    for (const name of complete) {
      assert.ok(readFileSync(join(spoolDir, name)).equals(readFileSync(join(walDir, name))), `${name} differs`);
    }
    abort.abort();
    await p.done;
  } finally {
    abort.abort();
    await source.close();
    await sink.close();
    await primary.stop();
    rmSync(spoolDir, { recursive: true, force: true });
  }
});
