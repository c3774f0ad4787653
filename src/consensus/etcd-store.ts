// The etcd consensus store (production backend) on the npm `etcd3` client.
//
// Measured here with etcd3's defaults: a call to a dead member stalls about
// 7 s, and Etcd3.close() does not stop lease keepalives. So this backend puts
// a deadline on every call, runs its own lease keepalive (etcd3's automatic
// keepalive is off), and on close revokes held leases and stops keepalives
// itself. Lease ids are chosen by this client below 2^53 so they fit the
// interface's `number` (etcd would otherwise pick 64-bit ids). Prefix
// watches resume by themselves after disconnection, cancellation and
// compaction (etcd-watch.ts).

import { randomInt } from 'node:crypto';
import { Etcd3, EtcdLeaseInvalidError, type IKeyValue, type IOptions, type Watcher as EtcdWatcher } from 'etcd3';
import type {
  CasResult,
  ConsensusStore,
  KeyValue,
  Lease,
  PutOptions,
  WatchEvent,
  WatchOptions,
  Watcher,
} from './consensus-store.ts';
import { EtcdPrefixWatch, toKeyValue, type EtcdWatchSource, type WatchRestartCounter } from './etcd-watch.ts';
import { defaultStoreLogger, type StoreLogger } from './store-logger.ts';

/** Default deadline for one etcd call, including etcd3's retries across members. */
const DEFAULT_CALL_TIMEOUT_MS = 3000;
/** Keepalives sent per TTL. */
const KEEPALIVE_TICKS_PER_TTL = 3;
/** First delay before a broken watch stream reconnects. */
const WATCH_BACKOFF_INITIAL_MS = 100;
/** Longest delay between watch reconnect attempts (etcd3's default is 30 s). */
const WATCH_BACKOFF_MAX_MS = 2000;
/** Attempts to grant a lease with a fresh random id when the id is taken. */
const LEASE_GRANT_ATTEMPTS = 3;
/** Largest lease id we pick: ids must stay exact as a JS number. */
const MAX_LEASE_ID = 2 ** 48;

/** How to reach an etcd cluster. */
export interface EtcdStoreOptions {
  /** Client URLs or host:port of the members, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** TLS material; endpoints should then be `https://`. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  /** Deadline for each call in milliseconds (default 3000). */
  callTimeoutMs?: number;
  /** Where watch restarts and failures are logged; default JSON on stderr. */
  logger?: StoreLogger;
  /** Counts watch restarts by reason. */
  watchRestarts?: WatchRestartCounter;
}

/** A capped exponential backoff in the shape etcd3's watch manager expects (cockatiel's IBackoff). */
class WatchBackoff {
  readonly duration: number;

  constructor(duration: number) {
    this.duration = duration;
  }

  /** The next, longer delay. */
  next(): WatchBackoff {
    return new WatchBackoff(Math.min(WATCH_BACKOFF_MAX_MS, this.duration * 2));
  }
}

/** Run a promise against a deadline; the error names the operation and key. */
function withDeadline<T>(op: string, key: string, timeoutMs: number, run: (deadline: Date) => Promise<T>): Promise<T> {
  const deadline = new Date(Date.now() + timeoutMs);
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`etcd ${op} ${key}: no answer within ${timeoutMs} ms (deadline exceeded: members unreachable or no quorum)`));
    }, timeoutMs);
    timer.unref();
    run(deadline).then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        const message = err instanceof Error ? err.message : String(err);
        reject(new Error(`etcd ${op} ${key}: ${message}`, { cause: err }));
      },
    );
  });
}

/** The end of the key range covering every key that starts with prefix. */
function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i] += 1;
      return end.subarray(0, i + 1);
    }
  }
  // All 0xff (or empty): the range runs to the end of the keyspace.
  return Buffer.from([0]);
}

/** A ConsensusStore on an etcd v3 cluster, with deadlines and self-managed lease keepalive. */
export class EtcdStore implements ConsensusStore {
  private readonly client: Etcd3;
  private readonly callTimeoutMs: number;
  private readonly leases = new Map<number, EtcdLease>();
  private readonly watches = new Set<EtcdPrefixWatch>();
  private readonly watchSource: EtcdWatchSource;
  private closed = false;

