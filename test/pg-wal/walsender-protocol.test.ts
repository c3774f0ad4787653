// The walsender endpoint against this project's own replication client, on
// a synthetic spool with a timeline switch: trust by address, SCRAM by
// password, and a WalSource relaying from the endpoint into a second spool,
// following the switch (historic timeline -> CopyDone -> next timeline)
// and tailing WAL as it arrives.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { formatLsn } from '../../src/streams/pg-wal/lsn.ts';
import { PgError, ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';
import { pump, waitFor } from './pump.ts';

const MiB = 1024 * 1024;
const SYSTEM = { systemId: '7322222222222222222', timeline: 1, walSegmentSize: MiB, serverVersion: 150013 };

function dataMeta(startLsn: number, timeline: number): Uint8Array {
  return walRecordCodec.encode({ data: { timeline, startLsn, serverWalEnd: startLsn, serverTime: 0 } });
}

test('relays a spool through the endpoint across a timeline switch, then tails it', { timeout: 60_000 }, async () => {
  const spoolA = mkdtempSync(join(tmpdir(), 'dwcp-spool-a-'));
  const spoolB = mkdtempSync(join(tmpdir(), 'dwcp-spool-b-'));
  const abort = new AbortController();
  let server: Awaited<ReturnType<typeof startWalsenderServer>> | undefined;
  try {
    // Spool A: timeline 1 from 0/200000, switch to timeline 2 at 0/232000.
    const origin = new WalSink({ streamId: 'a', spoolDir: spoolA });
    await origin.recover(new Uint8Array(0), 0);
    await origin.apply(1, walRecordCodec.encode({ system: SYSTEM }), new Uint8Array(0));
    const tl1 = randomBytes(300 * 1024);
    await origin.apply(2, dataMeta(2 * MiB, 1), tl1);
    const switchLsn = 2 * MiB + 200 * 1024;
    const history = Buffer.from(`1\t${formatLsn(switchLsn)}\tno recovery target specified\n`);
    await origin.apply(3, walRecordCodec.encode({ history: { timeline: 2, fileName: '00000002.history' } }), history);
    const tl2 = randomBytes(1200 * 1024); // crosses into segment 3
    await origin.apply(4, dataMeta(switchLsn, 2), tl2);
    await origin.committed(4, await origin.flush());

    server = await startWalsenderServer({
      spool: spoolA,
      host: '127.0.0.1',
      port: 0,
      auth: { users: { relay: 'pw-relay' }, trustCidrs: ['127.0.0.2/32'] },
    });

    // Trust by address: no password needed from 127.0.0.2, but needed from 127.0.0.1.
    const trusted = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'anyone', localAddress: '127.0.0.2' });
    const ident = (await trusted.simpleQuery('IDENTIFY_SYSTEM'))[0].rows[0];
    assert.deepEqual(ident.slice(0, 3).map((v) => v?.toString()), [SYSTEM.systemId, '2', formatLsn(switchLsn + tl2.length)]);
    trusted.close();
    await assert.rejects(ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'anyone' }), PgError);
    await assert.rejects(ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'relay', password: 'wrong' }), /password authentication failed/);

    // Relay A -> endpoint -> WalSource -> WalSink B (SCRAM with our own client).
    const source = new WalSource({ streamId: 'b', connection: { host: '127.0.0.1', port: server.port, user: 'relay', password: 'pw-relay' }, slot: 'relay', batchBytes: 64 * 1024 });
    const sink = new WalSink({ streamId: 'b', spoolDir: spoolB });
    const p = pump(source, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort.signal);
    p.done.catch(() => undefined);
    await waitFor('relay to reach the end of timeline 2', 20_000, async () => sink.flushLsn === switchLsn + tl2.length);
    assert.ok(readFileSync(join(spoolB, '00000002.history')).equals(history));
    assert.ok(readFileSync(join(spoolB, '000000010000000000000002.partial')).equals(tl1.subarray(0, 200 * 1024)), 'timeline 1 up to the switch only');
    const seg2 = Buffer.concat([tl1.subarray(0, 200 * 1024), tl2]).subarray(0, MiB);
    assert.ok(readFileSync(join(spoolB, '000000020000000000000002')).equals(seg2));
    assert.ok(readFileSync(join(spoolB, '000000020000000000000003.partial')).equals(readFileSync(join(spoolA, '000000020000000000000003.partial'))));

    // Tailing: WAL appended to A arrives in B.
    const more = randomBytes(10_000);
    await origin.apply(5, dataMeta(switchLsn + tl2.length, 2), more);
    await origin.committed(5, await origin.flush());
    await waitFor('relay to tail new WAL', 20_000, async () => sink.flushLsn === switchLsn + tl2.length + more.length);
    assert.ok(readFileSync(join(spoolB, '000000020000000000000003.partial')).equals(readFileSync(join(spoolA, '000000020000000000000003.partial'))));
    abort.abort();
    await p.done.catch(() => undefined);
    await source.close();
    await sink.close();
    await origin.close();
  } finally {
    abort.abort();
    await server?.close();
    rmSync(spoolA, { recursive: true, force: true });
    rmSync(spoolB, { recursive: true, force: true });
  }
});

test('malformed messages after startup get an ErrorResponse and only that connection closes', { timeout: 30_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-spool-'));
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
  try {
    const a = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'u' });
    const b = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'u' });
    // Empty spool: IDENTIFY_SYSTEM is an error, not a hang.
    await assert.rejects(a.simpleQuery('IDENTIFY_SYSTEM'), (err: PgError) => err.code === '55000');
    // b is unaffected by a's failure and by a bad SHOW.
    const show = await b.simpleQuery('SHOW wal_segment_size');
    assert.equal(show[0].rows[0][0]?.toString(), '16MB');
    await assert.rejects(b.simpleQuery('SHOW no_such_setting'), (err: PgError) => err.code === '42704');
    const c = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'u' });
    await assert.rejects(c.simpleQuery('START_REPLICATION LOGICAL 0/0'), (err: PgError) => err.code === '42601');
    a.close();
    b.close();
    c.close();
  } finally {
    await server.close();
    rmSync(spool, { recursive: true, force: true });
  }
});
