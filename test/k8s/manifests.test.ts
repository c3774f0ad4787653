// manifests/: the base and every overlay, built as kustomize would, are valid
// Kubernetes objects (kubernetes-models' validators for the API kinds, the
// generated CRDs for DWCP resources); the example custom resources are valid
// and are exactly the federation-wide part of each region's config; RBAC is
// least privilege; alerts and dashboard name metrics the agent exports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';
import { NODE_LOCAL_FIELDS, STREAM_FIELDS } from '../../src/k8s/crd-schema.ts';
import { kustomizeBuild, type BuiltObject, type KubeObject } from '../helpers/kustomize-build.ts';
import { kubeProblems } from '../helpers/kube-validate.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const MANIFESTS = join(ROOT, 'manifests');
const BASE = join(MANIFESTS, 'base');
const OVERLAYS = join(MANIFESTS, 'overlays');
const EXAMPLES = join(MANIFESTS, 'examples');

/** Metrics the SLO work (issue 12 item 4) adds; the rules and dashboard already use them. */
const ANNOUNCED_METRICS = ['dwcp_replication_delay_seconds', 'dwcp_slo_attainment_ratio'];

/** Alerts the PrometheusRule must carry (issue 12 item 5). */
const REQUIRED_ALERTS = [
  'DWCPStreamHalted', 'DWCPLagOverSLO', 'DWCPSLOBurnRateFast', 'DWCPSLOBurnRateSlow',
  'DWCPLinkDown', 'DWCPVerifyFailures', 'DWCPWalSlotRetentionGrowing',
];

// The overlay directories (one per example region).
async function overlays(): Promise<string[]> {
  return (await readdir(OVERLAYS)).sort();
}

