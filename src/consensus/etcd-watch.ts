// A prefix watch on etcd that does not end when its stream does.
//
// etcd3's own watch resumes after a reconnect, but from the revision in the
// last response header (which can be past events not yet delivered), and it
// cannot resume at all when etcd cancels the watch: a watch re-created below
// the compaction revision is cancelled (issue 8 item 7: campaigners never saw
// the leader key deleted, so failover stopped). So this watch keeps its own
// position (watch-resync.ts): on a broken stream it starts a new etcd watch
// right after the last revision it delivered; when etcd refuses that (the
// history was compacted) or a resume fails, it re-reads the prefix, delivers
// the difference, and watches from the re-read's revision. It ends only when
// closed or when etcd refuses it for good (permission, authentication, an
// invalid request); then it logs the error and tells its owner.

import {
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCInvalidArgumentError,
  GRPCUnauthenticatedError,
  type IKeyValue,
  type IWatchResponse,
  type Watcher as EtcdWatcher,
} from 'etcd3';
import type { KeyValue, WatchEvent, Watcher } from './consensus-store.ts';
import type { StoreLogger } from './store-logger.ts';
import { WatchedKeys } from './watch-resync.ts';

/** First delay before a broken watch is resumed. */
const RESUME_BACKOFF_INITIAL_MS = 100;
/** Longest delay between resume attempts. */
const RESUME_BACKOFF_MAX_MS = 2000;
/** During a long outage, log one failed resume attempt in this many (the first is always logged). */
const RESUME_FAILURES_PER_LOG = 15;

/** Counts watch restarts by reason (`disconnected`, `canceled`); prom-client's Counter fits. */
export interface WatchRestartCounter {
  inc(labels: { reason: string }): void;
}

/** What the watch needs from the etcd store. */
export interface EtcdWatchSource {
  /** The keys under prefix and the store revision they were read at. */
  snapshot(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;
  /** A new etcd3 watcher of prefix from fromRevision, not yet connected (listeners go on before any response). */
  open(prefix: string, fromRevision: number): EtcdWatcher;
  /** Deadline for the watch to be created, in milliseconds. */
  readonly callTimeoutMs: number;
  readonly logger: StoreLogger;
  readonly restarts?: WatchRestartCounter;
}

/** Convert etcd3's key-value (int64 fields as strings) to ours. */
export function toKeyValue(kv: IKeyValue): KeyValue {
  return {
    key: kv.key.toString('utf8'),
    value: Buffer.from(kv.value),
    modRevision: Number(kv.mod_revision),
    lease: Number(kv.lease),
  };
}

/** True when etcd refuses the client or the request for good (auth, permission, an invalid request): retrying cannot help. */
function isPermanent(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (
      e instanceof EtcdPermissionDeniedError ||
      e instanceof EtcdAuthenticationFailedError ||
      e instanceof EtcdInvalidAuthTokenError ||
      e instanceof GRPCUnauthenticatedError ||
      e instanceof GRPCInvalidArgumentError
    ) {
      return true;
    }
  }
  return false;
}

/** One etcd3 watcher this watch is using, and what happened to it. */
interface Attempt {
  watcher: EtcdWatcher;
  connected: boolean;
  /** etcd cancelled it: etcd3 has dropped it already, so it must not be cancelled again. */
  canceledByServer: boolean;
}

/** A prefix watch on etcd that resumes after disconnection, cancellation and compaction. */
export class EtcdPrefixWatch implements Watcher {
  private readonly source: EtcdWatchSource;
  private readonly prefix: string;
  private readonly onEvent: (event: WatchEvent) => void;
  private readonly onError: ((err: Error) => void) | undefined;
  private readonly seen: WatchedKeys;
  private current: Attempt | undefined;
  private ended = false;
  private resumeTimer: NodeJS.Timeout | undefined;

