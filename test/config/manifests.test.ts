import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load-config.ts';

const MANIFESTS = join(import.meta.dirname, '..', '..', 'manifests');

type Obj = Record<string, any>;

// Every object of every file the kustomization lists.
async function loadManifests(): Promise<Obj[]> {
  const kustomization = (await readYaml('kustomization.yaml'))[0];
  assert.equal(kustomization.kind, 'Kustomization');
  const objects: Obj[] = [];
  for (const file of kustomization.resources as string[]) objects.push(...(await readYaml(file)));
  return objects;
}

// All documents of one manifest file; YAML errors fail the test.
async function readYaml(file: string): Promise<Obj[]> {
  const docs = parseAllDocuments(await readFile(join(MANIFESTS, file), 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) assert.deepEqual(doc.errors.map((e) => e.message), [], `${file}: YAML errors`);
  return list.map((doc) => doc.toJS() as Obj).filter((o) => o !== null);
}

test('every listed object is in the dwcp namespace and none is a Namespace', async () => {
  const objects = await loadManifests();
  assert.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'DaemonSet', 'ServiceAccount']);
  for (const o of objects) {
    assert.equal(o.metadata?.namespace, 'dwcp', `${o.kind}/${o.metadata?.name}`);
  }
});

test('the ConfigMap dwcp.yaml compiles with NODE_NAME from the pod, and the DaemonSet mounts what it names', async () => {
  const objects = await loadManifests();
  const configMap = objects.find((o) => o.kind === 'ConfigMap')!;
  const daemonSet = objects.find((o) => o.kind === 'DaemonSet')!;
  const pod = daemonSet.spec.template.spec;
  const agent = pod.containers.find((c: Obj) => c.name === 'agent');

  // The config file the agent is started with is a key of the mounted ConfigMap.
  const configPath: string = agent.args[agent.args.indexOf('--config') + 1];
  const mount = agent.volumeMounts.find((m: Obj) => m.mountPath === dirname(configPath));
  assert.ok(mount, `no volume mounted at ${dirname(configPath)}`);
  const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.equal(volume.configMap?.name, configMap.metadata.name);
  const text = configMap.data[basename(configPath)];
  assert.equal(typeof text, 'string', `ConfigMap has no key ${basename(configPath)}`);

  // It compiles; nodeId is the node name; files sit under the mounts.
  const config = parseConfig(text, configPath, { env: { NODE_NAME: 'node-a' }, hostname: 'unused', cpuCount: 2 });
  assert.equal(config.nodeId, 'node-a');
  const mountOf = (path: string) => agent.volumeMounts.find((m: Obj) => path.startsWith(`${m.mountPath}/`));
  for (const file of [config.tls.caFile, config.tls.certFile, config.tls.keyFile]) {
    const tlsMount = mountOf(file);
    assert.ok(tlsMount, `${file} is not under a mounted volume`);
    assert.ok(pod.volumes.find((v: Obj) => v.name === tlsMount.name).secret, `${file} is not from a secret`);
  }
  assert.equal(mountOf(`${config.dataDir}/x`)?.name, 'data');

  // NODE_NAME comes from the downward API.
  const env = agent.env.find((e: Obj) => e.name === 'NODE_NAME');
  assert.equal(env?.valueFrom?.fieldRef?.fieldPath, 'spec.nodeName');

  // Ports and probes agree with the config.
  const ports = Object.fromEntries(agent.ports.map((p: Obj) => [p.name, p]));
  assert.equal(ports.amst.containerPort, config.listen.port);
  assert.equal(ports.http.containerPort, config.http.port);
  assert.equal(agent.livenessProbe.httpGet.path, '/healthz');
  assert.equal(agent.readinessProbe.httpGet.path, '/readyz');
  assert.equal(agent.livenessProbe.httpGet.port, 'http');
});

test('the agent runs as uid 10001 without privileges and has a drain grace period', async () => {
  const daemonSet = (await loadManifests()).find((o) => o.kind === 'DaemonSet')!;
  const pod = daemonSet.spec.template.spec;
  const agent = pod.containers.find((c: Obj) => c.name === 'agent');
  assert.equal(pod.securityContext.runAsUser, 10001);
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.equal(agent.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(agent.securityContext.capabilities.drop, ['ALL']);
  assert.ok(pod.terminationGracePeriodSeconds >= 30, 'grace period shorter than a drain');
  assert.ok(agent.resources.requests.cpu && agent.resources.limits.memory, 'resources missing');
  assert.equal(pod.serviceAccountName, (await loadManifests()).find((o) => o.kind === 'ServiceAccount')!.metadata.name);
});
