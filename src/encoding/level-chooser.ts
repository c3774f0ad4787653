// HDE's online level choice (the idea of zstd --adapt): a pure function of
// what the sender measured over the last interval. It keeps a goodput model:
// for each rung of the ladder, the plaintext rate it would deliver is
//   min(encoders x encode rate at the rung, link capacity / wire ratio at the rung)
// (encode rate: plaintext bytes/s one encoder compresses; wire ratio: wire
// bytes out per plaintext byte in; link capacity: wire bytes/s). The rung in
// use is measured every interval; the others keep what was measured while
// they were in use, drifting (with their age) toward what the freshest
// measurement of another rung implies for them, or their prior: a rate
// measured slow under a burst of CPU contention does not exclude a rung for
// good. The link's capacity is measured while the link is the bottleneck;
// otherwise it is at least what was carried, and grows more optimistic with
// the time since it was last measured, so a link that got faster is probed.
// The chooser steps one rung toward the rung of best expected goodput when
// that beats the current one by a margin, two intervals in a row, and only
// the way the measured bottleneck allows (stronger when the link is, faster
// when the encoders are, or when the link is and a faster rung carries as
// much for less CPU): it neither flaps nor gets stuck. No clocks or sockets
// here; the sender feeds measurements.

/** The ladder of levels, fastest first; null is "no compression". */
export const LEVEL_LADDER: ReadonlyArray<number | null> = [null, -1, 1, 3, 6, 9];

/** A wait above this share of the interval counts as "the bottleneck". */
export const BOTTLENECK_SHARE = 0.4;
/** Intervals in a row that must point the same way before a step. */
export const AGREEING_INTERVALS = 2;
/** A rung must promise this much more goodput than the current one (0.05 = 5 %) to be stepped toward. */
export const GOODPUT_MARGIN = 0.05;
/**
 * While the link is the bottleneck, a faster rung that promises at least
 * this share of the current goodput is stepped to (0.97: within 3 %): the
 * same bytes for less CPU (incompressible data at a compressing level).
 */
export const SAME_GOODPUT_SHARE = 0.97;

/**
 * Plaintext bytes per second one encoder thread compresses at each rung
 * until that rung is measured: zstd on text, rounded down from a one-off
 * measurement on this project's 2-core machine (-1: 476, 1: 932, 3: 633,
 * 6: 117, 9: 75 MB/s). Random data compresses faster at low levels, and
 * frames that sample as incompressible are not compressed at all.
 */
export const PRIOR_ENCODE_BYTES_PER_S: ReadonlyArray<number> = [Infinity, 400e6, 400e6, 300e6, 100e6, 60e6];

/**
 * Wire bytes per plaintext byte at each rung until that rung (or a
 * neighbour) is measured: zstd on pgbench WAL in steady state (DESIGN.md:
 * 2.9x at 3, 3.3x at 19), stretched toward the fast end where zstd's
 * negative levels give up ratio. Only the shape matters once any rung has
 * been measured: an unmeasured rung's ratio is inferred from the measured
 * one through these.
 */
export const PRIOR_WIRE_RATIO: ReadonlyArray<number> = [1, 0.45, 0.37, 0.34, 0.32, 0.31];

/** Weight of a new measurement in the rung's estimate (encode rate, wire ratio). */
const MEASUREMENT_EWMA_WEIGHT = 0.5;
/** Intervals after which a stale encode rate has drifted halfway to what fresher measurements imply (contention comes and goes fast). */
const RATE_HALF_LIFE_INTERVALS = 10;
/** Intervals after which a stale wire ratio has drifted halfway to what fresher measurements imply (data changes slowly). */
const RATIO_HALF_LIFE_INTERVALS = 60;
/**
 * Intervals after which a link capacity not measured again counts double
 * (and so on, linearly): a link that got faster is probed now and then,
 * rarely enough to cost little (two intervals in a few hundred).
 */
const CAPACITY_DOUBLING_INTERVALS = 300;
/** Weight of a new link-bound measurement in the capacity estimate. */
const CAPACITY_EWMA_WEIGHT = 0.5;

