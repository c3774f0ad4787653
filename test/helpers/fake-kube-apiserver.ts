// A FAKE standing in for kube-apiserver, which cannot run here (no
// container runtime, no network). It is a small HTTP server on loopback
// that speaks just enough of the Kubernetes API for @kubernetes/client-node
// to list, watch and write the status of namespaced custom resources
// (any group/version/plural under /apis/...), and to post Events:
// - list: `{items, metadata: {resourceVersion}}`, one resourceVersion
//   counter for the whole server, as etcd's revision;
// - watch (`?watch=true|1&resourceVersion=N`): chunked JSON lines of
//   ADDED/MODIFIED/DELETED after N, then live; BOOKMARK lines on bookmark()
//   for watches that asked for them; a resourceVersion older than the last
//   compact() gets an ERROR event with a 410 Gone Status (as the real server
//   does for an expired watch); dropWatches() ends every open watch;
// - get of one object; put and merge-patch of `/status` (only status
//   changes; a metadata.resourceVersion in the body that is not the current
//   one is a 409 Conflict; conflictNextStatusWrites(n) makes the next n
//   writes conflict, as a concurrent writer would);
// - POST of core/v1 Events (kept in `events`).
// It has no authentication, admission, validation, field selectors or
// pagination. writeKubeConfig() writes a kubeconfig the client loads
// (plain HTTP on loopback, which client-node allows only with
// insecure-skip-tls-verify).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';

/** A stored object (any custom resource). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; generation?: number; uid?: string; [key: string]: unknown };
  spec?: unknown;
  status?: Record<string, unknown>;
}

interface WatchEvent {
  rv: number;
  /** `<group>/<version>/<namespace>/<plural>` the event belongs to. */
  collection: string;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
}

interface OpenWatch {
  collection: string;
  bookmarks: boolean;
  res: ServerResponse;
}

/** The fake API server. */
export class FakeKubeApiServer {
  private readonly server: Server;
  private rv = 0;
  /** Watches asking for a resourceVersion below this get 410 Gone. */
  private compactedBelow = 0;
  private readonly objects = new Map<string, KubeObject>();
  private readonly log: WatchEvent[] = [];
  private readonly watches = new Set<OpenWatch>();
  private conflicts = 0;
  /** Events posted by clients. */
  readonly events: Array<Record<string, unknown>> = [];
  /** Status writes accepted, per object path. */
  readonly statusWrites = new Map<string, number>();
  /** Watch requests received (each reconnect counts). */
  watchRequests = 0;
  /** List requests received. */
  listRequests = 0;

