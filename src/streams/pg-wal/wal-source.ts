// The sending end of a pg-wal stream: a physical replication connection with
// a slot. WAL flows primary -> XLogData -> batched WalRecord.data records;
// the standby status update reports as written/flushed/applied only what
// the destination acknowledged durable, so the slot keeps WAL until then.

import { setTimeout as sleep } from 'node:timers/promises';
import { walRecordCodec, walResumeCodec, type WalResume } from '../../wire/messages.ts';
import type { ResumePoint, Source, SourceRecord, StreamKind } from '../stream.ts';
import { formatLsn, parseLsn, pgTimestampMicros, segmentStart } from './lsn.ts';
import { BodyReader, BodyWriter } from './pg-protocol.ts';
import { PgError, ReplicationClient, SslModeError, type ReplicationConnectionOptions, type ResultSet } from './replication-client.ts';

/**
 * Default largest WalRecord.data payload, bytes: four of the primary's
 * 128 KiB XLogData messages. A frame costs fixed work at both ends (a
 * worker job, digest and chain, framing, a window slot, an ack, an apply),
 * so a catch-up goes in 512 KiB frames; at the live edge a batch takes only
 * what already arrived, so it goes out as soon as before.
 */
const DEFAULT_BATCH_BYTES = 512 * 1024;
/** Default interval of unsolicited standby status updates, ms. */
const DEFAULT_STATUS_INTERVAL_MS = 10_000;
/** First reconnect delay after a transient error, ms (doubles up to the max). */
const INITIAL_BACKOFF_MS = 200;
/** Longest delay between reconnects after transient errors, ms. */
const MAX_BACKOFF_MS = 5_000;
/** First retry delay after an error that needs an operator (auth, privilege, slot, config), ms. */
const INITIAL_FAILURE_BACKOFF_MS = 1_000;
/** Longest delay between retries after such errors, ms (the cause may pass: a role granted, a password fixed). */
const MAX_FAILURE_BACKOFF_MS = 60_000;

/** Options of a WalSource. */
export interface WalSourceOptions {
  streamId: string;
  /** Primary (or cascading standby) to stream from. */
  connection: ReplicationConnectionOptions;
  /** Physical replication slot; created with RESERVE_WAL when absent. */
  slot: string;
  /** Largest payload of one record, bytes (default 512 KiB). */
  batchBytes?: number;
  /** Interval of standby status updates, ms (default 10 s). */
  statusIntervalMs?: number;
  /** Called before each reconnect with the error that caused it and how it was classified. */
  onReconnect?: (err: Error, failure: WalSourceFailure) => void;
}

/**
 * Why the source is not streaming. transient: the connection dropped or
 * the server is restarting, reconnects as usual. failing: the server
 * refused (authentication, privilege, WAL removed, wal_level, cluster,
 * TLS...): retried with a longer backoff until an operator fixes it.
 */
export interface WalSourceFailure {
  class: 'transient' | 'failing';
  /** SQLSTATE of the server's error, or '' for a client-side error. */
  code: string;
  message: string;
  /** When it happened (ms since the epoch). */
  atMs: number;
}

/** Positions of a WalSource, for metrics and /status. */
export interface WalSourceProgress {
  /** End of the WAL handed to the link. */
  sentLsn: number;
  /** End of the WAL the destination acknowledged durable (what the slot is told). */
  durableLsn: number;
  /** The primary's WAL end as it last reported it. */
  serverWalEnd: number;
  /** Age of the oldest WAL handed to the link and not yet durable, ms (0 when none). */
  oldestUndurableMs: number;
  /** The last error since streaming last worked (null while streaming). */
  lastError: WalSourceFailure | null;
}

/** Raised when source and destination disagree on what cluster this is. */
export class WalSourceError extends Error {
  override name = 'WalSourceError';
}

/** Sends one PostgreSQL cluster's WAL. */
export class WalSource implements Source {
  readonly streamId: string;
  readonly kind: StreamKind = 'pg-wal';
  #options: WalSourceOptions;
  #client: ReplicationClient | undefined;
  #durableLsn = 0;
  #statusTimer: NodeJS.Timeout | undefined;
  /** The server's CopyDone arrived behind the last batch. */
  #pendingDone = false;
  #sentLsn = 0;
  #serverWalEnd = 0;
  /** Batches handed to the link and not yet durable: end LSN and when they arrived. */
  #undurable: Array<{ end: number; atMs: number }> = [];
  #lastError: WalSourceFailure | null = null;
  /** Next retry delay per failure class, ms. */
  #backoff = { transient: INITIAL_BACKOFF_MS, failing: INITIAL_FAILURE_BACKOFF_MS };

