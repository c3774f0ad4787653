// A small stand-in for `kustomize build` (no kubectl or kustomize binary runs
// here), for the features manifests/ uses and nothing more: `resources`
// (files and directories with a kustomization.yaml), `patches` given by
// `path` (strategic merge patches, matched by kind, name and namespace; lists
// merge by the keys Kubernetes declares for the fields used here) and
// `images`. Any other kustomization field is refused, so a manifest change
// that needs more cannot pass the tests by being ignored.

import { readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** A Kubernetes object as parsed from YAML. */
export type KubeObject = { [key: string]: any };

/** One built object and the file it came from (relative to the build root). */
export interface BuiltObject {
  file: string;
  object: KubeObject;
}

/** Kustomization fields this builder understands. */
const SUPPORTED_FIELDS = new Set(['apiVersion', 'kind', 'resources', 'patches', 'images']);

/**
 * Strategic-merge keys of the list fields used in manifests/ (from the
 * Kubernetes API's patchMergeKey); lists of other fields are replaced whole.
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  env: 'name',
  imagePullSecrets: 'name',
  volumeMounts: 'mountPath',
};

/** Builds the kustomization in `dir` as kustomize would; throws naming the file at fault. */
export async function kustomizeBuild(dir: string): Promise<BuiltObject[]> {
  return build(dir, dir);
}

// One kustomization: its resources, then its patches and image overrides.
async function build(dir: string, root: string): Promise<BuiltObject[]> {
  const file = join(dir, 'kustomization.yaml');
  const [kustomization] = await readObjects(file);
  const where = relative(root, file) || file;
  if (kustomization === undefined || (kustomization.kind ?? 'Kustomization') !== 'Kustomization') throw new Error(`${where}: not a Kustomization`);
  for (const field of Object.keys(kustomization)) {
    if (!SUPPORTED_FIELDS.has(field)) throw new Error(`${where}: field "${field}" is not supported by this builder`);
  }

  // Resources, in order; a directory is a nested kustomization.
  const out: BuiltObject[] = [];
  for (const entry of (kustomization.resources ?? []) as string[]) {
    const path = join(dir, entry);
    if ((await stat(path)).isDirectory()) out.push(...(await build(path, root)));
    else for (const object of await readObjects(path)) out.push({ file: relative(root, path), object });
  }
  checkUnique(out, where);

  // Strategic merge patches, each on the one object it names.
  for (const patch of (kustomization.patches ?? []) as { path?: string }[]) {
    if (typeof patch.path !== 'string' || Object.keys(patch).length !== 1) throw new Error(`${where}: only patches with a single "path" are supported`);
    for (const body of await readObjects(join(dir, patch.path))) {
      const target = out.find((o) => sameObject(o.object, body));
      if (target === undefined) throw new Error(`${where}: patch ${patch.path} matches no resource (${body.kind} ${body.metadata?.name})`);
      target.object = strategicMerge(target.object, body, '') as KubeObject;
    }
  }

  // Image name and tag overrides on every pod template.
  for (const image of (kustomization.images ?? []) as { name: string; newName?: string; newTag?: string }[]) {
    for (const { object } of out) {
      const pod = object.spec?.template?.spec;
      for (const container of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
        const [name, tag] = splitImage(container.image);
        if (name === image.name) container.image = `${image.newName ?? name}:${image.newTag ?? tag}`;
      }
    }
  }
  return out;
}

// All non-empty YAML documents of a file; YAML errors throw with the file name.
// YAML 1.1, as kubectl reads manifests (so `0440` is octal, as intended).
async function readObjects(path: string): Promise<KubeObject[]> {
  const docs = parseAllDocuments(await readFile(path, 'utf8'), { version: '1.1' });
  const list = Array.isArray(docs) ? docs : [docs];
  const errors = list.flatMap((doc) => doc.errors.map((e) => e.message));
  if (errors.length > 0) throw new Error(`${path}: ${errors.join('; ')}`);
  return list.map((doc) => doc.toJS() as KubeObject).filter((o) => o !== null);
}

// Two objects with the same kind, namespace and name are an error, as in kustomize.
function checkUnique(objects: BuiltObject[], where: string): void {
  const seen = new Set<string>();
  for (const { object } of objects) {
    const id = `${object.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name}`;
    if (seen.has(id)) throw new Error(`${where}: ${id} is defined twice`);
    seen.add(id);
  }
}

// A patch names its target by kind, name and (when given) namespace.
function sameObject(object: KubeObject, patch: KubeObject): boolean {
  return object.kind === patch.kind && object.metadata?.name === patch.metadata?.name
    && (patch.metadata?.namespace === undefined || object.metadata?.namespace === patch.metadata.namespace);
}

// Strategic merge: maps merge, null deletes, keyed lists merge by key, other values are replaced.
function strategicMerge(base: unknown, patch: unknown, field: string): unknown {
  if (isMap(base) && isMap(patch)) {
    const out: KubeObject = { ...base };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete out[key];
      else out[key] = key in base ? strategicMerge(base[key], value, key) : value;
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (key !== undefined && Array.isArray(base) && Array.isArray(patch)) {
    const out = [...base];
    for (const item of patch) {
      const at = out.findIndex((b) => isMap(b) && b[key] === item[key]);
      if (at < 0) out.push(item);
      else out[at] = strategicMerge(out[at], item, '');
    }
    return out;
  }
  return patch;
}

// A plain object (not an array or null).
function isMap(value: unknown): value is KubeObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// `registry/name:tag` -> [registry/name, tag] (a port in the registry is not a tag).
function splitImage(image: string): [string, string] {
  const colon = image.lastIndexOf(':');
  if (colon < 0 || image.indexOf('/', colon) >= 0) return [image, 'latest'];
  return [image.slice(0, colon), image.slice(colon + 1)];
}
