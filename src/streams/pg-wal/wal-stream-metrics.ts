// Per-stream metrics of pg-wal streams: at the source the sent and
// durable-remote LSN, the lag behind the primary and the ratio on the wire;
// at a destination the durable (spooled) LSN, the LSN the local standby
// replayed (from its feedback on the walsender endpoint) and the replay lag.
// Sampled on a timer into gauges on the agent's registry and into a snapshot
// for /status, so neither path does I/O.

import { Counter, Gauge } from 'prom-client';
import type { Metrics } from '../../agent/metrics.ts';
import { formatLsn } from './lsn.ts';
import { spoolStateOf } from './wal-spool.ts';
import type { WalSource, WalSourceFailure } from './wal-source.ts';
import type { StandbyStatus } from './walsender-server.ts';

/** How often positions are sampled, ms (also the resolution of the lag in seconds). */
export const WAL_METRICS_INTERVAL_MS = 250;
/** Most spool-advance samples kept per destination for the replay lag in seconds. */
const MAX_ADVANCE_SAMPLES = 4096;

/** What /status shows for one pg-wal stream on this agent. */
export interface PgWalStreamStatus {
  streamId: string;
  /** source: this agent streams from the primary; destination: it spools and serves a standby. */
  role: 'source' | 'destination';
  /** source: the destination region this position is for (each has its own slot). */
  destination?: string;
  /** source: the last PostgreSQL error since streaming last worked (null while streaming). */
  error?: WalSourceFailure | null;
  /** source: end of WAL handed to the link. */
  sentLsn?: string;
  /** source: what the destination acknowledged durable; destination: what the spool holds durably. */
  durableLsn: string;
  /** destination: what the local standby reported replayed. */
  replayedLsn?: string;
  /** source: primary's WAL end minus durable-remote; destination: durable minus replayed. */
  lagBytes: number;
  /** source: age of the oldest undurable WAL; destination: how long replay has been behind the spool. */
  lagSeconds: number;
  /** source: plaintext bytes acknowledged / bytes written to the link's carriers (null before any). */
  wireRatio?: number | null;
  /** destination: standbys streaming from the walsender endpoint now. */
  standbys?: number;
}

interface SourceWatch {
  streamId: string;
  destRegion: string;
  source: WalSource;
}

interface DestinationWatch {
  streamId: string;
  spoolDir: string;
  standbys: Map<unknown, StandbyStatus>;
  durableLsn: number;
  replayedLsn: number;
  /** When the spool first reached each durable end (ascending LSN). */
  advances: Array<{ lsn: number; atMs: number }>;
}

/** Samples pg-wal positions into gauges and a status snapshot. */
export class PgWalMetrics {
  readonly #metrics: Metrics;
  readonly #sources: SourceWatch[] = [];
  readonly #destinations: DestinationWatch[] = [];
  #snapshot: PgWalStreamStatus[] = [];
  #timer: NodeJS.Timeout | undefined;
  #sampling = false;
  readonly #sentLsn: Gauge;
  readonly #durableLsn: Gauge;
  readonly #replayedLsn: Gauge;
  readonly #lagBytes: Gauge;
  readonly #lagSeconds: Gauge;
  readonly #wireRatio: Gauge;
  readonly #sourceErrors: Counter;
  readonly #sourceFailing: Gauge;

  constructor(metrics: Metrics) {
    this.#metrics = metrics;
    const registers = [metrics.registry];
    this.#sentLsn = new Gauge({ name: 'dwcp_pg_wal_sent_lsn', help: 'pg-wal source: end of WAL handed to the link (LSN as a number), per destination', labelNames: ['stream', 'destination'], registers });
    this.#durableLsn = new Gauge({ name: 'dwcp_pg_wal_durable_lsn', help: "pg-wal: WAL end durable at the destination (role=source: acknowledged, what the destination's slot is told; role=destination: spooled)", labelNames: ['stream', 'role', 'destination'], registers });
    this.#replayedLsn = new Gauge({ name: 'dwcp_pg_wal_replayed_lsn', help: 'pg-wal destination: WAL end the local standby reported replayed', labelNames: ['stream'], registers });
    this.#lagBytes = new Gauge({ name: 'dwcp_pg_wal_lag_bytes', help: 'pg-wal: role=source: primary WAL end minus durable-remote; role=destination: spooled minus replayed', labelNames: ['stream', 'role', 'destination'], registers });
    this.#lagSeconds = new Gauge({ name: 'dwcp_pg_wal_lag_seconds', help: 'pg-wal: role=source: age of the oldest WAL not yet durable remotely; role=destination: time replay has been behind the spool', labelNames: ['stream', 'role', 'destination'], registers });
    this.#wireRatio = new Gauge({ name: 'dwcp_pg_wal_wire_ratio', help: 'pg-wal source: plaintext bytes acknowledged per byte written to the carriers of the link', labelNames: ['stream', 'destination'], registers });
    this.#sourceErrors = new Counter({ name: 'dwcp_pg_wal_source_errors_total', help: 'pg-wal source: errors of the replication connection to PostgreSQL, by SQLSTATE (code, "" for client-side) and class (transient: reconnects; failing: needs an operator, retried with backoff)', labelNames: ['stream', 'destination', 'code', 'class'], registers });
    this.#sourceFailing = new Gauge({ name: 'dwcp_pg_wal_source_failing', help: 'pg-wal source: 1 while the replication connection fails with a non-transient error (authentication, privilege, WAL removed, wal_level, TLS), 0 while it streams or reconnects', labelNames: ['stream', 'destination'], registers });
  }

