// manifests/: the base and every overlay, built as kustomize would, are valid
// Kubernetes objects (kubernetes-models' validators for the API kinds, the
// generated CRDs for DWCP resources); the agents run in Kubernetes mode and
// each region's node.yaml composed with the example custom resources, as the
// agent composes them, compiles for that region; RBAC is least privilege;
// alerts and dashboard name metrics the agent exports.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigError } from '../../src/config/config-error.ts';
import type { Config } from '../../src/config/config.ts';
import { compileConfig } from '../../src/config/load-config.ts';
import { FEDERATION_NAMES, NODE_LOCAL_FIELDS } from '../../src/k8s/crd-schema.ts';
import { readNodeLocal } from '../../src/k8s/kube-agent.ts';
import { composeConfigInput } from '../../src/k8s/kube-config-source.ts';
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

/** The pod's NODE_NAME in these tests. */
const NODE_NAME = 'node-a';

/** What an overlay's agent is started with: its --federation and its node file (path in the pod, text from the ConfigMap). */
interface AgentStart {
  federation: string;
  nodePath: string;
  nodeText: string;
}

// The agent container's arguments in Kubernetes mode, and the node file they name.
function agentStart(objects: BuiltObject[]): AgentStart {
  const pod = only(objects, 'DaemonSet').spec.template.spec;
  const agent = pod.containers.find((c: KubeObject) => c.name === 'agent');
  const args: string[] = agent.args;
  assert.deepEqual(args.slice(0, 2), ['agent', '--kube'], `the agent runs in Kubernetes mode: ${args.join(' ')}`);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    assert.ok(i > 0 && i + 1 < args.length, `agent args have no ${name}`);
    return args[i + 1];
  };
  const nodePath = flag('--config');
  const mount = agent.volumeMounts.find((m: KubeObject) => m.mountPath === dirname(nodePath));
  assert.ok(mount, `no volume mounted at ${dirname(nodePath)}`);
  const configMap = only(objects, 'ConfigMap', pod.volumes.find((v: KubeObject) => v.name === mount.name).configMap?.name);
  const nodeText = configMap.data[basename(nodePath)];
  assert.equal(typeof nodeText, 'string', `ConfigMap ${configMap.metadata.name} has no key ${basename(nodePath)}`);
  return { federation: flag('--federation'), nodePath, nodeText };
}

// The config an agent composes from a node file and the example resources (as
// KubeConfigSource does: the named DWCPFederation, the DWCPStreams naming it),
// compiled with NODE_NAME set as the pod sets it.
async function composedConfig(start: AgentStart, resources: KubeObject[], nodeText = start.nodeText): Promise<Config> {
  const federation = resources.find((r) => r.kind === FEDERATION_NAMES.kind && r.metadata.name === start.federation);
  assert.ok(federation, `no example ${FEDERATION_NAMES.kind} named ${start.federation}`);
  const streams = resources.filter((r) => r.kind === 'DWCPStream' && r.spec.federation === start.federation).map((r) => r.spec);
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-node-'));
  try {
    await writeFile(join(dir, basename(start.nodePath)), nodeText);
    const nodeLocal = await readNodeLocal(join(dir, basename(start.nodePath)));
    const input = composeConfigInput(start.federation, federation.spec, nodeLocal, streams);
    return compileConfig(input, { env: { NODE_NAME }, baseDir: dirname(start.nodePath), hostname: 'unused', cpuCount: 2 }, `${FEDERATION_NAMES.kind}/${start.federation}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// The agent's config in an overlay, composed from its node file and the example resources.
async function overlayConfig(objects: BuiltObject[]): Promise<Config> {
  return composedConfig(agentStart(objects), await exampleResources());
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

test('each region\'s node.yaml holds only node-local fields and, composed with the example resources as the agent does, compiles for that region', async () => {
  const resources = await exampleResources();
  for (const region of await overlays()) {
    const start = agentStart(await kustomizeBuild(join(OVERLAYS, region)));
    // Nothing federation-wide in the node file: that comes from the CRs.
    const written = parse(start.nodeText) as Record<string, unknown>;
    const extra = Object.keys(written).filter((k) => !(NODE_LOCAL_FIELDS as readonly string[]).includes(k));
    assert.deepEqual(extra, [], `${region}: node.yaml has federation-wide fields`);

    // Composed and compiled: this region's agent in the example federation, running the example streams.
    const config = await composedConfig(start, resources);
    assert.equal(config.federation, 'example');
    assert.equal(config.region, region);
    assert.equal(config.nodeId, NODE_NAME);
    assert.ok(config.regions.some((r) => r.name === region), `${region} is not among the federation's regions`);
    const streams = resources.filter((r) => r.kind === 'DWCPStream');
    for (const s of streams) assert.equal(s.metadata.name, s.spec.id, 'a DWCPStream is named as its stream id');
    assert.deepEqual(config.streams.map((s) => s.id).sort(), streams.map((s) => s.spec.id).sort());

    // A node file without a required node-local field is refused, naming the field.
    for (const field of ['region', 'tls']) {
      const { [field]: _dropped, ...rest } = written;
      await assert.rejects(composedConfig(start, resources, JSON.stringify(rest)), (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.ok(err.issues.some((i) => i.path === field), `${region} without ${field}: ${err.message}`);
        return true;
      });
    }
  }
});

