// Kubernetes mode end to end: two real agents in this process (regions
// eu-west and us-east, embedded stores, TLS carriers on loopback) follow
// their DWCPFederation and DWCPStreams on the fake API server
// (test/helpers/fake-kube-apiserver.ts, standing in for kube-apiserver).
// One federation runs through the steps in order: a stream created
// replicates; a second one created replicates; the first retuned restarts
// alone (the second's sender session is untouched); a bad spec is refused
// with its field path (Event, Degraded) and the old spec keeps running;
// status appears on the CR and follows lag (a destination whose checkpoints
// are held back); a change the agent cannot apply live is refused with an
// Event; a dropped watch and a 410 Gone recover; a deleted stream stops
// cleanly on both sides.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { pino } from 'pino';
import { writeFederationFiles, nodeIdOf, SOURCE_REGION, DEST_REGION } from '../../src/cli/two-region.ts';
import { startKubeAgent, type KubeAgent } from '../../src/k8s/kube-agent.ts';
import { CRD_API_VERSION, CRD_GROUP, CRD_VERSION, FEDERATION_NAMES, NODE_LOCAL_FIELDS, STREAM_NAMES, type StreamStatus } from '../../src/k8s/crd-schema.ts';
import type { Sink } from '../../src/streams/stream.ts';
import { FakeKubeApiServer } from '../helpers/fake-kube-apiserver.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { replicates as replicatesWithin } from '../helpers/stream-dirs.ts';

const NS = 'dwcp';
const FED = 'demo';
const WAIT_MS = 60_000;

const replicates = (dir: string, id: string, file: string): Promise<void> => replicatesWithin(dir, id, file, WAIT_MS);

/** A stream CR's spec: objects from <dir>/<name>-src to <dir>/<name>-dst. */
function streamSpec(dir: string, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    federation: FED,
    id: name,
    kind: 'objects',
    source: { region: SOURCE_REGION, path: join(dir, `${name}-src`), scanInterval: '1s' },
    destinations: [{ region: DEST_REGION, path: join(dir, `${name}-dst`) }],
    ...extra,
  };
}

function streamCr(dir: string, name: string, extra: Record<string, unknown> = {}) {
  return { apiVersion: CRD_API_VERSION, kind: STREAM_NAMES.kind, metadata: { name, namespace: NS }, spec: streamSpec(dir, name, extra) };
}


