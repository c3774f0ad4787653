// The online level choice as a pure function, driven by model traces: a
// simulated sender whose encoders, link and data have known rates and
// ratios per rung says each interval what it waited on and what it measured,
// as stream-sender.ts does. The chooser must find the rung of best
// goodput (compressing when the link is the bottleneck and the data
// compresses, not when it does not, never a slow level on a fast link),
// come back from a burst of contention, and hold still on a steady trace.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialLevelState, levelOf, nextLevel, LEVEL_LADDER, type LevelSample, type LevelState } from '../../src/encoding/level-chooser.ts';

const MB = 1e6;
const INTERVAL_MS = 1000;

/** The truth a simulated sender runs on. */
interface World {
  /** The link's wire bytes/s. */
  linkBytesPerS: number;
  /** Wire bytes per plaintext byte at each rung (index 0, no compression, is 1). */
  ratios: number[];
  /** Plaintext bytes/s one encoder compresses at each rung (index 0 unused). */
  rates: number[];
  encoders: number;
  /** Plaintext bytes/s the source offers (default unbounded: a catch-up). */
  sourceBytesPerS?: number;
}

/** Plaintext bytes/s a world delivers at a rung: the slowest of source, encoders and link. */
function goodputAt(world: World, index: number): number {
  const encode = index === 0 ? Infinity : world.encoders * world.rates[index];
  return Math.min(world.sourceBytesPerS ?? Infinity, encode, world.linkBytesPerS / world.ratios[index]);
}

/** The best goodput any rung gives in a world. */
function bestGoodput(world: World): number {
  return Math.max(...LEVEL_LADDER.map((_, i) => goodputAt(world, i)));
}

/** Deterministic noise in [1 - amount, 1 + amount] (a seeded LCG), so traces are not perfectly clean. */
function noise(seed: number, amount: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return 1 + amount * ((x / 2 ** 32) * 2 - 1);
  };
}

/** What the sender measures over one interval at the state's rung. */
function sampleOf(world: World, state: LevelState, jitter: () => number = () => 1): LevelSample {
  const i = state.index;
  const encode = i === 0 ? Infinity : world.encoders * world.rates[i];
  const link = world.linkBytesPerS / world.ratios[i];
  const goodput = goodputAt(world, i);
  const ratio = world.ratios[i] * jitter();
  // The sender waits on whichever of encoders and link holds it; on neither when the source does.
  const encoderBound = encode === goodput && encode < link;
  const linkBound = link === goodput && link <= encode;
  return {
    intervalMs: INTERVAL_MS,
    encodeWaitMs: encoderBound ? 800 * jitter() : 30,
    linkWaitMs: linkBound ? 800 * jitter() : 30,
    linkBytesPerS: goodput * ratio,
    encodeBytesPerS: i === 0 ? 0 : world.rates[i] * jitter(),
    plainBytes: goodput,
    wireBytes: goodput * ratio,
    encoders: world.encoders,
  };
}

/** Run a world for some intervals; returns the end state and the level of every interval. */
function run(state: LevelState, world: World, intervals: number, jitter?: () => number): { state: LevelState; levels: Array<number | null> } {
  const levels: Array<number | null> = [];
  for (let n = 0; n < intervals; n++) {
    state = nextLevel(state, sampleOf(world, state, jitter));
    levels.push(levelOf(state));
  }
  return { state, levels };
}

/** How many times the level changed along a trace. */
function changes(levels: Array<number | null>): number {
  let n = 0;
  for (let i = 1; i < levels.length; i++) if (levels[i] !== levels[i - 1]) n++;
  return n;
}

/** The rung of a level. */
const rung = (level: number | null): number => LEVEL_LADDER.indexOf(level);

/**
 * WAL catch-up on the emulated WAN under CPU contention (both agents and
 * PostgreSQL on 2 cores): the link carries 80 MB/s of wire bytes, WAL
 * compresses ~10x, two encoders manage 75 MB/s each at -1.
 */
