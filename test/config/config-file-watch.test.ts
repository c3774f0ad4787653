// File mode of live configuration: the watched file's changes arrive as
// new validated configs, an invalid edit is reported with its field path
// (and nothing is handed on), and SIGHUP reads the file again even when
// nothing changed. Real files in a temporary directory; SIGHUP comes from an
// EventEmitter standing in for the process.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtemp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigFileWatch } from '../../src/config/config-file-watch.ts';
import type { Config } from '../../src/config/config.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { twoRegionHead } from '../helpers/config-yaml.ts';

const yaml = (streams: string) => `${twoRegionHead()}streams:
${streams}`;

const STREAM = (id: string, extra = '') => `  - id: ${id}
    kind: objects
    source: { region: eu-west, path: /data/${id}${extra} }
    destinations:
      - { region: us-east, path: /sink/${id} }
`;

async function withWatch(body: (ctx: { file: string; configs: Config[]; errors: Error[]; hup: EventEmitter }) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-cfgwatch-'));
  await mkdir(join(dir, 'tls'));
  for (const f of ['ca.crt', 'tls.crt', 'tls.key']) await writeFile(join(dir, 'tls', f), 'pem');
  const file = join(dir, 'dwcp.yaml');
  await writeFile(file, yaml(STREAM('a')));
  const configs: Config[] = [];
  const errors: Error[] = [];
  const hup = new EventEmitter();
  const watch = new ConfigFileWatch({ path: file, load: { env: {}, hostname: 'n1', cpuCount: 1 }, onConfig: (c) => void configs.push(c), onInvalid: (e) => void errors.push(e), signals: hup, debounceMs: 50 });
  await watch.start();
  try {
    await body({ file, configs, errors, hup });
  } finally {
    watch.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('an edit of the file arrives as a new config (also when replaced by rename, as editors and ConfigMaps do)', { timeout: 30_000 }, async () => {
  await withWatch(async ({ file, configs }) => {
    await writeFile(file, yaml(STREAM('a') + STREAM('b')));
    await waitFor('config with b', async () => configs.at(-1)?.streams.map((s) => s.id).join() === 'a,b', 10_000, 20);
    await writeFile(`${file}.tmp`, yaml(STREAM('c')));
    await rename(`${file}.tmp`, file);
    await waitFor('config with c', async () => configs.at(-1)?.streams.map((s) => s.id).join() === 'c', 10_000, 20);
  });
});

test('an invalid edit is reported with its field path and hands nothing on', { timeout: 30_000 }, async () => {
  await withWatch(async ({ file, configs, errors }) => {
    await writeFile(file, yaml(STREAM('a', ', scanInterval: soon')));
    await waitFor('error', async () => errors.length > 0, 10_000, 20);
    assert.match(errors[0].message, /dwcp\.yaml: streams\[0\]\.source\.scanInterval: invalid duration/);
    assert.equal(configs.length, 0);
  });
});

test('SIGHUP reads the file again, even unchanged', { timeout: 30_000 }, async () => {
  await withWatch(async ({ configs, hup }) => {
    hup.emit('SIGHUP');
    await waitFor('reloaded', async () => configs.length === 1, 10_000, 20);
    assert.deepEqual(configs[0].streams.map((s) => s.id), ['a']);
  });
});
