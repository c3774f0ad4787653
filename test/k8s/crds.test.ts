// The CRDs are generated from the config schema: the committed files under
// manifests/base/crds/ must be what the generator prints now (drift test),
// every generated schema node must be structural, and the converter must
// refuse TypeBox shapes Kubernetes cannot express, naming where.

import { test } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import { parseAllDocuments } from 'yaml';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Type, type TSchema } from '@sinclair/typebox';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { REGENERATE_COMMAND, crdFileName, crdYaml, crdsYaml, dwcpCrds } from '../../src/k8s/crd-generate.ts';
import { StructuralSchemaError, toStructuralSchema, type JsonSchema } from '../../src/k8s/structural-schema.ts';
import { FEDERATION_NAMES, NODE_LOCAL_FIELDS, STREAM_NAMES, StreamStatusSchema, type StreamStatus } from '../../src/k8s/crd-schema.ts';
import { CrdValidator } from '../helpers/crd-validator.ts';
import { ConfigSchema, StreamSchema } from '../../src/config/schema.ts';

const CRD_DIR = join(import.meta.dirname, '..', '..', 'manifests', 'base', 'crds');

// A TypeBox schema as the converter sees it (symbols dropped), converted under `spec`.
function convert(schema: TSchema): JsonSchema {
  return toStructuralSchema(JSON.parse(JSON.stringify(schema)), 'spec');
}

// The openAPIV3Schema of a generated CRD.
function rootSchema(crd: JsonSchema): JsonSchema {
  return (crd.spec as { versions: { schema: { openAPIV3Schema: JsonSchema } }[] }).versions[0].schema.openAPIV3Schema;
}

test('manifests/base/crds holds exactly the CRDs generated from src/config/schema.ts', async () => {
  const generated = dwcpCrds();
  const files = (await readdir(CRD_DIR)).filter((f) => f.endsWith('.yaml')).sort();
  assert.deepEqual(files, generated.map(crdFileName).sort(), `manifests/base/crds has other files than the generator writes; regenerate: ${REGENERATE_COMMAND}`);
  for (const crd of generated) {
    const committed = await readFile(join(CRD_DIR, crdFileName(crd)), 'utf8');
    assert.ok(committed === crdYaml(crd), `manifests/base/crds/${crdFileName(crd)} is stale (src/config/schema.ts or src/k8s changed); regenerate: ${REGENERATE_COMMAND}`);
  }
  // `dwcp crds` prints the same documents.
  assert.equal(crdsYaml(), generated.map((crd) => `---\n${crdYaml(crd)}`).join(''));
});

test('the generated CRDs are valid apiextensions.k8s.io/v1 objects with status and printer columns', () => {
  const [federation, stream] = dwcpCrds();
  for (const crd of [federation, stream]) new CustomResourceDefinition(crd as never).validate();
  const version = (crd: JsonSchema) => (crd.spec as { versions: JsonSchema[] }).versions[0];
  assert.deepEqual(version(stream).subresources, { status: {} });
  assert.deepEqual(version(federation).subresources, { status: {} });
  const columns = (version(stream).additionalPrinterColumns as { name: string; jsonPath: string }[]).map((c) => `${c.name}=${c.jsonPath}`);
  assert.deepEqual(columns, [
    'Kind=.spec.kind', 'Sender=.status.sender', 'Lag=.status.lagSeconds',
    'Ready=.status.conditions[?(@.type=="Ready")].status', 'Age=.metadata.creationTimestamp',
  ]);
  assert.equal((federation.metadata as { name: string }).name, `${FEDERATION_NAMES.plural}.dwcp.io`);
  assert.equal((stream.metadata as { name: string }).name, `${STREAM_NAMES.plural}.dwcp.io`);
});

test('DWCPFederation spec is the config minus streams and node-local fields; DWCPStream spec is one streams entry plus federation', () => {
  const [federation, stream] = dwcpCrds();
  const fedSpec = (rootSchema(federation).properties as Record<string, JsonSchema>).spec;
  const expected = Object.keys(ConfigSchema.properties).filter((k) => k !== 'streams' && !(NODE_LOCAL_FIELDS as readonly string[]).includes(k));
  assert.deepEqual(Object.keys(fedSpec.properties as object).sort(), expected.sort());
  assert.deepEqual(fedSpec.required, ['federation', 'regions']);
  const streamSpec = (rootSchema(stream).properties as Record<string, JsonSchema>).spec;
  assert.deepEqual(Object.keys(streamSpec.properties as object).sort(), ['federation', ...Object.keys(StreamSchema.properties)].sort());
  // The same converter output as the config's own stream entry: one source.
  const fromConfig = convert(StreamSchema).properties as Record<string, JsonSchema>;
  for (const [name, schema] of Object.entries(fromConfig)) assert.deepEqual((streamSpec.properties as Record<string, JsonSchema>)[name], schema, name);
});

