// The walsender endpoint ends each XLogData message where the primary
// stopped (a committed end, which is the end of a batch of the primary's
// own XLogData messages) or at a WAL page boundary, never mid-page at an
// arbitrary 128 KiB cut: a standby reading a page-spanning record whose
// first page was only partly flushed copies bytes not yet written and fails
// the record's CRC (issue 9 item 5; see sendEnd in walsender-server.ts).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { dataMeta, streamUntil } from './xlog-stream.ts';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { MAX_SEND_BYTES, WAL_PAGE_BYTES, sendEnd, sendLengths, startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7344444444444444444', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };



test('sendEnd: the available end when close, else a page boundary, never past the segment', () => {
  const seg = 16 * MiB;
  assert.equal(sendEnd(100, 5000, seg), 5000, 'a near primary boundary is served as is');
  assert.equal(sendEnd(1000, 10 * MiB, seg), 1000 + MAX_SEND_BYTES - ((1000 + MAX_SEND_BYTES) % WAL_PAGE_BYTES));
  assert.equal(sendEnd(1000, 10 * MiB, seg) % WAL_PAGE_BYTES, 0);
  assert.equal(sendEnd(seg - 100, 2 * seg, seg), seg, 'a segment end is a page boundary');
  assert.equal(sendEnd(0, 10 * MiB, seg), MAX_SEND_BYTES);
});

test('sendLengths: the messages sendEnd cuts one after another, at most count, never past the segment', () => {
  const seg = 16 * MiB;
  // From mid-page with plenty available: the same cuts as calling sendEnd from each end.
  const lengths = sendLengths(1000, 10 * MiB, seg, 4);
  assert.equal(lengths.length, 4);
  let at = 1000;
  for (const n of lengths) {
    assert.equal(at + n, sendEnd(at, 10 * MiB, seg));
    at += n;
  }
  // Fewer when the available WAL ends first (at a primary boundary, mid-page).
  assert.deepEqual(sendLengths(0, MAX_SEND_BYTES + 5000, seg, 4), [MAX_SEND_BYTES, 5000]);
  // Never into the next segment.
  assert.deepEqual(sendLengths(seg - 100, 2 * seg, seg, 4), [100]);
  assert.deepEqual(sendLengths(500, 500, seg, 4), []);
});

test('every XLogData the endpoint sends ends at a committed (primary) boundary or a page boundary', { timeout: 60_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-boundaries-'));
  const sink = new WalSink({ streamId: 's', spoolDir: spool });
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
  let client: ReplicationClient | undefined;
  try {
    await sink.recover(new Uint8Array(0), 0);
    await sink.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
    // Batches as the source makes them: each ends where a primary XLogData ended (mid-page here).
    const start = MiB;
    const sizes = [70_001, 300_017, 5_003, 650_011, 90_007];
    const boundaries = new Set<number>();
    let pos = start;
    let seq = 2;
    // First batch committed alone, so the standby stops mid-page and continues from there.
    await sink.apply(seq++, dataMeta(pos), randomBytes(sizes[0]));
    pos += sizes[0];
    boundaries.add(pos);
    await sink.committed(seq, await sink.flush());
    client = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby' });
    await client.startCopyBoth(`START_REPLICATION ${formatLsn(start)} TIMELINE 1`);
    const messages = await streamUntil(client, pos);
    // The rest in one commit: the endpoint has far more than MAX_SEND_BYTES to send from a mid-page position.
    for (const size of sizes.slice(1)) {
      await sink.apply(seq++, dataMeta(pos), randomBytes(size));
      pos += size;
      boundaries.add(pos);
    }
    await sink.committed(seq, await sink.flush());
    messages.push(...(await streamUntil(client, pos)));

    assert.equal(messages.at(-1)!.end, pos);
    const bad = messages.filter((m) => m.end % WAL_PAGE_BYTES !== 0 && !boundaries.has(m.end));
    assert.deepEqual(bad.map((m) => formatLsn(m.end)), [], 'messages ending mid-page at a point the primary never stopped at');
  } finally {
    client?.close();
    await server.close();
    await sink.close();
    rmSync(spool, { recursive: true, force: true });
  }
});