  private constructor(client: Etcd3, callTimeoutMs: number, logger: StoreLogger, watchRestarts: WatchRestartCounter | undefined) {
    this.client = client;
    this.callTimeoutMs = callTimeoutMs;
    this.watchSource = {
      snapshot: (prefix) => this.readPrefix('watch', prefix),
      open: (prefix, fromRevision) => this.openWatcher(prefix, fromRevision),
      callTimeoutMs,
      logger,
      restarts: watchRestarts,
    };
  }

  /** Connect and check that the cluster answers within the call deadline. */
  static async connect(options: EtcdStoreOptions): Promise<EtcdStore> {
    // Check the options; config errors name the field.
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new Error('etcd store: endpoints must list at least one member, got ' + JSON.stringify(options.endpoints));
    }
    const callTimeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    if (!Number.isFinite(callTimeoutMs) || callTimeoutMs <= 0) {
      throw new Error(`etcd store: callTimeoutMs must be a positive number, got ${callTimeoutMs}`);
    }

    // Build the client: etcd3's own fault handling stays (retry on another
    // member, circuit breaker per member) but always under our deadline.
    const etcdOptions: IOptions = {
      hosts: options.endpoints,
      dialTimeout: callTimeoutMs,
      faultHandling: { watchBackoff: new WatchBackoff(WATCH_BACKOFF_INITIAL_MS) },
    };
    if (options.tls !== undefined) {
      etcdOptions.credentials = { rootCertificate: options.tls.ca, privateKey: options.tls.key, certChain: options.tls.cert };
    }
    const store = new EtcdStore(new Etcd3(etcdOptions), callTimeoutMs, options.logger ?? defaultStoreLogger(), options.watchRestarts);