// The one built object of a kind (and name, when several).
function only(objects: BuiltObject[], kind: string, name?: string): KubeObject {
  const found = objects.filter((o) => o.object.kind === kind && (name === undefined || o.object.metadata.name === name));
  assert.equal(found.length, 1, `expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0].object;
}

// Every problem of every built object, prefixed with its file.
function problemsOf(objects: BuiltObject[]): string[] {
  return objects.flatMap(({ file, object }) => kubeProblems(object).map((p) => `${file}: ${p}`));
}

// The DWCP custom resources of manifests/examples.
async function exampleResources(): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  for (const file of (await readdir(EXAMPLES)).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(await readFile(join(EXAMPLES, file), 'utf8'))) out.push(doc.toJS() as KubeObject);
  }
  return out;
}

// The ConfigMap's config file as written (before ${ENV} expansion).
function rawConfig(objects: BuiltObject[]): KubeObject {
  return parse(only(objects, 'ConfigMap', 'dwcp-config').data['dwcp.yaml']) as KubeObject;
}

test('the base and every overlay build and validate against the Kubernetes API schemas', async () => {
  const names = await overlays();
  assert.deepEqual(names, ['eu-west', 'us-east']);
  for (const dir of [BASE, ...names.map((n) => join(OVERLAYS, n))]) {
    const objects = await kustomizeBuild(dir);
    assert.deepEqual(problemsOf(objects), [], relative(ROOT, dir));
    const kinds = new Set(objects.map((o) => o.object.kind));
    for (const kind of ['CustomResourceDefinition', 'ServiceAccount', 'Role', 'RoleBinding', 'DaemonSet', 'Service', 'ServiceMonitor', 'PrometheusRule', 'NetworkPolicy', 'PodDisruptionBudget', 'ConfigMap']) {
      assert.ok(kinds.has(kind), `${relative(ROOT, dir)} has no ${kind}`);
    }
    // Namespaced objects sit in dwcp; CRDs are cluster-scoped; no Namespace object.
    for (const { file, object } of objects) {
      assert.notEqual(object.kind, 'Namespace', file);
      if (object.kind === 'CustomResourceDefinition') assert.equal(object.metadata.namespace, undefined, file);
      else assert.equal(object.metadata.namespace, 'dwcp', `${file}: ${object.kind}/${object.metadata.name}`);
    }
  }
});

test('a manifest with a wrong field is reported with its file, object and path', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-kustomize-'));
  try {
    // An overlay of the real base whose patch gives the agent port a word and the PDB an unknown type.
    await writeFile(join(dir, 'kustomization.yaml'), `resources: [${relative(dir, BASE)}]\npatches:\n  - path: bad.yaml\nkind: Kustomization\napiVersion: kustomize.config.k8s.io/v1beta1\n`);
    await writeFile(join(dir, 'bad.yaml'), [
      'apiVersion: apps/v1', 'kind: DaemonSet', 'metadata: { name: dwcp-agent, namespace: dwcp }',
      'spec: { template: { spec: { containers: [ { name: agent, ports: [ { name: amst, containerPort: seven-four-hundred } ] } ] } } }',
      '---',
      'apiVersion: policy/v1', 'kind: PodDisruptionBudget', 'metadata: { name: dwcp-agent, namespace: dwcp }',
      'spec: { minAvailable: [1] }',
    ].join('\n'));
    const problems = problemsOf(await kustomizeBuild(dir));
    assert.ok(problems.some((p) => p.includes('DaemonSet dwcp/dwcp-agent /spec/template/spec/containers/0/ports/0/containerPort: must be integer')), problems.join('\n'));
    assert.ok(problems.some((p) => p.startsWith(`${relative(dir, BASE)}/poddisruptionbudget.yaml: PodDisruptionBudget dwcp/dwcp-agent /spec/minAvailable`)), problems.join('\n'));

    // A kustomization field the builder does not implement is refused, not ignored.
    await writeFile(join(dir, 'kustomization.yaml'), `resources: [${relative(dir, BASE)}]\nnamePrefix: x-\n`);
    await assert.rejects(kustomizeBuild(dir), /field "namePrefix" is not supported/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the example custom resources validate against the generated CRDs; wrong fields are reported with their path', async () => {
  const resources = await exampleResources();
  assert.deepEqual(resources.map((r) => r.kind).sort(), ['DWCPFederation', 'DWCPStream', 'DWCPStream']);
  for (const resource of resources) assert.deepEqual(kubeProblems(resource), [], `${resource.kind}/${resource.metadata.name}`);

  // Negative cases: a misspelt field, a wrong type, a bad enum word, a missing required field.
  const stream = structuredClone(resources.find((r) => r.kind === 'DWCPStream' && r.spec.kind === 'objects')!);
  stream.spec.destinations[0].regoin = 'us-east';
  stream.spec.shards = 'two';
  stream.spec.kind = 'files';
  delete stream.spec.federation;
  const problems = kubeProblems(stream);
  for (const expected of [
    'DWCPStream dwcp/assets /spec/destinations/0/regoin: unknown field',
    'DWCPStream dwcp/assets /spec/shards: must be integer',
    'DWCPStream dwcp/assets /spec/kind: must be equal to one of the allowed values',
    "DWCPStream dwcp/assets /spec: must have required property 'federation'",
  ]) assert.ok(problems.includes(expected), `${expected}\nnot among:\n${problems.join('\n')}`);

  // A federation duration that is neither a number nor a duration word.
  const federation = structuredClone(resources.find((r) => r.kind === 'DWCPFederation')!);
  federation.spec.amst.connectTimeout = 'soon';
  federation.spec.nodeId = 'node-a';
  const fedProblems = kubeProblems(federation);
  assert.ok(fedProblems.some((p) => p.startsWith('DWCPFederation dwcp/example /spec/amst/connectTimeout: must match pattern')), fedProblems.join('\n'));
  assert.ok(fedProblems.includes('DWCPFederation dwcp/example /spec/nodeId: unknown field'), fedProblems.join('\n'));
});

test('each region\'s ConfigMap is the example custom resources plus node-local fields', async () => {
  const resources = await exampleResources();
  const federation = resources.find((r) => r.kind === 'DWCPFederation')!;
  const streams = resources.filter((r) => r.kind === 'DWCPStream');
  for (const region of await overlays()) {
    const config = rawConfig(await kustomizeBuild(join(OVERLAYS, region)));
    const shared = Object.fromEntries(Object.entries(config).filter(([k]) => !([...NODE_LOCAL_FIELDS, ...STREAM_FIELDS] as string[]).includes(k)));
    assert.deepEqual(federation.spec, shared, `${region}: DWCPFederation spec differs from the ConfigMap`);
    const fromStreams = streams.map((s) => {
      const { federation: name, ...entry } = s.spec;
      assert.equal(name, federation.metadata.name, `${s.metadata.name}: spec.federation`);
      assert.equal(s.metadata.name, entry.id, 'a DWCPStream is named as its stream id');
      return entry;
    });
    assert.deepEqual(fromStreams, config.streams, `${region}: DWCPStreams differ from the ConfigMap's streams`);
  }
});

