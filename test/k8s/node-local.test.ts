// readNodeLocal, the node file of Kubernetes mode (agent --kube --config
// NODE_FILE): node-local fields only, since they win over the
// DWCPFederation's spec; anything else is refused naming the field.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/config/config-error.ts';
import { readNodeLocal } from '../../src/k8s/kube-agent.ts';

// readNodeLocal on a file holding text.
async function read(text: string): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-node-local-'));
  try {
    await writeFile(join(dir, 'node.yaml'), text);
    return await readNodeLocal(join(dir, 'node.yaml'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const NODE = [
  'region: eu-west',
  'nodeId: ${NODE_NAME}',
  'dataDir: /var/lib/dwcp',
  'listen: { host: 0.0.0.0, port: 7400 }',
  'http: { host: 0.0.0.0, port: 9464 }',
  'tls: { ca: ca.crt, cert: node.crt, key: node.key }',
].join('\n');

test('a node file with the node-local fields is read as written (${NODE_NAME} expands later, with the rest)', async () => {
  const local = await read(NODE);
  assert.equal(local.region, 'eu-west');
  assert.equal(local.nodeId, '${NODE_NAME}');
  assert.deepEqual(Object.keys(local).sort(), ['dataDir', 'http', 'listen', 'nodeId', 'region', 'tls']);
});

test('a federation-wide field in the node file (a whole config passed by mistake) is refused, naming each field', async () => {
  const whole = `${NODE}\nfederation: example\nregions: [{ name: eu-west, endpoints: ["a:7400"] }]\nacp: { backend: embedded }\n`;
  await assert.rejects(read(whole), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.deepEqual(err.issues.map((i) => i.path).sort(), ['acp', 'federation', 'regions']);
    assert.match(err.message, /regions: not a node-local field/);
    return true;
  });
});

test('a node file that is not a mapping is refused', async () => {
  await assert.rejects(read('- region: eu-west\n'), /must be a mapping of node-local fields/);
});