test('each overlay sets its region, its per-node TLS secret and its peers', async () => {
  for (const region of await overlays()) {
    const objects = await kustomizeBuild(join(OVERLAYS, region));
    const config = await overlayConfig(objects);
    assert.equal(config.region, region);
    const pod = only(objects, 'DaemonSet').spec.template;
    assert.equal(pod.metadata.labels['dwcp.io/region'], region);
    const tls = pod.spec.volumes.find((v: KubeObject) => v.name === 'tls');
    assert.equal(tls.secret.secretName, `dwcp-tls-${region}`);
    assert.equal(tls.secret.defaultMode, 0o440, 'defaultMode is octal 0440 as kubectl reads it');
    // Each node reads its own certificate from the region's secret.
    assert.equal(basename(config.tls.certFile), `${NODE_NAME}.crt`);
    assert.equal(basename(config.tls.keyFile), `${NODE_NAME}.key`);
    // Peers: the carrier port only, to and from address ranges that are not everything.
    const peers = only(objects, 'NetworkPolicy', 'dwcp-agent-peers').spec;
    for (const rule of [...peers.ingress.map((r: KubeObject) => r.from), ...peers.egress.map((r: KubeObject) => r.to)]) {
      for (const peer of rule) assert.notEqual(peer.ipBlock.cidr, '0.0.0.0/0', `${region}: peers not narrowed`);
    }
    for (const rule of [...peers.ingress, ...peers.egress]) assert.deepEqual(rule.ports, [{ port: config.listen.port, protocol: 'TCP' }]);
  }
});

test('the agent follows its CRs in-cluster with NODE_NAME from the pod, and the DaemonSet mounts what its config names', async () => {
  const resources = await exampleResources();
  for (const region of await overlays()) {
    const objects = await kustomizeBuild(join(OVERLAYS, region));
    const pod = only(objects, 'DaemonSet').spec.template.spec;
    const agent = pod.containers.find((c: KubeObject) => c.name === 'agent');

    // In-cluster API access: the pod's token is mounted, nothing points elsewhere, and the CRs sit in the pod's namespace.
    assert.equal(pod.automountServiceAccountToken, true, 'the service account token is not mounted');
    assert.ok(!agent.env.some((e: KubeObject) => e.name === 'KUBECONFIG'), 'KUBECONFIG would override the in-cluster config');
    assert.ok(!agent.args.includes('--kubeconfig') && !agent.args.includes('--namespace'), 'in-cluster config and the pod namespace');
    const podNamespace = agent.env.find((e: KubeObject) => e.name === 'POD_NAMESPACE');
    assert.equal(podNamespace?.valueFrom?.fieldRef?.fieldPath, 'metadata.namespace');
    for (const r of resources) assert.equal(r.metadata.namespace, only(objects, 'DaemonSet').metadata.namespace, `${r.kind}/${r.metadata.name}`);

    // It compiles; nodeId is the node name; files sit under the mounts.
    const config = await overlayConfig(objects);
    assert.equal(config.nodeId, NODE_NAME);
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

test('RBAC: read the DWCP resources, write the streams\' status, create events; nothing else', async () => {
  const objects = await kustomizeBuild(BASE);
  assert.ok(!objects.some((o) => o.object.kind === 'ClusterRole' || o.object.kind === 'ClusterRoleBinding'), 'no cluster-wide RBAC');
  const role = only(objects, 'Role');
  const grants = role.rules.flatMap((rule: KubeObject) =>
    rule.apiGroups.flatMap((group: string) => rule.resources.flatMap((resource: string) => rule.verbs.map((verb: string) => `${group}/${resource}:${verb}`))));
  assert.deepEqual(grants.sort(), [
    '/events:create',
    'dwcp.io/dwcpfederations:get', 'dwcp.io/dwcpfederations:list', 'dwcp.io/dwcpfederations:watch',
    'dwcp.io/dwcpstreams/status:get', 'dwcp.io/dwcpstreams/status:patch',
    'dwcp.io/dwcpstreams:get', 'dwcp.io/dwcpstreams:list', 'dwcp.io/dwcpstreams:watch',
  ].sort());
  // The grants are what the code calls: @kubernetes/client-node methods (verb + Namespaced + kind) and Watch.
  const called = new Set<string>();
  for (const file of await readdir(join(ROOT, 'src', 'k8s'))) {
    const text = await readFile(join(ROOT, 'src', 'k8s', file), 'utf8');
    for (const [, verb, kind] of text.matchAll(/\.([a-z]+)Namespaced([A-Za-z]+)\(/g)) called.add(`${kind}:${verb === 'replace' ? 'update' : verb}`);
    if (/new Watch\(/.test(text)) called.add('CustomObject:watch');
  }
  const grantedAs = (prefix: string) => grants.filter((g: string) => g.startsWith(prefix)).map((g: string) => g.slice(g.indexOf(':') + 1));
  const calledAs = (kind: string) => [...called].filter((c) => c.startsWith(`${kind}:`)).map((c) => c.slice(kind.length + 1));
  assert.deepEqual(calledAs('CustomObjectStatus').sort(), grantedAs('dwcp.io/dwcpstreams/status:').sort(), 'status verbs granted = status verbs called');
  assert.deepEqual(calledAs('Event').sort(), grantedAs('/events:').sort(), 'event verbs granted = event verbs called');
  for (const verb of calledAs('CustomObject')) assert.ok(grants.includes(`dwcp.io/dwcpstreams:${verb}`) && grants.includes(`dwcp.io/dwcpfederations:${verb}`), `${verb} on the CRs is called but not granted`);
  assert.deepEqual([...called].filter((c) => !/^(CustomObjectStatus|Event|CustomObject):/.test(c)), [], 'API calls RBAC does not cover');
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
