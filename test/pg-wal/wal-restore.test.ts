// restore_command helper: copies complete segments and history files out of
// the spool, refuses what is missing or still being written.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalFileMissingError, walRestore } from '../../src/streams/pg-wal/wal-restore.ts';

const MiB = 1024 * 1024;

test('wal-restore copies a complete segment and a history file, fails for missing ones', async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-restore-spool-'));
  const target = mkdtempSync(join(tmpdir(), 'dwcp-restore-target-'));
  try {
    const sink = new WalSink({ streamId: 's', spoolDir: spool });
    await sink.recover(new Uint8Array(0), 0);
    await sink.apply(1, walRecordCodec.encode({ system: { systemId: '1', timeline: 1, walSegmentSize: MiB, serverVersion: 150000 } }), new Uint8Array(0));
    const wal = randomBytes(MiB + 4096);
    await sink.apply(2, walRecordCodec.encode({ data: { timeline: 1, startLsn: MiB, serverWalEnd: 0, serverTime: 0 } }), wal);
    await sink.apply(3, walRecordCodec.encode({ history: { timeline: 2, fileName: '00000002.history' } }), Buffer.from('1\t0/2001000\treason\n'));
    await sink.committed(3, await sink.flush());

    await walRestore(spool, '000000010000000000000001', join(target, 'RECOVERYXLOG'));
    assert.ok(readFileSync(join(target, 'RECOVERYXLOG')).equals(wal.subarray(0, MiB)));
    // Timeline 2 has no committed WAL yet: its history is not served; once it has, it is.
    await assert.rejects(walRestore(spool, '00000002.history', join(target, 'RECOVERYHISTORY')), WalFileMissingError);
    await sink.apply(4, walRecordCodec.encode({ data: { timeline: 2, startLsn: 2 * MiB + 4096, serverWalEnd: 0, serverTime: 0 } }), randomBytes(100));
    await sink.committed(4, await sink.flush());
    await sink.close();
    await walRestore(spool, '00000002.history', join(target, 'RECOVERYHISTORY'));
    assert.equal(readFileSync(join(target, 'RECOVERYHISTORY'), 'utf8'), '1\t0/2001000\treason\n');

    // The segment being written (.partial) and absent ones are not served.
    await assert.rejects(walRestore(spool, '000000010000000000000002', join(target, 'X')), WalFileMissingError);
    await assert.rejects(walRestore(spool, '0000000100000000000000FF', join(target, 'X')), WalFileMissingError);
    await assert.rejects(walRestore(spool, '../etc/passwd', join(target, 'X')), WalFileMissingError);
    assert.ok(!existsSync(join(target, 'X')));
    assert.deepEqual(readdirSync(target).sort(), ['RECOVERYHISTORY', 'RECOVERYXLOG']);
  } finally {
    rmSync(spool, { recursive: true, force: true });
    rmSync(target, { recursive: true, force: true });
  }
});
