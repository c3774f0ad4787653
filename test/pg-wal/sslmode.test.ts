// TLS on the replication connection to the primary (sslmode): require
// streams WAL over TLS from a PostgreSQL started with ssl=on (self-signed
// certificate made with openssl here), verify-full checks the certificate
// against the CA file, and a server with ssl=off is a clear, visible error
// rather than a silent fall back to plain text.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReplicationClient, SslModeError } from '../../src/streams/pg-wal/replication-client.ts';
import { WalSink } from '../../src/streams/pg-wal/wal-sink.ts';
import { WalSource } from '../../src/streams/pg-wal/wal-source.ts';
import { PG_SUPERUSER, pgOsUser, startPostgres, type Pg } from '../helpers/postgres.ts';
import { pump, waitFor } from './pump.ts';

/** A self-signed certificate for 127.0.0.1 (it is its own CA), readable by the PostgreSQL user only. */
function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'server.crt');
  const key = join(dir, 'server.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const user = pgOsUser();
  for (const path of [dir, cert, key]) chownSync(path, user.uid, user.gid);
  return { cert, key };
}

test('sslmode=require and verify-full stream WAL over TLS from a server with ssl=on; a wrong CA is refused', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'dwcp-ssl-'));
  const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-ssl-spool-'));
  let primary: Pg | undefined;
  const abort = new AbortController();
  try {
    const { cert, key } = selfSignedCert(dir);
    primary = await startPostgres({ settings: { ssl: 'on', ssl_cert_file: `'${cert}'`, ssl_key_file: `'${key}'` } });
    const connection = { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER, applicationName: 'dwcp_ssl_test' };

    // verify-full: the certificate chains to the CA file and names 127.0.0.1.
    const verified = await ReplicationClient.connect({ ...connection, sslmode: 'verify-full', sslrootcert: cert });
    verified.close();
    // A CA the server certificate does not chain to: refused, naming the mode.
    const otherCa = join(dir, 'other-ca.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'other.key'), '-out', otherCa, '-days', '2', '-subj', '/CN=other'], { stdio: 'ignore' });
    await assert.rejects(ReplicationClient.connect({ ...connection, sslmode: 'verify-ca', sslrootcert: otherCa }), (err: Error) => err instanceof SslModeError && /verify-ca/.test(err.message));

    // require: WAL streams, and the primary reports the walsender connection as TLS.
    const source = new WalSource({ streamId: 'ssl', connection: { ...connection, sslmode: 'require' }, slot: 'dwcp_ssl' });
    const sink = new WalSink({ streamId: 'ssl', spoolDir });
    const p = pump(source, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort.signal);
    p.done.catch(() => undefined);
    await primary.query('CREATE TABLE over_tls AS SELECT generate_series(1, 10000) AS x');
    await waitFor('WAL over TLS in the spool', 60_000, async () => sink.flushLsn > 0);
    const rows = await primary.query<{ ssl: boolean }>("SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) WHERE r.application_name = 'dwcp_ssl_test'");
    assert.deepEqual(rows.map((r) => r.ssl), [true]);
    abort.abort();
    await p.done.catch(() => undefined);
    await source.close();
    await sink.close();
  } finally {
    abort.abort();
    await primary?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(spoolDir, { recursive: true, force: true });
  }
});

test('sslmode=require against a server with ssl=off fails with a clear error, shown as the source\'s last error', { timeout: 120_000 }, async () => {
  const primary = await startPostgres();
  const abort = new AbortController();
  const spoolDir = mkdtempSync(join(tmpdir(), 'dwcp-ssl-spool-'));
  try {
    const connection = { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER };
    await assert.rejects(ReplicationClient.connect({ ...connection, sslmode: 'require' }), (err: Error) => err instanceof SslModeError && /does not support SSL/.test(err.message));
    await assert.rejects(ReplicationClient.connect({ ...connection, sslmode: 'verify-full' }), (err: Error) => err instanceof SslModeError && /sslrootcert/.test(err.message));

    // The source keeps retrying, and says why it is not streaming.
    const source = new WalSource({ streamId: 'ssl', connection: { ...connection, sslmode: 'require' }, slot: 'dwcp_ssl' });
    const sink = new WalSink({ streamId: 'ssl', spoolDir });
    const p = pump(source, sink, { seq: 0, state: await sink.recover(new Uint8Array(0), 0) }, abort.signal);
    p.done.catch(() => undefined);
    await waitFor('the source to report the TLS refusal', 30_000, async () => source.progress().lastError !== null);
    const error = source.progress().lastError!;
    assert.equal(error.class, 'failing');
    assert.match(error.message, /does not support SSL/);
    assert.equal(p.applied, 0, 'nothing streamed in plain text');
    abort.abort();
    await p.done.catch(() => undefined);
    await source.close();
    await sink.close();
  } finally {
    abort.abort();
    await primary.stop();
    rmSync(spoolDir, { recursive: true, force: true });
  }
});