test('every node of the generated schemas is structural', () => {
  for (const crd of dwcpCrds()) {
    const problems: string[] = [];
    checkStructural(rootSchema(crd), (crd.metadata as { name: string }).name, problems);
    assert.deepEqual(problems, []);
  }
});

// Independent re-check of the structural rules on converter output.
function checkStructural(node: JsonSchema, path: string, problems: string[]): void {
  const intOrString = node['x-kubernetes-int-or-string'] === true;
  const preserve = node['x-kubernetes-preserve-unknown-fields'] === true;
  if (node.type === undefined && !intOrString && !preserve) problems.push(`${path}: no type`);
  for (const banned of ['$ref', 'oneOf', 'allOf', 'not', 'patternProperties', 'const', 'nullable']) {
    if (Object.hasOwn(node, banned)) problems.push(`${path}: ${banned}`);
  }
  if (node.anyOf !== undefined && !(intOrString && JSON.stringify(node.anyOf) === '[{"type":"integer"},{"type":"string"}]')) problems.push(`${path}: anyOf`);
  if (node.additionalProperties === false || node.additionalProperties === true) problems.push(`${path}: additionalProperties boolean`);
  if (node.additionalProperties !== undefined && node.properties !== undefined) problems.push(`${path}: additionalProperties with properties`);
  for (const [name, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) checkStructural(child, `${path}.${name}`, problems);
  if (typeof node.additionalProperties === 'object') checkStructural(node.additionalProperties as JsonSchema, `${path}[*]`, problems);
  if (node.items !== undefined) checkStructural(node.items as JsonSchema, `${path}[]`, problems);
}

test('the converter writes enums, int-or-string and maps in structural form', () => {
  const schema = convert(Type.Object({
    mode: Type.Union([Type.Literal('a'), Type.Literal('b')], { default: 'a', description: 'Mode.' }),
    size: Type.Union([Type.Integer({ minimum: 0 }), Type.String({ pattern: '^[0-9]+B$' })], { 'x-kubernetes-int-or-string': true, default: '1B' }),
    labels: Type.Object({}, { additionalProperties: Type.String() }),
    level: Type.Optional(Type.Integer({ exclusiveMinimum: 0 })),
  }, { additionalProperties: false }));
  assert.deepEqual(schema, {
    type: 'object',
    properties: {
      mode: { description: 'Mode.', type: 'string', enum: ['a', 'b'], default: 'a' },
      size: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }], minimum: 0, pattern: '^[0-9]+B$', default: '1B' },
      labels: { type: 'object', additionalProperties: { type: 'string' } },
      level: { type: 'integer', minimum: 0, exclusiveMinimum: true },
    },
    required: ['mode', 'size', 'labels'],
  });
});

