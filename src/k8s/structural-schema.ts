// Turns a JSON Schema emitted by TypeBox into a Kubernetes structural schema,
// the form a CRD's openAPIV3Schema must take: every node typed, no $ref, no
// oneOf/allOf/not, anyOf only as an enum of literals (rewritten to `enum`) or
// as x-kubernetes-int-or-string, no additionalProperties beside properties
// (`additionalProperties: false` is dropped: the API server prunes unknown
// fields instead). Anything else is refused with the schema path at fault,
// so a schema.ts change that Kubernetes cannot express fails at generation,
// not at `kubectl apply`.
// Rules: https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema

/** A JSON Schema node as plain JSON. */
export type JsonSchema = { [key: string]: unknown };

/** A schema node that has no structural form; `path` names it (e.g. `spec.regions[].name`). */
export class StructuralSchemaError extends Error {
  /** Where in the schema the problem is; '' for the root. */
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`structural schema: ${path === '' ? '(root)' : path}: ${reason}`);
    this.name = 'StructuralSchemaError';
    this.path = path;
  }
}

/** Types a structural schema node may have. */
const SCALAR_TYPES = new Set(['string', 'integer', 'number', 'boolean']);

// Keywords that only describe or constrain a value and pass through as they are.
const VALUE_KEYWORDS = new Set([
  'description', 'title', 'default', 'format', 'pattern', 'minLength', 'maxLength',
  'minimum', 'maximum', 'multipleOf', 'minItems', 'maxItems', 'uniqueItems',
  'minProperties', 'maxProperties', 'enum',
]);

// Kubernetes extensions that pass through as they are.
const KUBERNETES_KEYWORDS = new Set([
  'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-embedded-resource',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type', 'x-kubernetes-validations',
]);

// Keywords handled by the structure of the conversion itself.
const STRUCTURE_KEYWORDS = new Set(['type', 'properties', 'required', 'items', 'additionalProperties', 'anyOf', 'const', 'exclusiveMinimum', 'exclusiveMaximum']);

