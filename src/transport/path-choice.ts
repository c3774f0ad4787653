// Per-path carrier choice for `amst.transport: auto` (issue 11 item 5): a
// pure function of what the probes measured on each carrier kind the peer
// offers (path-probe.ts does the measuring), and a pure rule for when to
// measure again. No sockets, no clocks: the link passes both in.

import type { TransportKind } from './transport.ts';

/**
 * A kind must beat the kind in use by this share of goodput before the link
 * switches to it: a switch ends the session (in-flight frames are resent),
 * and two short probes of one path differ by more than 10 % from noise alone.
 */
export const SWITCH_MARGIN = 0.25;
/** Re-probe early when the link's RTT moved by this factor (up or down) since the choice. */
export const RTT_SHIFT_FACTOR = 2;
/** Re-probe early when the retransmitted share of bytes moved by more than this (absolute, 0..1) since the choice. */
export const LOSS_SHIFT = 0.02;

/** Fewest ms between two probes that a path change (not the first session) asks for: bounds probe traffic on a flapping path; also the shortest amst.probeInterval. */
export const MIN_REPROBE_GAP_MS = 30_000;

/** What the probe of one kind found. */
export interface KindMeasurement {
  kind: TransportKind;
  /** Probe goodput, bytes/s; null when no carrier of this kind could be dialed. */
  goodputBytesPerS: number | null;
  /** Smoothed RTT the probe saw, microseconds (0: unknown). */
  rttUs: number;
  /** Why the dial or the probe failed, null when it ran. */
  error: string | null;
}

/**
 * Why a kind was chosen (the `reason` label of dwcp_link_transport_info):
 * - measured_best: several kinds answered, this one measured the most goodput;
 * - kept: the kind in use was within SWITCH_MARGIN of the best, so no switch;
 * - only_reachable: the fallback, every other kind failed (UDP blocked: TLS; only HTTP passes: WebSocket);
 * - none_reachable: nothing answered the probes, the link keeps dialing its endpoints in order;
 * - single_kind: the peer offers one kind (or amst.transport names one): nothing to measure.
 */
export type ChoiceReason = 'measured_best' | 'kept' | 'only_reachable' | 'none_reachable' | 'single_kind';

/** The decision: the kind to run (null: none answered) and why. */
export interface PathChoice {
  kind: TransportKind | null;
  reason: ChoiceReason;
}

/**
 * Choose a kind from the probes. `current` is the kind the link runs now
 * (null before the first session); `preference` is the order the peer's
 * endpoints list the kinds, which breaks exact ties.
 */
export function choosePath(measurements: readonly KindMeasurement[], current: TransportKind | null, preference: readonly TransportKind[]): PathChoice {
  // Reachable kinds, best goodput first, list order on a tie.
  const rank = (k: TransportKind): number => {
    const i = preference.indexOf(k);
    return i < 0 ? preference.length : i;
  };
  const reachable = measurements
    .filter((m) => m.goodputBytesPerS !== null)
    .sort((a, b) => b.goodputBytesPerS! - a.goodputBytesPerS! || rank(a.kind) - rank(b.kind));
  if (reachable.length === 0) return { kind: null, reason: 'none_reachable' };
  if (reachable.length === 1) return { kind: reachable[0].kind, reason: measurements.length === 1 ? 'single_kind' : 'only_reachable' };

  // Several answered: keep the kind in use unless another is clearly better.
  const best = reachable[0];
  const inUse = reachable.find((m) => m.kind === current);
  if (inUse && inUse !== best && best.goodputBytesPerS! <= inUse.goodputBytesPerS! * (1 + SWITCH_MARGIN)) return { kind: inUse.kind, reason: 'kept' };
  return { kind: best.kind, reason: best.kind === current ? 'kept' : 'measured_best' };
}

/** Why the link measures again (the `reason` label of dwcp_link_transport_probes_total). */
export type ReprobeReason = 'first' | 'schedule' | 'confirm' | 'kind_failed' | 'rtt_shift' | 'loss_shift';

/** What the link knows when it asks whether to probe again. */
export interface ReprobeInput {
  /** Time now and of the last probe, ms on one clock; lastProbeAtMs null: never probed. */
  nowMs: number;
  lastProbeAtMs: number | null;
  /** Re-probe at least this often, ms. */
  intervalMs: number;
  /** After a probe, none for a failed kind or a shifted path sooner than this, ms (bounds probe traffic on a flapping path). */
  minGapMs: number;
  /** The last probe (beside a running session) found another kind better: a second must agree before the link switches. */
  confirmPending: boolean;
  /** The session on the chosen kind failed to connect or went down. */
  kindFailed: boolean;
  /** Mean smoothed RTT of the link's carriers at the choice and now, microseconds (0: unknown). */
  rttAtChoiceUs: number;
  rttNowUs: number;
  /** Retransmitted share of bytes sent (0..1) at the choice and now (null: unknown, e.g. QUIC counts none). */
  lossAtChoice: number | null;
  lossNow: number | null;
}

/** Whether to probe again now, and why (null: not yet). */
export function reprobeReason(input: ReprobeInput): ReprobeReason | null {
  if (input.lastProbeAtMs === null) return 'first';
  const since = input.nowMs - input.lastProbeAtMs;
  if (since >= input.intervalMs) return 'schedule';
  if (since < input.minGapMs) return null;
  if (input.confirmPending) return 'confirm';
  if (input.kindFailed) return 'kind_failed';
  // The path changed under the choice: RTT moved by a factor, or loss by a margin.
  const { rttAtChoiceUs: before, rttNowUs: now } = input;
  if (before > 0 && now > 0 && (now >= before * RTT_SHIFT_FACTOR || now * RTT_SHIFT_FACTOR <= before)) return 'rtt_shift';
  if (input.lossAtChoice !== null && input.lossNow !== null && Math.abs(input.lossNow - input.lossAtChoice) > LOSS_SHIFT) return 'loss_shift';
  return null;
}