  private constructor(source: EtcdWatchSource, prefix: string, onEvent: (event: WatchEvent) => void, onError: ((err: Error) => void) | undefined, seen: WatchedKeys) {
    this.source = source;
    this.prefix = prefix;
    this.onEvent = onEvent;
    this.onError = onError;
    this.seen = seen;
  }

  /**
   * Read the prefix (to know its keys), then watch from right after that
   * read. Throws when the read fails or etcd refuses the watch for good; a
   * watch stream that breaks while being created (a member went down) is
   * resumed in the background like any broken watch: once the prefix was
   * read, the watch can only be late, never wrong.
   */
  static async start(source: EtcdWatchSource, prefix: string, onEvent: (event: WatchEvent) => void, onError?: (err: Error) => void): Promise<EtcdPrefixWatch> {
    const { kvs, revision } = await source.snapshot(prefix);
    const watch = new EtcdPrefixWatch(source, prefix, onEvent, onError, new WatchedKeys(kvs, revision));
    try {
      await watch.attach();
    } catch (err) {
      if (isPermanent(err)) throw err;
      // An agent started while a member was down died here (the suite's etcd member-loss test on CI).
      source.restarts?.inc({ reason: 'disconnected' });
      source.logger.warn({ prefix, revision, err: (err as Error).message }, 'consensus watch not created; resuming after the read');
      watch.scheduleResume(RESUME_BACKOFF_INITIAL_MS, false, 1);
    }
    return watch;
  }

