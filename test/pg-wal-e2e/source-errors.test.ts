// A non-transient PostgreSQL error on the source's replication connection
// (here: the role lacks REPLICATION, SQLSTATE 42501) is not a silent stall:
// the sender's entry in /status carries the SQLSTATE and message, the
// metrics count it and flag the source as failing, and once an operator
// fixes the cause the source streams again by itself (retry with backoff).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { writePgTwoRegion } from '../../src/cli/pg-two-region.ts';
import { AgentProcess, waitFor } from '../helpers/agent-process.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { spoolFlushLsn, WALSENDER_PASSWORD, WALSENDER_USER } from './pg-federation.ts';
import { startAgent } from './pg-two-destinations.ts';

const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const run = promisify(execFile);
/** A login role without REPLICATION. */
const ROLE = 'no_replication';

interface SenderEntry {
  streamId: string;
  sourceError?: { class: string; code: string; message: string } | null;
}

test('a role without REPLICATION shows as the sender\'s error and in the metrics; granting it lets the stream start', { timeout: 240_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-pg-err-'));
  const primary = await startPostgres();
  let source: AgentProcess | undefined;
  let dest: AgentProcess | undefined;
  try {
    await primary.query(`CREATE ROLE ${ROLE} LOGIN`);
    const setup = await writePgTwoRegion({ dir, primary: { host: '127.0.0.1', port: primary.port, user: ROLE }, walsenderUsers: { [WALSENDER_USER]: WALSENDER_PASSWORD } });
    dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
    source = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
    await startAgent(dest);
    await startAgent(source);
    const src = source;

    // The elected sender's status names the refusal.
    let entry: SenderEntry | undefined;
    await waitFor('the sender to report the PostgreSQL error', async () => {
      entry = ((await src.status()).senders as SenderEntry[]).find((s) => s.streamId === setup.streamId && s.sourceError);
      return entry !== undefined;
    }, 60_000);
    assert.equal(entry!.sourceError!.code, '42501');
    assert.equal(entry!.sourceError!.class, 'failing');
    assert.match(entry!.sourceError!.message, /replication/);
    assert.equal(await src.metric('dwcp_pg_wal_source_failing'), 1);
    assert.ok((await src.metric('dwcp_pg_wal_source_errors_total', 'code="42501"')) >= 1);
    // `dwcp status` shows it too, and the log line carries the SQLSTATE.
    const { stdout } = await run(process.execPath, [CLI, 'status', '--url', `http://127.0.0.1:${setup.ports.sourceHttp}/status`]);
    assert.match(stdout, /42501/);
    assert.ok(src.logs.some((l) => l.includes('"code":"42501"')), 'logged with its SQLSTATE');
    assert.equal(await spoolFlushLsn(setup.spoolDir), 0, 'nothing streamed');

    // The operator grants REPLICATION: the source retries and streams, and the error clears.
    await primary.query(`ALTER ROLE ${ROLE} REPLICATION`);
    await waitFor('WAL in the destination spool after the grant', async () => (await spoolFlushLsn(setup.spoolDir)) > 0, 120_000);
    await waitFor('the error to clear', async () => {
      const senders = (await src.status()).senders as SenderEntry[];
      return senders.some((s) => s.streamId === setup.streamId && s.sourceError === null) && (await src.metric('dwcp_pg_wal_source_failing')) === 0;
    }, 30_000);
  } finally {
    await source?.kill9();
    await dest?.kill9();
    await primary.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
