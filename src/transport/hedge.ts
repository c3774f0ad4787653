// Hedged resend (issue 9 item 3): a data frame that sits undelivered on a
// slow carrier while frames written after it, on other carriers, were
// already delivered is sent once more on a faster carrier; the destination
// drops whichever copy comes second by its sequence number
// (dwcp_frames_duplicate_total). Pure (no I/O, no clock): the link passes
// the frames, the time and its delivery-time estimate, tested on traces.
//
// Bounds: at most one hedge per frame, and hedge copies in flight at most
// HEDGE_WINDOW_FRACTION of the link window, so a path that is slow on every
// carrier is not sent twice.
//
// A frame that blocks its stream's durable progress (the lowest one not yet
// delivered) while the destination already holds much after it is hedged
// sooner: after one delivery time instead of HEDGE_SRTT_FACTOR. Lab
// (satellite, 512 cubic carriers, each ~20-50 KB/s): 100-122 MiB of the
// 128 MiB hold sat delivered behind a few stuck frames and the source sent
// 12-24 Mbit/s of a 100 Mbit/s link, where 4 delivery times were 20 s and more.

/** A frame is hedged only after this many smoothed delivery times undelivered. */
export const HEDGE_SRTT_FACTOR = 4;
/** ...and never before this long, ms (below it, ordinary queueing and ack coalescing). */
export const HEDGE_MIN_MS = 50;
/** Hedge copies in flight at most this fraction of the link window. */
export const HEDGE_WINDOW_FRACTION = 0.25;
/** A blocking frame under hold pressure is hedged after this many smoothed delivery times. */
export const HEDGE_BLOCKING_SRTT_FACTOR = 1;
/** Delivered-not-durable bytes at least this fraction of the destination's hold is hold pressure. */
export const HEDGE_HOLD_PRESSURE_FRACTION = 0.5;
/** Weight of a new sample in the smoothed delivery time (TCP's 1/8). */
export const DELIVERY_TIME_EWMA_WEIGHT = 0.125;

/** What a hedge decision reads of one undelivered frame. */
export interface HedgeCandidate {
  readonly bytes: number;
  /** When it was last written to a carrier, ms. */
  readonly writtenAt: number;
  /** True once hedged (never twice). */
  readonly hedged: boolean;
  /** A hedge copy is still in flight (counts against the budget). */
  readonly hedgeInFlight: boolean;
  /** The lowest frame of its stream not yet delivered: it holds the stream's durable progress. */
  readonly blocking?: boolean;
}

/** The link's delivery picture when it looks for frames to hedge. */
export interface HedgeView {
  /** Now, ms (same clock as writtenAt). */
  now: number;
  /** Smoothed time from write to delivery report, ms; 0 when nothing was delivered yet. */
  deliveryTimeMs: number;
  /** Write time of the most recently written frame that was delivered, ms (-Infinity when none). */
  newestDeliveredWrittenAt: number;
  /** Most bytes of hedge copies in flight at once. */
  budgetBytes: number;
  /** Delivered-not-durable bytes are at least HEDGE_HOLD_PRESSURE_FRACTION of what the destination may hold. */
  holdPressure?: boolean;
}

/**
 * Frames written after this time cannot be due for a hedge yet (not overdue
 * even as a blocking frame under pressure, or nothing written after them
 * delivered): the link skips them without building candidates (-Infinity:
 * nothing is due). pickHedges still decides about the rest.
 */
export function hedgeDueBefore(view: Omit<HedgeView, 'budgetBytes'>): number {
  if (view.deliveryTimeMs <= 0) return -Infinity;
  const factor = view.holdPressure ? Math.min(HEDGE_SRTT_FACTOR, HEDGE_BLOCKING_SRTT_FACTOR) : HEDGE_SRTT_FACTOR;
  return Math.min(view.now - Math.max(HEDGE_MIN_MS, factor * view.deliveryTimeMs), view.newestDeliveredWrittenAt);
}

/** Indices of the frames to send once more now, oldest first, within the budget. */
export function pickHedges(frames: readonly HedgeCandidate[], view: HedgeView): number[] {
  if (view.deliveryTimeMs <= 0) return [];
  const overdueMs = Math.max(HEDGE_MIN_MS, HEDGE_SRTT_FACTOR * view.deliveryTimeMs);
  const blockingOverdueMs = Math.max(HEDGE_MIN_MS, HEDGE_BLOCKING_SRTT_FACTOR * view.deliveryTimeMs);
  let inFlight = 0;
  for (const f of frames) if (f.hedgeInFlight) inFlight += f.bytes;
  // Overdue, and a frame written after it already arrived: its carrier, not the path, is slow.
  // (Filtered before sorting: the link looks every 50 ms, and sorting every undelivered frame,
  // thousands on a long fat path, cost ~8 % of a sending agent's CPU in bench-wal.)
  const due = (f: HedgeCandidate): boolean => {
    const limit = f.blocking && view.holdPressure ? blockingOverdueMs : overdueMs;
    return !f.hedged && view.now - f.writtenAt >= limit && view.newestDeliveredWrittenAt > f.writtenAt;
  };
  const order: number[] = [];
  for (let i = 0; i < frames.length; i++) if (due(frames[i])) order.push(i);
  // Oldest writes first: they hold the destination's reordering longest.
  order.sort((a, b) => frames[a].writtenAt - frames[b].writtenAt);
  const picked: number[] = [];
  for (const i of order) {
    const f = frames[i];
    if (inFlight + f.bytes > view.budgetBytes) break;
    inFlight += f.bytes;
    picked.push(i);
  }
  return picked;
}

/** The smoothed delivery time after one more sample, ms. */
export function nextDeliveryTime(currentMs: number, sampleMs: number): number {
  if (currentMs <= 0) return Math.max(sampleMs, Number.MIN_VALUE);
  return currentMs * (1 - DELIVERY_TIME_EWMA_WEIGHT) + sampleMs * DELIVERY_TIME_EWMA_WEIGHT;
}
