// Every input the fuzzers found a bug with, kept: each file under
// fuzz/regressions/<target>/ is replayed through that target's fuzz() (the
// same properties, in this process, no jazzer), and each bug also has a
// test here in terms of the public API it broke.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load-config.ts';
import { PgError, ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';

const FUZZ_DIR = fileURLToPath(new URL('../../fuzz/', import.meta.url));
const REGRESSIONS = join(FUZZ_DIR, 'regressions');
const HOST = { env: {}, hostname: 'host-a', cpuCount: 2 };

for (const target of readdirSync(REGRESSIONS)) {
  test(`fuzz target ${target}: every kept reproducer passes`, async () => {
    const { fuzz } = (await import(join(FUZZ_DIR, 'targets', `${target}.ts`))) as { fuzz: (data: Buffer) => void | Promise<void> };
    const files = readdirSync(join(REGRESSIONS, target));
    assert.ok(files.length > 0, `no reproducers in fuzz/regressions/${target}`);
    for (const file of files) {
      await assert.doesNotReject(async () => fuzz(readFileSync(join(REGRESSIONS, target, file))), `fuzz/regressions/${target}/${file}`);
    }
  });
}

// Runs fn and returns the ConfigError it throws (fails when it throws anything else).
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${(err as Error)?.name}: ${(err as Error)?.message}`);
    return err;
  }
  assert.fail('expected a ConfigError, nothing was thrown');
}

test('config: an alias to an anchor that does not exist is a ConfigError, not a ReferenceError', () => {
  const err = configError(() => parseConfig('*\x02', 'dwcp.yaml', HOST));
  assert.match(err.message, /^dwcp\.yaml: invalid YAML: .*alias/m);
  assert.match(configError(() => parseConfig('federation: *missing\n', 'dwcp.yaml', HOST)).message, /^dwcp\.yaml: invalid YAML: .*alias.*missing/m);
});

test('config: an alias bomb is a ConfigError naming the resource exhaustion', () => {
  const bomb = readFileSync(join(REGRESSIONS, 'config', 'alias-bomb'), 'utf8');
  assert.match(configError(() => parseConfig(bomb, 'dwcp.yaml', HOST)).message, /^dwcp\.yaml: invalid YAML: excessive alias count/im);
});

test('walsender: SHOW of an Object.prototype name is "unrecognized configuration parameter", not an internal error', { timeout: 60_000 }, async () => {
  const spool = mkdtempSync(join(tmpdir(), 'dwcp-fuzz-regression-spool-'));
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.1/32'] } });
  try {
    for (const name of ['__proto__', 'constructor', 'hasOwnProperty', 'toString']) {
      // An error closes the connection: one per name.
      const client = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby' });
      try {
        await assert.rejects(client.simpleQuery(`SHOW ${name}`), (err: Error) => {
          assert.ok(err instanceof PgError, `SHOW ${name}: ${err.name}: ${err.message}`);
          assert.equal(err.code, '42704', `SHOW ${name}: ${err.message}`);
          assert.equal(err.message, `unrecognized configuration parameter "${name}"`);
          return true;
        });
      } finally {
        client.close();
      }
    }
    // The real parameters still answer.
    const client = await ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby' });
    const [result] = await client.simpleQuery('SHOW wal_segment_size');
    assert.equal(result.rows[0][0]?.toString(), '16MB');
    client.close();
  } finally {
    await server.close();
    rmSync(spool, { recursive: true, force: true });
  }
});
