// The embedded consensus store: one process, one file, for `demo` and
// single-node use (never HA). State lives in memory; every change is first
// appended to a log file and fsynced, and only then applied and acknowledged.
//
// Log format: a sequence of records, each
//   [u32 BE payload length][u32 BE crc32 of payload][payload: UTF-8 JSON]
// Replay stops at the first record that is short, too long, fails its CRC or
// does not parse; the file is cut back to the last good record, but never
// silently: the dropped tail is first copied to `<file>.corrupt-<time>` and
// the cut is logged with the offset, the bytes and the records dropped (a
// warning for a torn last record after a crash, an error for a bad record
// or more behind it: that is lost history). Compaction writes one snapshot
// record to a temp file, fsyncs it, renames it over the log and fsyncs the
// directory. A `<file>.lock` with the owner's pid keeps a second process off
// the file (a lock whose process is gone is taken over).

import { open, readFile, rename, rm, mkdir, writeFile, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import path from 'node:path';
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
import { defaultStoreLogger, type StoreLogger } from './store-logger.ts';

/** Bytes before each record's payload: length and CRC32, both u32 big-endian. */
const RECORD_HEADER_BYTES = 8;
/** A length above this is treated as garbage, not a record. */
const MAX_RECORD_BYTES = 256 * 1024 * 1024;
/** The log is never compacted below this size. */
const COMPACT_MIN_LOG_BYTES = 4 * 1024 * 1024;
/** Compact when the log has grown to this many times its size after the last compaction. */
const COMPACT_GROWTH_FACTOR = 4;
/** Copies of dropped log tails made within one millisecond before giving up on a free name. */
const MAX_COPY_SUFFIX = 100;
/** Lease keepalive ticks per TTL. */
const LEASE_TICKS_PER_TTL = 3;

/** Paths opened in this process: two stores on one file would corrupt it. */
const openPaths = new Set<string>();

/** One stored key as it is written in a record (value in base64). */
interface StoredKv {
  key: string;
  value: string;
  modRevision: number;
  lease: number;
}

/** What the log holds: a write, a delete, or a full snapshot. */
type LogRecord =
  | { t: 'put'; rev: number; key: string; value: string; lease: number }
  | { t: 'del'; rev: number; key: string }
  | { t: 'snap'; rev: number; kvs: StoredKv[] };

/** A change to apply, evaluated in queue order at commit time. */
type Mutation =
  | { kind: 'cas'; key: string; expected: number; value: Buffer; lease: number }
  | { kind: 'cad'; key: string; expected: number }
  | { kind: 'revoke'; leaseId: number }
  | { kind: 'compact' };

/** A queued mutation and the caller waiting for it. */
interface Pending {
  mutation: Mutation;
  resolve: (result: CasResult) => void;
  reject: (err: Error) => void;
}

/** A registered prefix watch. */
interface WatchEntry {
  prefix: string;
  onEvent: (event: WatchEvent) => void;
  onError: ((err: Error) => void) | undefined;
}

/** Encode one log record with its length and CRC header. */
function encodeRecord(record: LogRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(record), 'utf8');
  const header = Buffer.alloc(RECORD_HEADER_BYTES);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([header, payload]);
}

/** Options of EmbeddedStore.open. */
export interface EmbeddedStoreOptions {
  /** Where repairs of the log (a dropped tail) are reported; default JSON on stderr. */
  logger?: StoreLogger;
}

/** Why decoding stopped when the file ends inside a record's header. */
const INCOMPLETE_HEADER = 'incomplete record header';
/** Why decoding stopped when a record's payload runs past the end of the file. */
const INCOMPLETE_RECORD = 'record runs past the end of the file';

/** What decoding a log found: the valid records, where they end, and why decoding stopped there. */
interface DecodedLog {
  records: LogRecord[];
  goodBytes: number;
  /** Why the record at goodBytes was refused; undefined when the whole file decoded. */
  stop?: string;
}