  private constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  /** Listen on 127.0.0.1 at a free port. */
  static async start(): Promise<FakeKubeApiServer> {
    const fake = new FakeKubeApiServer();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  /** http://127.0.0.1:<port> */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Write a kubeconfig naming this server (token auth, never checked) and return its path. */
  async writeKubeConfig(path: string, namespace = 'default'): Promise<string> {
    const text = `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: { server: "${this.url}", insecure-skip-tls-verify: true }
users:
  - name: fake
    user: { token: fake-token }
contexts:
  - name: fake
    context: { cluster: fake, user: fake, namespace: ${namespace} }
current-context: fake
`;
    await writeFile(path, text);
    return path;
  }

  /** Create an object (ADDED). */
  create(group: string, version: string, plural: string, object: KubeObject): KubeObject {
    const key = objectKey(group, version, object.metadata.namespace, plural, object.metadata.name);
    if (this.objects.has(key)) throw new Error(`fake apiserver: ${key} exists`);
    const stored: KubeObject = structuredClone(object);
    stored.metadata.generation = 1;
    stored.metadata.uid = `uid-${this.rv + 1}`;
    return this.store(key, stored, 'ADDED');
  }

  /** Replace an object's spec (MODIFIED, generation + 1). */
  updateSpec(group: string, version: string, namespace: string, plural: string, name: string, spec: unknown): KubeObject {
    const key = objectKey(group, version, namespace, plural, name);
    const current = this.objects.get(key);
    if (!current) throw new Error(`fake apiserver: ${key} not found`);
    const next = structuredClone(current);
    next.spec = structuredClone(spec);
    next.metadata.generation = (next.metadata.generation ?? 1) + 1;
    return this.store(key, next, 'MODIFIED');
  }

  /** Delete an object (DELETED). */
  delete(group: string, version: string, namespace: string, plural: string, name: string): void {
    const key = objectKey(group, version, namespace, plural, name);
    const current = this.objects.get(key);
    if (!current) throw new Error(`fake apiserver: ${key} not found`);
    this.objects.delete(key);
    this.rv++;
    const object = { ...structuredClone(current), metadata: { ...current.metadata, resourceVersion: String(this.rv) } };
    this.emit({ rv: this.rv, collection: collectionOf(key), type: 'DELETED', object });
  }

  /** The stored object, or undefined. */
  get(group: string, version: string, namespace: string, plural: string, name: string): KubeObject | undefined {
    const object = this.objects.get(objectKey(group, version, namespace, plural, name));
    return object && structuredClone(object);
  }

  /** Forget history: watches from a resourceVersion before now get 410 Gone. */
  compact(): void {
    this.compactedBelow = this.rv;
    this.log.length = 0;
  }

  /** End every open watch (as an apiserver restart or a load balancer timeout would). */
  dropWatches(): void {
    for (const w of this.watches) w.res.destroy();
    this.watches.clear();
  }

  /** Send a BOOKMARK at the current resourceVersion to watches that asked for them. */
  bookmark(): void {
    for (const w of this.watches) {
      if (!w.bookmarks) continue;
      const [group, version] = w.collection.split('/');
      w.res.write(JSON.stringify({ type: 'BOOKMARK', object: { apiVersion: `${group}/${version}`, kind: 'Bookmark', metadata: { resourceVersion: String(this.rv) } } }) + '\n');
    }
  }

  /** The next n status writes answer 409 Conflict. */
  conflictNextStatusWrites(n: number): void {
    this.conflicts = n;
  }

  /** Open watches. */
  get openWatches(): number {
    return this.watches.size;
  }

  /** Close every watch and the server. */
  async close(): Promise<void> {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- HTTP ----

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        this.route(req.method ?? 'GET', url, req.headers['content-type'] ?? '', Buffer.concat(chunks).toString('utf8'), res);
      } catch (err) {
        status(res, 500, 'InternalError', (err as Error).message);
      }
    });
  }

  private route(method: string, url: URL, contentType: string, body: string, res: ServerResponse): void {
    // core/v1 Events.
    const event = /^\/api\/v1\/namespaces\/([^/]+)\/events$/.exec(url.pathname);
    if (event && method === 'POST') {
      const posted = JSON.parse(body) as Record<string, unknown>;
      this.events.push(posted);
      return json(res, 201, posted);
    }
    const m = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+)(\/status)?)?$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', `no route for ${url.pathname}`);
    const [, group, version, namespace, plural, name, sub] = m;
    if (name === undefined) {
      if (method !== 'GET') return status(res, 405, 'MethodNotAllowed', `${method} on a collection`);
      const watch = url.searchParams.get('watch');
      if (watch === 'true' || watch === '1') return this.watch(`${group}/${version}/${namespace}/${plural}`, url, res);
      return this.list(group, version, namespace, plural, res);
    }
    const key = objectKey(group, version, namespace, plural, name);
    const current = this.objects.get(key);
    if (!current) return status(res, 404, 'NotFound', `${plural} "${name}" not found`);
    if (method === 'GET') return json(res, 200, current);
    if (sub !== '/status' || (method !== 'PUT' && method !== 'PATCH')) return status(res, 405, 'MethodNotAllowed', `${method} ${url.pathname}`);
    if (method === 'PATCH' && !contentType.startsWith('application/merge-patch+json')) return status(res, 415, 'UnsupportedMediaType', `patch type ${contentType} (the fake speaks merge-patch only)`);
    return this.writeStatus(key, current, method, JSON.parse(body) as Partial<KubeObject>, res);
  }

  private list(group: string, version: string, namespace: string, plural: string, res: ServerResponse): void {
    this.listRequests++;
    const prefix = `${group}/${version}/${namespace}/${plural}/`;
    const items = [...this.objects.entries()].filter(([k]) => k.startsWith(prefix)).map(([, o]) => o);
    json(res, 200, { apiVersion: `${group}/${version}`, kind: 'List', metadata: { resourceVersion: String(this.rv) }, items });
  }

  private watch(collection: string, url: URL, res: ServerResponse): void {
    this.watchRequests++;
    const from = Number(url.searchParams.get('resourceVersion') ?? String(this.rv));
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from < this.compactedBelow) {
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${from} (${this.compactedBelow})` } }) + '\n');
      return;
    }
    const open: OpenWatch = { collection, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', res };
    this.watches.add(open);
    res.on('close', () => this.watches.delete(open));
    for (const e of this.log) if (e.rv > from && e.collection === collection) res.write(line(e));
  }

  private writeStatus(key: string, current: KubeObject, method: string, body: Partial<KubeObject>, res: ServerResponse): void {
    const precondition = body.metadata?.resourceVersion;
    if (this.conflicts > 0 || (precondition !== undefined && precondition !== current.metadata.resourceVersion)) {
      if (this.conflicts > 0) this.conflicts--;
      return status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${key}: the object has been modified; please apply your changes to the latest version and try again`);
    }
    const next = structuredClone(current);
    next.status = method === 'PUT' ? (body.status ?? {}) : (mergePatch(current.status ?? {}, body.status ?? {}) as Record<string, unknown>);
    this.statusWrites.set(key, (this.statusWrites.get(key) ?? 0) + 1);
    json(res, 200, this.store(key, next, 'MODIFIED'));
  }

  private store(key: string, object: KubeObject, type: WatchEvent['type']): KubeObject {
    this.rv++;
    object.metadata.resourceVersion = String(this.rv);
    this.objects.set(key, object);
    this.emit({ rv: this.rv, collection: collectionOf(key), type, object: structuredClone(object) });
    return structuredClone(object);
  }

  private emit(event: WatchEvent): void {
    this.log.push(event);
    for (const w of this.watches) if (w.collection === event.collection) w.res.write(line(event));
  }
}

function objectKey(group: string, version: string, namespace: string, plural: string, name: string): string {
  return `${group}/${version}/${namespace}/${plural}/${name}`;
}

function collectionOf(key: string): string {
  return key.slice(0, key.lastIndexOf('/'));
}

function line(e: WatchEvent): string {
  return JSON.stringify({ type: e.type, object: e.object }) + '\n';
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// A metav1.Status error body, as the real server sends.
function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code });
}

// RFC 7386 JSON merge patch.
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}
