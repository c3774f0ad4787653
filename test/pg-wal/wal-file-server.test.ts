// Spooled WAL over HTTP for a restore_command in another pod: the one-line
// curl restore_command gets committed segments byte for byte; no or wrong
// credentials, a stream without users, bad or traversing names and
// uncommitted WAL are refused with their own status.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { walRecordCodec } from '../../src/wire/messages.ts';
import { Metrics } from '../../src/agent/metrics.ts';
import { startHttpServer } from '../../src/agent/http-server.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import type { ServedSpool } from '../../src/streams/pg-wal/wal-file-server.ts';
import { WAL_RESTORE_MISSING, WAL_RESTORE_OK, walRestoreCommand } from '../../src/cli/wal-restore-command.ts';

const MiB = 1024 * 1024;
const USERS = { standby: 's3cret' };

/** GET path with an optional Authorization header, without URL normalisation; status and body. */
function get(port: number, path: string, auth?: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: auth ? { authorization: auth } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('GET /wal/<stream>/<file>: committed WAL for walsender users only, names checked', { timeout: 60_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-walhttp-'));
  const target = mkdtempSync(join(tmpdir(), 'dwcp-walhttp-target-'));
  const spools = new Map<string, ServedSpool>([['pg-main', { dir: spool, users: USERS }], ['open', { dir: spool, users: {} }]]);
  const http = await startHttpServer({ host: '127.0.0.1', port: 0, metrics: new Metrics(), healthy: () => true, ready: () => true, status: () => ({}), walSpools: (id) => spools.get(id) });
  const sink = new WalSink({ streamId: 'pg-main', spoolDir: spool });
  try {
    await sink.recover(new Uint8Array(0), 0);
    await sink.apply(1, walRecordCodec.encode({ system: { systemId: '1', timeline: 1, walSegmentSize: MiB, serverVersion: 150000 } }), new Uint8Array(0));
    const wal = randomBytes(MiB + 5000);
    await sink.apply(2, walRecordCodec.encode({ data: { timeline: 1, startLsn: MiB, serverWalEnd: 0, serverTime: 0 } }), wal);
    await sink.committed(2, await sink.flush());
    // Durable, not committed: completes segment 2.
    const more = randomBytes(MiB);
    await sink.apply(3, walRecordCodec.encode({ data: { timeline: 1, startLsn: 2 * MiB + 5000, serverWalEnd: 0, serverTime: 0 } }), more);
    const stateB = await sink.flush();
    const ok = basic('standby', 's3cret');
    const seg1 = '/wal/pg-main/000000010000000000000001';

    // The documented restore_command, as PostgreSQL would run it.
    const run = promisify(execFile);
    await run('sh', ['-c', `curl -sfo "${join(target, 'RECOVERYXLOG')}" -u standby:s3cret http://127.0.0.1:${http.port}/wal/pg-main/000000010000000000000001`]);
    assert.ok(readFileSync(join(target, 'RECOVERYXLOG')).equals(wal.subarray(0, MiB)), 'curl got the segment byte for byte');
    await assert.rejects(run('sh', ['-c', `curl -sfo "${join(target, 'X')}" -u standby:s3cret http://127.0.0.1:${http.port}/wal/pg-main/0000000100000000000000FF`]), 'curl -f fails on a missing segment');

    // `dwcp wal-restore --url` is a client of the same endpoint.
    writeFileSync(join(target, 'password'), 's3cret\n');
    const stderr = (): { sink: Writable; text: () => string } => {
      let text = '';
      return { sink: new Writable({ write: (c, _e, cb) => ((text += String(c)), cb()) }), text: () => text };
    };
    const url = `http://127.0.0.1:${http.port}/wal/pg-main`;
    const e1 = stderr();
    assert.equal(await walRestoreCommand(['--url', url, '--user', 'standby', '--password-file', join(target, 'password'), '000000010000000000000001', join(target, 'BYCLI')], e1.sink), WAL_RESTORE_OK, e1.text());
    assert.ok(readFileSync(join(target, 'BYCLI')).equals(wal.subarray(0, MiB)));
    const e2 = stderr();
    assert.equal(await walRestoreCommand(['--url', url, '--user', 'standby', '--password-file', join(target, 'password'), '000000010000000000000002', join(target, 'X')], e2.sink), WAL_RESTORE_MISSING);
    assert.match(e2.text(), /not committed yet/);
    writeFileSync(join(target, 'wrong'), 'nope');
    const e3 = stderr();
    assert.equal(await walRestoreCommand(['--url', url, '--user', 'standby', '--password-file', join(target, 'wrong'), '000000010000000000000001', join(target, 'X')], e3.sink), WAL_RESTORE_MISSING);
    assert.match(e3.text(), /HTTP 401/);

    // Authentication: none, wrong password, unknown user, a stream without users.
    assert.equal((await get(http.port, seg1)).status, 401);
    assert.equal((await get(http.port, seg1, basic('standby', 'wrong'))).status, 401);
    assert.equal((await get(http.port, seg1, basic('nobody', 's3cret'))).status, 401);
    assert.equal((await get(http.port, '/wal/open/000000010000000000000001')).status, 403, 'never open by default');
    assert.equal((await get(http.port, '/wal/other/000000010000000000000001', ok)).status, 404);

    // Names: only WAL segment, .partial and history names of that stream.
    for (const path of ['/wal/pg-main/../dwcp-spool.json', '/wal/pg-main/..%2Fdwcp-spool.json', '/wal/pg-main/dwcp-committed.json', '/wal/pg-main/%2E%2E/%2E%2E/etc/passwd', '/wal/pg-main/a/000000010000000000000001', '/wal/pg-main/00000001000000000000001']) {
      assert.equal((await get(http.port, path, ok)).status, 400, path);
    }

    // Committed: segment 1 yes; segment 2 is complete and durable but past the committed end; the .partial up to the committed end only.
    const got = await get(http.port, seg1, ok);
    assert.equal(got.status, 200);
    assert.ok(got.body.equals(wal.subarray(0, MiB)));
    assert.equal((await get(http.port, '/wal/pg-main/000000010000000000000002', ok)).status, 409, 'not committed yet');
    assert.equal((await get(http.port, '/wal/pg-main/000000010000000000000003', ok)).status, 404);
    const partial = await get(http.port, '/wal/pg-main/000000010000000000000003.partial', ok);
    assert.equal(partial.status, 409, 'nothing of segment 3 is committed');

    // Once committed: segment 2 whole, the .partial up to the committed end.
    await sink.committed(3, stateB);
    const seg2 = await get(http.port, '/wal/pg-main/000000010000000000000002', ok);
    assert.equal(seg2.status, 200);
    assert.ok(seg2.body.equals(Buffer.concat([wal.subarray(MiB), more.subarray(0, MiB - 5000)])));
    const partialNow = await get(http.port, '/wal/pg-main/000000010000000000000003.partial', ok);
    assert.equal(partialNow.status, 200);
    assert.ok(partialNow.body.equals(more.subarray(MiB - 5000)));
  } finally {
    await sink.close();
    await http.close();
    rmSync(spool, { recursive: true, force: true });
    rmSync(target, { recursive: true, force: true });
  }
});