  /** Stop delivery and cancel the etcd watch. */
  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.resumeTimer);
    const attempt = this.current;
    this.current = undefined;
    if (attempt !== undefined) await this.retire(attempt);
  }

  /** Start an etcd watch right after the last delivered revision; resolves once etcd created it. */
  private async attach(): Promise<void> {
    const attempt: Attempt = { watcher: this.source.open(this.prefix, this.seen.revision + 1), connected: false, canceledByServer: false };
    this.current = attempt;
    const { watcher } = attempt;

    // Listeners go on before etcd can answer, so no response is missed.
    let settle: ((err?: Error) => void) | undefined;
    const created = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    watcher.on('data', (res: IWatchResponse) => this.deliver(attempt, res));
    watcher.on('connected', () => {
      attempt.connected = true;
      settle?.();
    });
    watcher.on('disconnected', (err: Error) => {
      if (!attempt.connected) settle?.(new Error(`watch ${this.prefix}: stream broke while creating: ${err.message}`, { cause: err }));
      else this.broken(attempt, 'disconnected', err);
    });
    watcher.on('error', (err: Error) => {
      attempt.canceledByServer = true;
      if (!attempt.connected) settle?.(new Error(`watch ${this.prefix} from revision ${this.seen.revision + 1}: etcd refused it: ${err.message}`, { cause: err }));
      else this.broken(attempt, 'canceled', err);
    });

    // Wait for etcd to create it, within the call deadline.
    const timer = setTimeout(() => settle?.(new Error(`watch ${this.prefix}: not created within ${this.source.callTimeoutMs} ms`)), this.source.callTimeoutMs);
    timer.unref();
    try {
      await created;
    } catch (err) {
      if (this.current === attempt) this.current = undefined;
      void this.retire(attempt);
      throw err;
    } finally {
      clearTimeout(timer);
      settle = undefined;
    }
  }

  /** Deliver one response's events, once each, in order. */
  private deliver(attempt: Attempt, res: IWatchResponse): void {
    if (this.current !== attempt || this.ended) return;
    // Every event of a revision comes in one response; nothing at or below what was delivered is delivered again.
    const floor = this.seen.revision;
    for (const ev of res.events) {
      const event: WatchEvent = { type: ev.type === 'Delete' ? 'delete' : 'put', kv: toKeyValue(ev.kv) };
      if (event.kv.modRevision <= floor) continue;
      this.emit(event);
    }
  }

  /** Record an event and hand it to the owner; a throwing callback is rethrown outside the store. */
  private emit(event: WatchEvent): void {
    this.seen.apply(event);
    try {
      this.onEvent(event);
    } catch (err) {
      setImmediate(() => {
        throw err;
      });
    }
  }

  /** The etcd watch broke after it was created: resume, or end when etcd refuses for good. */
  private broken(attempt: Attempt, reason: 'disconnected' | 'canceled', err: Error): void {
    if (this.current !== attempt || this.ended) return;
    this.current = undefined;
    void this.retire(attempt);
    if (isPermanent(err)) {
      this.fail(err);
      return;
    }
    this.source.restarts?.inc({ reason });
    this.source.logger.warn({ prefix: this.prefix, reason, revision: this.seen.revision, err: err.message }, 'consensus watch broken; resuming after the last delivered revision');
    // Cancelled by etcd (typically: compacted past our revision): the history is gone, re-read.
    this.scheduleResume(RESUME_BACKOFF_INITIAL_MS, reason === 'canceled', 1);
  }

  /** Try to resume after delayMs; on failure try again later, re-reading the prefix. */
  private scheduleResume(delayMs: number, resync: boolean, attemptNo: number): void {
    this.resumeTimer = setTimeout(() => void this.resume(delayMs, resync, attemptNo), delayMs);
    this.resumeTimer.unref();
  }

  /** One resume attempt: re-read and catch up when asked, then watch again. */
  private async resume(delayMs: number, resync: boolean, attemptNo: number): Promise<void> {
    if (this.ended) return;
    try {
      if (resync) await this.resync();
      if (this.ended) return;
      await this.attach();
      if (this.ended) return;
      this.source.logger.warn({ prefix: this.prefix, revision: this.seen.revision, resynced: resync, attempts: attemptNo }, 'consensus watch resumed');
    } catch (err) {
      if (this.ended) return;
      if (isPermanent(err)) {
        this.fail(err as Error);
        return;
      }
      if (attemptNo % RESUME_FAILURES_PER_LOG === 1) {
        this.source.logger.warn({ prefix: this.prefix, revision: this.seen.revision, attempt: attemptNo, err: (err as Error).message }, 'consensus watch resume failed; retrying with a re-read');
      }
      // Whatever failed (refused, timed out, unreachable), the next attempt re-reads: always correct.
      this.scheduleResume(Math.min(RESUME_BACKOFF_MAX_MS, delayMs * 2), true, attemptNo + 1);
    }
  }

  /** Re-read the prefix and deliver what changed since the last delivered revision. */
  private async resync(): Promise<void> {
    const { kvs, revision } = await this.source.snapshot(this.prefix);
    if (this.ended) return;
    const events = this.seen.catchUp(kvs, revision);
    this.source.logger.warn({ prefix: this.prefix, from: this.seen.revision, to: revision, events: events.length }, 'consensus watch re-read its prefix: history before the resume point is gone');
    for (const event of events) this.emit(event);
    this.seen.advance(revision);
  }

  /** End for good: log and tell the owner. */
  private fail(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.resumeTimer);
    const error = new Error(`watch ${this.prefix}: ended at revision ${this.seen.revision}: ${err.message}`, { cause: err });
    this.source.logger.error({ prefix: this.prefix, revision: this.seen.revision, err: err.message }, 'consensus watch ended: etcd refuses it');
    this.onError?.(error);
  }

  /** Stop listening to an etcd watcher and cancel it unless etcd already did. */
  private async retire(attempt: Attempt): Promise<void> {
    const { watcher } = attempt;
    watcher.removeAllListeners('data');
    watcher.removeAllListeners('connected');
    watcher.removeAllListeners('disconnected');
    // etcd3 emits 'error' on server cancellation; without a listener it would crash the process.
    watcher.removeAllListeners('error');
    watcher.on('error', () => {});
    if (attempt.canceledByServer) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.source.callTimeoutMs);
      timer.unref();
    });
    await Promise.race([watcher.cancel().catch(() => {}), timeout]);
    clearTimeout(timer);
  }
}
