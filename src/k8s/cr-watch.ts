// List then watch one kind of custom resource in one namespace, keeping a
// current copy of every object: the reflector of client-go, on
// @kubernetes/client-node's Watch (chunked JSON lines) and CustomObjectsApi
// (list). The watch starts from the list's resourceVersion and asks for
// bookmarks, so a reconnect resumes where the last event or bookmark left
// off; a 410 Gone (the server compacted that version) lists again; every
// other failure reconnects after the project's jittered backoff. We do not
// use client-node's ListWatch: it stops on errors and has no backoff.

import { CustomObjectsApi, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Backoff, sleepMs, type BackoffOptions } from '../util/backoff.ts';

/** HTTP status of an expired resourceVersion. */
export const HTTP_GONE = 410;

/** Which resources to follow. */
export interface CrWatchOptions {
  kubeConfig: KubeConfig;
  group: string;
  version: string;
  namespace: string;
  plural: string;
  /** Every change of the set of objects (after a list and after each event), with all current objects. */
  onChange(objects: KubernetesObject[]): void;
  logger: Logger;
  retry: BackoffOptions;
}

/** The watch's server said the version is gone: list again. */
class GoneError extends Error {
  override name = 'GoneError';
}

/** A followed collection of custom resources. */
export class CrWatch {
  private readonly options: CrWatchOptions;
  private readonly objects = new Map<string, KubernetesObject>();
  private resourceVersion: string | null = null;
  private readonly backoff: Backoff;
  private closed = false;
  private current: AbortController | null = null;
  /** Ends the watch being opened or read now (close() before its response arrived). */
  private endWatch: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  /** Lists done (the first, and one per 410 Gone). */
  lists = 0;
  /** Watch connections opened. */
  watches = 0;

  constructor(options: CrWatchOptions) {
    this.options = options;
    this.backoff = new Backoff(options.retry);
  }

  /** List (retrying with backoff until it succeeds or close()), report, then follow in the background. */
  async start(): Promise<void> {
    while (!this.closed) {
      try {
        await this.list();
        break;
      } catch (err) {
        this.options.logger.warn({ plural: this.options.plural, err: errorText(err) }, 'list failed; retrying');
        await sleepMs(this.backoff.next());
      }
    }
    this.loop = this.follow();
  }

  /** Current objects. */
  items(): KubernetesObject[] {
    return [...this.objects.values()];
  }

  /** Stop following. */
  async close(): Promise<void> {
    this.closed = true;
    this.current?.abort();
    this.endWatch?.();
    await this.loop;
  }

  private path(): string {
    const o = this.options;
    return `/apis/${o.group}/${o.version}/namespaces/${o.namespace}/${o.plural}`;
  }

  // Replace the copy with a fresh list.
  private async list(): Promise<void> {
    const o = this.options;
    const api = o.kubeConfig.makeApiClient(CustomObjectsApi);
    const list = (await api.listNamespacedCustomObject({ group: o.group, version: o.version, namespace: o.namespace, plural: o.plural })) as { items: KubernetesObject[]; metadata?: { resourceVersion?: string } };
    this.lists++;
    this.objects.clear();
    for (const item of list.items) this.objects.set(item.metadata?.name ?? '', item);
    this.resourceVersion = list.metadata?.resourceVersion ?? null;
    this.options.onChange(this.items());
  }

  // Watch, and after it ends: resume, or list again after a 410, with backoff on failures.
  private async follow(): Promise<void> {
    while (!this.closed) {
      try {
        if (this.resourceVersion === null) await this.list();
        await this.watchOnce();
        if (this.closed) return;
        this.options.logger.info({ plural: this.options.plural, resourceVersion: this.resourceVersion }, 'watch ended; resuming');
      } catch (err) {
        if (this.closed) return;
        if (err instanceof GoneError) {
          this.options.logger.info({ plural: this.options.plural, err: err.message }, 'watch expired (410 Gone); listing again');
          this.resourceVersion = null;
          continue;
        }
        this.options.logger.warn({ plural: this.options.plural, err: errorText(err) }, 'watch failed; retrying with backoff');
      }
      await sleepMs(this.backoff.next());
    }
  }

  // One watch connection from resourceVersion; resolves when it ends, rejects on an error or 410.
  private watchOnce(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let gone: GoneError | null = null;
      this.endWatch = resolve;
      const watch = new Watch(this.options.kubeConfig);
      this.watches++;
      watch.watch(
        this.path(),
        { resourceVersion: this.resourceVersion ?? undefined, allowWatchBookmarks: true },
        (type: string, object: KubernetesObject & { code?: number; message?: string }) => {
          if (gone) return;
          if (type === 'ERROR') {
            if (object.code === HTTP_GONE) gone = new GoneError(object.message ?? 'resource version gone');
            this.current?.abort();
            return;
          }
          this.onEvent(type, object);
        },
        (err: unknown) => {
          if (gone) reject(gone);
          else if (err && !this.closed && (err as Error).name !== 'AbortError') reject(err);
          else resolve();
        },
      ).then((controller) => {
        this.current = controller;
        if (this.closed) controller.abort();
      }, reject);
    });
  }

  private onEvent(type: string, object: KubernetesObject): void {
    const rv = object.metadata?.resourceVersion;
    if (rv !== undefined) this.resourceVersion = rv;
    if (type === 'BOOKMARK') return;
    // Progress: the next failure starts the backoff from its first step.
    this.backoff.reset();
    const name = object.metadata?.name ?? '';
    if (type === 'DELETED') this.objects.delete(name);
    else this.objects.set(name, object);
    this.options.onChange(this.items());
  }
}

/** An error's message (client-node's ApiException carries the HTTP code). */
export function errorText(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
  return typeof code === 'number' ? `HTTP ${code}: ${message}` : message;
}
