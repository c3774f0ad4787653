// The walsender endpoint serves a newly committed position to a streaming
// standby when the sink commits it, not when a poll timer next fires (issue
// 9 item 7). Global timers are mocked and never advanced in the second
// test, so a wake-up that depended on one would never come; real file I/O
// still completes. (node:test does not mock node:timers/promises, which the
// old 50 ms poll used: the first test is the one that fails on it.)

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mock, test } from 'node:test';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { dataMeta, streamUntil } from './xlog-stream.ts';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7355555555555555555', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };
/** Rounds of real file I/O to wait for the commit to arrive before calling it lost (no wall clock). */
const MAX_IO_ROUNDS = 20_000;


/** End of the last XLogData once end bytes arrived. */
async function streamedTo(client: ReplicationClient, end: number): Promise<number> {
  return (await streamUntil(client, end)).at(-1)!.end;
}

test('no poll timer in the endpoint or the spool reader', () => {
  for (const file of ['src/streams/pg-wal/walsender-server.ts', 'src/streams/pg-wal/wal-spool.ts']) {
    const source = readFileSync(join(import.meta.dirname, '../..', file), 'utf8');
    assert.doesNotMatch(source, /setInterval\(|POLL_INTERVAL|timers\/promises/, `${file} polls`);
  }
});

test('a commit reaches a streaming standby without waiting for a timer', { timeout: 120_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-event-'));
  const sink = new WalSink({ streamId: 's', spoolDir: spool });
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
  let client: ReplicationClient | undefined;
  try {
    await sink.recover(new Uint8Array(0), 0);
    await sink.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
    const start = MiB;
    await sink.apply(2, dataMeta(start), randomBytes(10_000));
    await sink.committed(2, await sink.flush());
    client = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby' });
    // From here no timer fires: once caught up, the endpoint waits for more WAL without one.
    mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
    await client.startCopyBoth(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`);
    assert.equal(await streamedTo(client, start + 10_000), start + 10_000);
    // Let the endpoint reach its wait (real I/O rounds, no clock).
    for (let i = 0; i < 100; i++) await stat(spool);

    const end = start + 10_000 + 20_000;
    await sink.apply(3, dataMeta(start + 10_000), randomBytes(20_000));
    await sink.committed(3, await sink.flush());
    let arrived: number | undefined;
    const reading = streamedTo(client, end).then((last) => (arrived = last));
    for (let i = 0; i < MAX_IO_ROUNDS && arrived === undefined; i++) await stat(spool);
    assert.equal(arrived, end, 'the committed WAL did not reach the standby without a timer');
    await reading;
  } finally {
    mock.timers.reset();
    client?.close();
    await server.close();
    await sink.close();
    rmSync(spool, { recursive: true, force: true });
  }
});
