// Every input the fuzzers found a bug with, kept: each file under
// fuzz/regressions/<target>/ is replayed through that target's fuzz() (the
// same properties, in this process, no jazzer), and each bug also has a
// test here in terms of the public API it broke.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../../src/config/config-error.ts';
import { parseConfig } from '../../src/config/load-config.ts';

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
