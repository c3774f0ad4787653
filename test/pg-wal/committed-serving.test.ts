// WAL that the sink made durable but whose checkpoint is not committed in
// consensus yet may still be rolled back (recover() cuts the spool to the
// committed checkpoint): neither the walsender endpoint nor wal-restore
// serves it. And recover() with no checkpoint does not delete the spool:
// that waits until the first record is applied, after the sender's
// divergence check.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec, walResumeCodec } from '../../src/wire/messages.ts';
import { dataMeta, streamUntil } from './xlog-stream.ts';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalFileMissingError, walRestore } from '../../src/streams/pg-wal/wal-restore.ts';
import { WalSpoolReader } from '../../src/streams/pg-wal/wal-spool.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7322222222222222222', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };


function withDirs(fn: (spool: string, target: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const spool = mkdtempSync(join(tmpdir(), 'dwcp-committed-'));
    const target = mkdtempSync(join(tmpdir(), 'dwcp-committed-target-'));
    try {
      await fn(spool, target);
    } finally {
      rmSync(spool, { recursive: true, force: true });
      rmSync(target, { recursive: true, force: true });
    }
  };
}


test('the walsender and wal-restore serve committed WAL only, not what is durable but uncommitted', { timeout: 60_000 }, withDirs(async (spool, target) => {
  const sink = new WalSink({ streamId: 's', spoolDir: spool });
  await sink.recover(new Uint8Array(0), 0);
  await sink.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
  const start = MiB;
  const a = randomBytes(600 * 1024);
  const b = randomBytes(600 * 1024); // crosses into segment 2: segment 1 becomes complete
  await sink.apply(2, dataMeta(start), a);
  const stateA = await sink.flush();
  await sink.committed(2, stateA);
  await sink.apply(3, dataMeta(start + a.length), b);
  const stateB = await sink.flush(); // durable, not committed
  const endA = start + a.length;
  const endB = endA + b.length;
  assert.equal(walResumeCodec.decode(stateB).flushLsn, endB);
  assert.ok(existsSync(join(spool, '000000010000000000000001')), 'segment 1 is complete and durable');

  // wal-restore: the complete segment ends past the committed position.
  await assert.rejects(walRestore(spool, '000000010000000000000001', join(target, 'X')), (err: Error) => err instanceof WalFileMissingError && /not committed/.test(err.message));
  // The endpoint: IDENTIFY_SYSTEM says the committed end, streaming stops there.
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
  const client = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby' });
  try {
    const ident = (await client.simpleQuery('IDENTIFY_SYSTEM'))[0].rows[0];
    assert.equal(ident[2]?.toString(), formatLsn(endA));
    await client.startCopyBoth(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`);
    const first = await streamUntil(client, endA);
    assert.equal(first.at(-1)!.end, endA, 'the stream stops at the committed end');
    assert.ok(first.every((m) => m.walEnd === endA), 'walEnd is the committed end');

    // Commit B: the rest arrives, and the segment is restorable.
    await sink.committed(3, stateB);
    const rest = await streamUntil(client, endB);
    assert.equal(rest[0].start, endA);
    assert.equal(rest.at(-1)!.end, endB);
    await walRestore(spool, '000000010000000000000001', join(target, 'X'));
  } finally {
    client.close();
    await server.close();
    await sink.close();
  }
}));

test('recover with no checkpoint keeps the spool until the first record is applied', withDirs(async (spool) => {
  // A spool with committed WAL, as after earlier sessions.
  const before = new WalSink({ streamId: 's', spoolDir: spool });
  await before.recover(new Uint8Array(0), 0);
  await before.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
  await before.apply(2, dataMeta(MiB), randomBytes(300 * 1024));
  await before.committed(2, await before.flush());
  await before.close();
  const files = readdirSync(spool).sort();

  // The checkpoint is gone (consensus lost or restored): recover() alone deletes nothing,
  // so a sender that halts on the divergence leaves the WAL (and the standby's view) in place.
  const sink = new WalSink({ streamId: 's', spoolDir: spool });
  assert.equal((await sink.recover(new Uint8Array(0), 0)).length, 0);
  assert.deepEqual(readdirSync(spool).sort(), files);
  assert.equal((await new WalSpoolReader(spool).state())?.flushLsn, MiB + 300 * 1024);
  assert.equal((await sink.flush()).length, 0, 'nothing to checkpoint yet');
  assert.deepEqual(readdirSync(spool).sort(), files);

  // The stream goes on from scratch: the first record empties the spool, then it fills again.
  const other = { ...SYSTEM, systemId: '7333333333333333333' };
  await sink.apply(1, walRecordCodec.encode({ system: other }), new Uint8Array(0));
  assert.ok(!existsSync(join(spool, '000000010000000000000001.partial')), 'old WAL is gone once the stream restarts');
  await sink.apply(2, dataMeta(4 * MiB), randomBytes(1000));
  assert.deepEqual(walResumeCodec.decode(await sink.flush()), { systemId: other.systemId, timeline: 1, flushLsn: 4 * MiB + 1000 });
  await sink.close();
}));
