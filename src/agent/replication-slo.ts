// The replication SLO of one (stream, destination): every change (one
// acknowledged frame: an objects op, a batch of WAL) is timed from the
// moment the source handed it over to its durable acknowledgement from the
// far region. Each delay goes into the dwcp_replication_delay_seconds
// histogram and, when the stream has an `slo`, into a rolling window whose
// share of changes within the target is dwcp_slo_attainment_ratio.
// The window is pure (time is passed in), so tests need no clock.

import type { SloConfig } from '../config/config.ts';
import type { Metrics } from './metrics.ts';

/** Rolling window of the attainment ratio, ms (one hour, as SLO burn-rate alerts read it). */
export const SLO_WINDOW_MS = 3_600_000;
/** Width of one bucket of the window, ms: the window forgets old changes a minute at a time. */
export const SLO_BUCKET_MS = 60_000;

interface Bucket {
  /** Start of the bucket, ms. */
  start: number;
  total: number;
  within: number;
}

/** Counts of changes within and over a target, over a rolling window of whole buckets. */
export class AttainmentWindow {
  private readonly buckets: Bucket[] = [];
  readonly targetMs: number;
  private readonly windowMs: number;
  private readonly bucketMs: number;

  constructor(targetMs: number, windowMs: number = SLO_WINDOW_MS, bucketMs: number = SLO_BUCKET_MS) {
    this.targetMs = targetMs;
    this.windowMs = windowMs;
    this.bucketMs = bucketMs;
  }

  /** One change made durable at nowMs, delayMs after it was read. */
  record(nowMs: number, delayMs: number): void {
    const start = nowMs - (nowMs % this.bucketMs);
    let last = this.buckets.at(-1);
    if (!last || last.start !== start) {
      last = { start, total: 0, within: 0 };
      this.buckets.push(last);
    }
    last.total++;
    if (delayMs <= this.targetMs) last.within++;
    this.expire(nowMs);
  }

  /** Share of the window's changes that made the target (0..1), or null when the window holds none. */
  ratio(nowMs: number): number | null {
    this.expire(nowMs);
    let total = 0;
    let within = 0;
    for (const b of this.buckets) {
      total += b.total;
      within += b.within;
    }
    return total === 0 ? null : within / total;
  }

  // Drop buckets that ended before the window.
  private expire(nowMs: number): void {
    while (this.buckets.length > 0 && this.buckets[0].start + this.bucketMs <= nowMs - this.windowMs) this.buckets.shift();
  }
}

/** The SLO measurement of one (stream, destination), feeding its metrics. */
export class ReplicationSlo {
  private readonly window: AttainmentWindow | null;
  private readonly labels: { stream: string; destination: string };
  private readonly metrics: Metrics;
  private readonly now: () => number;

  constructor(metrics: Metrics, labels: { stream: string; destination: string }, slo: SloConfig | undefined, now: () => number = Date.now) {
    this.metrics = metrics;
    this.labels = labels;
    this.window = slo ? new AttainmentWindow(slo.targetMs) : null;
    this.now = now;
  }

  /** One change durable at the destination, delaySeconds after the source handed it over. */
  observe(delaySeconds: number): void {
    this.metrics.replicationDelay.observe(this.labels, delaySeconds);
    if (!this.window) return;
    const now = this.now();
    this.window.record(now, delaySeconds * 1000);
    this.metrics.sloAttainment.set(this.labels, this.window.ratio(now) ?? 1);
  }

  /** Share of the last hour's changes within the target (0..1); null without an slo or without changes. */
  attainment(): number | null {
    return this.window?.ratio(this.now()) ?? null;
  }

  /** Forget this pair's gauge (its stream was removed). */
  close(): void {
    this.metrics.sloAttainment.remove(this.labels);
  }
}
