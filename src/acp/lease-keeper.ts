// The agent's lease in its region's consensus, kept for the agent's life:
// when the store declares the lease lost (expired while etcd had no majority,
// or while this process was paused), a new one is granted, with backoff, and
// everything attached to the old one (membership, leader keys) is
// re-established by its owners. Without this, one lost lease would keep an
// agent out of every later election.

import type { ConsensusStore, Lease } from '../consensus/consensus-store.ts';
import { Backoff, retryAtStart, sleepMs } from '../util/backoff.ts';

/** First wait before granting again after a failed grant. */
const INITIAL_REGRANT_BACKOFF_MS = 250;
/** Longest wait between grant attempts. */
const MAX_REGRANT_BACKOFF_MS = 5_000;
/** The first grant retries this long (ms, with backoff) before the agent gives up: a member may go down while the agent starts. */
const START_GRANT_TIMEOUT_MS = 60_000;

/** Keeps one live lease, granting a new one whenever the current is lost. */
export class LeaseKeeper {
  private readonly store: ConsensusStore;
  private readonly ttlSeconds: number;
  private readonly onError: (err: Error) => void;
  private lease: Lease | null = null;
  private waiting: Array<(lease: Lease) => void> = [];
  private readonly listeners: Array<(lease: Lease) => void> = [];
  private closed = false;

  constructor(store: ConsensusStore, ttlSeconds: number, onError: (err: Error) => void) {
    this.store = store;
    this.ttlSeconds = ttlSeconds;
    this.onError = onError;
  }

  /** Grant the first lease (throws when the store cannot grant one now). */
  async start(): Promise<Lease> {
    const lease = await retryAtStart(() => this.store.grantLease(this.ttlSeconds), {
      what: 'grant lease',
      timeoutMs: START_GRANT_TIMEOUT_MS,
      initialMs: INITIAL_REGRANT_BACKOFF_MS,
      maxMs: MAX_REGRANT_BACKOFF_MS,
      onRetry: (err, delayMs) => this.onError(new Error(`grant lease (retrying in ${delayMs} ms): ${err.message}`)),
    });
    this.install(lease);
    return lease;
  }

  /** The live lease, waiting for a new grant when the last one was lost. */
  current(): Promise<Lease> {
    if (this.lease) return Promise.resolve(this.lease);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Call fn with every newly granted lease (not the one current now). */
  onGranted(fn: (lease: Lease) => void): void {
    this.listeners.push(fn);
  }

  /** Stop re-granting and revoke the live lease. */
  async close(): Promise<void> {
    this.closed = true;
    const lease = this.lease;
    this.lease = null;
    await lease?.revoke().catch(() => {});
  }

  private install(lease: Lease): void {
    this.lease = lease;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve(lease);
    void lease.lost.then((err) => {
      if (this.lease !== lease || this.closed) return;
      this.lease = null;
      this.onError(new Error(`lease ${lease.id} lost; granting a new one: ${err.message}`));
      void this.regrant();
    });
  }

  /** Grant again until it works or the keeper closes. */
  private async regrant(): Promise<void> {
    const backoff = new Backoff({ initialMs: INITIAL_REGRANT_BACKOFF_MS, maxMs: MAX_REGRANT_BACKOFF_MS });
    while (!this.closed) {
      try {
        const lease = await this.store.grantLease(this.ttlSeconds);
        if (this.closed) {
          await lease.revoke().catch(() => {});
          return;
        }
        this.install(lease);
        for (const fn of this.listeners) fn(lease);
        return;
      } catch (err) {
        this.onError(new Error(`grant lease: ${(err as Error).message}`));
        await sleepMs(backoff.next());
      }
    }
  }
}
