// Validates Kubernetes objects against the Kubernetes API schemas (the
// kubernetes-models validators, generated from the API's OpenAPI document,
// and prometheus-operator's for ServiceMonitor and PrometheusRule), and DWCP
// custom resources against the generated CRDs. Problems name the object and
// the path inside it (`DaemonSet dwcp/dwcp-agent /spec/template/...`).

import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule';
import { dwcpCrds } from '../../src/k8s/crd-generate.ts';
import { CrdValidator } from './crd-validator.ts';
import type { KubeObject } from './kustomize-build.ts';

/** A model class of kubernetes-models: construct, then validate() throws on a problem. */
type ModelClass = { apiVersion: string; kind: string; new (data: never): { validate(): void } };

/** The kinds manifests/ may contain, by `apiVersion/kind`. */
const MODELS: ReadonlyMap<string, ModelClass> = new Map(
  [ConfigMap, Service, ServiceAccount, DaemonSet, Role, RoleBinding, NetworkPolicy, PodDisruptionBudget, CustomResourceDefinition, ServiceMonitor, PrometheusRule]
    .map((model) => [`${model.apiVersion}/${model.kind}`, model as unknown as ModelClass]),
);

// DWCP custom resources are checked against the CRDs generated now.
const crdValidator = new CrdValidator(dwcpCrds());

/** Problems of one object as `<Kind> <namespace>/<name> <path>: <message>`; [] when valid. */
export function kubeProblems(object: KubeObject): string[] {
  const name = `${object.kind} ${object.metadata?.namespace ?? ''}/${object.metadata?.name}`;
  if (crdValidator.knows(object)) return crdValidator.problems(object).map((p) => `${name} ${p.path || '/'}: ${p.message}`);
  const model = MODELS.get(`${object.apiVersion}/${object.kind}`);
  if (model === undefined) return [`${name}: no schema for ${object.apiVersion} ${object.kind}`];
  try {
    new model(object as never).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (errors === undefined) return [`${name}: ${(err as Error).message}`];
    return errors.map((e) => `${name} ${e.instancePath || '/'}: ${e.message}`);
  }
}
