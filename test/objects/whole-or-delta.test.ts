// The choice between sending a changed file whole and asking for delta
// bases, as a pure function of the file's size and the link's measured
// round trip and rate: whole when the link carries the file in less than
// one round trip, by delta otherwise, and always by delta when the link
// is not measured yet.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { changedFileGoesWhole } from '../../src/streams/objects/chunks/whole-or-delta.ts';
import { DELTA_MIN_FILE_BYTES } from '../../src/streams/objects/chunks/delta-plan.ts';
import { DEDUP_MIN_FILE_BYTES } from '../../src/streams/objects/chunks/recipe-plan.ts';

const KiB = 1024;
/** 1 Gbit/s, 100 ms: 12.5 MB a round trip. */
const INTERCONTINENTAL = { rttMs: 100, bytesPerS: 125_000_000 };
/** 10 Mbit/s, 2 ms: 2,500 bytes a round trip. */
const SLOW_SHORT = { rttMs: 2, bytesPerS: 1_250_000 };

test('a small changed file goes whole when the link carries it within one round trip', () => {
  assert.equal(changedFileGoesWhole(20 * KiB, INTERCONTINENTAL), true);
  assert.equal(changedFileGoesWhole(DEDUP_MIN_FILE_BYTES - 1, INTERCONTINENTAL), true);
});

test('a small changed file goes by delta when it takes the link longer than a round trip', () => {
  assert.equal(changedFileGoesWhole(20 * KiB, SLOW_SHORT), false);
  // The boundary is rate x RTT: 32 KiB a round trip here.
  const link = { rttMs: 100, bytesPerS: 320 * KiB };
  assert.equal(changedFileGoesWhole(32 * KiB, link), true);
  assert.equal(changedFileGoesWhole(32 * KiB + 1, link), false);
});

test('the same file flips with the measured rate and RTT', () => {
  const size = 40 * KiB;
  assert.equal(changedFileGoesWhole(size, { rttMs: 100, bytesPerS: 100 * KiB }), false, '10 KiB a round trip');
  assert.equal(changedFileGoesWhole(size, { rttMs: 100, bytesPerS: 1000 * KiB }), true, '100 KiB a round trip');
  assert.equal(changedFileGoesWhole(size, { rttMs: 10, bytesPerS: 1000 * KiB }), false, '10 KiB a round trip');
});

test('an unmeasured link keeps the delta; the size floor and the dedup ceiling hold whatever the link', () => {
  for (const link of [null, { rttMs: 0, bytesPerS: 125_000_000 }, { rttMs: 100, bytesPerS: 0 }, { rttMs: Number.NaN, bytesPerS: 1 }, { rttMs: 100, bytesPerS: Infinity }]) {
    assert.equal(changedFileGoesWhole(20 * KiB, link), false, JSON.stringify(link));
  }
  assert.equal(changedFileGoesWhole(DELTA_MIN_FILE_BYTES - 1, null), true, 'below the floor: whole');
  assert.equal(changedFileGoesWhole(DELTA_MIN_FILE_BYTES - 1, SLOW_SHORT), true);
  assert.equal(changedFileGoesWhole(DEDUP_MIN_FILE_BYTES, INTERCONTINENTAL), false, 'from the dedup size on: by recipe');
  assert.equal(changedFileGoesWhole(8 * 1024 * KiB, INTERCONTINENTAL), false);
});
