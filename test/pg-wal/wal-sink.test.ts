// WalSink on synthetic WAL (1 MiB segments): segment layout and naming,
// idempotence by position, refusal of gaps and foreign clusters, and
// recover() cutting the spool back to a checkpoint.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec, walResumeCodec } from '../../src/wire/messages.ts';
import { SinkError } from '../../src/streams/stream.ts';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7311111111111111111', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };

function systemMeta(systemId = SYSTEM.systemId): Uint8Array {
  return walRecordCodec.encode({ system: { ...SYSTEM, systemId } });
}

function dataMeta(startLsn: number, timeline = 1): Uint8Array {
  return walRecordCodec.encode({ data: { timeline, startLsn, serverWalEnd: startLsn, serverTime: 0 } });
}

function withSpool(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dwcp-sink-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('writes pg_wal segment layout, renames complete segments, ignores WAL it already holds', withSpool(async (dir) => {
  const sink = new WalSink({ streamId: 's', spoolDir: dir });
  assert.equal((await sink.recover(new Uint8Array(0), 0)).length, 0);
  const start = 3 * MiB;
  const a = randomBytes(600 * 1024);
  const b = randomBytes(600 * 1024);
  await sink.apply(1, systemMeta(), new Uint8Array(0));
  await sink.apply(2, dataMeta(start), a);
  await sink.apply(3, dataMeta(start + a.length), b);
  const state = walResumeCodec.decode(await sink.flush());
  assert.deepEqual(state, { systemId: SYSTEM.systemId, timeline: 1, flushLsn: start + a.length + b.length });

  const seg3 = join(dir, '000000010000000000000003');
  const seg4 = join(dir, '000000010000000000000004.partial');
  assert.ok(existsSync(seg3), 'complete segment has its final name');
  assert.ok(!existsSync(seg3 + '.partial'));
  assert.equal(statSync(seg4).size, a.length + b.length - MiB);
  const all = Buffer.concat([a, b]);
  assert.ok(readFileSync(seg3).equals(all.subarray(0, MiB)));
  assert.ok(readFileSync(seg4).equals(all.subarray(MiB)));

  // Replays below the durable end are dropped; an overlapping record only adds its tail.
  await sink.apply(4, dataMeta(start), a);
  const c = randomBytes(1000);
  const overlap = Buffer.concat([b.subarray(b.length - 100), c]);
  await sink.apply(5, dataMeta(start + a.length + b.length - 100), overlap);
  const after = walResumeCodec.decode(await sink.flush());
  assert.equal(after.flushLsn, state.flushLsn + c.length);
  assert.ok(readFileSync(seg4).equals(Buffer.concat([all.subarray(MiB), c])));
  await sink.close();
}));

test('refuses a gap and a foreign system id with SinkErrors naming what differs', withSpool(async (dir) => {
  const sink = new WalSink({ streamId: 's', spoolDir: dir });
  await sink.recover(new Uint8Array(0), 0);
  await sink.apply(1, systemMeta(), new Uint8Array(0));
  await sink.apply(2, dataMeta(MiB), randomBytes(4096));
  const end = MiB + 4096;
  await assert.rejects(sink.apply(3, dataMeta(end + 8192), randomBytes(10)), (err: Error) => {
    assert.ok(err instanceof SinkError);
    assert.match(err.message, new RegExp(`${formatLsn(end + 8192)}.*${formatLsn(end)}`));
    return true;
  });
  await assert.rejects(sink.apply(4, systemMeta('9999999999'), new Uint8Array(0)), (err: Error) => {
    assert.ok(err instanceof SinkError);
    assert.match(err.message, /9999999999/);
    assert.match(err.message, new RegExp(SYSTEM.systemId));
    return true;
  });
  // Nothing of the refused records reached the spool.
  assert.equal(walResumeCodec.decode(await sink.flush()).flushLsn, end);
  await sink.close();

  // A restarted sink recovering another cluster's checkpoint is refused too.
  const other = new WalSink({ streamId: 's', spoolDir: dir });
  await assert.rejects(other.recover(walResumeCodec.encode({ systemId: '42', timeline: 1, flushLsn: end }), 0), SinkError);
}));

test('recover() truncates everything written past the checkpoint', withSpool(async (dir) => {
  const sink = new WalSink({ streamId: 's', spoolDir: dir });
  await sink.recover(new Uint8Array(0), 0);
  await sink.apply(1, systemMeta(), new Uint8Array(0));
  const start = 5 * MiB;
  const a = randomBytes(700 * 1024);
  await sink.apply(2, dataMeta(start), a);
  const checkpoint = await sink.flush();
  // Past the checkpoint: the segment completes and the next one begins, some of it durable.
  const b = randomBytes(900 * 1024);
  await sink.apply(3, dataMeta(start + a.length), b);
  await sink.flush();
  assert.ok(existsSync(join(dir, '000000010000000000000005')));
  assert.ok(existsSync(join(dir, '000000010000000000000006.partial')));
  await sink.close();

  // A new sink (agent restarted) goes back to the checkpoint.
  const again = new WalSink({ streamId: 's', spoolDir: dir });
  const resume = await again.recover(checkpoint, 2);
  assert.deepEqual(walResumeCodec.decode(resume), walResumeCodec.decode(checkpoint));
  assert.equal(walResumeCodec.decode(resume).flushLsn, start + a.length);
  assert.ok(!existsSync(join(dir, '000000010000000000000005')), 'segment cut back to .partial');
  assert.ok(!existsSync(join(dir, '000000010000000000000006.partial')), 'later segment removed');
  assert.ok(readFileSync(join(dir, '000000010000000000000005.partial')).equals(a));

  // It continues from there; different bytes after the checkpoint are what the spool holds now.
  const c = randomBytes(1000);
  await again.apply(1, systemMeta(), new Uint8Array(0));
  await again.apply(2, dataMeta(start + a.length), c);
  assert.equal(walResumeCodec.decode(await again.flush()).flushLsn, start + a.length + c.length);
  assert.ok(readFileSync(join(dir, '000000010000000000000005.partial')).equals(Buffer.concat([a, c])));
  await again.close();
}));

test('a timeline switch seeds the new segment and keeps the old timeline partial', withSpool(async (dir) => {
  const sink = new WalSink({ streamId: 's', spoolDir: dir });
  await sink.recover(new Uint8Array(0), 0);
  await sink.apply(1, systemMeta(), new Uint8Array(0));
  const a = randomBytes(300 * 1024);
  await sink.apply(2, dataMeta(2 * MiB), a);
  const switchLsn = 2 * MiB + 200 * 1024;
  const history = Buffer.from(`1\t${formatLsn(switchLsn)}\tno recovery target specified\n`);
  await sink.apply(3, walRecordCodec.encode({ history: { timeline: 2, fileName: '00000002.history' } }), history);
  const b = randomBytes(50 * 1024);
  await sink.apply(4, dataMeta(switchLsn, 2), b);
  const state = walResumeCodec.decode(await sink.flush());
  assert.deepEqual(state, { systemId: SYSTEM.systemId, timeline: 2, flushLsn: switchLsn + b.length });
  assert.ok(readFileSync(join(dir, '00000002.history')).equals(history));
  assert.ok(readFileSync(join(dir, '000000020000000000000002.partial')).equals(Buffer.concat([a.subarray(0, 200 * 1024), b])));
  assert.ok(readFileSync(join(dir, '000000010000000000000002.partial')).equals(a));
  await sink.close();
}));