test('each overlay sets its region, its per-node TLS secret and its peers', async () => {
  for (const region of await overlays()) {
    const objects = await kustomizeBuild(join(OVERLAYS, region));
    const config = parseConfig(only(objects, 'ConfigMap', 'dwcp-config').data['dwcp.yaml'], 'dwcp.yaml', { env: { NODE_NAME: 'node-a' }, hostname: 'unused', cpuCount: 2 });
    assert.equal(config.region, region);
    const pod = only(objects, 'DaemonSet').spec.template;
    assert.equal(pod.metadata.labels['dwcp.io/region'], region);
    const tls = pod.spec.volumes.find((v: KubeObject) => v.name === 'tls');
    assert.equal(tls.secret.secretName, `dwcp-tls-${region}`);
    assert.equal(tls.secret.defaultMode, 0o440, 'defaultMode is octal 0440 as kubectl reads it');
    // Each node reads its own certificate from the region's secret.
    assert.equal(basename(config.tls.certFile), 'node-a.crt');
    assert.equal(basename(config.tls.keyFile), 'node-a.key');
    // Peers: the carrier port only, to and from address ranges that are not everything.
    const peers = only(objects, 'NetworkPolicy', 'dwcp-agent-peers').spec;
    for (const rule of [...peers.ingress.map((r: KubeObject) => r.from), ...peers.egress.map((r: KubeObject) => r.to)]) {
      for (const peer of rule) assert.notEqual(peer.ipBlock.cidr, '0.0.0.0/0', `${region}: peers not narrowed`);
    }
    for (const rule of [...peers.ingress, ...peers.egress]) assert.deepEqual(rule.ports, [{ port: config.listen.port, protocol: 'TCP' }]);
  }
});

