// A link's round trip and rate as a source weighs a round trip against
// bytes (an objects source sends a small changed file whole when the link
// carries it in less than one round trip): from samples of the carriers'
// path counters (TCP_INFO, QUIC statistics). The rate is the highest seen
// on the link: between bursts a carrier's delivery rate falls to what its
// last small message measured, which says nothing about what it can carry.

import type { LinkEstimate } from '../streams/stream.ts';
import type { PathStats } from '../transport/transport.ts';

/** The highest rate and latest RTT of one link, from its carriers' samples. */
export class LinkEstimator {
  #rttMs = 0;
  #peakBytesPerS = 0;

  /** Take one sample of the live carriers' counters: the mean smoothed RTT, and the sum of delivery rates as a rate seen. */
  observe(paths: readonly PathStats[]): void {
    const rtts = paths.map((p) => p.rttUs).filter((r) => r > 0 && Number.isFinite(r));
    if (rtts.length > 0) this.#rttMs = rtts.reduce((a, b) => a + b, 0) / rtts.length / 1000;
    const rate = paths.reduce((sum, p) => sum + (p.deliveryRateBytesPerS > 0 && Number.isFinite(p.deliveryRateBytesPerS) ? p.deliveryRateBytesPerS : 0), 0);
    if (rate > this.#peakBytesPerS) this.#peakBytesPerS = rate;
  }

  /** The estimate, or null until a sample had an RTT and a rate. */
  estimate(): LinkEstimate | null {
    if (this.#rttMs <= 0 || this.#peakBytesPerS <= 0) return null;
    return { rttMs: this.#rttMs, bytesPerS: this.#peakBytesPerS };
  }
}
