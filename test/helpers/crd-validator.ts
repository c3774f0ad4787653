// Checks a custom resource against a CRD's openAPIV3Schema roughly as the
// API server does with `kubectl apply` (strict field validation): ajv for
// types, patterns, bounds and required fields, plus a walk that reports
// fields the schema does not know (the API server would reject them under
// strict field validation, or prune them). Each problem names its path.

import { Ajv, type ValidateFunction } from 'ajv';

/** One problem of a resource: where (`/spec/regions/0/name`) and what. */
export interface ResourceProblem {
  path: string;
  message: string;
}

type JsonSchema = { [key: string]: unknown };

// RFC 3339 date-time, as metav1.Time serializes it.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Validates resources of the kinds of the given CRDs (one version each). */
export class CrdValidator {
  readonly #byKind = new Map<string, { schema: JsonSchema; validate: ValidateFunction }>();

  constructor(crds: JsonSchema[]) {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat('date-time', DATE_TIME);
    for (const crd of crds) {
      const spec = crd.spec as { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: JsonSchema } }[] };
      for (const version of spec.versions) {
        const schema = version.schema.openAPIV3Schema;
        this.#byKind.set(`${spec.group}/${version.name}/${spec.names.kind}`, { schema, validate: ajv.compile(schema) });
      }
    }
  }

  /** True when a CRD given to the constructor defines this resource's apiVersion and kind. */
  knows(resource: { apiVersion?: string; kind?: string }): boolean {
    return this.#byKind.has(`${resource.apiVersion}/${resource.kind}`);
  }

  /** Problems of one resource; [] when it is valid. */
  problems(resource: JsonSchema): ResourceProblem[] {
    const entry = this.#byKind.get(`${resource.apiVersion}/${resource.kind}`);
    if (entry === undefined) return [{ path: '', message: `no CRD defines ${resource.apiVersion} ${resource.kind}` }];
    const out: ResourceProblem[] = [];
    if (!entry.validate(resource)) {
      for (const err of entry.validate.errors ?? []) out.push({ path: err.instancePath, message: err.message ?? err.keyword });
    }
    unknownFields(resource, entry.schema, '', out);
    return out;
  }
}

// Fields of value that schema does not declare (metadata is the API server's).
function unknownFields(value: unknown, schema: JsonSchema, path: string, out: ResourceProblem[]): void {
  if (schema['x-kubernetes-preserve-unknown-fields'] === true && schema.properties === undefined) return;
  if (Array.isArray(value)) {
    if (schema.items !== undefined) value.forEach((item, i) => unknownFields(item, schema.items as JsonSchema, `${path}/${i}`, out));
    return;
  }
  if (value === null || typeof value !== 'object' || schema.type !== 'object' || path === '/metadata') return;
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const [key, child] of Object.entries(value)) {
    const childSchema = properties[key] ?? (schema.additionalProperties as JsonSchema | undefined);
    if (childSchema === undefined) {
      if (schema['x-kubernetes-preserve-unknown-fields'] !== true) out.push({ path: `${path}/${key}`, message: 'unknown field' });
      continue;
    }
    unknownFields(child, childSchema, `${path}/${key}`, out);
  }
}