    // Fail fast when no member answers.
    try {
      await store.currentRevision();
    } catch (err) {
      store.client.close();
      throw new Error(`connect etcd ${options.endpoints.join(',')}: ${(err as Error).message}`, { cause: err });
    }
    return store;
  }

  /** The cluster's current revision. */
  async currentRevision(): Promise<number> {
    this.checkOpen('revision', '');
    const res = await withDeadline('revision', '', this.callTimeoutMs, (deadline) =>
      this.client.kv.range({ key: Buffer.from([0]), count_only: true }, { deadline }),
    );
    return Number(res.header.revision);
  }

  /** Read one key; undefined when absent. */
  async get(key: string): Promise<KeyValue | undefined> {
    this.checkOpen('get', key);
    const res = await withDeadline('get', key, this.callTimeoutMs, (deadline) =>
      this.client.kv.range({ key: Buffer.from(key) }, { deadline }),
    );
    return res.kvs.length === 0 ? undefined : toKeyValue(res.kvs[0]);
  }

  /** All keys under a prefix, sorted by key. */
  async list(prefix: string): Promise<KeyValue[]> {
    return (await this.readPrefix('list', prefix)).kvs;
  }

  /** All keys under a prefix, sorted by key, and the store revision they were read at. */
  private async readPrefix(op: string, prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    this.checkOpen(op, prefix);
    const start = Buffer.from(prefix);
    const res = await withDeadline(op, prefix, this.callTimeoutMs, (deadline) =>
      this.client.kv.range({ key: start.length === 0 ? Buffer.from([0]) : start, range_end: prefixEnd(start), sort_order: 'Ascend', sort_target: 'Key' }, { deadline }),
    );
    return { kvs: res.kvs.map(toKeyValue), revision: Number(res.header.revision) };
  }

  /** Write value only if the key's modRevision equals expectedModRevision (0 = must be absent). */
  async compareAndSwap(key: string, expectedModRevision: number, value: Buffer, options?: PutOptions): Promise<CasResult> {
    this.checkOpen('compare-and-swap', key);
    const k = Buffer.from(key);
    const compare =
      expectedModRevision === 0
        ? { key: k, target: 'Create' as const, result: 'Equal' as const, create_revision: 0 }
        : { key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expectedModRevision };
    const res = await withDeadline('compare-and-swap', key, this.callTimeoutMs, (deadline) =>
      this.client.kv.txn(
        {
          compare: [compare],
          success: [{ request_put: { key: k, value, lease: options?.lease ?? 0 } }],
          failure: [{ request_range: { key: k } }],
        },
        { deadline },
      ),
    );
    return this.casResult(res.succeeded, Number(res.header.revision), res.responses);
  }

  /** Delete only if modRevision matches (0 = delete whatever is there). */
  async compareAndDelete(key: string, expectedModRevision: number): Promise<CasResult> {
    this.checkOpen('compare-and-delete', key);
    const k = Buffer.from(key);
    const compare = expectedModRevision === 0 ? [] : [{ key: k, target: 'Mod' as const, result: 'Equal' as const, mod_revision: expectedModRevision }];
    const res = await withDeadline('compare-and-delete', key, this.callTimeoutMs, (deadline) =>
      this.client.kv.txn(
        {
          compare,
          success: [{ request_delete_range: { key: k } }],
          failure: [{ request_range: { key: k } }],
        },
        { deadline },
      ),
    );
    return this.casResult(res.succeeded, Number(res.header.revision), res.responses);
  }

  /**
   * Deliver every change under prefix made after this call, in revision
   * order; the watch resumes by itself after disconnection, cancellation and
   * compaction (see EtcdPrefixWatch), and calls options.onError only when
   * etcd refuses it for good.
   */
  async watchPrefix(prefix: string, onEvent: (event: WatchEvent) => void, options: WatchOptions = {}): Promise<Watcher> {
    this.checkOpen('watch', prefix);
    const watch = await EtcdPrefixWatch.start(this.watchSource, prefix, onEvent, options.onError);
    if (this.closed) {
      await watch.close();
      throw new Error(`etcd watch ${prefix}: store is closed`);
    }
    this.watches.add(watch);
    return {
      close: async () => {
        if (this.watches.delete(watch)) await watch.close();
      },
    };
  }

  /** A new etcd3 watcher of prefix from fromRevision; it connects in the background. */
  private openWatcher(prefix: string, fromRevision: number): EtcdWatcher {
    const builder = this.client.watch().startRevision(String(fromRevision));
    const ranged = prefix === '' ? builder.inRange({ start: Buffer.from([0]), end: Buffer.from([0]) }) : builder.prefix(prefix);
    return ranged.watcher();
  }

  /** Grant a lease; this store sends its keepalives until revoked, closed or lost. */
  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.checkOpen('grant lease', '');
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new Error(`grant lease: ttlSeconds must be an integer >= 1, got ${ttlSeconds}`);
    }

    // Pick our own id (etcd accepts a requested id) so it is exact as a number.
    let lastError: Error | undefined;
    for (let attempt = 0; attempt < LEASE_GRANT_ATTEMPTS; attempt++) {
      const id = randomInt(1, MAX_LEASE_ID);
      try {
        const sentAtMs = Date.now();
        await withDeadline('grant lease', String(id), this.callTimeoutMs, (deadline) =>
          this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: id }, { deadline }),
        );
        const lease = new EtcdLease(this, id, ttlSeconds, sentAtMs);
        this.leases.set(id, lease);
        return lease;
      } catch (err) {
        lastError = err as Error;
        if (/lease already exists/i.test(lastError.message)) continue;
        // The grant may have happened without us hearing back: do not leave it behind.
        void this.revokeLease(id).catch(() => {});
        throw lastError;
      }
    }
    throw lastError!;
  }

  /** Revoke held leases, stop keepalives and watches, and close connections. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.leases.values()].map((lease) => lease.revoke()));
    this.closed = true;
    await Promise.allSettled([...this.watches].map((w) => w.close()));
    this.watches.clear();
    this.client.close();
  }

  /** Send one keepalive for a lease; resolves with the TTL etcd granted (0 = lease gone). */
  async keepAliveOnce(id: number, timeoutMs: number): Promise<number> {
    return withDeadline('keepalive lease', String(id), timeoutMs, async (deadline) => {
      const stream = await this.client.leaseClient.leaseKeepAlive({ deadline });
      try {
        const res = await new Promise<{ TTL: string }>((resolve, reject) => {
          stream.on('data', resolve);
          stream.on('error', reject);
          stream.on('end', () => reject(new Error('keepalive stream ended')));
          stream.write({ ID: id });
        });
        return Number(res.TTL);
      } finally {
        stream.on('error', () => {});
        stream.cancel();
      }
    });
  }

  /** Revoke a lease in etcd; a lease that is already gone counts as revoked. */
  async revokeLease(id: number): Promise<void> {
    this.leases.delete(id);
    try {
      await withDeadline('revoke lease', String(id), this.callTimeoutMs, (deadline) =>
        this.client.leaseClient.leaseRevoke({ ID: id }, { deadline }),
      );
    } catch (err) {
      if ((err as Error).cause instanceof EtcdLeaseInvalidError) return;
      throw err;
    }
  }

  /** Throw when the store was closed. */
  private checkOpen(op: string, key: string): void {
    if (this.closed) throw new Error(`etcd ${op} ${key}: store is closed`);
  }

  /** Turn a transaction response into a CasResult (failure branch carries the current key). */
  private casResult(succeeded: boolean, revision: number, responses: Array<{ response_range?: { kvs: IKeyValue[] } | null }>): CasResult {
    if (succeeded) return { ok: true, revision };
    const kvs = responses[0]?.response_range?.kvs ?? [];
    return { ok: false, revision, current: kvs.length === 0 ? undefined : toKeyValue(kvs[0]) };
  }
}

