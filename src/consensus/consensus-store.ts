// The region consensus (ACP) as DWCP sees it: a small key-value interface
// that etcd implements in production and the embedded store implements for
// the demo and single-node use. Shared logic (election, checkpoints) is plain
// functions over this interface, never inside a backend.

/** One stored key with the revision that last modified it. */
export interface KeyValue {
  key: string;
  value: Buffer;
  /** Store-wide revision of the last write to this key (etcd's mod_revision). */
  modRevision: number;
  /** Lease the key is attached to, or 0 for none. */
  lease: number;
}

/** Result of a compare-and-swap: ok, or the current value that won. */
export interface CasResult {
  ok: boolean;
  /** Store revision after the write (ok) or at the time of the failed compare. */
  revision: number;
  /** The key as it is now when the compare failed (undefined when absent). */
  current?: KeyValue;
}

/** A change under a watched prefix. */
export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

/** A handle on a prefix watch; close stops delivery. */
export interface Watcher {
  close(): Promise<void>;
}

/** Options of a prefix watch. */
export interface WatchOptions {
  /**
   * Called once when the watch ends by itself and will deliver nothing more:
   * the store failed, or the backend refuses it for good (e.g. permission
   * denied). Disconnections and compaction are not errors: the watch resumes
   * by itself. The store also logs the error, so a watch never ends silently.
   */
  onError?: (err: Error) => void;
}

/** A lease: keys attached to it vanish when it expires or is revoked. */
export interface Lease {
  readonly id: number;
  readonly ttlSeconds: number;
  /** Resolves when the lease is lost (expired, revoked, or the store gave up on keepalive). */
  readonly lost: Promise<Error>;
  /** Revoke now: attached keys are deleted. Safe to call twice. */
  revoke(): Promise<void>;
}

/** Options for a put or compare-and-swap. */
export interface PutOptions {
  /** Attach the key to this lease id. */
  lease?: number;
}

/** The consensus interface: get, compare-and-swap on revision, prefix watch, leases. */
export interface ConsensusStore {
  /** Read one key; undefined when absent. */
  get(key: string): Promise<KeyValue | undefined>;
  /** All keys under a prefix, sorted by key. */
  list(prefix: string): Promise<KeyValue[]>;
  /**
   * Write value only if the key's modRevision equals expectedModRevision
   * (0 means "the key must be absent").
   */
  compareAndSwap(key: string, expectedModRevision: number, value: Buffer, options?: PutOptions): Promise<CasResult>;
  /** Delete only if modRevision matches (0 = delete whatever is there). */
  compareAndDelete(key: string, expectedModRevision: number): Promise<CasResult>;
  /**
   * Deliver every change under prefix made after this call, in revision
   * order, until closed. The watch survives disconnections and server-side
   * cancellation: it resumes after the last revision it delivered, and when
   * that history is gone (compacted) it re-reads the prefix and delivers the
   * difference (watch-resync.ts): a put for each key written since, then a
   * delete, stamped with the re-read's revision, for each key that vanished;
   * values overwritten during the gap are skipped.
   */
  watchPrefix(prefix: string, onEvent: (event: WatchEvent) => void, options?: WatchOptions): Promise<Watcher>;
  /** Grant a lease kept alive by the store until revoked or lost. */
  grantLease(ttlSeconds: number): Promise<Lease>;
  /** Revoke leases this client holds and release resources. */
  close(): Promise<void>;
}