test('the ConfigMap dwcp.yaml compiles with NODE_NAME from the pod, and the DaemonSet mounts what it names', async () => {
  for (const region of await overlays()) {
    const objects = await kustomizeBuild(join(OVERLAYS, region));
    const configMap = only(objects, 'ConfigMap', 'dwcp-config');
    const pod = only(objects, 'DaemonSet').spec.template.spec;
    const agent = pod.containers.find((c: KubeObject) => c.name === 'agent');

    // The config file the agent is started with is a key of the mounted ConfigMap.
    const configPath: string = agent.args[agent.args.indexOf('--config') + 1];
    const mount = agent.volumeMounts.find((m: KubeObject) => m.mountPath === dirname(configPath));
    assert.ok(mount, `no volume mounted at ${dirname(configPath)}`);
    const volume = pod.volumes.find((v: KubeObject) => v.name === mount.name);
    assert.equal(volume.configMap?.name, configMap.metadata.name);
    const text = configMap.data[basename(configPath)];
    assert.equal(typeof text, 'string', `ConfigMap has no key ${basename(configPath)}`);

    // It compiles; nodeId is the node name; files sit under the mounts.
    const config = parseConfig(text, configPath, { env: { NODE_NAME: 'node-a' }, hostname: 'unused', cpuCount: 2 });
    assert.equal(config.nodeId, 'node-a');
    const mountOf = (path: string) => agent.volumeMounts.find((m: KubeObject) => path.startsWith(`${m.mountPath}/`));
    for (const file of [config.tls.caFile, config.tls.certFile, config.tls.keyFile]) {
      const tlsMount = mountOf(file);
      assert.ok(tlsMount, `${file} is not under a mounted volume`);
      assert.ok(pod.volumes.find((v: KubeObject) => v.name === tlsMount.name).secret, `${file} is not from a secret`);
    }
    assert.equal(mountOf(`${config.dataDir}/x`)?.name, 'data');

    // NODE_NAME comes from the downward API.
    const env = agent.env.find((e: KubeObject) => e.name === 'NODE_NAME');
    assert.equal(env?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');

    // Ports and probes agree with the config, and so do Service and NetworkPolicy.
    const ports = Object.fromEntries(agent.ports.map((p: KubeObject) => [p.name, p]));
    assert.equal(ports.amst.containerPort, config.listen.port);
    assert.equal(ports.http.containerPort, config.http.port);
    assert.equal(agent.livenessProbe.httpGet.path, '/healthz');
    assert.equal(agent.readinessProbe.httpGet.path, '/readyz');
    assert.equal(agent.livenessProbe.httpGet.port, 'http');
    const service = only(objects, 'Service');
    assert.equal(service.spec.ports[0].port, config.http.port);
    assert.deepEqual(service.spec.selector, only(objects, 'DaemonSet').spec.selector.matchLabels);
    const policy = only(objects, 'NetworkPolicy', 'dwcp-agent').spec;
    const walsenderPorts = config.streams.flatMap((s) => (s.kind === 'pg-wal' ? s.destinations.map((d) => d.walsender.port) : []));
    assert.ok(walsenderPorts.length > 0, 'the example has a pg-wal destination');
    const allowedIn = new Set(policy.ingress.flatMap((r: KubeObject) => r.ports.map((p: KubeObject) => p.port)));
    for (const port of [config.http.port, ...walsenderPorts]) assert.ok(allowedIn.has(port), `NetworkPolicy does not let port ${port} in`);
    assert.ok(!allowedIn.has(config.listen.port), 'the carrier port is for peers only (dwcp-agent-peers)');
    for (const port of walsenderPorts) assert.ok(agent.ports.some((p: KubeObject) => p.containerPort === port), `no container port ${port}`);
  }
});

test('the agent runs as uid 10001 without privileges and has a drain grace period', async () => {
  const objects = await kustomizeBuild(BASE);
  const pod = only(objects, 'DaemonSet').spec.template.spec;
  const agent = pod.containers.find((c: KubeObject) => c.name === 'agent');
  assert.equal(pod.securityContext.runAsUser, 10001);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(agent.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL']);
  assert.ok(pod.terminationGracePeriodSeconds >= 30, 'grace period shorter than a drain');
  assert.ok(agent.resources.requests.cpu && agent.resources.limits.memory, 'resources missing');
  assert.equal(pod.serviceAccountName, only(objects, 'ServiceAccount').metadata.name);
});

test('RBAC: read the DWCP resources, write their status, create events; nothing else', async () => {
  const objects = await kustomizeBuild(BASE);
  assert.ok(!objects.some((o) => o.object.kind === 'ClusterRole' || o.object.kind === 'ClusterRoleBinding'), 'no cluster-wide RBAC');
  const role = only(objects, 'Role');
  const grants = role.rules.flatMap((rule: KubeObject) =>
    rule.apiGroups.flatMap((group: string) => rule.resources.flatMap((resource: string) => rule.verbs.map((verb: string) => `${group}/${resource}:${verb}`))));
  assert.deepEqual(grants.sort(), [
    '/events:create',
    'dwcp.io/dwcpfederations/status:get', 'dwcp.io/dwcpfederations/status:patch', 'dwcp.io/dwcpfederations/status:update',
    'dwcp.io/dwcpfederations:get', 'dwcp.io/dwcpfederations:list', 'dwcp.io/dwcpfederations:watch',
    'dwcp.io/dwcpstreams/status:get', 'dwcp.io/dwcpstreams/status:patch', 'dwcp.io/dwcpstreams/status:update',
    'dwcp.io/dwcpstreams:get', 'dwcp.io/dwcpstreams:list', 'dwcp.io/dwcpstreams:watch',
    'events.k8s.io/events:create',
  ].sort());
  for (const rule of role.rules) assert.equal(rule.resourceNames, undefined);
  const binding = only(objects, 'RoleBinding');
  assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
  const account = only(objects, 'ServiceAccount');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: account.metadata.name, namespace: account.metadata.namespace }]);
});

