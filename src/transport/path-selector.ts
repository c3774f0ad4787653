// The driver of `amst.transport: auto` on one outbound link (issue 11 item
// 5). It decides when to measure (reprobeReason: first session, schedule, a
// failed kind, RTT or loss shifted), probes each kind the peer's endpoints
// offer one after the other (path-probe.ts; one at a time, so no two probes
// share the bottleneck), asks choosePath (path-choice.ts), publishes the
// choice and why (metrics, status), and asks the link to switch when
// another kind won. The link stays the owner of sessions and dials.

import type { Logger } from 'pino';
import type { CarrierPath } from './carrier-pool.ts';
import { formatEndpoint } from './endpoint.ts';
import type { LabeledCounter, LabeledGauge } from './link-metrics.ts';
import { choosePath, MIN_REPROBE_GAP_MS, reprobeReason, type ChoiceReason, type KindMeasurement, type ReprobeReason } from './path-choice.ts';
import { probeKind } from './path-probe.ts';
import type { DialRequest, Endpoint, TransportKind, Transports } from './transport.ts';
import type { Ping } from '../wire/messages.ts';

/** How often the selector checks whether a re-probe is due, ms. */
const CHECK_INTERVAL_MS = 5_000;
/** Time a probe carrier's dial may take at most, ms (below amst.connectTimeout's default: a kind that does not answer must not hold the first session's streams long; a satellite path's WebSocket dial, ~5 RTTs of 600 ms, fits). */
export const PROBE_DIAL_TIMEOUT_MS = 5_000;
/** Time one kind's probe may take after its dial, ms. */
export const PROBE_TIMEOUT_MS = 5_000;
/** Bytes the carriers must have sent before their retransmitted share counts as a loss figure. */
const LOSS_MIN_SENT_BYTES = 4 * 1024 * 1024;

/** A gauge whose label sets can be dropped (an info metric: one series for the current value). */
export interface InfoGauge<L extends string> extends LabeledGauge<L> {
  remove(labels: Partial<Record<L, string>>): void;
}

/** The metrics of the choice, a narrow interface (the agent's Metrics fits). */
export interface PathMetrics {
  /** 1 for the kind in use and why it was chosen, per peer (one series). */
  linkTransportInfo: InfoGauge<'peer' | 'kind' | 'reason'>;
  /** Goodput the last probe measured per kind, bytes/s (0: unreachable). */
  linkProbeGoodput: LabeledGauge<'peer' | 'kind'>;
  /** Probes run, by why. */
  linkProbes: LabeledCounter<'peer' | 'reason'>;
}

/**
 * Why the link runs the kind it runs, for /status and metrics: the reasons of
 * choosePath, plus first_connected (auto, no probe has decided yet: the
 * first endpoint in list order that connected) and confirming (a probe beside
 * the running session found another kind better; the link switches only if
 * the next probe, MIN_REPROBE_GAP_MS later, agrees).
 */
export type TransportReason = ChoiceReason | 'first_connected' | 'confirming';

/** The choice as /status shows it. */
export interface TransportChoiceStatus {
  /** Kind chosen (null: none answered the probes). */
  kind: TransportKind | null;
  reason: TransportReason;
  /** When the last probe finished (ISO time), null before the first. */
  probedAt: string | null;
  /** Why that probe ran. */
  probeReason: ReprobeReason | null;
  /** What each kind measured in that probe. */
  measurements: Array<{ kind: TransportKind; goodputBytesPerS: number | null; rttMs: number; error: string | null }>;
}

/** What the selector needs from its link (OutboundLink fits). */
export interface SelectableLink {
  /** The running session's link id, null while down. */
  sessionLinkId(): string | null;
  /** Kind of the running session, null while down. */
  readonly transport: TransportKind | null;
  carrierPaths(): CarrierPath[];
  /** Everything of a dial but the endpoint, link id and slot. */
  dialTemplate(): Omit<DialRequest, 'endpoint' | 'linkId' | 'index'>;
  /** Hear Pongs that arrive on the session's carriers; returns the unregister function. */
  listenPongs(onPong: (pong: Ping) => void): () => void;
  /** End the session and reconnect on this kind's first endpoint. */
  switchTo(kind: TransportKind, why: string): void;
}