test('Kubernetes mode: streams follow their CRs live, status is written back, watches recover', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-kube-'));
  const fake = await FakeKubeApiServer.start();
  const agents: KubeAgent[] = [];
  // The destination's checkpoints of stream "beta" wait while held (lag the status must show).
  let hold: Promise<void> | null = null;
  const wrapSink = (inner: Sink): Sink => (inner.streamId !== 'beta' ? inner : {
    streamId: inner.streamId,
    kind: inner.kind,
    recover: (state, seq) => inner.recover(state, seq),
    apply: (seq, meta, data) => inner.apply(seq, meta, data),
    flush: async () => {
      await hold;
      return inner.flush();
    },
    close: () => inner.close(),
  });
  try {
    // Certificates and node-local config per region from the two-region setup; the rest becomes the DWCPFederation.
    const setup = await writeFederationFiles({ dir, carriers: 1, amstExtra: '  initialBackoff: 100ms\n  maxBackoff: 1s', streams: '  []' });
    const files = { [SOURCE_REGION]: parse(await readFile(setup.sourceConfig, 'utf8')), [DEST_REGION]: parse(await readFile(setup.destConfig, 'utf8')) } as Record<string, Record<string, unknown>>;
    const local = (region: string): Record<string, unknown> => Object.fromEntries(Object.entries(files[region]).filter(([k]) => (NODE_LOCAL_FIELDS as readonly string[]).includes(k)));
    const { federation: _f, streams: _s, ...rest } = files[SOURCE_REGION];
    const fedSpec = Object.fromEntries(Object.entries(rest).filter(([k]) => !(NODE_LOCAL_FIELDS as readonly string[]).includes(k)));
    fake.create(CRD_GROUP, CRD_VERSION, FEDERATION_NAMES.plural, { apiVersion: CRD_API_VERSION, kind: FEDERATION_NAMES.kind, metadata: { name: FED, namespace: NS }, spec: fedSpec });
    fake.create(CRD_GROUP, CRD_VERSION, STREAM_NAMES.plural, streamCr(dir, 'alpha', { slo: { target: '30s', objective: 99 } }));
    const kc = new KubeConfig();
    kc.loadFromFile(await fake.writeKubeConfig(join(dir, 'kubeconfig'), NS));
    const logger = pino({ level: process.env.DEBUG_LOG ? 'debug' : 'warn' });
    const start = (region: string, wrap?: (s: Sink) => Sink) => startKubeAgent({ kubeConfig: kc, namespace: NS, federation: FED, nodeLocal: local(region), logger: logger.child({ region }), agent: { logger: logger.child({ region }), wrapSink: wrap }, statusTickMs: 100, statusMinIntervalMs: 300 });
    const [dest, source] = await Promise.all([start(DEST_REGION, wrapSink), start(SOURCE_REGION)]);
    agents.push(dest, source);
    const status = (name: string): StreamStatus => (fake.get(CRD_GROUP, CRD_VERSION, NS, STREAM_NAMES.plural, name)?.status ?? {}) as StreamStatus;
    const condition = (name: string, type: string) => status(name).conditions?.find((c) => c.type === type);
    const senderSession = (stream: string) => source.agent.status().senders.find((s) => s.stream === stream)?.session;

    // Created: alpha replicates, and its status appears, written by the elected sender.
    await mkdir(join(dir, 'alpha-src'), { recursive: true });
    await replicates(dir, 'alpha', 'a1');
    await waitFor('alpha status', async () => condition('alpha', 'Ready')?.status === 'True' && Number(status('alpha').destinations?.[0]?.durablePosition) > 0, WAIT_MS, 100);
    const alpha = status('alpha');
    assert.equal(alpha.sender, nodeIdOf(SOURCE_REGION));
    assert.equal(alpha.observedGeneration, 1);
    assert.equal(alpha.destinations?.[0].region, DEST_REGION);
    assert.equal(alpha.destinations?.[0].lastError, '');
    // SLO: every change within 30 s on loopback; the delays are in the histogram.
    await waitFor('alpha attainment', async () => status('alpha').destinations?.[0].sloAttainment === 1, WAIT_MS, 100);
    const metrics = await source.agent.metrics.registry.metrics();
    assert.match(metrics, /dwcp_replication_delay_seconds_count\{stream="alpha",destination="us-east"\} [1-9]/);
    assert.match(metrics, /dwcp_slo_attainment_ratio\{stream="alpha",destination="us-east"\} 1/);
    assert.equal(fake.statusWrites.size, 1, 'only alpha has a status, written by its sender only');

    // A second stream created: it replicates too.
    fake.create(CRD_GROUP, CRD_VERSION, STREAM_NAMES.plural, streamCr(dir, 'beta'));
    await replicates(dir, 'beta', 'b1');
    await waitFor('beta status', async () => condition('beta', 'Ready')?.status === 'True', WAIT_MS, 100);

    // alpha retuned: it restarts alone; beta's sender keeps its session.
    const betaSession = senderSession('beta');
    assert.ok(betaSession !== undefined && betaSession > 0);
    const alphaSender = source.agent.status().senders.find((s) => s.stream === 'alpha');
    fake.updateSpec(CRD_GROUP, CRD_VERSION, NS, STREAM_NAMES.plural, 'alpha', streamSpec(dir, 'alpha', { slo: { target: '30s', objective: 99 }, source: { region: SOURCE_REGION, path: join(dir, 'alpha-src'), scanInterval: '2s' } }));
    const alphaScanMs = () => (source.agent.config.streams.find((s) => s.id === 'alpha') as { source: { scanIntervalMs: number } } | undefined)?.source.scanIntervalMs;
    await waitFor('alpha retuned', async () => alphaScanMs() === 2000, WAIT_MS, 100);
    await replicates(dir, 'alpha', 'a2');
    assert.equal(senderSession('beta'), betaSession, 'beta was not disturbed');
    assert.ok(alphaSender !== undefined);
    await waitFor('alpha observedGeneration 2', async () => status('alpha').observedGeneration === 2, WAIT_MS, 100);

    // A bad spec: refused with its field path (Event, Degraded); beta keeps running its old spec.
    fake.updateSpec(CRD_GROUP, CRD_VERSION, NS, STREAM_NAMES.plural, 'beta', streamSpec(dir, 'beta', { destinations: [] }));
    await waitFor('event on beta', async () => fake.events.some((e) => (e.involvedObject as { name: string }).name === 'beta' && e.reason === 'InvalidSpec'), WAIT_MS, 100);
    const event = fake.events.find((e) => (e.involvedObject as { name: string }).name === 'beta')!;
    assert.match(String(event.message), /DWCPStream\/beta: spec\.destinations: /);
    await waitFor('beta Degraded', async () => condition('beta', 'Degraded')?.status === 'True' && condition('beta', 'Degraded')?.reason === 'InvalidSpec', WAIT_MS, 100);
    assert.match(condition('beta', 'Degraded')!.message!, /spec\.destinations/);
    await replicates(dir, 'beta', 'b2');
    assert.equal(senderSession('beta'), betaSession, 'beta still runs its old spec, undisturbed');
    // Fixed again: Degraded clears.
    fake.updateSpec(CRD_GROUP, CRD_VERSION, NS, STREAM_NAMES.plural, 'beta', streamSpec(dir, 'beta'));
    await waitFor('beta healthy', async () => condition('beta', 'Degraded')?.status === 'False', WAIT_MS, 100);

    // Status follows lag: beta's destination holds its checkpoints, then lets go.
    let release!: () => void;
    hold = new Promise<void>((resolve) => (release = resolve));
    await writeFile(join(dir, 'beta-src', 'b3'), 'lagging');
    await waitFor('beta lagging', async () => condition('beta', 'Progressing')?.status === 'True' && (status('beta').lagSeconds ?? 0) > 0.5, WAIT_MS, 100);
    release();
    hold = null;
    await waitFor('beta caught up', async () => condition('beta', 'Progressing')?.status === 'False' && status('beta').lagSeconds === 0, WAIT_MS, 100);

    // A change that cannot apply live (the consensus backend): an Event on the federation; streams keep running.
    fake.updateSpec(CRD_GROUP, CRD_VERSION, NS, FEDERATION_NAMES.plural, FED, { ...fedSpec, acp: { backend: 'etcd', endpoints: ['127.0.0.1:1'] } });
    await waitFor('refusal event', async () => fake.events.some((e) => e.reason === 'ChangeRefused' && /acp: cannot change while the agent runs/.test(String(e.message))), WAIT_MS, 100);
    await replicates(dir, 'alpha', 'a3');
    fake.updateSpec(CRD_GROUP, CRD_VERSION, NS, FEDERATION_NAMES.plural, FED, fedSpec);
    const changes = await source.agent.metrics.registry.metrics();
    assert.match(changes, /dwcp_config_changes_total\{result="invalid"\} [1-9]/);
    assert.match(changes, /dwcp_config_changes_total\{result="refused"\} [1-9]/);
    assert.match(changes, /dwcp_config_changes_total\{result="applied"\} [1-9]/);

    // A dropped watch: a stream created meanwhile still arrives.
    fake.dropWatches();
    fake.create(CRD_GROUP, CRD_VERSION, STREAM_NAMES.plural, streamCr(dir, 'gamma'));
    await replicates(dir, 'gamma', 'g1');

    // 410 Gone: history compacted while the watches were down; the agents list again.
    const lists = fake.listRequests;
    fake.dropWatches();
    fake.create(CRD_GROUP, CRD_VERSION, STREAM_NAMES.plural, streamCr(dir, 'delta'));
    fake.compact();
    await replicates(dir, 'delta', 'd1');
    assert.ok(fake.listRequests > lists, 'the agents listed again after 410 Gone');

    // Deleted: alpha stops on both sides; the others keep replicating.
    fake.delete(CRD_GROUP, CRD_VERSION, NS, STREAM_NAMES.plural, 'alpha');
    await waitFor('alpha gone', async () => !source.agent.status().senders.some((s) => s.stream === 'alpha') && !dest.agent.status().receivers.some((r) => r.streamId === 'alpha'), WAIT_MS, 100);
    await writeFile(join(dir, 'alpha-src', 'after-delete'), 'not replicated');
    await replicates(dir, 'gamma', 'g2');
    assert.equal(existsSync(join(dir, 'alpha-dst', 'after-delete')), false);
    assert.equal(await readFile(join(dir, 'alpha-dst', 'a3'), 'utf8').then((t) => t.startsWith('alpha/a3'), () => false), true, 'what alpha replicated stays');
  } finally {
    await Promise.allSettled(agents.map((a) => a.close()));
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  }
});
