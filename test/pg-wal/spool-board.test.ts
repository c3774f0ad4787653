// Readers in the writer's process take the spool's view from what the
// writer posted (no read and parse of two files per wake-up or metrics
// sample); readers elsewhere read the files and see the same view.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { dataMeta } from './xlog-stream.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { committedViewOf, readSpoolState, spoolStateOf, SPOOL_STATE_FILE, WalSpoolReader } from '../../src/streams/pg-wal/wal-spool.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7322222222222222223', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };

test('readers in the writer process use its posts; a copy of the spool read from files gives the same view', { timeout: 60_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-board-'));
  const copy = mkdtempSync(join(tmpdir(), 'dwcp-board-copy-'));
  const sink = new WalSink({ streamId: 's', spoolDir: spool });
  try {
    await sink.recover(new Uint8Array(0), 0);
    await sink.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
    const a = randomBytes(300 * 1024);
    const b = randomBytes(200 * 1024);
    await sink.apply(2, dataMeta(MiB), a);
    await sink.committed(2, await sink.flush());
    await sink.apply(3, dataMeta(MiB + a.length), b);
    await sink.flush(); // durable, not committed

    // The same view from the posts and from the files (a copy no writer here knows).
    cpSync(spool, copy, { recursive: true });
    const reader = new WalSpoolReader(spool);
    const fromPosts = await reader.state();
    const fromFiles = await new WalSpoolReader(copy).state();
    assert.equal(fromPosts?.flushLsn, MiB + a.length, 'cut to the committed end');
    assert.deepEqual(fromPosts, fromFiles);
    assert.equal((await spoolStateOf(spool))?.flushLsn, MiB + a.length + b.length, 'durable end');

    // The posts are what is read here: a state file spoiled behind the writer's back is not.
    writeFileSync(join(spool, SPOOL_STATE_FILE), 'not json');
    await assert.rejects(readSpoolState(spool), /read spool state/);
    assert.deepEqual(await reader.state(), fromPosts);
    assert.deepEqual(await committedViewOf(spool), fromPosts);
    // A caller changing the view it got does not change the next one.
    fromPosts!.flushLsn = 0;
    assert.equal((await reader.state())?.flushLsn, MiB + a.length);
  } finally {
    await sink.close();
    rmSync(spool, { recursive: true, force: true });
    rmSync(copy, { recursive: true, force: true });
  }
});