// Keywords a branch of an int-or-string union may carry; they are hoisted to
// the node (pattern and lengths apply to strings only, bounds to numbers only).
const INT_OR_STRING_BRANCH_KEYWORDS: Record<string, Set<string>> = {
  integer: new Set(['type', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf']),
  string: new Set(['type', 'pattern', 'minLength', 'maxLength', 'format']),
};

/**
 * The structural form of a JSON Schema (TypeBox output, symbols already
 * stripped by a JSON round trip). `path` prefixes error paths. Throws
 * StructuralSchemaError naming the first node it cannot convert.
 */
export function toStructuralSchema(schema: unknown, path = ''): JsonSchema {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new StructuralSchemaError(path, `must be a schema object, not ${JSON.stringify(schema)}`);
  }
  const node = schema as JsonSchema;
  checkKeywords(node, path);
  if (Array.isArray(node.anyOf)) return fromUnion(node, node.anyOf, path);
  if (node.const !== undefined) return fromLiterals(node, [node], path);
  return fromTyped(node, path);
}

// Refuses keywords outside the structural subset, naming the keyword.
function checkKeywords(node: JsonSchema, path: string): void {
  for (const key of Object.keys(node)) {
    if (VALUE_KEYWORDS.has(key) || KUBERNETES_KEYWORDS.has(key) || STRUCTURE_KEYWORDS.has(key)) continue;
    if (key === '$ref') throw new StructuralSchemaError(path, '$ref is not allowed (inline the referenced schema)');
    if (key === '$id' || key === '$schema') continue;
    throw new StructuralSchemaError(path, `keyword "${key}" has no structural form`);
  }
}

// A node with a `type`: scalars, objects and arrays.
function fromTyped(node: JsonSchema, path: string): JsonSchema {
  const type = node.type;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (type === undefined) {
    if (preserve) return copyValueKeywords(node, {});
    throw new StructuralSchemaError(path, 'has no type (a structural schema types every field; use x-kubernetes-preserve-unknown-fields for free-form values)');
  }
  if (typeof type !== 'string') throw new StructuralSchemaError(path, `type must be one word, not ${JSON.stringify(type)}`);
  if (type === 'object') return fromObject(node, path);
  if (type === 'array') return fromArray(node, path);
  if (!SCALAR_TYPES.has(type)) throw new StructuralSchemaError(path, `type "${type}" has no structural form`);
  return copyValueKeywords(node, { type });
}

// An object: properties converted one by one, or a map (additionalProperties).
function fromObject(node: JsonSchema, path: string): JsonSchema {
  const out: JsonSchema = { type: 'object' };
  const properties = node.properties as Record<string, unknown> | undefined;
  const additional = node.additionalProperties;
  const hasProperties = properties !== undefined && Object.keys(properties).length > 0;
  if (additional === true) {
    throw new StructuralSchemaError(path, 'additionalProperties: true has no structural form (use x-kubernetes-preserve-unknown-fields)');
  }
  if (typeof additional === 'object' && additional !== null) {
    if (hasProperties) throw new StructuralSchemaError(path, 'additionalProperties may not stand beside properties');
    out.additionalProperties = toStructuralSchema(additional, `${path}[*]`);
  }
  if (hasProperties) {
    out.properties = Object.fromEntries(
      Object.entries(properties!).map(([name, child]) => [name, toStructuralSchema(child, join(path, name))]),
    );
  }
  if (Array.isArray(node.required) && node.required.length > 0) {
    for (const name of node.required as string[]) {
      if (properties === undefined || !Object.hasOwn(properties, name)) {
        throw new StructuralSchemaError(join(path, String(name)), 'is required but not among properties');
      }
    }
    out.required = [...(node.required as string[])];
  }
  return copyValueKeywords(node, out);
}

// An array: one items schema (tuples have no structural form).
function fromArray(node: JsonSchema, path: string): JsonSchema {
  const items = node.items;
  if (items === undefined) throw new StructuralSchemaError(path, 'array without items');
  if (Array.isArray(items)) throw new StructuralSchemaError(path, 'tuple items have no structural form');
  const out: JsonSchema = { type: 'array', items: toStructuralSchema(items, `${path}[]`) };
  checkListMapKeys(node, out.items as JsonSchema, path);
  return copyValueKeywords(node, out);
}

// A list-map's keys must be scalar fields every item has (the API server refuses others).
function checkListMapKeys(node: JsonSchema, items: JsonSchema, path: string): void {
  const keys = node['x-kubernetes-list-map-keys'];
  if (keys === undefined) return;
  if (node['x-kubernetes-list-type'] !== 'map') throw new StructuralSchemaError(path, 'x-kubernetes-list-map-keys needs x-kubernetes-list-type: map');
  const properties = (items.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((items.required ?? []) as string[]);
  for (const key of keys as string[]) {
    const property = properties[key];
    if (property === undefined || !SCALAR_TYPES.has(String(property.type))) {
      throw new StructuralSchemaError(`${path}[].${key}`, 'a list-map key must be a scalar property of the items');
    }
    if (!required.has(key) && property.default === undefined) {
      throw new StructuralSchemaError(`${path}[].${key}`, 'a list-map key must be required or have a default');
    }
  }
}

// anyOf: an enum of literals, or an integer-or-string; nothing else.
function fromUnion(node: JsonSchema, branches: unknown[], path: string): JsonSchema {
  const plain = branches.map((b, i) => {
    if (typeof b !== 'object' || b === null) throw new StructuralSchemaError(`${path}.anyOf[${i}]`, 'must be a schema object');
    return b as JsonSchema;
  });
  if (node['x-kubernetes-int-or-string'] === true) return fromIntOrString(node, plain, path);
  if (plain.length > 0 && plain.every((b) => b.const !== undefined)) return fromLiterals(node, plain, path);
  throw new StructuralSchemaError(path, 'anyOf is only accepted as a union of literals (an enum) or with x-kubernetes-int-or-string');
}

// Literals of one scalar type become `type` plus `enum`.
function fromLiterals(node: JsonSchema, literals: JsonSchema[], path: string): JsonSchema {
  const values = literals.map((l) => l.const);
  const types = new Set(values.map(jsonType));
  if (types.size !== 1) throw new StructuralSchemaError(path, `literals of mixed types (${[...types].join(', ')}) have no structural form`);
  const type = [...types][0];
  if (!SCALAR_TYPES.has(type)) throw new StructuralSchemaError(path, `a literal of type ${type} has no structural form`);
  for (const [i, literal] of literals.entries()) {
    const extra = Object.keys(literal).filter((k) => k !== 'const' && k !== 'type' && (literal !== node || (k !== 'description' && k !== 'default' && k !== 'title')));
    if (extra.length > 0) throw new StructuralSchemaError(literal === node ? path : `${path}.anyOf[${i}]`, `a literal may not carry ${extra.join(', ')}`);
  }
  return copyValueKeywords(node, { type, enum: values });
}

// x-kubernetes-int-or-string: the two branches' checks move up to the node,
// where the API server applies each only to values of its type.
function fromIntOrString(node: JsonSchema, branches: JsonSchema[], path: string): JsonSchema {
  const types = branches.map((b) => b.type);
  if (branches.length !== 2 || !types.includes('integer') || !types.includes('string')) {
    throw new StructuralSchemaError(path, 'x-kubernetes-int-or-string needs exactly an integer and a string branch');
  }
  const out: JsonSchema = { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] };
  for (const [i, branch] of branches.entries()) {
    const allowed = INT_OR_STRING_BRANCH_KEYWORDS[branch.type as string];
    for (const [key, value] of Object.entries(branch)) {
      if (!allowed.has(key)) throw new StructuralSchemaError(`${path}.anyOf[${i}]`, `keyword "${key}" cannot be hoisted out of an int-or-string branch`);
      if (key === 'type') continue;
      if (Object.hasOwn(out, key) || Object.hasOwn(node, key)) throw new StructuralSchemaError(`${path}.anyOf[${i}]`, `keyword "${key}" is set twice`);
      out[key] = value;
    }
  }
  convertExclusiveBounds(out);
  return copyValueKeywords(node, out);
}

// Copies the node's value keywords and Kubernetes extensions onto `out`.
function copyValueKeywords(node: JsonSchema, structure: JsonSchema): JsonSchema {
  // The description leads, so the generated YAML reads top-down.
  const out: JsonSchema = typeof node.description === 'string' ? { description: node.description, ...structure } : { ...structure };
  for (const [key, value] of Object.entries(node)) {
    if (VALUE_KEYWORDS.has(key) || KUBERNETES_KEYWORDS.has(key) || key === 'exclusiveMinimum' || key === 'exclusiveMaximum') {
      if (key === 'enum' && out.enum !== undefined) continue;
      out[key] = value;
    }
  }
  convertExclusiveBounds(out);
  return out;
}

// JSON Schema 2019's numeric exclusive bounds become OpenAPI 3.0's booleans.
function convertExclusiveBounds(out: JsonSchema): void {
  for (const [exclusive, bound] of [['exclusiveMinimum', 'minimum'], ['exclusiveMaximum', 'maximum']] as const) {
    const value = out[exclusive];
    if (typeof value !== 'number') continue;
    out[bound] = value;
    out[exclusive] = true;
  }
}

// The JSON type of a literal value.
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

// A property path: `spec.regions[].name`.
function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}