/** Decode records from the front of data; goodBytes is where the valid prefix ends. */
function decodeRecords(data: Buffer): DecodedLog {
  const records: LogRecord[] = [];
  let offset = 0;
  while (offset < data.length) {
    // Read the header; anything inconsistent ends the valid prefix.
    if (offset + RECORD_HEADER_BYTES > data.length) return { records, goodBytes: offset, stop: INCOMPLETE_HEADER };
    const length = data.readUInt32BE(offset);
    const crc = data.readUInt32BE(offset + 4);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (length === 0 || length > MAX_RECORD_BYTES) return { records, goodBytes: offset, stop: `implausible record length ${length}` };
    if (end > data.length) return { records, goodBytes: offset, stop: INCOMPLETE_RECORD };
    const payload = data.subarray(offset + RECORD_HEADER_BYTES, end);
    if (crc32(payload) !== crc) return { records, goodBytes: offset, stop: 'crc mismatch' };
    let record: LogRecord;
    try {
      record = JSON.parse(payload.toString('utf8')) as LogRecord;
    } catch {
      return { records, goodBytes: offset, stop: 'payload is not JSON' };
    }
    if (typeof record !== 'object' || record === null || typeof record.rev !== 'number') return { records, goodBytes: offset, stop: 'payload is not a log record' };
    records.push(record);
    offset = end;
  }
  return { records, goodBytes: offset };
}

/**
 * How many records a dropped tail holds, counted by their length headers
 * (CRCs aside): the refused one and every one framed after it. A tail whose
 * headers stop making sense counts the framed records before that point
 * plus one for the rest.
 */
function countFramedRecords(tail: Buffer): number {
  let count = 0;
  let offset = 0;
  while (offset < tail.length) {
    count += 1;
    if (offset + RECORD_HEADER_BYTES > tail.length) break;
    const length = tail.readUInt32BE(offset);
    const end = offset + RECORD_HEADER_BYTES + length;
    if (length === 0 || length > MAX_RECORD_BYTES || end > tail.length) break;
    offset = end;
  }
  return count;
}

/**
 * Keep a dropped tail beside the log before it is cut off: written to
 * `<file>.corrupt-<UTC time>`, fsynced with its directory. Returns its path.
 */
async function saveDroppedTail(file: string, tail: Buffer): Promise<string> {
  const stamp = new Date().toISOString().replaceAll(':', '-');
  for (let n = 0; ; n++) {
    // Never overwrite an earlier copy (two repairs within one millisecond get a suffix).
    const copy = n === 0 ? `${file}.corrupt-${stamp}` : `${file}.corrupt-${stamp}-${n}`;
    try {
      await writeFile(copy, tail, { flag: 'wx', flush: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && n < MAX_COPY_SUFFIX) continue;
      throw new Error(`keep dropped log tail in ${copy}: ${(err as Error).message}`, { cause: err });
    }
    await syncDirectory(path.dirname(file));
    return copy;
  }
}

/** fsync a directory so a rename or create in it is durable. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** True when a process with this pid exists. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Take the lock file beside the log; refuse when another live process holds it. */
async function acquireLock(lockPath: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // Someone holds it: refuse if alive, else the lock is stale and is removed.
    const pid = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new Error(`in use by pid ${pid} (lock ${lockPath})`);
    }
    await rm(lockPath, { force: true });
  }
  throw new Error(`could not take lock ${lockPath}`);
}

/** Validate a revision argument (a non-negative safe integer). */
function checkRevision(op: string, key: string, revision: number): void {
  if (!Number.isSafeInteger(revision) || revision < 0) {
    throw new Error(`${op} ${key}: expectedModRevision must be a non-negative integer, got ${revision}`);
  }
}

/** A single-process, file-backed ConsensusStore (crash-safe append-only log). */
export class EmbeddedStore implements ConsensusStore {
  private readonly filePath: string;
  private file: FileHandle;
  private readonly kvs: Map<string, KeyValue>;
  private revision: number;
  private logBytes: number;
  private compactedBytes: number;
  private readonly pending: Pending[] = [];
  private flushing = false;
  private broken: Error | undefined;
  private closed = false;
  private readonly watchers = new Set<WatchEntry>();
  private readonly leases = new Map<number, EmbeddedLease>();
  private nextLeaseId = 1;
  private readonly logger: StoreLogger;

