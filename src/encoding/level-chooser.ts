// HDE's online level choice (the idea of zstd --adapt): a pure function of
// where the sender waited during the last interval. Waiting on the encoders
// while the link had room means compression is the bottleneck: step to a
// faster level (down to no compression). Waiting on the link while the
// encoders kept up means bytes are the bottleneck: step to a stronger level.
// Two intervals in a row must agree before a step, so one burst does not
// swing it. A rung whose encoders cannot keep up with what the link has
// carried is never stepped up to, and is left when measured too slow: the
// encode rate of every rung is measured while it is in use (a prior per
// rung until then), so a fast link is not starved by level 9. No clocks or
// sockets here; the sender feeds measurements.

/** The ladder of levels, fastest first; null is "no compression". */
export const LEVEL_LADDER: ReadonlyArray<number | null> = [null, -1, 1, 3, 6, 9];

/** A wait above this share of the interval counts as "the bottleneck". */
export const BOTTLENECK_SHARE = 0.4;
/** A wait below this share counts as "kept up". */
export const IDLE_SHARE = 0.1;
/** Intervals in a row that must point the same way before a step. */
export const AGREEING_INTERVALS = 2;

/**
 * Plaintext bytes per second one encoder thread compresses at each rung
 * until that rung is measured: zstd on text, rounded down from a one-off
 * measurement on this project's 2-core machine (-1: 476, 1: 932, 3: 633,
 * 6: 117, 9: 75 MB/s). Random data compresses faster at low levels, and
 * frames that sample as incompressible are not compressed at all.
 */
export const PRIOR_ENCODE_BYTES_PER_S: ReadonlyArray<number> = [Infinity, 400e6, 400e6, 300e6, 100e6, 60e6];

/** Weight of a new measurement in a rung's encode rate. */
const RATE_EWMA_WEIGHT = 0.5;

/** What the sender measured over one interval. */
export interface LevelSample {
  intervalMs: number;
  /** Time the sender waited for the encoders to finish the next frame. */
  encodeWaitMs: number;
  /** Time the sender waited for room on the link (window or carriers). */
  linkWaitMs: number;
  /** Highest rate the link has carried lately, wire bytes/s (0 or absent: unknown, no cap). */
  linkBytesPerS?: number;
  /** Plaintext bytes/s one encoder compressed at the current rung in the interval (0 or absent: nothing measured). */
  encodeBytesPerS?: number;
  /** Encoder threads working in parallel (default 1). */
  encoders?: number;
}

/** The chooser's state between intervals. */
export interface LevelState {
  /** Index into LEVEL_LADDER. */
  index: number;
  /** -1, 0 or +1: the direction the previous interval pointed. */
  lean: number;
  /** How many intervals in a row leaned that way. */
  streak: number;
  /** Measured plaintext bytes/s per encoder of each rung (null: not measured yet). */
  rates: Array<number | null>;
}

/** Start at the ladder rung closest to a configured level (null = no compression). */
export function initialLevelState(level: number | null): LevelState {
  let index = 0;
  for (let i = 0; i < LEVEL_LADDER.length; i++) {
    const rung = LEVEL_LADDER[i];
    if (level !== null && rung !== null && rung <= level) index = i;
  }
  return { index, lean: 0, streak: 0, rates: LEVEL_LADDER.map(() => null) };
}

/** Plaintext bytes/s the encoders manage at a rung: measured, else the prior. */
export function encodeRate(state: LevelState, index: number, encoders = 1): number {
  return (state.rates[index] ?? PRIOR_ENCODE_BYTES_PER_S[index]!) * encoders;
}

/** The level of a state. */
export function levelOf(state: LevelState): number | null {
  return LEVEL_LADDER[state.index];
}

/** One step of the chooser. */
export function nextLevel(state: LevelState, sample: LevelSample): LevelState {
  const rates = [...state.rates];
  if (sample.encodeBytesPerS && sample.encodeBytesPerS > 0) {
    const old = rates[state.index];
    rates[state.index] = old === null ? sample.encodeBytesPerS : old + RATE_EWMA_WEIGHT * (sample.encodeBytesPerS - old);
  }
  const encoders = sample.encoders ?? 1;
  const link = sample.linkBytesPerS ?? 0;
  const keepsUp = (index: number): boolean => link <= 0 || encodeRate({ ...state, rates }, index, encoders) >= link;
  const encodeShare = sample.encodeWaitMs / sample.intervalMs;
  const linkShare = sample.linkWaitMs / sample.intervalMs;
  // Which way this interval points.
  let lean = 0;
  if (!keepsUp(state.index)) lean = -1; // measured slower than the link: leave it
  else if (encodeShare >= BOTTLENECK_SHARE && linkShare <= IDLE_SHARE) lean = -1;
  else if (linkShare >= BOTTLENECK_SHARE && encodeShare <= IDLE_SHARE && state.index + 1 < LEVEL_LADDER.length && keepsUp(state.index + 1)) lean = 1;
  if (lean === 0) return { index: state.index, lean: 0, streak: 0, rates };
  const streak = lean === state.lean ? state.streak + 1 : 1;
  if (streak < AGREEING_INTERVALS) return { index: state.index, lean, streak, rates };
  // Agreed: step one rung, within the ladder, and start counting again.
  const index = Math.min(LEVEL_LADDER.length - 1, Math.max(0, state.index + lean));
  return { index, lean: 0, streak: 0, rates };
}