/** Options of a selector. */
export interface PathSelectorOptions {
  peerRegion: string;
  /** The peer's endpoints in the order written (several kinds). */
  endpoints: Endpoint[];
  transports: Transports;
  /** Re-probe at least this often, ms. */
  reprobeIntervalMs: number;
  /** Probe padding per kind, bytes. */
  probeBytes: number;
  /** Probe time per kind after its dial, ms (default PROBE_TIMEOUT_MS). */
  probeTimeoutMs?: number;
  metrics: PathMetrics;
  logger: Logger;
}

/** Measures the kinds a peer offers and keeps the link on the best. */
export class PathSelector {
  private readonly options: PathSelectorOptions;
  private readonly link: SelectableLink;
  /** Kinds in the order the endpoints first name them. */
  readonly offered: TransportKind[];
  private timer: NodeJS.Timeout | null = null;
  private probing = false;
  private kindFailed = false;
  /** The kind the last probe found better than the one in use, waiting for a second probe to agree. */
  private pendingSwitch: TransportKind | null = null;
  private lastProbeAt: number | null = null;
  private baseline: { rttUs: number; loss: number | null } | null = null;
  private current: TransportChoiceStatus = { kind: null, reason: 'first_connected', probedAt: null, probeReason: null, measurements: [] };
  private published: { kind: string; reason: string } | null = null;
  /** Aborts a probe under way when the link closes. */
  private readonly closing = new AbortController();

  constructor(link: SelectableLink, options: PathSelectorOptions) {
    this.link = link;
    this.options = options;
    this.offered = [...new Set(options.endpoints.map((e) => e.kind))];
  }

  /** The choice and the last probe's measurements. */
  status(): TransportChoiceStatus {
    if (this.current.probedAt === null) return { ...this.current, kind: this.link.transport };
    return this.current;
  }

