// CrWatch against the fake API server (test/helpers/fake-kube-apiserver.ts):
// list then watch from the list's resourceVersion; a dropped watch resumes
// without a list; a 410 Gone lists again; a bookmark moves the resume
// point so a compaction behind it costs no list.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { pino } from 'pino';
import { CrWatch } from '../../src/k8s/cr-watch.ts';
import { FakeKubeApiServer, type KubeObject } from '../helpers/fake-kube-apiserver.ts';
import { waitFor } from '../helpers/agent-process.ts';

const G = 'dwcp.io';
const V = 'v1alpha1';
const P = 'dwcpstreams';

function cr(name: string, value: number): KubeObject {
  return { apiVersion: `${G}/${V}`, kind: 'DWCPStream', metadata: { name, namespace: 'ns' }, spec: { value } };
}

async function withWatch(body: (ctx: { fake: FakeKubeApiServer; watch: CrWatch; seen: () => Record<string, unknown> }) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-crwatch-'));
  const fake = await FakeKubeApiServer.start();
  const kc = new KubeConfig();
  kc.loadFromFile(await fake.writeKubeConfig(join(dir, 'kubeconfig')));
  let last: KubernetesObject[] = [];
  const watch = new CrWatch({ kubeConfig: kc, group: G, version: V, namespace: 'ns', plural: P, onChange: (o) => (last = o), logger: pino({ level: process.env.DEBUG_LOG ? 'debug' : 'silent' }), retry: { initialMs: 20, maxMs: 200 } });
  const seen = (): Record<string, unknown> => Object.fromEntries(last.map((o) => [o.metadata!.name!, (o as unknown as { spec: { value: number } }).spec.value]));
  try {
    fake.create(G, V, P, cr('a', 1));
    await watch.start();
    await body({ fake, watch, seen });
  } finally {
    await watch.close();
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
}

test('list then watch: added, modified and deleted objects are followed', { timeout: 30_000 }, async () => {
  await withWatch(async ({ fake, watch, seen }) => {
    assert.deepEqual(seen(), { a: 1 });
    await waitFor('watching', async () => fake.openWatches === 1, 10_000, 10);
    fake.create(G, V, P, cr('b', 2));
    fake.updateSpec(G, V, 'ns', P, 'a', { value: 3 });
    fake.delete(G, V, 'ns', P, 'b');
    await waitFor('events', async () => JSON.stringify(seen()) === JSON.stringify({ a: 3 }) && fake.listRequests === 1, 10_000, 10);
    assert.equal(watch.lists, 1);
  });
});

test('a dropped watch resumes from the last resourceVersion without listing again', { timeout: 30_000 }, async () => {
  await withWatch(async ({ fake, watch, seen }) => {
    await waitFor('watching', async () => fake.openWatches === 1, 10_000, 10);
    fake.dropWatches();
    // A change made while no watch is open arrives through the resumed watch.
    fake.updateSpec(G, V, 'ns', P, 'a', { value: 5 });
    await waitFor('resumed', async () => seen().a === 5, 10_000, 10);
    assert.ok(watch.watches >= 2);
    assert.equal(watch.lists, 1, 'no list: the watch resumed from its resourceVersion');
  });
});

test('410 Gone: the watch lists again and sees what happened meanwhile', { timeout: 30_000 }, async () => {
  await withWatch(async ({ fake, watch, seen }) => {
    await waitFor('watching', async () => fake.openWatches === 1, 10_000, 10);
    fake.dropWatches();
    fake.create(G, V, P, cr('c', 7));
    fake.compact();
    await waitFor('listed again', async () => watch.lists === 2 && seen().c === 7, 10_000, 10);
    fake.create(G, V, P, cr('d', 8));
    await waitFor('watching after the list', async () => seen().d === 8, 10_000, 10);
  });
});

test('a bookmark moves the resume point: a compaction behind it costs no list', { timeout: 30_000 }, async () => {
  await withWatch(async ({ fake, watch }) => {
    await waitFor('watching', async () => fake.openWatches === 1, 10_000, 10);
    // Other kinds' changes move the server's resourceVersion; only the bookmark tells this watch.
    fake.create(G, V, 'dwcpfederations', cr('f', 1));
    fake.bookmark();
    await new Promise((r) => setTimeout(r, 200));
    fake.compact();
    fake.dropWatches();
    await waitFor('resumed', async () => watch.watches >= 2 && fake.openWatches === 1, 10_000, 10);
    assert.equal(watch.lists, 1);
  });
});
