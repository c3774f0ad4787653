// The online level choice as a pure function: it walks to no compression
// when the encoders are the bottleneck (loopback), to stronger levels when
// the link is (a slow WAN), and holds when neither dominates or samples flap.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initialLevelState, levelOf, nextLevel, LEVEL_LADDER, type LevelState } from '../../src/encoding/level-chooser.ts';

function run(state: LevelState, samples: Array<[number, number]>): LevelState {
  for (const [encodeWaitMs, linkWaitMs] of samples) state = nextLevel(state, { intervalMs: 1000, encodeWaitMs, linkWaitMs });
  return state;
}

test('starts at the configured level (or the rung below it)', () => {
  assert.equal(levelOf(initialLevelState(3)), 3);
  assert.equal(levelOf(initialLevelState(5)), 3);
  assert.equal(levelOf(initialLevelState(null)), null);
  assert.equal(levelOf(initialLevelState(19)), 9);
});

test('encoders the bottleneck (fast link): steps down to no compression and stays', () => {
  const s = run(initialLevelState(3), Array.from({ length: 20 }, () => [700, 0] as [number, number]));
  assert.equal(levelOf(s), null);
});

test('link the bottleneck (slow WAN): steps up to the strongest rung and stays', () => {
  const s = run(initialLevelState(1), Array.from({ length: 20 }, () => [0, 900] as [number, number]));
  assert.equal(levelOf(s), LEVEL_LADDER[LEVEL_LADDER.length - 1]);
});

test('one interval is not enough to step; two in a row are', () => {
  const start = initialLevelState(3);
  assert.equal(levelOf(run(start, [[700, 0]])), 3);
  assert.equal(levelOf(run(start, [[700, 0], [700, 0]])), 1);
});

test('flapping samples and balanced waits hold the level', () => {
  const start = initialLevelState(3);
  assert.equal(levelOf(run(start, Array.from({ length: 30 }, (_, i) => (i % 2 ? [700, 0] : [0, 700]) as [number, number]))), 3);
  assert.equal(levelOf(run(start, Array.from({ length: 30 }, () => [500, 500] as [number, number]))), 3);
  assert.equal(levelOf(run(start, Array.from({ length: 30 }, () => [50, 50] as [number, number]))), 3);
});

test('a change of bottleneck walks back', () => {
  let s = run(initialLevelState(3), Array.from({ length: 10 }, () => [800, 0] as [number, number]));
  assert.equal(levelOf(s), null);
  s = run(s, Array.from({ length: 6 }, () => [0, 800] as [number, number]));
  assert.equal(levelOf(s), 3);
});

test('a fast link caps the climb at the last rung whose encoders keep up with it', () => {
  // 1 Gbit/s carried, link-bound waits: one encoder's prior rate for 6 (100 MB/s) is below 125 MB/s.
  let s = initialLevelState(1);
  for (let i = 0; i < 20; i++) s = nextLevel(s, { intervalMs: 1000, encodeWaitMs: 0, linkWaitMs: 900, linkBytesPerS: 125e6, encoders: 1 });
  assert.equal(levelOf(s), 3);
  // Two encoders keep up with 6 (2 x 100 MB/s) but not with 9 (2 x 60 MB/s).
  s = initialLevelState(1);
  for (let i = 0; i < 20; i++) s = nextLevel(s, { intervalMs: 1000, encodeWaitMs: 0, linkWaitMs: 900, linkBytesPerS: 125e6, encoders: 2 });
  assert.equal(levelOf(s), 6);
});

test('a slow link still climbs to the strongest rung', () => {
  let s = initialLevelState(1);
  for (let i = 0; i < 20; i++) s = nextLevel(s, { intervalMs: 1000, encodeWaitMs: 0, linkWaitMs: 900, linkBytesPerS: 5e6, encoders: 1 });
  assert.equal(levelOf(s), LEVEL_LADDER[LEVEL_LADDER.length - 1]);
});

test('a rung measured slower than the link is left, whatever the waits say, and not climbed back to', () => {
  let s = initialLevelState(3);
  // At 3 the encoder measures 40 MB/s while the link has carried 100 MB/s: down to 1.
  for (let i = 0; i < 2; i++) s = nextLevel(s, { intervalMs: 1000, encodeWaitMs: 0, linkWaitMs: 900, linkBytesPerS: 100e6, encodeBytesPerS: 40e6, encoders: 1 });
  assert.equal(levelOf(s), 1);
  assert.equal(s.rates[LEVEL_LADDER.indexOf(3)], 40e6);
  // Link-bound again at 1 (fast enough there): 3 is remembered as too slow, so it stays.
  for (let i = 0; i < 10; i++) s = nextLevel(s, { intervalMs: 1000, encodeWaitMs: 0, linkWaitMs: 900, linkBytesPerS: 100e6, encodeBytesPerS: 500e6, encoders: 1 });
  assert.equal(levelOf(s), 1);
});