  constructor(options: WalSourceOptions) {
    if (!options.slot || !/^[a-z0-9_]+$/.test(options.slot)) {
      throw new Error(`pg-wal source: slot must be lower-case letters, digits, underscores, got "${options.slot}"`);
    }
    this.streamId = options.streamId;
    this.#options = options;
  }

  /** Highest LSN the destination acknowledged durable (what the slot is told). */
  get durableLsn(): number {
    return this.#durableLsn;
  }

  /** Sent, durable and primary positions, and the age of the oldest undurable WAL. */
  progress(nowMs: number = Date.now()): WalSourceProgress {
    const oldest = this.#undurable[0];
    return {
      sentLsn: this.#sentLsn,
      durableLsn: this.#durableLsn,
      serverWalEnd: Math.max(this.#serverWalEnd, this.#sentLsn),
      oldestUndurableMs: oldest ? nowMs - oldest.atMs : 0,
      lastError: this.#lastError,
    };
  }

  /**
   * WAL records after resume until signal aborts. Every error is retried:
   * transient ones (connection lost, server restarting) after a short
   * backoff, the others (see WalSourceFailure) after a longer one, and each
   * is kept in progress().lastError until streaming works again.
   */
  async *records(resume: ResumePoint, signal: AbortSignal): AsyncIterable<SourceRecord> {
    const state: WalResume | undefined = resume.state.length > 0 ? walResumeCodec.decode(resume.state) : undefined;
    // Where to continue: the destination's flush LSN, later the end of what we yielded.
    let position = state ? { lsn: state.flushLsn, timeline: state.timeline } : undefined;
    this.#durableLsn = Math.max(this.#durableLsn, state?.flushLsn ?? 0);
    this.#sentLsn = this.#durableLsn;
    this.#undurable = [];
    this.#backoff = { transient: INITIAL_BACKOFF_MS, failing: INITIAL_FAILURE_BACKOFF_MS };
    const abort = (): void => this.#client?.close();
    signal.addEventListener('abort', abort);
    this.#startStatusTimer();
    try {
      while (!signal.aborted) {
        try {
          for await (const out of this.#session(state, position, signal)) {
            position = out.next;
            yield out.record;
          }
          return;
        } catch (err) {
          if (signal.aborted) return;
          const failure = classify(err as Error);
          this.#lastError = failure;
          this.#options.onReconnect?.(err as Error, failure);
          const delay = this.#nextDelay(failure);
          await sleep(delay, undefined, { signal }).catch(() => undefined);
        } finally {
          this.#client?.close();
          this.#client = undefined;
        }
      }
    } finally {
      signal.removeEventListener('abort', abort);
      clearInterval(this.#statusTimer);
      this.#statusTimer = undefined;
    }
  }

  /** Streaming works again: the error is over, and the next one starts from the shortest backoff. */
  #resetBackoff(): void {
    this.#backoff = { transient: INITIAL_BACKOFF_MS, failing: INITIAL_FAILURE_BACKOFF_MS };
    this.#lastError = null;
  }

  /** Delay before the next attempt after failure; doubles the backoff of its class. */
  #nextDelay(failure: WalSourceFailure): number {
    const delay = this.#backoff[failure.class];
    const max = failure.class === 'transient' ? MAX_BACKOFF_MS : MAX_FAILURE_BACKOFF_MS;
    this.#backoff[failure.class] = Math.min(delay * 2, max);
    return delay;
  }