/** What the sender measured over one interval. */
export interface LevelSample {
  intervalMs: number;
  /** Time the sender waited for the encoders to finish the next frame. */
  encodeWaitMs: number;
  /** Time the sender waited for room on the link (window or carriers). */
  linkWaitMs: number;
  /** Wire bytes/s the link delivered in the interval (0 or absent: unknown). */
  linkBytesPerS?: number;
  /** Plaintext bytes/s one encoder compressed at the current rung in the interval (0 or absent: nothing measured). */
  encodeBytesPerS?: number;
  /** Plaintext bytes encoded at the current rung in the interval (with wireBytes: the rung's wire ratio). */
  plainBytes?: number;
  /** Payload bytes those plaintext bytes became. */
  wireBytes?: number;
  /** Encoder threads working in parallel (default 1). */
  encoders?: number;
}

/** A rung's measured value and the intervals since it was last measured. */
export interface Measured {
  /** null: never measured. */
  value: number | null;
  age: number;
}

/** The chooser's state between intervals. */
export interface LevelState {
  /** Index into LEVEL_LADDER. */
  index: number;
  /** -1, 0 or +1: the direction the previous interval pointed. */
  lean: number;
  /** How many intervals in a row leaned that way. */
  streak: number;
  /** Plaintext bytes/s per encoder of each rung. */
  rates: Measured[];
  /** Wire bytes per plaintext byte of each rung. */
  ratios: Measured[];
  /** The link's wire bytes/s: measured while it was the bottleneck, else at least what it carried (0: unknown). */
  capacity: number;
  /** Intervals since the link was last measured as the bottleneck (Infinity: never). */
  capacityAge: number;
}

/** Start at the ladder rung closest to a configured level (null = no compression). */
export function initialLevelState(level: number | null): LevelState {
  let index = 0;
  for (let i = 0; i < LEVEL_LADDER.length; i++) {
    const rung = LEVEL_LADDER[i];
    if (level !== null && rung !== null && rung <= level) index = i;
  }
  const unmeasured = (): Measured[] => LEVEL_LADDER.map(() => ({ value: null, age: 0 }));
  return { index, lean: 0, streak: 0, rates: unmeasured(), ratios: unmeasured(), capacity: 0, capacityAge: Infinity };
}

/** The level of a state. */
export function levelOf(state: LevelState): number | null {
  return LEVEL_LADDER[state.index];
}

/** What a value measured at rung j says about rung i, given the priors of both. */
type Infer = (value: number, priorAtJ: number, priorAtI: number) => number;

/** Encode rates scale with the priors: a CPU twice as busy halves every rung. */
const scaleRate: Infer = (value, priorAtJ, priorAtI) => (value * priorAtI) / priorAtJ;

/**
 * Wire ratios scale as powers: a rung that shrinks more does so in the
 * measure that the data compresses at all (incompressible data stays ~1 at
 * every rung; 10x WAL gains more from a stronger level than 3x text).
 */
const scaleRatio: Infer = (value, priorAtJ, priorAtI) => Math.min(1, Math.max(1e-3, value)) ** (Math.log(priorAtI) / Math.log(priorAtJ));

/**
 * A rung's estimate: its measurement, drifted by its age toward what the
 * freshest measurement of another rung (from index `from` on) implies
 * through the priors, or toward its prior when no other rung was measured
 * more recently.
 */
function estimate(measured: Measured[], priors: ReadonlyArray<number>, infer: Infer, index: number, halfLife: number, from: number): number {
  const own = measured[index];
  let reference = priors[index];
  let freshest = own.value === null ? Infinity : own.age;
  for (let j = from; j < measured.length; j++) {
    const m = measured[j];
    if (j === index || m.value === null || m.age >= freshest) continue;
    freshest = m.age;
    reference = infer(m.value, priors[j], priors[index]);
  }
  if (own.value === null) return reference;
  return reference + (own.value - reference) * 0.5 ** (own.age / halfLife);
}

/** The link capacity the model assumes: unbounded until measured as the bottleneck; then larger the longer ago that was (x2 after CAPACITY_DOUBLING_INTERVALS, x3 after twice that). */
export function modelCapacity(state: LevelState): number {
  if (state.capacityAge === Infinity) return Infinity;
  return state.capacity * (1 + state.capacityAge / CAPACITY_DOUBLING_INTERVALS);
}