  private constructor(filePath: string, file: FileHandle, kvs: Map<string, KeyValue>, revision: number, logBytes: number, logger: StoreLogger) {
    this.filePath = filePath;
    this.logger = logger;
    this.file = file;
    this.kvs = kvs;
    this.revision = revision;
    this.logBytes = logBytes;
    this.compactedBytes = logBytes;
  }

  /**
   * Open (or create) the store at filePath, replaying its log; keys of leases
   * from a previous process are dropped. A log that does not decode to its end
   * is cut after its last good record, once the dropped tail is saved and logged.
   */
  static async open(filePath: string, options: EmbeddedStoreOptions = {}): Promise<EmbeddedStore> {
    const logger = options.logger ?? defaultStoreLogger();
    const abs = path.resolve(filePath);
    if (openPaths.has(abs)) throw new Error(`open embedded store ${abs}: already open in this process`);
    openPaths.add(abs);
    let locked = false;
    try {
      // Lock out other processes. A leftover compaction temp file was never renamed: the log is authoritative.
      await mkdir(path.dirname(abs), { recursive: true });
      await acquireLock(`${abs}.lock`);
      locked = true;
      await rm(`${abs}.compact`, { force: true });

      // Replay the log; a tail that does not decode is saved, logged, then cut off.
      const file = await open(abs, 'a+');
      const data = await file.readFile();
      const { records, goodBytes, stop } = decodeRecords(data);
      if (goodBytes < data.length) {
        const tail = data.subarray(goodBytes);
        const copy = await saveDroppedTail(abs, tail);
        const droppedRecords = countFramedRecords(tail);
        const fields = { file: abs, offset: goodBytes, droppedBytes: tail.length, droppedRecords, reason: stop, copy, keptRecords: records.length };
        // One incomplete last record is what a crash mid-append leaves (never acknowledged); anything more is lost history.
        const torn = droppedRecords === 1 && (stop === INCOMPLETE_HEADER || stop === INCOMPLETE_RECORD);
        if (torn) logger.warn(fields, `embedded store log: dropping a torn last record (${tail.length} bytes at offset ${goodBytes}, ${stop}); copy kept in ${copy}`);
        else logger.error(fields, `embedded store log: bad record at offset ${goodBytes} (${stop}): dropping ${tail.length} bytes, about ${droppedRecords} records, from there to the end; copy kept in ${copy}`);
        await file.truncate(goodBytes);
        await file.sync();
      }
      await syncDirectory(path.dirname(abs));
      const { kvs, revision } = replay(records);
      const store = new EmbeddedStore(abs, file, kvs, revision, goodBytes, logger);

      // Leases died with the process that held them: drop their keys.
      const orphaned = [...kvs.values()].filter((kv) => kv.lease !== 0).map((kv) => kv.key);
      await Promise.all(orphaned.map((key) => store.enqueue({ kind: 'cad', key, expected: 0 })));
      return store;
    } catch (err) {
      if (locked) await rm(`${abs}.lock`, { force: true });
      openPaths.delete(abs);
      throw new Error(`open embedded store ${abs}: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Read one key; undefined when absent. */
  async get(key: string): Promise<KeyValue | undefined> {
    this.checkOpen('get', key);
    const kv = this.kvs.get(key);
    return kv === undefined ? undefined : copyKv(kv);
  }

  /** All keys under a prefix, sorted by key. */
  async list(prefix: string): Promise<KeyValue[]> {
    this.checkOpen('list', prefix);
    const out: KeyValue[] = [];
    for (const kv of this.kvs.values()) {
      if (kv.key.startsWith(prefix)) out.push(copyKv(kv));
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** Write value only if the key's modRevision equals expectedModRevision (0 = must be absent). */
  async compareAndSwap(key: string, expectedModRevision: number, value: Buffer, options?: PutOptions): Promise<CasResult> {
    this.checkOpen('compare-and-swap', key);
    checkRevision('compare-and-swap', key, expectedModRevision);
    return this.enqueue({ kind: 'cas', key, expected: expectedModRevision, value: Buffer.from(value), lease: options?.lease ?? 0 });
  }

  /** Delete only if modRevision matches (0 = delete whatever is there). */
  async compareAndDelete(key: string, expectedModRevision: number): Promise<CasResult> {
    this.checkOpen('compare-and-delete', key);
    checkRevision('compare-and-delete', key, expectedModRevision);
    return this.enqueue({ kind: 'cad', key, expected: expectedModRevision });
  }

  /**
   * Deliver every change under prefix made after this call, in revision
   * order. In one process nothing is ever missed; the watch ends only when
   * closed or when the store fails (its log cannot be written), and then
   * options.onError is told.
   */
  async watchPrefix(prefix: string, onEvent: (event: WatchEvent) => void, options: WatchOptions = {}): Promise<Watcher> {
    this.checkOpen('watch', prefix);
    const entry: WatchEntry = { prefix, onEvent, onError: options.onError };
    this.watchers.add(entry);
    return {
      close: async () => {
        this.watchers.delete(entry);
      },
    };
  }

  /** Grant a lease kept alive by this process until revoked, closed, or the process stalls past the TTL. */
  async grantLease(ttlSeconds: number): Promise<Lease> {
    this.checkOpen('grant lease', '');
    if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new Error(`grant lease: ttlSeconds must be an integer >= 1, got ${ttlSeconds}`);
    }
    const lease = new EmbeddedLease(this, this.nextLeaseId++, ttlSeconds);
    this.leases.set(lease.id, lease);
    return lease;
  }

  /** Revoke all leases, wait for pending writes, stop watches and close the file. */
  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.allSettled([...this.leases.values()].map((lease) => lease.revoke()));
    this.closed = true;
    this.watchers.clear();
    await this.idle();
    await this.file.close();
    await rm(`${this.filePath}.lock`, { force: true });
    openPaths.delete(this.filePath);
  }

  /** Rewrite the log as one snapshot record (also done automatically as the log grows). */
  async compact(): Promise<void> {
    this.checkOpen('compact', '');
    await this.enqueue({ kind: 'compact' });
  }

  /** The store-wide revision (last committed write). */
  currentRevision(): number {
    return this.revision;
  }

  /** Delete the keys attached to a lease (used by EmbeddedLease on revoke or expiry). */
  async revokeLeaseKeys(leaseId: number): Promise<void> {
    this.leases.delete(leaseId);
    if (this.broken !== undefined) return;
    await this.enqueue({ kind: 'revoke', leaseId });
  }

  /** Throw when the store can no longer be used. */
  private checkOpen(op: string, key: string): void {
    if (this.closed) throw new Error(`${op} ${key}: embedded store is closed`);
    if (this.broken !== undefined) throw new Error(`${op} ${key}: embedded store failed: ${this.broken.message}`);
  }

  /** Queue a mutation; it resolves once durable. Mutations queued together share one fsync. */
  private enqueue(mutation: Mutation): Promise<CasResult> {
    return new Promise<CasResult>((resolve, reject) => {
      this.pending.push({ mutation, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // Let writes issued in the same tick join the batch (group commit).
        setImmediate(() => void this.flush());
      }
    });
  }

  /** Resolve once no write is in flight. */
  private async idle(): Promise<void> {
    while (this.flushing) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Commit queued batches until the queue is empty. */
  private async flush(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        await this.commitBatch(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Evaluate a batch against the committed state, write and fsync it, then apply and acknowledge. */
  private async commitBatch(batch: Pending[]): Promise<void> {
    if (this.broken !== undefined) {
      for (const p of batch) p.reject(new Error(`embedded store failed: ${this.broken.message}`));
      return;
    }

    // Evaluate each mutation in order; later ones see earlier ones through the overlay.
    const overlay = new Map<string, KeyValue | undefined>();
    const view = (key: string): KeyValue | undefined => (overlay.has(key) ? overlay.get(key) : this.kvs.get(key));
    let revision = this.revision;
    const records: Buffer[] = [];
    const events: WatchEvent[] = [];
    const outcomes: Array<{ p: Pending; result?: CasResult; error?: Error }> = [];
    let compactRequested = false;
    for (const p of batch) {
      const m = p.mutation;
      if (m.kind === 'compact') {
        compactRequested = true;
        outcomes.push({ p, result: { ok: true, revision } });
      } else if (m.kind === 'cas') {
        const current = view(m.key);
        if ((current?.modRevision ?? 0) !== m.expected) {
          outcomes.push({ p, result: { ok: false, revision, current: current && copyKv(current) } });
        } else if (m.lease !== 0 && this.leases.get(m.lease)?.alive !== true) {
          outcomes.push({ p, error: new Error(`compare-and-swap ${m.key}: lease ${m.lease} not found`) });
        } else {
          revision += 1;
          const kv: KeyValue = { key: m.key, value: m.value, modRevision: revision, lease: m.lease };
          overlay.set(m.key, kv);
          records.push(encodeRecord({ t: 'put', rev: revision, key: m.key, value: m.value.toString('base64'), lease: m.lease }));
          events.push({ type: 'put', kv: copyKv(kv) });
          outcomes.push({ p, result: { ok: true, revision } });
        }
      } else if (m.kind === 'cad') {
        const current = view(m.key);
        if (m.expected !== 0 && (current?.modRevision ?? 0) !== m.expected) {
          outcomes.push({ p, result: { ok: false, revision, current: current && copyKv(current) } });
        } else if (current === undefined) {
          outcomes.push({ p, result: { ok: true, revision } });
        } else {
          revision += 1;
          overlay.set(m.key, undefined);
          records.push(encodeRecord({ t: 'del', rev: revision, key: m.key }));
          events.push({ type: 'delete', kv: { key: m.key, value: Buffer.alloc(0), modRevision: revision, lease: 0 } });
          outcomes.push({ p, result: { ok: true, revision } });
        }
      } else {
        const keys = new Set([...this.kvs.keys(), ...overlay.keys()]);
        for (const key of [...keys].sort()) {
          if (view(key)?.lease !== m.leaseId) continue;
          revision += 1;
          overlay.set(key, undefined);
          records.push(encodeRecord({ t: 'del', rev: revision, key }));
          events.push({ type: 'delete', kv: { key, value: Buffer.alloc(0), modRevision: revision, lease: 0 } });
        }
        outcomes.push({ p, result: { ok: true, revision } });
      }
    }

    // Persist BEFORE applying or acknowledging anything.
    try {
      if (records.length > 0) {
        const bytes = Buffer.concat(records);
        await this.file.write(bytes);
        await this.file.sync();
        this.logBytes += bytes.length;
      }
    } catch (err) {
      this.fail(new Error(`write embedded store log: ${(err as Error).message}`, { cause: err }));
      for (const { p } of outcomes) p.reject(new Error(`write embedded store log: ${(err as Error).message}`, { cause: err }));
      return;
    }

    // Apply, notify watchers in revision order, acknowledge.
    for (const [key, kv] of overlay) {
      if (kv === undefined) this.kvs.delete(key);
      else this.kvs.set(key, kv);
    }
    this.revision = revision;
    for (const event of events) this.notify(event);
    for (const { p, result, error } of outcomes) {
      if (error !== undefined) p.reject(error);
      else p.resolve(result!);
    }

    // Compact when asked or when the log has grown enough.
    const grown = this.logBytes >= Math.max(COMPACT_MIN_LOG_BYTES, COMPACT_GROWTH_FACTOR * this.compactedBytes);
    if (compactRequested || grown) {
      try {
        await this.rewriteLog();
      } catch (err) {
        this.fail(new Error(`compact embedded store log: ${(err as Error).message}`, { cause: err }));
      }
    }
  }

  /** The store can no longer write: refuse every later call, log, and end every watch with the error. */
  private fail(err: Error): void {
    if (this.broken !== undefined) return;
    this.broken = err;
    this.logger.error({ file: this.filePath, err: err.message, watches: this.watchers.size }, 'embedded store failed; it refuses every call from now on');
    const ended = [...this.watchers];
    this.watchers.clear();
    for (const w of ended) {
      const error = new Error(`watch ${w.prefix}: embedded store failed: ${err.message}`, { cause: err });
      try {
        w.onError?.(error);
      } catch (thrown) {
        setImmediate(() => {
          throw thrown;
        });
      }
    }
  }

  /** Deliver one event to every matching watcher; a throwing callback is rethrown outside the store. */
  private notify(event: WatchEvent): void {
    for (const w of this.watchers) {
      if (!event.kv.key.startsWith(w.prefix)) continue;
      try {
        w.onEvent({ type: event.type, kv: copyKv(event.kv) });
      } catch (err) {
        setImmediate(() => {
          throw err;
        });
      }
    }
  }

  /** Write a snapshot to a temp file, fsync, rename over the log, fsync the directory, reopen for append. */
  private async rewriteLog(): Promise<void> {
    const tmp = `${this.filePath}.compact`;
    const kvs: StoredKv[] = [...this.kvs.values()].map((kv) => ({
      key: kv.key,
      value: kv.value.toString('base64'),
      modRevision: kv.modRevision,
      lease: kv.lease,
    }));
    const bytes = encodeRecord({ t: 'snap', rev: this.revision, kvs });
    const out = await open(tmp, 'w');
    try {
      await out.write(bytes);
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(tmp, this.filePath);
    await syncDirectory(path.dirname(this.filePath));
    await this.file.close();
    this.file = await open(this.filePath, 'a');
    this.logBytes = bytes.length;
    this.compactedBytes = bytes.length;
  }
}

/** Rebuild the key map and revision from log records. */
function replay(records: LogRecord[]): { kvs: Map<string, KeyValue>; revision: number } {
  let kvs = new Map<string, KeyValue>();
  let revision = 0;
  for (const r of records) {
    if (r.t === 'snap') {
      kvs = new Map(r.kvs.map((s) => [s.key, { key: s.key, value: Buffer.from(s.value, 'base64'), modRevision: s.modRevision, lease: s.lease }]));
    } else if (r.t === 'put') {
      kvs.set(r.key, { key: r.key, value: Buffer.from(r.value, 'base64'), modRevision: r.rev, lease: r.lease });
    } else if (r.t === 'del') {
      kvs.delete(r.key);
    }
    revision = Math.max(revision, r.rev);
  }
  return { kvs, revision };
}

/** A defensive copy so callers cannot change stored values. */
function copyKv(kv: KeyValue): KeyValue {
  return { key: kv.key, value: Buffer.from(kv.value), modRevision: kv.modRevision, lease: kv.lease };
}

/**
 * A lease of the embedded store. The holder is this process, so the store
 * keeps it alive with an unref()ed tick; if the event loop stalls longer than
 * the TTL (the process was paused or hung), the lease counts as expired, as
 * etcd would expire a holder that stopped sending keepalives.
 */
class EmbeddedLease implements Lease {
  readonly id: number;
  readonly ttlSeconds: number;
  readonly lost: Promise<Error>;
  alive = true;
  private readonly store: EmbeddedStore;
  private resolveLost!: (err: Error) => void;
  private timer: NodeJS.Timeout | undefined;
  private lastTickMs: number;
  private ending: Promise<void> | undefined;

  constructor(store: EmbeddedStore, id: number, ttlSeconds: number) {
    this.store = store;
    this.id = id;
    this.ttlSeconds = ttlSeconds;
    this.lost = new Promise<Error>((resolve) => {
      this.resolveLost = resolve;
    });
    this.lastTickMs = Date.now();
    this.schedule();
  }

  /** Revoke now: attached keys are deleted. Safe to call twice. */
  revoke(): Promise<void> {
    return this.end(new Error(`lease ${this.id} revoked`));
  }

  /** Schedule the next keepalive tick. */
  private schedule(): void {
    this.timer = setTimeout(() => this.tick(), (this.ttlSeconds * 1000) / LEASE_TICKS_PER_TTL);
    this.timer.unref();
  }

  /** Keep the lease alive, or expire it when the last tick is older than the TTL. */
  private tick(): void {
    const now = Date.now();
    const silentMs = now - this.lastTickMs;
    if (silentMs > this.ttlSeconds * 1000) {
      void this.end(new Error(`lease ${this.id} expired: process stalled ${silentMs} ms, past the ${this.ttlSeconds} s ttl`)).catch(() => {});
      return;
    }
    this.lastTickMs = now;
    this.schedule();
  }

  /** Stop the lease: signal loss first (the holder must stop acting), then delete its keys. */
  private end(reason: Error): Promise<void> {
    if (this.ending === undefined) {
      this.alive = false;
      clearTimeout(this.timer);
      this.resolveLost(reason);
      this.ending = this.store.revokeLeaseKeys(this.id);
    }
    return this.ending;
  }
}
