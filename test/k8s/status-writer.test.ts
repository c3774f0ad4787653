// StatusWriter against the fake API server: a status lands in the
// /status subresource; a 409 Conflict is retried with a fresh read; a
// change of conditions is written at once while other changes wait for
// the interval; an unchanged status is not written again.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { StatusWriter, STATUS_WRITE_ATTEMPTS } from '../../src/k8s/status-writer.ts';
import { FakeKubeApiServer } from '../helpers/fake-kube-apiserver.ts';

const G = 'dwcp.io';
const V = 'v1alpha1';
const P = 'dwcpstreams';
const INTERVAL_MS = 5_000;

test('status writes: conflicts retried, conditions at once, the rest rate-limited', { timeout: 30_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-status-'));
  const fake = await FakeKubeApiServer.start();
  try {
    const kc = new KubeConfig();
    kc.loadFromFile(await fake.writeKubeConfig(join(dir, 'kubeconfig')));
    fake.create(G, V, P, { apiVersion: `${G}/${V}`, kind: 'DWCPStream', metadata: { name: 's', namespace: 'ns' }, spec: { id: 's' } });
    const writer = new StatusWriter({ kubeConfig: kc, group: G, version: V, namespace: 'ns', plural: P, logger: pino({ level: 'silent' }), minIntervalMs: INTERVAL_MS });
    const stored = () => fake.get(G, V, 'ns', P, 's')!;

    // Two conflicts, then it lands; the spec is untouched.
    fake.conflictNextStatusWrites(STATUS_WRITE_ATTEMPTS - 2);
    await writer.offer('s', { lagSeconds: 1 }, 'Ready=True', 0);
    assert.deepEqual(stored().status, { lagSeconds: 1 });
    assert.deepEqual(stored().spec, { id: 's' });
    assert.equal(writer.conflicts, STATUS_WRITE_ATTEMPTS - 2);
    assert.equal(writer.writes, 1);

    // Same conditions, new lag, within the interval: waits; after it: written.
    await writer.offer('s', { lagSeconds: 2 }, 'Ready=True', 1_000);
    assert.deepEqual(stored().status, { lagSeconds: 1 });
    await writer.offer('s', { lagSeconds: 2 }, 'Ready=True', INTERVAL_MS);
    assert.deepEqual(stored().status, { lagSeconds: 2 });

    // A condition change: at once.
    await writer.offer('s', { lagSeconds: 3 }, 'Ready=False', INTERVAL_MS + 1);
    assert.deepEqual(stored().status, { lagSeconds: 3 });
    // Nothing changed: no write, however late.
    await writer.offer('s', { lagSeconds: 3 }, 'Ready=False', INTERVAL_MS * 10);
    assert.equal(writer.writes, 3);

    // Conflicts beyond the attempts: given up until the next change, never thrown.
    fake.conflictNextStatusWrites(STATUS_WRITE_ATTEMPTS);
    await writer.offer('s', { lagSeconds: 4 }, 'Ready=True', INTERVAL_MS * 11);
    assert.deepEqual(stored().status, { lagSeconds: 3 });
    await writer.offer('s', { lagSeconds: 4 }, 'Ready=True', INTERVAL_MS * 11 + 1);
    assert.deepEqual(stored().status, { lagSeconds: 4 });
  } finally {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
});