const WAL_CATCH_UP: World = {
  linkBytesPerS: 80 * MB,
  ratios: [1, 0.12, 0.1, 0.09, 0.085, 0.08],
  rates: [0, 75 * MB, 60 * MB, 40 * MB, 10 * MB, 6 * MB],
  encoders: 2,
};

/** Random data on the same link: zstd gains nothing at any rung. */
const INCOMPRESSIBLE: World = {
  linkBytesPerS: 80 * MB,
  ratios: [1, 1, 0.995, 0.99, 0.99, 0.99],
  rates: [0, 450 * MB, 400 * MB, 250 * MB, 60 * MB, 35 * MB],
  encoders: 2,
};

/** Text on a clean 10 Gbit/s link: the encoders are the bottleneck at every compressing rung. */
const FAST_CLEAN_LINK: World = {
  linkBytesPerS: 1250 * MB,
  ratios: [1, 0.45, 0.38, 0.34, 0.31, 0.3],
  rates: [0, 450 * MB, 400 * MB, 250 * MB, 60 * MB, 35 * MB],
  encoders: 2,
};

/** WAL on a 240 Mbit/s link with idle CPUs: level 3 is best (the link holds it, its encoders keep up). */
const WAL_SLOWER_LINK: World = {
  linkBytesPerS: 30 * MB,
  ratios: [1, 0.14, 0.12, 0.1, 0.095, 0.09],
  rates: [0, 450 * MB, 400 * MB, 300 * MB, 60 * MB, 35 * MB],
  encoders: 2,
};

/** The same world with every encoder this much slower (another process took the CPUs). */
function contended(world: World, factor: number): World {
  return { ...world, rates: world.rates.map((r) => r * factor) };
}

test('starts at the configured level (or the rung below it)', () => {
  assert.equal(levelOf(initialLevelState(3)), 3);
  assert.equal(levelOf(initialLevelState(5)), 3);
  assert.equal(levelOf(initialLevelState(null)), null);
  assert.equal(levelOf(initialLevelState(19)), 9);
});

test('WAL catch-up on a link-bound WAN under contention: ends on a compressing rung, not none', () => {
  // From no compression (where the old choice got stuck), from the configured 3, and from 9.
  for (const start of [null, 3, 9]) {
    const { state, levels } = run(initialLevelState(start), WAL_CATCH_UP, 60);
    assert.notEqual(levelOf(state), null, `from ${start}: ended at no compression (${levels.join(',')})`);
    // Within 20 % of the best rung's goodput (-1: 150 MB/s of WAL, where none gives 80).
    assert.ok(goodputAt(WAL_CATCH_UP, state.index) >= 0.8 * bestGoodput(WAL_CATCH_UP), `from ${start}: ended at ${levelOf(state)} (${levels.join(',')})`);
  }
});

test('incompressible data: ends at no compression or -1, and spends most of the time there', () => {
  for (const start of [3, 9, -1]) {
    const { state, levels } = run(initialLevelState(start), INCOMPRESSIBLE, 500);
    assert.ok(rung(levelOf(state)) <= rung(-1), `from ${start}: ended at ${levelOf(state)}`);
    const cheap = levels.slice(20).filter((l) => rung(l) <= rung(-1)).length;
    assert.ok(cheap >= 0.9 * (levels.length - 20), `from ${start}: only ${cheap} of ${levels.length - 20} intervals at none or -1`);
  }
});

test('a fast clean link where the encoders are the bottleneck: never climbs to a slow level', () => {
  for (const start of [null, 1, 3]) {
    const { state, levels } = run(initialLevelState(start), FAST_CLEAN_LINK, 200);
    assert.ok(levels.every((l) => rung(l) <= rung(3)), `from ${start}: visited ${levels.filter((l) => rung(l) > rung(3)).join(',')}`);
    // And it ends where the goodput is (none or -1: the link takes everything the encoders give).
    assert.ok(rung(levelOf(state)) <= rung(-1), `from ${start}: ended at ${levelOf(state)} (${levels.join(',')})`);
  }
});