/** Expected plaintext bytes/s at a rung: min(encoders x encode rate, link capacity / wire ratio). */
export function expectedGoodput(state: LevelState, index: number, encoders = 1): number {
  const encode = index === 0 ? Infinity : encoders * estimate(state.rates, PRIOR_ENCODE_BYTES_PER_S, scaleRate, index, RATE_HALF_LIFE_INTERVALS, 1);
  // Ratios are inferred from compressing rungs only: "none" is 1 whatever the data.
  const ratio = index === 0 ? 1 : estimate(state.ratios, PRIOR_WIRE_RATIO, scaleRatio, index, RATIO_HALF_LIFE_INTERVALS, 1);
  return Math.min(encode, modelCapacity(state) / ratio);
}

/** Fold a new measurement into a rung's estimate, and age every other rung's. */
function measure(measured: Measured[], index: number, value: number | null): Measured[] {
  return measured.map((m, i) => {
    if (i !== index || value === null) return { value: m.value, age: m.age + 1 };
    return { value: m.value === null ? value : m.value + MEASUREMENT_EWMA_WEIGHT * (value - m.value), age: 0 };
  });
}

/**
 * Which way the model points from the current rung: stronger (+1) when the
 * link is the bottleneck and a stronger rung promises more goodput by the
 * margin, else faster (-1) when one gives the same goodput for less CPU;
 * faster when the encoders are the bottleneck and a faster rung promises
 * more by the margin; else 0.
 */
function direction(state: LevelState, linkBound: boolean, encoders: number): number {
  const current = expectedGoodput(state, state.index, encoders);
  const goodput = (i: number): number => expectedGoodput(state, i, encoders);
  const faster = Array.from({ length: state.index }, (_, i) => i);
  const stronger = Array.from({ length: LEVEL_LADDER.length - 1 - state.index }, (_, i) => state.index + 1 + i);
  if (linkBound) {
    if (stronger.some((i) => goodput(i) > current * (1 + GOODPUT_MARGIN))) return 1;
    return faster.some((i) => goodput(i) >= current * SAME_GOODPUT_SHARE) ? -1 : 0;
  }
  return faster.some((i) => goodput(i) > current * (1 + GOODPUT_MARGIN)) ? -1 : 0;
}

/** One step of the chooser. */
export function nextLevel(state: LevelState, sample: LevelSample): LevelState {
  const encoders = sample.encoders ?? 1;
  const encodeShare = sample.encodeWaitMs / sample.intervalMs;
  const linkShare = sample.linkWaitMs / sample.intervalMs;
  const linkBound = linkShare >= BOTTLENECK_SHARE && linkShare > encodeShare;
  const encoderBound = encodeShare >= BOTTLENECK_SHARE && encodeShare > linkShare;

  // Fold in what this interval measured at the rung in use.
  const rate = state.index > 0 && sample.encodeBytesPerS && sample.encodeBytesPerS > 0 ? sample.encodeBytesPerS : null;
  const ratio = state.index > 0 && sample.plainBytes && sample.plainBytes > 0 && sample.wireBytes !== undefined ? sample.wireBytes / sample.plainBytes : null;
  const carried = sample.linkBytesPerS ?? 0;
  let { capacity, capacityAge } = state;
  if (linkBound && carried > 0) {
    // The link was the bottleneck: what it carried is its capacity now (up or down).
    capacity = capacity > 0 && capacityAge !== Infinity ? capacity + CAPACITY_EWMA_WEIGHT * (carried - capacity) : carried;
    capacityAge = 0;
  } else {
    // It was not: it can carry at least what it did.
    capacity = Math.max(capacity, carried);
    capacityAge += 1;
  }
  const next: LevelState = { ...state, rates: measure(state.rates, state.index, rate), ratios: measure(state.ratios, state.index, ratio), capacity, capacityAge };

  // The rung of best expected goodput, among those the bottleneck lets us step toward.
  const lean = linkBound || encoderBound ? direction(next, linkBound, encoders) : 0;
  if (lean === 0) return { ...next, lean: 0, streak: 0 };
  const streak = lean === state.lean ? state.streak + 1 : 1;
  if (streak < AGREEING_INTERVALS) return { ...next, lean, streak };
  // Agreed: step one rung toward it (the next interval measures that rung), and start counting again.
  return { ...next, index: state.index + lean, lean: 0, streak: 0 };
}