  /** One connection's worth of records; throws on connection loss. */
  async *#session(
    state: WalResume | undefined,
    position: { lsn: number; timeline: number } | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<{ record: SourceRecord; next: { lsn: number; timeline: number } }> {
    this.#pendingDone = false;
    const client = await ReplicationClient.connect(this.#options.connection);
    this.#client = client;
    if (signal.aborted) return;

    // Identify the cluster and check it is the one the destination holds.
    const ident = row(await client.simpleQuery('IDENTIFY_SYSTEM'));
    const systemId = text(ident[0]);
    const serverTimeline = Number(text(ident[1]));
    if (state && state.systemId && state.systemId !== systemId) {
      throw new WalSourceError(`pg-wal source: destination holds system ${state.systemId}, primary is ${systemId}`);
    }
    const walSegmentSize = parseSize(text(row(await client.simpleQuery('SHOW wal_segment_size'))[0]));
    const serverVersion = Number(text(row(await client.simpleQuery('SHOW server_version_num'))[0]));

    // Find or create the slot; a fresh stream starts at the slot's restart segment.
    const slot = this.#options.slot;
    let slotInfo = row(await client.simpleQuery(`READ_REPLICATION_SLOT ${slot}`));
    if (slotInfo[0] === null) {
      await client.simpleQuery(`CREATE_REPLICATION_SLOT ${slot} PHYSICAL RESERVE_WAL`);
      slotInfo = row(await client.simpleQuery(`READ_REPLICATION_SLOT ${slot}`));
    }
    if (!position) {
      const restart = slotInfo[1] ? parseLsn(text(slotInfo[1])) : parseLsn(text(ident[2]));
      const tli = slotInfo[2] ? Number(text(slotInfo[2])) : serverTimeline;
      position = { lsn: segmentStart(restart, walSegmentSize), timeline: tli };
    }
    let { lsn, timeline } = position;

    yield {
      record: {
        meta: walRecordCodec.encode({ system: { systemId, timeline: serverTimeline, walSegmentSize, serverVersion } }),
        data: new Uint8Array(0),
      },
      next: { lsn, timeline },
    };

    // Stream timeline after timeline until the connection ends.
    while (!signal.aborted) {
      if (timeline > 1) {
        const hist = row(await client.simpleQuery(`TIMELINE_HISTORY ${timeline}`));
        yield {
          record: {
            meta: walRecordCodec.encode({ history: { timeline, fileName: text(hist[0]) } }),
            data: hist[1] ?? Buffer.alloc(0),
          },
          next: { lsn, timeline },
        };
      }
      await client.startCopyBoth(`START_REPLICATION SLOT ${slot} PHYSICAL ${formatLsn(lsn)} TIMELINE ${timeline}`);
      this.#resetBackoff();
      await this.#sendStatus(false);
      for (;;) {
        const batch = await this.#readBatch(client, timeline);
        if (batch === 'done') break;
        lsn = batch.end;
        const end = batch.end;
        this.#sentLsn = end;
        this.#undurable.push({ end, atMs: batch.receivedAtMs });
        yield {
          record: {
            meta: walRecordCodec.encode({ data: batch.data }),
            data: batch.bytes,
            onDurable: () => this.#onDurable(end),
          },
          next: { lsn, timeline },
        };
      }
      // The server ended this timeline: the next one and where it starts follow.
      const sets = await client.endCopy();
      const next = sets.find((s) => s.columns.length >= 2)?.rows[0];
      if (!next) return; // server ended streaming without a next timeline
      timeline = Number(text(next[0]));
      lsn = parseLsn(text(next[1]));
    }
  }

  /** Read XLogData messages into one batch, answering keepalives on the way. */
  async #readBatch(
    client: ReplicationClient,
    timeline: number,
  ): Promise<{ data: { timeline: number; startLsn: number; serverWalEnd: number; serverTime: number }; bytes: Buffer; end: number; receivedAtMs: number } | 'done'> {
    const limit = this.#options.batchBytes ?? DEFAULT_BATCH_BYTES;
    const parts: Buffer[] = [];
    let size = 0;
    let start = -1;
    let end = -1;
    let serverWalEnd = 0;
    let serverTime = 0;
    let receivedAtMs = 0;
    if (this.#pendingDone) {
      this.#pendingDone = false;
      return 'done';
    }
    for (;;) {
      // Wait for the first message; then take only what already arrived.
      const event = parts.length === 0 ? await client.readCopy() : client.tryReadCopy();
      if (!event) break;
      if (event.kind === 'done') {
        if (parts.length === 0) return 'done';
        this.#pendingDone = true;
        break;
      }
      const r = new BodyReader(event.payload);
      const kind = String.fromCharCode(r.byte());
      if (kind === 'k') {
        // Primary keepalive: walEnd, time, replyRequested.
        this.#serverWalEnd = Math.max(this.#serverWalEnd, r.uint64());
        r.uint64();
        if (r.byte() === 1) await this.#sendStatus(false);
        if (parts.length > 0) break;
        continue;
      }
      if (kind !== 'w') throw new Error(`unexpected copy message "${kind}"`);
      const dataStart = r.uint64();
      serverWalEnd = r.uint64();
      serverTime = r.uint64();
      const bytes = r.rest();
      this.#serverWalEnd = Math.max(this.#serverWalEnd, serverWalEnd);
      if (start < 0) {
        start = dataStart;
        receivedAtMs = Date.now();
      } else if (dataStart !== end) throw new Error(`non-contiguous XLogData: ${formatLsn(dataStart)} after ${formatLsn(end)}`);
      parts.push(bytes);
      size += bytes.length;
      end = dataStart + bytes.length;
      if (size >= limit) break;
    }
    return {
      data: { timeline, startLsn: start, serverWalEnd, serverTime },
      bytes: parts.length === 1 ? parts[0] : Buffer.concat(parts),
      end,
      receivedAtMs,
    };
  }