/**
 * A lease kept alive by EtcdStore: a keepalive every TTL/3, and loss declared
 * when no keepalive succeeded for a full TTL counted from when the last good
 * one was SENT (etcd's expiry is never earlier than that), so the holder
 * stops acting no later than etcd lets another take over.
 */
class EtcdLease implements Lease {
  readonly id: number;
  readonly ttlSeconds: number;
  readonly lost: Promise<Error>;
  private readonly store: EtcdStore;
  private resolveLost!: (err: Error) => void;
  private tickTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private lastError: Error | undefined;
  private ended = false;
  private revoking: Promise<void> | undefined;

  constructor(store: EtcdStore, id: number, ttlSeconds: number, grantSentAtMs: number) {
    this.store = store;
    this.id = id;
    this.ttlSeconds = ttlSeconds;
    this.lost = new Promise<Error>((resolve) => {
      this.resolveLost = resolve;
    });
    this.armExpiry(grantSentAtMs);
    this.scheduleTick();
  }

  /** Revoke now: etcd deletes attached keys. Safe to call twice. */
  revoke(): Promise<void> {
    if (this.revoking === undefined) {
      this.stop(new Error(`lease ${this.id} revoked`));
      this.revoking = this.store.revokeLease(this.id);
    }
    return this.revoking;
  }

  /** Stop keepalives and resolve `lost` once. */
  private stop(reason: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.tickTimer);
    clearTimeout(this.expiryTimer);
    this.resolveLost(reason);
  }

  /** Declare loss when no keepalive sent after sentAtMs succeeds within the TTL. */
  private armExpiry(sentAtMs: number): void {
    clearTimeout(this.expiryTimer);
    const remainingMs = Math.max(0, sentAtMs + this.ttlSeconds * 1000 - Date.now());
    this.expiryTimer = setTimeout(() => {
      const cause = this.lastError === undefined ? '' : `: ${this.lastError.message}`;
      this.stop(new Error(`lease ${this.id} lost: no keepalive succeeded within the ${this.ttlSeconds} s ttl${cause}`));
      // Best effort: if etcd is reachable again, free the keys now rather than at expiry.
      void this.store.revokeLease(this.id).catch(() => {});
    }, remainingMs);
    this.expiryTimer.unref();
  }

  /** Schedule the next keepalive. */
  private scheduleTick(): void {
    const intervalMs = (this.ttlSeconds * 1000) / KEEPALIVE_TICKS_PER_TTL;
    this.tickTimer = setTimeout(() => void this.tick(intervalMs), intervalMs);
    this.tickTimer.unref();
  }

  /** Send one keepalive; etcd answering TTL 0 means the lease is gone. */
  private async tick(intervalMs: number): Promise<void> {
    if (this.ended) return;
    const sentAtMs = Date.now();
    try {
      const ttl = await this.store.keepAliveOnce(this.id, intervalMs);
      if (this.ended) return;
      if (ttl <= 0) {
        this.stop(new Error(`lease ${this.id} lost: etcd reports it expired or revoked`));
        this.store.revokeLease(this.id).catch(() => {});
        return;
      }
      this.lastError = undefined;
      this.armExpiry(sentAtMs);
    } catch (err) {
      this.lastError = err as Error;
    }
    if (!this.ended) this.scheduleTick();
  }
}
