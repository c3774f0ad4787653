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