test('the converter refuses shapes that have no structural form and names their path', () => {
  const inside = (schema: TSchema) => Type.Object({ outer: Type.Object({ inner: schema }) });
  const cases: { name: string; schema: TSchema; path: string; reason: RegExp }[] = [
    { name: 'union of string and number', schema: inside(Type.Union([Type.String(), Type.Number()])), path: 'spec.outer.inner', reason: /anyOf is only accepted/ },
    { name: 'union of objects', schema: inside(Type.Union([Type.Object({ a: Type.String() }), Type.Object({ b: Type.String() })])), path: 'spec.outer.inner', reason: /anyOf/ },
    { name: '$ref', schema: inside(Type.Ref('Other')), path: 'spec.outer.inner', reason: /\$ref is not allowed/ },
    { name: 'untyped value', schema: inside(Type.Any()), path: 'spec.outer.inner', reason: /has no type/ },
    { name: 'unknown value', schema: inside(Type.Unknown()), path: 'spec.outer.inner', reason: /has no type/ },
    { name: 'null', schema: inside(Type.Null()), path: 'spec.outer.inner', reason: /type "null"/ },
    { name: 'nullable string', schema: inside(Type.Union([Type.String(), Type.Null()])), path: 'spec.outer.inner', reason: /anyOf/ },
    { name: 'tuple', schema: inside(Type.Tuple([Type.String(), Type.Integer()])), path: 'spec.outer.inner', reason: /additionalItems/ },
    { name: 'record (patternProperties)', schema: inside(Type.Record(Type.String(), Type.Integer())), path: 'spec.outer.inner', reason: /patternProperties/ },
    { name: 'intersection (allOf)', schema: inside(Type.Intersect([Type.Object({ a: Type.String() }), Type.Object({ b: Type.String() })])), path: 'spec.outer.inner', reason: /allOf/ },
    { name: 'not', schema: inside(Type.Not(Type.String())), path: 'spec.outer.inner', reason: /"not"/ },
    { name: 'properties beside additionalProperties', schema: inside(Type.Object({ a: Type.String() }, { additionalProperties: Type.Integer() })), path: 'spec.outer.inner', reason: /beside properties/ },
    { name: 'additionalProperties: true', schema: inside(Type.Object({}, { additionalProperties: true })), path: 'spec.outer.inner', reason: /preserve-unknown-fields/ },
    { name: 'mixed literals', schema: inside(Type.Union([Type.Literal('a'), Type.Literal(1)])), path: 'spec.outer.inner', reason: /mixed types/ },
    { name: 'int-or-string with a number branch', schema: inside(Type.Union([Type.Number(), Type.String()], { 'x-kubernetes-int-or-string': true })), path: 'spec.outer.inner', reason: /integer and a string branch/ },
    { name: 'array item of a bad shape', schema: Type.Object({ list: Type.Array(Type.Object({ v: Type.Any() })) }), path: 'spec.list[].v', reason: /has no type/ },
    { name: 'map value of a bad shape', schema: Type.Object({ map: Type.Object({}, { additionalProperties: Type.Any() }) }), path: 'spec.map[*]', reason: /has no type/ },
    { name: 'list-map key not required', schema: Type.Object({ list: Type.Array(Type.Object({ k: Type.Optional(Type.String()) }), { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'] }) }), path: 'spec.list[].k', reason: /required or have a default/ },
  ];
  for (const c of cases) {
    assert.throws(() => convert(c.schema), (err: unknown) => {
      assert.ok(err instanceof StructuralSchemaError, `${c.name}: ${String(err)}`);
      assert.equal(err.path, c.path, `${c.name}: ${err.message}`);
      assert.match(err.message, c.reason, c.name);
      assert.ok(err.message.includes(c.path), `${c.name}: message names the path: ${err.message}`);
      return true;
    }, c.name);
  }
});

test('a stream status as the sender writes it passes both the TypeBox schema and the generated CRD', () => {
  const status: StreamStatus = {
    observedGeneration: 3,
    sender: 'node-a',
    lagSeconds: 1.25,
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Replicating', message: '', lastTransitionTime: '2026-12-01T23:59:10Z', observedGeneration: 3 },
      { type: 'Degraded', status: 'False', reason: 'AsExpected', lastTransitionTime: '2026-12-01T23:59:10.5+01:00' },
    ],
    destinations: [{ region: 'us-east', durablePosition: '0/3000148', lagBytes: 8192, lagSeconds: 1.25, sloAttainment: 0.9995, lastError: '' }],
  };
  assert.deepEqual([...Value.Errors(StreamStatusSchema, status)].map((e) => `${e.path}: ${e.message}`), []);
  const resource = {
    apiVersion: 'dwcp.io/v1alpha1', kind: 'DWCPStream', metadata: { name: 'assets', namespace: 'dwcp' },
    spec: { federation: 'example', id: 'assets', kind: 'objects', source: { region: 'eu-west', path: '/data' }, destinations: [{ region: 'us-east', path: '/replica' }] },
    status,
  };
  const validator = new CrdValidator(dwcpCrds());
  assert.deepEqual(validator.problems(resource), []);
  const bad = structuredClone(resource);
  bad.status.conditions![0].lastTransitionTime = 'yesterday';
  bad.status.destinations![0].sloAttainment = 1.5;
  assert.deepEqual(validator.problems(bad).map((p) => p.path).sort(), ['/status/conditions/0/lastTransitionTime', '/status/destinations/0/sloAttainment']);
  assert.equal(Value.Check(StreamStatusSchema, bad.status), false);
});

test('dwcp crds prints both CRDs as YAML documents', async () => {
  const cli = join(import.meta.dirname, '..', '..', 'src', 'cli.ts');
  const { stdout } = await promisify(execFile)(process.execPath, [cli, 'crds']);
  const docs = parseAllDocuments(stdout);
  const names = (Array.isArray(docs) ? docs : [docs]).map((d) => (d.toJS() as { metadata: { name: string } }).metadata.name);
  assert.deepEqual(names, ['dwcpfederations.dwcp.io', 'dwcpstreams.dwcp.io']);
});
