// HDE's online level choice (the idea of zstd --adapt): a pure function of
// where the sender waited during the last interval. Waiting on the encoders
// while the link had room means compression is the bottleneck: step to a
// faster level (down to no compression). Waiting on the link while the
// encoders kept up means bytes are the bottleneck: step to a stronger level.
// Two intervals in a row must agree before a step, so one burst does not
// swing it. No clocks or sockets here; the sender feeds measurements.

/** The ladder of levels, fastest first; null is "no compression". */
export const LEVEL_LADDER: ReadonlyArray<number | null> = [null, -1, 1, 3, 6, 9];

/** A wait above this share of the interval counts as "the bottleneck". */
export const BOTTLENECK_SHARE = 0.4;
/** A wait below this share counts as "kept up". */
export const IDLE_SHARE = 0.1;
/** Intervals in a row that must point the same way before a step. */
export const AGREEING_INTERVALS = 2;

/** What the sender measured over one interval. */
export interface LevelSample {
  intervalMs: number;
  /** Time the sender waited for the encoders to finish the next frame. */
  encodeWaitMs: number;
  /** Time the sender waited for room on the link (window or carriers). */
  linkWaitMs: number;
}

/** The chooser's state between intervals. */
export interface LevelState {
  /** Index into LEVEL_LADDER. */
  index: number;
  /** -1, 0 or +1: the direction the previous interval pointed. */
  lean: number;
  /** How many intervals in a row leaned that way. */
  streak: number;
}

/** Start at the ladder rung closest to a configured level (null = no compression). */
export function initialLevelState(level: number | null): LevelState {
  let index = 0;
  for (let i = 0; i < LEVEL_LADDER.length; i++) {
    const rung = LEVEL_LADDER[i];
    if (level !== null && rung !== null && rung <= level) index = i;
  }
  return { index, lean: 0, streak: 0 };
}

/** The level of a state. */
export function levelOf(state: LevelState): number | null {
  return LEVEL_LADDER[state.index];
}

/** One step of the chooser. */
export function nextLevel(state: LevelState, sample: LevelSample): LevelState {
  const encodeShare = sample.encodeWaitMs / sample.intervalMs;
  const linkShare = sample.linkWaitMs / sample.intervalMs;
  // Which way this interval points.
  let lean = 0;
  if (encodeShare >= BOTTLENECK_SHARE && linkShare <= IDLE_SHARE) lean = -1;
  else if (linkShare >= BOTTLENECK_SHARE && encodeShare <= IDLE_SHARE) lean = 1;
  if (lean === 0) return { index: state.index, lean: 0, streak: 0 };
  const streak = lean === state.lean ? state.streak + 1 : 1;
  if (streak < AGREEING_INTERVALS) return { index: state.index, lean, streak };
  // Agreed: step one rung, within the ladder, and start counting again.
  const index = Math.min(LEVEL_LADDER.length - 1, Math.max(0, state.index + lean));
  return { index, lean: 0, streak: 0 };
}