  #onDurable(end: number): void {
    if (end <= this.#durableLsn) return;
    this.#durableLsn = end;
    while (this.#undurable.length > 0 && this.#undurable[0].end <= end) this.#undurable.shift();
    void this.#sendStatus(false);
  }

  /** Standby status update: write = flush = apply = durable LSN. */
  async #sendStatus(replyRequested: boolean): Promise<void> {
    const client = this.#client;
    if (!client || client.closed) return;
    const lsn = this.#durableLsn;
    const msg = new BodyWriter()
      .byte(0x72) // 'r'
      .uint64(lsn)
      .uint64(lsn)
      .uint64(lsn)
      .uint64(pgTimestampMicros())
      .byte(replyRequested ? 1 : 0)
      .build();
    await client.sendCopyData(msg).catch(() => undefined);
  }

  #startStatusTimer(): void {
    clearInterval(this.#statusTimer);
    const interval = this.#options.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    this.#statusTimer = setInterval(() => void this.#sendStatus(false), interval);
    this.#statusTimer.unref();
  }

  /** Close the connection. */
  async close(): Promise<void> {
    clearInterval(this.#statusTimer);
    this.#client?.close();
    this.#client = undefined;
  }
}

/**
 * Transient: the server shutting down or not yet accepting (57P01
 * admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), a
 * connection error (08xxx), too many connections (53300), the slot still
 * held by the previous sender's connection after a failover (55006
 * object_in_use: it ends within the primary's wal_sender_timeout), or a
 * socket error without SQLSTATE (refused, reset, timed out). Everything
 * else is a refusal an operator must see: 28P01/28000 authentication,
 * 42501 no REPLICATION privilege, 58P01 WAL already removed, 55000
 * wal_level too low, a TLS or cluster-identity mismatch.
 */
function classify(err: Error): WalSourceFailure {
  const atMs = Date.now();
  if (err instanceof PgError) {
    const transient = err.code.startsWith('57P') || err.code.startsWith('08') || err.code === '53300' || err.code === '55006';
    return { class: transient ? 'transient' : 'failing', code: err.code, message: err.message, atMs };
  }
  const failing = err instanceof WalSourceError || err instanceof SslModeError || /SCRAM|authentication/.test(err.message);
  return { class: failing ? 'failing' : 'transient', code: '', message: err.message, atMs };
}

function row(sets: ResultSet[]): (Buffer | null)[] {
  const r = sets.at(-1)?.rows[0];
  if (!r) throw new Error('expected one row, got none');
  return r;
}

function text(b: Buffer | null | undefined): string {
  if (!b) throw new Error('unexpected NULL');
  return b.toString('utf8');
}

/** Parse "16MB" / "1GB" / "1024kB" as PostgreSQL prints sizes. */
function parseSize(s: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB)?$/.exec(s.trim());
  if (!m) throw new Error(`unexpected size "${s}"`);
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] ?? 'B'] ?? 1;
  return Number(m[1]) * unit;
}
