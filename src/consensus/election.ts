// Leader election over any ConsensusStore: the leader is whoever created the
// leader key (compare-and-swap on "absent") attached to its lease. The key's
// modRevision is the leader's epoch: it only grows, so frames stamped with it
// can be fenced by the destination (see checkpoints.ts).

import type { ConsensusStore, Lease, WatchEvent, Watcher } from './consensus-store.ts';

/** What a leader key holds (JSON). */
interface LeaderRecord {
  candidateId: string;
}

/** A won election: the epoch, a promise for its end, and a way to step down. */
export interface Leadership {
  /** modRevision of the leader key: unique and increasing across leaders of this key. */
  epoch: number;
  /** Resolves when leadership ends: lease lost, or the key deleted or overwritten (or resign()). */
  lost: Promise<Error>;
  /** Delete the leader key (only if it is still ours) and stop watching. */
  resign(): Promise<void>;
}

/** The current leader of a key. */
export interface LeaderInfo {
  candidateId: string;
  epoch: number;
}

/** Decode a leader key's value; undefined when it is not a leader record. */
function decodeLeader(value: Buffer): LeaderRecord | undefined {
  try {
    const parsed = JSON.parse(value.toString('utf8')) as unknown;
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as LeaderRecord).candidateId === 'string') {
      return { candidateId: (parsed as LeaderRecord).candidateId };
    }
  } catch {
    // Not JSON: not a leader record.
  }
  return undefined;
}

/** Who leads `key` now, or undefined when nobody does. */
export async function currentLeader(store: ConsensusStore, key: string): Promise<LeaderInfo | undefined> {
  const kv = await store.get(key);
  if (kv === undefined) return undefined;
  const record = decodeLeader(kv.value);
  if (record === undefined) throw new Error(`read leader ${key}: value is not a leader record`);
  return { candidateId: record.candidateId, epoch: kv.modRevision };
}

/** Records the watch events of exactly one key, and the watch's end, and forwards them to one subscriber. */
class KeyChanges {
  private readonly key: string;
  private readonly events: WatchEvent[] = [];
  private failure: Error | undefined;
  private subscriber: ((event: WatchEvent) => void) | undefined;
  private failSubscriber: ((err: Error) => void) | undefined;

  constructor(key: string) {
    this.key = key;
  }

  /** The watch callback. */
  readonly onEvent = (event: WatchEvent): void => {
    if (event.kv.key !== this.key) return;
    this.events.push(event);
    this.subscriber?.(event);
  };

  /** The watch's error callback: the watch ended and will deliver nothing more. */
  readonly onError = (err: Error): void => {
    this.failure ??= err;
    this.failSubscriber?.(err);
  };

  /** Call fn for every event recorded so far and every later one, and onFail if the watch ended. */
  subscribe(fn: (event: WatchEvent) => void, onFail: (err: Error) => void): void {
    this.subscriber = fn;
    this.failSubscriber = onFail;
    for (const event of this.events) fn(event);
    if (this.failure !== undefined) onFail(this.failure);
  }
}

/**
 * Wait until candidateId holds `key` on `lease`, then return the leadership.
 * Rejects when the signal aborts or the lease is lost while waiting.
 */
export async function campaign(store: ConsensusStore, key: string, candidateId: string, lease: Lease, signal: AbortSignal): Promise<Leadership> {
  const value = Buffer.from(JSON.stringify({ candidateId } satisfies LeaderRecord));
  let leaseLost: Error | undefined;
  void lease.lost.then((err) => {
    leaseLost = err;
  });

  for (;;) {
    signal.throwIfAborted();
    if (leaseLost !== undefined) throw new Error(`campaign ${key}: ${leaseLost.message}`);

    // Watch before trying, so a delete right after a failed attempt is not missed.
    const changes = new KeyChanges(key);
    const watcher = await store.watchPrefix(key, changes.onEvent, { onError: changes.onError });
    try {
      const res = await store.compareAndSwap(key, 0, value, { lease: lease.id });
      if (res.ok) return holdLeadership(store, key, res.revision, lease, watcher, changes);

      // Our own key from an earlier attempt on the same lease: still ours.
      const current = res.current;
      if (current !== undefined && current.lease === lease.id && decodeLeader(current.value)?.candidateId === candidateId) {
        return holdLeadership(store, key, current.modRevision, lease, watcher, changes);
      }

      // Someone else leads: wait for the key to go, the lease to go, or an abort.
      await waitForDelete(key, changes, lease.lost, signal);
    } catch (err) {
      await watcher.close();
      throw err;
    }
    await watcher.close();
  }
}

/** Wait for a delete of the key, failing on lease loss or abort. */
function waitForDelete(key: string, changes: KeyChanges, leaseLost: Promise<Error>, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error(`campaign ${key}: aborted`));
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    changes.subscribe(
      (event) => {
        if (event.type !== 'delete') return;
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      // A watch that ended cannot show the delete: fail, so the caller campaigns again on a new watch.
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(new Error(`campaign ${key}: ${err.message}`, { cause: err }));
      },
    );
    void leaseLost.then((err) => {
      signal.removeEventListener('abort', onAbort);
      reject(new Error(`campaign ${key}: ${err.message}`));
    });
  });
}

/** Build the Leadership: lost on lease loss or any change to the key after our epoch. */
function holdLeadership(store: ConsensusStore, key: string, epoch: number, lease: Lease, watcher: Watcher, changes: KeyChanges): Leadership {
  let resolveLost!: (err: Error) => void;
  const lost = new Promise<Error>((resolve) => {
    resolveLost = resolve;
  });
  let ended = false;
  const end = (err: Error): void => {
    if (ended) return;
    ended = true;
    resolveLost(err);
    void watcher.close().catch(() => {});
  };

  // The key deleted or overwritten after our write ends leadership; so does the lease, and so does
  // the watch ending (a leader that cannot see its key steps down; campaigning again finds it if still ours).
  changes.subscribe(
    (event) => {
      if (event.kv.modRevision <= epoch) return;
      const what = event.type === 'delete' ? 'deleted' : 'overwritten';
      end(new Error(`leadership of ${key} at epoch ${epoch} lost: key ${what} at revision ${event.kv.modRevision}`));
    },
    (err) => end(new Error(`leadership of ${key} at epoch ${epoch} lost: ${err.message}`, { cause: err })),
  );
  void lease.lost.then((err) => end(new Error(`leadership of ${key} at epoch ${epoch} lost: ${err.message}`)));

  return {
    epoch,
    lost,
    resign: async () => {
      end(new Error(`leadership of ${key} at epoch ${epoch} resigned`));
      await store.compareAndDelete(key, epoch);
    },
  };
}