  /** Follow the source of a stream this agent sends to destRegion (its own slot and link). */
  watchSource(streamId: string, destRegion: string, source: WalSource): void {
    this.#sources.push({ streamId, source, destRegion });
    this.#start();
  }

  /** Count an error of a source's replication connection. */
  sourceError(streamId: string, destRegion: string, failure: WalSourceFailure): void {
    this.#sourceErrors.inc({ stream: streamId, destination: destRegion, code: failure.code, class: failure.class });
    this.#sourceFailing.set({ stream: streamId, destination: destRegion }, failure.class === 'failing' ? 1 : 0);
  }

  /** Follow a stream this agent receives: its spool and the walsender endpoint's standbys. */
  watchDestination(streamId: string, spoolDir: string, standbys: Map<unknown, StandbyStatus>): void {
    this.#destinations.push({ streamId, spoolDir, standbys, durableLsn: 0, replayedLsn: 0, advances: [] });
    this.#start();
  }

  /** Stop following a stream (removed from the config while the agent runs). */
  forget(streamId: string): void {
    for (const list of [this.#sources, this.#destinations] as Array<Array<{ streamId: string }>>) {
      for (let i = list.length - 1; i >= 0; i--) if (list[i].streamId === streamId) list.splice(i, 1);
    }
  }

  /** The last sample, for /status. */
  snapshot(): PgWalStreamStatus[] {
    return this.#snapshot;
  }

  /** Take a sample now (also run by the timer). */
  async sample(nowMs: number = Date.now()): Promise<PgWalStreamStatus[]> {
    const out: PgWalStreamStatus[] = [];
    // Source side: positions straight from the WalSource, ratio from the link counters.
    const goodput = await this.#sumBy(this.#metrics.goodputBytes, ['stream', 'destination']);
    const wire = await this.#sumBy(this.#metrics.wireBytesSent, ['peer']);
    for (const w of this.#sources) {
      const p = w.source.progress(nowMs);
      const labels = { stream: w.streamId, destination: w.destRegion };
      const wireBytes = wire.get(w.destRegion) ?? 0;
      const raw = goodput.get(`${w.streamId}\0${w.destRegion}`) ?? 0;
      const ratio = wireBytes > 0 && raw > 0 ? raw / wireBytes : null;
      const lagBytes = Math.max(0, p.serverWalEnd - p.durableLsn);
      this.#sentLsn.set(labels, p.sentLsn);
      this.#durableLsn.set({ ...labels, role: 'source' }, p.durableLsn);
      this.#lagBytes.set({ ...labels, role: 'source' }, lagBytes);
      this.#lagSeconds.set({ ...labels, role: 'source' }, p.oldestUndurableMs / 1000);
      this.#sourceFailing.set(labels, p.lastError?.class === 'failing' ? 1 : 0);
      if (ratio !== null) this.#wireRatio.set(labels, ratio);
      out.push({ streamId: w.streamId, role: 'source', destination: w.destRegion, error: p.lastError, sentLsn: formatLsn(p.sentLsn), durableLsn: formatLsn(p.durableLsn), lagBytes, lagSeconds: p.oldestUndurableMs / 1000, wireRatio: ratio === null ? null : Number(ratio.toFixed(3)) });
    }
    // Destination side: the spool's durable end and the standbys' feedback.
    for (const w of this.#destinations) {
      const state = await spoolStateOf(w.spoolDir).catch(() => undefined);
      if (state && state.flushLsn > w.durableLsn) {
        w.durableLsn = state.flushLsn;
        w.advances.push({ lsn: state.flushLsn, atMs: nowMs });
        if (w.advances.length > MAX_ADVANCE_SAMPLES) w.advances.splice(0, w.advances.length - MAX_ADVANCE_SAMPLES);
      }
      for (const s of w.standbys.values()) w.replayedLsn = Math.max(w.replayedLsn, s.applyLsn);
      while (w.advances.length > 0 && w.advances[0].lsn <= w.replayedLsn) w.advances.shift();
      const lagBytes = Math.max(0, w.durableLsn - w.replayedLsn);
      const lagSeconds = lagBytes > 0 && w.advances.length > 0 ? (nowMs - w.advances[0].atMs) / 1000 : 0;
      this.#durableLsn.set({ stream: w.streamId, role: 'destination' }, w.durableLsn);
      this.#replayedLsn.set({ stream: w.streamId }, w.replayedLsn);
      this.#lagBytes.set({ stream: w.streamId, role: 'destination' }, lagBytes);
      this.#lagSeconds.set({ stream: w.streamId, role: 'destination' }, lagSeconds);
      out.push({ streamId: w.streamId, role: 'destination', durableLsn: formatLsn(w.durableLsn), replayedLsn: formatLsn(w.replayedLsn), lagBytes, lagSeconds, standbys: w.standbys.size });
    }
    this.#snapshot = out;
    return out;
  }

  /** Stop sampling. */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      if (this.#sampling) return;
      this.#sampling = true;
      this.sample().catch(() => undefined).finally(() => (this.#sampling = false));
    }, WAL_METRICS_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Sum of a counter's values grouped by labels (key: their values joined by NUL). */
  async #sumBy(metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, string | number> }> }> }, labels: string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const v of (await metric.get()).values) {
      const key = labels.map((l) => String(v.labels[l] ?? '')).join('\0');
      out.set(key, (out.get(key) ?? 0) + v.value);
    }
    return out;
  }
}