test('a burst of contention that measured a rung slow: back to the better rung within a bounded number of intervals', () => {
  // Settled at 3, the best rung on this link.
  let { state } = run(initialLevelState(3), WAL_SLOWER_LINK, 20);
  assert.equal(levelOf(state), 3);
  // 20 intervals of contention: the encoders at 3 measure 45 MB/s, the chooser steps down.
  ({ state } = run(state, contended(WAL_SLOWER_LINK, 0.15), 20));
  assert.ok(rung(levelOf(state)) < rung(3), `stayed at ${levelOf(state)} under contention`);
  assert.ok(state.rates[rung(3)].value! < 100 * MB, 'the slow rate of 3 was measured');
  // Contention gone: within 30 intervals back at 3, and it stays there.
  const after = run(state, WAL_SLOWER_LINK, 60);
  const back = after.levels.indexOf(3);
  assert.ok(back >= 0 && back < 30, `not back at 3 within 30 intervals: ${after.levels.join(',')}`);
  assert.ok(after.levels.slice(back).every((l) => l === 3), `left 3 again: ${after.levels.join(',')}`);
});

test('no flapping on steady, noisy traces: few level changes over 500 intervals', () => {
  for (const [name, world] of Object.entries({ WAL_CATCH_UP, WAL_SLOWER_LINK, FAST_CLEAN_LINK })) {
    for (const start of [null, 3]) {
      const { levels } = run(initialLevelState(start), world, 500, noise(7, 0.1));
      // Settling walks the ladder once (at most 5 steps) and may try no compression once to learn the
      // link; after that only a rare re-probe of a link not measured for a while (there and back).
      assert.ok(changes(levels.slice(0, 50)) <= 7, `${name} from ${start}: ${changes(levels.slice(0, 50))} changes while settling (${levels.join(',')})`);
      assert.ok(changes(levels.slice(50)) <= 4, `${name} from ${start}: ${changes(levels.slice(50))} changes when settled (${levels.join(',')})`);
      assert.ok(goodputAt(world, rung(levels.at(-1)!)) >= 0.8 * bestGoodput(world), `${name} from ${start}: ended at ${levels.at(-1)}`);
    }
  }
});

test('one interval is not enough to step; two in a row are', () => {
  // Encoder-bound at 3 on a fast link: the first interval only leans.
  const start = initialLevelState(3);
  const one = run(start, FAST_CLEAN_LINK, 1);
  assert.equal(levelOf(one.state), 3);
  assert.equal(one.state.lean, -1);
  assert.equal(levelOf(run(start, FAST_CLEAN_LINK, 2).state), 1);
});

test('flapping bottlenecks and a source that holds the sender hold the level', () => {
  // Waits that point one way, then the other, every interval.
  let s = initialLevelState(3);
  for (let i = 0; i < 30; i++) s = nextLevel(s, { intervalMs: INTERVAL_MS, encodeWaitMs: i % 2 ? 700 : 0, linkWaitMs: i % 2 ? 0 : 700, linkBytesPerS: 50 * MB, encoders: 2 });
  assert.equal(levelOf(s), 3);
  // A steady WAL stream that neither the encoders nor the link hold (the source does).
  const steady = run(initialLevelState(3), { ...WAL_SLOWER_LINK, sourceBytesPerS: 8.5 * MB }, 100);
  assert.equal(changes(steady.levels), 0);
});

test('a slow link climbs to stronger rungs while they pay, not to rungs whose encoders cannot keep up', () => {
  // Text (ratios like zstd's on a text corpus) over 5 MB/s of wire: from 1 it climbs past 3.
  const text: World = { ...FAST_CLEAN_LINK, linkBytesPerS: 5 * MB, ratios: [1, 0.42, 0.37, 0.34, 0.32, 0.31] };
  const slow = run(initialLevelState(1), text, 40);
  assert.ok(rung(levelOf(slow.state)) >= rung(6), slow.levels.join(','));
  // The same text on 1 Gbit/s: 6 and 9 would shrink it more, but two encoders do 120 and 70 MB/s there; 3 gives the most.
  const gigabit: World = { ...text, linkBytesPerS: 125 * MB };
  const { state, levels } = run(initialLevelState(1), gigabit, 40);
  assert.equal(levelOf(state), 3, levels.join(','));
});
