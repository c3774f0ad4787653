// The I/O around the AMST controller: every interval it measures the link
// (acknowledged bytes, each carrier's path counters as its transport reads
// them: TCP_INFO, QUIC statistics), asks the pure
// controller (controller.ts) and applies the answer (carrier count,
// congestion control). Time and sockets live here, never in the controller.

import { decide, initialState, type CarrierSample, type ControllerConfig, type ControllerState, type Decision, type IntervalSample } from './controller.ts';
import type { CarrierPath } from '../transport/carrier-pool.ts';

/** Default controller interval, ms. */
export const AMST_INTERVAL_MS = 1_000;

/** What the loop needs from a link (OutboundLink fits). */
export interface ControlledLink {
  readonly closed: boolean;
  readonly acknowledgedBytes: number;
  /**
   * Bytes that reached the destination: at delivery where the peer reports
   * it (amst:delivered@1), else at durability. Smoother than durable acks,
   * which come in checkpoint bursts; goodput uses it when the link has it.
   */
  readonly reachedBytes?: number;
  readonly liveCarriers: number;
  /** Path counters of the live carriers, cumulative (read through their transports). */
  carrierPaths(): CarrierPath[];
  setCarrierCount(n: number): void;
  setCongestionControl(name: string): void;
}

/** One applied step, for metrics, logs and netbench's time series. */
export interface AmstTick {
  /** Milliseconds since the loop started. */
  atMs: number;
  sample: IntervalSample;
  decision: Decision;
  /** Mean smoothed RTT of the carriers, ms (0 when none). */
  meanRttMs: number;
  /** Retransmitted bytes in the interval, all carriers. */
  retransBytes: number;
}

/** Options of the loop. */
export interface AmstLoopOptions {
  controller: ControllerConfig;
  /** Carriers the link starts with (the controller's first state). */
  initialCarriers: number;
  /** Called after each step. */
  onTick?: (tick: AmstTick) => void;
}

/** Counters of one carrier at the previous sample, for per-interval deltas. */
interface CarrierMark {
  sent: number;
  retrans: number;
}

/** Drives a link's carrier count and congestion control from measurements. */
export class AmstLoop {
  private readonly link: ControlledLink;
  private readonly options: AmstLoopOptions;
  private state: ControllerState;
  private timer: NodeJS.Timeout | null = null;
  private marks = new WeakMap<object, CarrierMark>();
  private lastAcked = 0;
  private lastAt = 0;
  private startedAt = 0;

  constructor(link: ControlledLink, options: AmstLoopOptions) {
    this.link = link;
    this.options = options;
    this.state = initialState(options.controller, options.initialCarriers);
  }

  /** The controller's current state (read-only use). */
  get controllerState(): ControllerState {
    return this.state;
  }

  /** Apply the initial congestion control and start the interval timer. */
  start(): void {
    this.link.setCongestionControl(this.state.congestionControl);
    this.startedAt = this.lastAt = performance.now();
    this.lastAcked = this.link.reachedBytes ?? this.link.acknowledgedBytes;
    this.timer = setInterval(() => this.tick(), this.options.controller.intervalMs);
    this.timer.unref();
  }

  /** Stop the timer. */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Measure one interval, decide, apply. */
  tick(): AmstTick | null {
    if (this.link.closed) {
      this.stop();
      return null;
    }
    // Goodput: bytes that reached the destination over the measured elapsed time.
    const now = performance.now();
    const seconds = Math.max((now - this.lastAt) / 1000, 1e-3);
    const acked = this.link.reachedBytes ?? this.link.acknowledgedBytes;
    const goodput = (acked - this.lastAcked) / seconds;
    this.lastAcked = acked;
    this.lastAt = now;

    // Per carrier: counter deltas since the last sample.
    const carriers: CarrierSample[] = [];
    for (const { carrier, stats } of this.link.carrierPaths()) {
      const mark = this.marks.get(carrier) ?? { sent: 0, retrans: 0 };
      carriers.push({
        rttUs: stats.rttUs,
        minRttUs: stats.minRttUs,
        sentBytes: Math.max(0, stats.bytesSent - mark.sent),
        retransBytes: Math.max(0, stats.bytesRetrans - mark.retrans),
        deliveryRateBytesPerS: stats.deliveryRateBytesPerS,
      });
      this.marks.set(carrier, { sent: stats.bytesSent, retrans: stats.bytesRetrans });
    }
    const sample: IntervalSample = { goodputBytesPerS: goodput, carrierCount: this.link.liveCarriers, carriers };

    // Decide and apply.
    const { decision, state } = decide(this.options.controller, sample, this.state);
    this.state = state;
    this.link.setCarrierCount(decision.carriers);
    this.link.setCongestionControl(decision.congestionControl);
    const rtts = carriers.map((c) => c.rttUs).filter((r) => r > 0);
    const tick: AmstTick = {
      atMs: now - this.startedAt,
      sample,
      decision,
      meanRttMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length / 1000 : 0,
      retransBytes: carriers.reduce((a, c) => a + c.retransBytes, 0),
    };
    this.options.onTick?.(tick);
    return tick;
  }
}