test('alerts and dashboard name metrics the agent exports, and every required alert exists', async () => {
  // Metric names registered in the source (prom-client `name: '...'`), plus the announced SLO metrics.
  const known = new Set(ANNOUNCED_METRICS);
  for (const file of ['src/agent/metrics.ts', 'src/streams/pg-wal/wal-stream-metrics.ts']) {
    for (const match of (await readFile(join(ROOT, file), 'utf8')).matchAll(/name: '(dwcp_[a-z0-9_]+)'/g)) known.add(match[1]);
  }
  const metricOf = (token: string) => (known.has(token) ? token : token.replace(/_(bucket|count|sum)$/, ''));
  const unknown = (expr: string) => [...expr.matchAll(/\bdwcp_[a-z0-9_]+/g)].map((m) => m[0]).filter((t) => !known.has(metricOf(t)));

  const objects = await kustomizeBuild(BASE);
  const rules = only(objects, 'PrometheusRule').spec.groups.flatMap((g: KubeObject) => g.rules);
  for (const rule of rules) assert.deepEqual(unknown(rule.expr), [], `${rule.alert ?? rule.record}: unknown metric`);
  const alerts = rules.filter((r: KubeObject) => r.alert !== undefined);
  for (const name of REQUIRED_ALERTS) assert.ok(alerts.some((a: KubeObject) => a.alert === name), `no alert ${name}`);
  for (const alert of alerts) {
    assert.match(alert.labels?.severity ?? '', /^(critical|warning)$/, `${alert.alert}: severity`);
    assert.ok(alert.annotations?.summary && alert.annotations?.description, `${alert.alert}: summary and description`);
  }
  // Recording rules used by alerts exist.
  const recorded = new Set(rules.filter((r: KubeObject) => r.record !== undefined).map((r: KubeObject) => r.record));
  for (const alert of alerts) {
    for (const [name] of alert.expr.matchAll(/\bdwcp:[a-z0-9_:]+/g)) assert.ok(recorded.has(name), `${alert.alert}: ${name} is not recorded`);
  }

  // The dashboard is JSON with lag, goodput, carriers and SLO panels on known metrics.
  const dashboard = JSON.parse(only(objects, 'ConfigMap', 'dwcp-grafana-dashboard').data['dwcp-replication.json']);
  const exprs: string[] = dashboard.panels.flatMap((p: KubeObject) => p.targets.map((t: KubeObject) => t.expr));
  for (const expr of exprs) assert.deepEqual(unknown(expr), [], expr);
  for (const metric of ['dwcp_stream_lag_seconds', 'dwcp_goodput_bytes_total', 'dwcp_carriers', 'dwcp_slo_attainment_ratio', 'dwcp_replication_delay_seconds_bucket']) {
    assert.ok(exprs.some((e) => e.includes(metric)), `dashboard has no panel on ${metric}`);
  }
});