  /** Start the periodic check. */
  start(): void {
    this.timer = setInterval(() => void this.check(), CHECK_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stop checking; a probe under way closes its carrier and is dropped. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.closing.abort();
  }

  /** True until the first probe ran (the link holds its first session's streams back until it has). */
  firstProbeDue(): boolean {
    return this.lastProbeAt === null && !this.probing;
  }

  /** A session came up: publish what runs, and probe when due (first session, or the chosen kind failed); resolves when that check is done. */
  sessionUp(): Promise<void> {
    this.baseline = null;
    this.publish();
    return this.check();
  }

  /** A session could not connect on its kind, or went down: the next check probes again. */
  kindFailure(): void {
    this.kindFailed = true;
  }

  /** Probe when due; at most one probe at a time. */
  async check(): Promise<void> {
    if (this.probing || this.timer === null || this.link.sessionLinkId() === null) return;
    const now = performance.now();
    const path = pathNow(this.link.carrierPaths(), this.link.transport);
    // The path as the chosen kind first sees it is what later shifts compare against.
    if (this.baseline === null && this.lastProbeAt !== null && path.rttUs > 0) {
      this.baseline = path;
      return;
    }
    if (this.baseline && this.baseline.loss === null) this.baseline.loss = path.loss;
    const reason = reprobeReason({
      nowMs: now,
      lastProbeAtMs: this.lastProbeAt,
      intervalMs: this.options.reprobeIntervalMs,
      minGapMs: MIN_REPROBE_GAP_MS,
      confirmPending: this.pendingSwitch !== null,
      kindFailed: this.kindFailed,
      rttAtChoiceUs: this.baseline?.rttUs ?? 0,
      rttNowUs: path.rttUs,
      lossAtChoice: this.baseline?.loss ?? null,
      lossNow: path.loss,
    });
    if (reason !== null) await this.probe(reason);
  }

  /** Probe every offered kind in turn, choose, publish, and switch when another kind won. */
  private async probe(reason: ReprobeReason): Promise<void> {
    this.probing = true;
    const { peerRegion, metrics, logger } = this.options;
    try {
      metrics.linkProbes.inc({ peer: peerRegion, reason });
      const measurements: KindMeasurement[] = [];
      for (const kind of this.offered) {
        const linkId = this.link.sessionLinkId();
        if (linkId === null || this.timer === null) return; // down or stopped: the next session probes
        const endpoint = this.options.endpoints.find((e) => e.kind === kind)!;
        const template = this.link.dialTemplate();
        const m = await probeKind({
          endpoint,
          transport: this.options.transports[kind],
          dial: { ...template, timeoutMs: Math.min(template.timeoutMs, PROBE_DIAL_TIMEOUT_MS), linkId },
          budgetBytes: this.options.probeBytes,
          timeoutMs: this.options.probeTimeoutMs ?? PROBE_TIMEOUT_MS,
          signal: this.closing.signal,
          listenPongs: (onPong) => this.link.listenPongs(onPong),
        });
        measurements.push(m);
        metrics.linkProbeGoodput.set({ peer: peerRegion, kind }, m.goodputBytesPerS ?? 0);
        logger.info({ peer: peerRegion, kind, endpoint: formatEndpoint(endpoint), goodputBytesPerS: m.goodputBytesPerS === null ? null : Math.round(m.goodputBytesPerS), rttMs: m.rttUs / 1000, err: m.error ?? undefined }, 'transport probe');
      }
      if (this.timer === null) return;
      // Decide, publish, and switch when another kind won.
      const inUse = this.link.transport;
      const choice = choosePath(measurements, inUse, this.offered);
      this.lastProbeAt = performance.now();
      this.kindFailed = false;
      this.baseline = null;
      // The first probe ran on idle carriers, and a kind in use that no longer
      // answers must go: those switch at once. Any other probe shared the path
      // with the session's traffic (netbench: such probes can rank kinds out of
      // order), so a switch waits for a second probe that agrees.
      const wantsSwitch = choice.kind !== null && inUse !== null && choice.kind !== inUse;
      const inUseAnswered = measurements.some((m) => m.kind === inUse && m.goodputBytesPerS !== null);
      const confirmed = !wantsSwitch || reason === 'first' || !inUseAnswered || this.pendingSwitch === choice.kind;
      this.pendingSwitch = wantsSwitch && !confirmed ? choice.kind : null;
      this.current = {
        kind: confirmed ? (choice.kind ?? inUse) : inUse,
        reason: confirmed ? choice.reason : 'confirming',
        probedAt: new Date().toISOString(),
        probeReason: reason,
        measurements: measurements.map((m) => ({ kind: m.kind, goodputBytesPerS: m.goodputBytesPerS === null ? null : Math.round(m.goodputBytesPerS), rttMs: m.rttUs / 1000, error: m.error })),
      };
      this.publish();
      logger.info({ peer: peerRegion, probe: reason, chosen: choice.kind, reason: choice.reason, inUse }, 'transport chosen');
      if (wantsSwitch && confirmed) this.link.switchTo(choice.kind!, `transport auto: ${choice.kind} measured best (${choice.reason})`);
    } finally {
      this.probing = false;
    }
  }

  /** Keep one dwcp_link_transport_info series: the kind chosen (or in use) and why. */
  private publish(): void {
    const { metrics, peerRegion } = this.options;
    const status = this.status();
    const next = { kind: status.kind ?? 'none', reason: status.reason };
    if (this.published && (this.published.kind !== next.kind || this.published.reason !== next.reason)) metrics.linkTransportInfo.remove({ peer: peerRegion, ...this.published });
    metrics.linkTransportInfo.set({ peer: peerRegion, ...next }, 1);
    this.published = next;
  }
}

/** Mean minimum RTT of the carriers (moves when the path moves, not with queueing) and their retransmitted share (null for QUIC, which counts none). */
function pathNow(paths: CarrierPath[], kind: TransportKind | null): { rttUs: number; loss: number | null } {
  const rtts = paths.map((p) => p.stats.minRttUs).filter((r) => r > 0);
  const sent = paths.reduce((a, p) => a + p.stats.bytesSent, 0);
  const retrans = paths.reduce((a, p) => a + p.stats.bytesRetrans, 0);
  return {
    rttUs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0,
    loss: kind === 'quic' || sent < LOSS_MIN_SENT_BYTES ? null : retrans / sent,
  };
}
