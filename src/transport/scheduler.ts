// The link's scheduler: which carrier a data frame goes to. Pure functions
// of the carriers' loads (no I/O, no clock), tested on synthetic traces like
// the AMST controller. Each frame goes to the carrier expected to finish it
// first: what the carrier still has to deliver plus the frame, at the rate
// it has been delivering; a carrier whose unsent queue is full is skipped.

/** Floor for a carrier's estimated rate, bytes/s, so a new or idle carrier gets work. */
export const MIN_RATE_BYTES_PER_S = 1_000_000;

/** Weight of a new sample in the delivery-rate average. */
export const RATE_EWMA_WEIGHT = 0.3;

/** What the scheduler knows of one carrier slot. */
export interface CarrierLoad {
  /** False when the slot has no live carrier, or is retired (gets no new frames). */
  usable: boolean;
  /** Bytes written and not yet handed to the kernel, bytes. */
  queuedBytes: number;
  /** Bytes of frames on this carrier not yet acknowledged, bytes. */
  outstandingBytes: number;
  /** Estimated delivery rate, bytes/s. */
  rateBytesPerS: number;
}

/**
 * The slot for a frame of `bytes`, or -1 when every usable carrier's queue
 * is full. `avoid` (a slot index, or -1) is used only when nothing else
 * fits: a frame resent because its carrier failed or the peer could not
 * verify it goes elsewhere when it can.
 */
export function pickCarrier(loads: readonly CarrierLoad[], bytes: number, avoid: number, carrierWindowBytes: number): number {
  let best = -1;
  let bestEta = Infinity;
  let fallback = -1;
  for (let i = 0; i < loads.length; i++) {
    const load = loads[i];
    if (!load.usable) continue;
    // A full queue takes nothing more, but an empty one takes even an oversized frame.
    if (load.queuedBytes + bytes > carrierWindowBytes && load.queuedBytes > 0) continue;
    if (i === avoid) {
      fallback = i;
      continue;
    }
    // Expected completion: what the carrier still has to deliver, plus this frame, at its rate.
    const eta = (load.outstandingBytes + bytes) / Math.max(load.rateBytesPerS, MIN_RATE_BYTES_PER_S);
    if (eta < bestEta) {
      bestEta = eta;
      best = i;
    }
  }
  return best >= 0 ? best : fallback;
}

/**
 * A carrier's delivery rate after one sampling interval: the average moves
 * toward the bytes acknowledged in the interval per second. Only a busy
 * carrier (frames outstanding, or some delivered) tells its rate; an idle
 * one keeps its estimate.
 */
export function nextRate(rateBytesPerS: number, deliveredBytes: number, outstandingBytes: number, intervalS: number): number {
  if (outstandingBytes <= 0 && deliveredBytes <= 0) return rateBytesPerS;
  return rateBytesPerS * (1 - RATE_EWMA_WEIGHT) + (deliveredBytes / intervalS) * RATE_EWMA_WEIGHT;
}
