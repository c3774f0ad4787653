// Writes custom resources' status subresource: rate-limited per object (a
// change of conditions at once, anything else at most every interval),
// each write a merge patch preconditioned on the resourceVersion just read,
// retried on 409 Conflict with a fresh read. Also posts Events.

import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { errorText } from './cr-watch.ts';

/** Least time between two status writes of one object without a condition change, ms. */
export const STATUS_MIN_INTERVAL_MS = 5_000;
/** Writes tried per status change before giving up until the next change (each 409 reads again). */
export const STATUS_WRITE_ATTEMPTS = 4;
/** HTTP status of a failed precondition. */
const HTTP_CONFLICT = 409;

/** Where the objects live. */
export interface StatusWriterOptions {
  kubeConfig: KubeConfig;
  group: string;
  version: string;
  namespace: string;
  plural: string;
  logger: Logger;
  minIntervalMs?: number;
}

interface Written {
  atMs: number;
  /** The status written, as JSON. */
  body: string;
  urgentKey: string;
}

/** Rate-limited, conflict-retrying status writes of one kind of resource. */
export class StatusWriter {
  private readonly options: StatusWriterOptions;
  private readonly api: CustomObjectsApi;
  private readonly written = new Map<string, Written>();
  private readonly busy = new Set<string>();
  /** Status writes that reached the server. */
  writes = 0;
  /** 409 Conflicts met (each retried with a fresh read). */
  conflicts = 0;

  constructor(options: StatusWriterOptions) {
    this.options = options;
    this.api = options.kubeConfig.makeApiClient(CustomObjectsApi);
  }

  /**
   * Offer the status object `name` should have. urgentKey names what must
   * be written at once when it changes (the conditions); otherwise the
   * write waits for the interval. Resolves when written or skipped.
   */
  async offer(name: string, status: object, urgentKey: string, nowMs: number = Date.now()): Promise<void> {
    const body = JSON.stringify(status);
    const last = this.written.get(name);
    if (this.busy.has(name) || last?.body === body) return;
    const due = !last || last.urgentKey !== urgentKey || nowMs - last.atMs >= (this.options.minIntervalMs ?? STATUS_MIN_INTERVAL_MS);
    if (!due) return;
    this.busy.add(name);
    try {
      await this.write(name, status);
      this.written.set(name, { atMs: nowMs, body, urgentKey });
    } catch (err) {
      this.options.logger.warn({ resource: `${this.options.plural}/${name}`, err: errorText(err) }, 'status write failed; retrying with the next change');
    } finally {
      this.busy.delete(name);
    }
  }

  /** Forget what was written for name (its object was deleted). */
  forget(name: string): void {
    this.written.delete(name);
  }

  // Read the resourceVersion, merge-patch the status on it; a 409 reads again.
  private async write(name: string, status: object): Promise<void> {
    const { group, version, namespace, plural } = this.options;
    for (let attempt = 1; ; attempt++) {
      const current = (await this.api.getNamespacedCustomObjectStatus({ group, version, namespace, plural, name })) as { metadata?: { resourceVersion?: string } };
      const body = { metadata: { resourceVersion: current.metadata?.resourceVersion }, status };
      try {
        await this.api.patchNamespacedCustomObjectStatus({ group, version, namespace, plural, name, body }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
        this.writes++;
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== HTTP_CONFLICT || attempt >= STATUS_WRITE_ATTEMPTS) throw err;
        this.conflicts++;
      }
    }
  }
}

/** The object an Event is about. */
export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  namespace: string;
  uid?: string;
}

/** Post a Warning Event about an object (failures are logged, never thrown: an Event is best effort). */
export async function postWarningEvent(kubeConfig: KubeConfig, object: InvolvedObject, reason: string, message: string, reporter: { component: string; host: string }, logger: Logger): Promise<void> {
  const now = new Date();
  try {
    await kubeConfig.makeApiClient(CoreV1Api).createNamespacedEvent({
      namespace: object.namespace,
      body: {
        metadata: { generateName: `${object.name}.`, namespace: object.namespace },
        involvedObject: object,
        reason,
        message,
        type: 'Warning',
        source: reporter,
        reportingComponent: reporter.component,
        reportingInstance: reporter.host,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  } catch (err) {
    logger.warn({ object: `${object.kind}/${object.name}`, reason, err: errorText(err) }, 'event not posted');
  }
}
