// A link's estimate from its carriers' path counters: the mean smoothed
// RTT, and the highest total delivery rate seen (an idle carrier's low
// rate after a burst does not lower it); nothing until both were measured.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LinkEstimator } from '../../src/agent/link-estimate.ts';

const path = (rttUs: number, deliveryRateBytesPerS: number) => ({ rttUs, minRttUs: rttUs, bytesSent: 0, bytesRetrans: 0, deliveryRateBytesPerS });

test('mean RTT of the carriers and their summed delivery rate', () => {
  const e = new LinkEstimator();
  assert.equal(e.estimate(), null);
  e.observe([path(100_000, 30e6), path(120_000, 20e6)]);
  assert.deepEqual(e.estimate(), { rttMs: 110, bytesPerS: 50e6 });
});

test('the rate is the highest seen; the RTT the latest', () => {
  const e = new LinkEstimator();
  e.observe([path(100_000, 60e6), path(100_000, 60e6)]);
  e.observe([path(200_000, 1_000), path(200_000, 0)]);
  assert.deepEqual(e.estimate(), { rttMs: 200, bytesPerS: 120e6 });
});

test('no estimate until an RTT and a rate were measured; bad counters are ignored', () => {
  const e = new LinkEstimator();
  e.observe([]);
  e.observe([path(0, 50e6)]);
  assert.equal(e.estimate(), null, 'no RTT yet');
  e.observe([path(100_000, Number.NaN), path(Number.NaN, -5)]);
  assert.deepEqual(e.estimate(), { rttMs: 100, bytesPerS: 50e6 });
  const f = new LinkEstimator();
  f.observe([path(100_000, 0)]);
  assert.equal(f.estimate(), null, 'no rate yet');
});
