// The CustomResourceDefinitions of DWCPFederation and DWCPStream, built from
// the TypeBox schemas in crd-schema.ts (and so from src/config/schema.ts):
// `dwcp crds` prints them and manifests/base/crds/ holds them as committed
// files, which test/k8s/crds.test.ts regenerates and compares.

import { stringify } from 'yaml';
import type { TSchema } from '@sinclair/typebox';
import {
  CRD_GROUP, CRD_VERSION, FEDERATION_NAMES, STREAM_NAMES,
  FederationSpecSchema, FederationStatusSchema, StreamSpecSchema, StreamStatusSchema,
} from './crd-schema.ts';
import { toStructuralSchema, type JsonSchema } from './structural-schema.ts';

/** The command that rewrites the committed CRDs (named in the drift test's failure). */
export const REGENERATE_COMMAND = 'node src/cli.ts crds --out manifests/base/crds';

/** First lines of every generated CRD file. */
export const GENERATED_HEADER = `# Generated from src/config/schema.ts (src/k8s/crd-schema.ts); do not edit.\n# Regenerate: ${REGENERATE_COMMAND}\n`;

/** One printer column of `kubectl get`. */
interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

// Column shared by both resources: the Ready condition's status.
const READY_COLUMN: PrinterColumn = {
  name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Ready condition.',
};
// Column shared by both resources: age.
const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** Columns of `kubectl get dwcpstreams`. */
const STREAM_COLUMNS: PrinterColumn[] = [
  { name: 'Kind', type: 'string', jsonPath: '.spec.kind', description: 'objects or pg-wal.' },
  { name: 'Sender', type: 'string', jsonPath: '.status.sender', description: 'Node of the elected sender.' },
  { name: 'Lag', type: 'number', jsonPath: '.status.lagSeconds', description: 'Seconds behind, largest over destinations.' },
  READY_COLUMN,
  AGE_COLUMN,
];

/** Columns of `kubectl get dwcpfederations`. */
const FEDERATION_COLUMNS: PrinterColumn[] = [
  { name: 'Federation', type: 'string', jsonPath: '.spec.federation', description: 'Federation name (in agent certificates).' },
  { name: 'Consensus', type: 'string', jsonPath: '.spec.acp.backend', description: 'Consensus backend.' },
  READY_COLUMN,
  AGE_COLUMN,
];

/** What differs between the two CRDs. */
interface CrdParts {
  names: { kind: string; listKind: string; plural: string; singular: string; shortNames: readonly string[] };
  description: string;
  spec: TSchema;
  status: TSchema;
  columns: PrinterColumn[];
}

/** The CustomResourceDefinition of DWCPFederation. */
export function federationCrd(): JsonSchema {
  return customResourceDefinition({
    names: FEDERATION_NAMES,
    description: 'A DWCP federation: its regions, their endpoints and the transport, encoding and consensus tuning (the config file without streams and node-local fields).',
    spec: FederationSpecSchema,
    status: FederationStatusSchema,
    columns: FEDERATION_COLUMNS,
  });
}

/** The CustomResourceDefinition of DWCPStream. */
export function streamCrd(): JsonSchema {
  return customResourceDefinition({
    names: STREAM_NAMES,
    description: 'One DWCP stream (an entry of the config file\'s streams) of a DWCPFederation; its status is written by the stream\'s elected sender.',
    spec: StreamSpecSchema,
    status: StreamStatusSchema,
    columns: STREAM_COLUMNS,
  });
}

/** Both CRDs, federation first. */
export function dwcpCrds(): JsonSchema[] {
  return [federationCrd(), streamCrd()];
}

/** A CRD as the YAML file committed under manifests/base/crds/ (header included). */
export function crdYaml(crd: JsonSchema): string {
  return GENERATED_HEADER + stringify(crd, { lineWidth: 0 });
}

/** The file name of a CRD under manifests/base/crds/: `<plural>.<group>.yaml`. */
export function crdFileName(crd: JsonSchema): string {
  return `${(crd.metadata as { name: string }).name}.yaml`;
}

/** Both CRDs as one multi-document YAML (what `dwcp crds` prints). */
export function crdsYaml(): string {
  return dwcpCrds().map((crd) => `---\n${crdYaml(crd)}`).join('');
}

// One namespaced CRD with a status subresource and one version.
function customResourceDefinition(parts: CrdParts): JsonSchema {
  const { names } = parts;
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${names.plural}.${CRD_GROUP}`,
      labels: { 'app.kubernetes.io/name': 'dwcp', 'app.kubernetes.io/component': 'crd' },
    },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: { ...names, shortNames: [...names.shortNames], categories: ['dwcp'] },
      versions: [{
        name: CRD_VERSION,
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: parts.columns,
        schema: { openAPIV3Schema: rootSchema(parts) },
      }],
    },
  };
}

// The resource's whole schema: the usual envelope around spec and status.
function rootSchema(parts: CrdParts): JsonSchema {
  return {
    type: 'object',
    description: parts.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion of this object.' },
      kind: { type: 'string', description: 'Kind of this object.' },
      metadata: { type: 'object' },
      spec: toStructuralSchema(plainJson(parts.spec), 'spec'),
      status: toStructuralSchema(plainJson(parts.status), 'status'),
    },
  };
}

// A TypeBox schema as plain JSON (its symbols dropped).
function plainJson(schema: TSchema): unknown {
  return JSON.parse(JSON.stringify(schema));
}
