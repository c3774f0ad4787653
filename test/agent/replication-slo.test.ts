// The SLO window: attainment is the share of changes within the target over
// the last hour, forgetting old buckets; the metrics carry both the delay
// histogram and the ratio. Time is passed in.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AttainmentWindow, ReplicationSlo, SLO_BUCKET_MS, SLO_WINDOW_MS } from '../../src/agent/replication-slo.ts';
import { Metrics } from '../../src/agent/metrics.ts';

test('attainment: the share of changes within the target; none: null', () => {
  const w = new AttainmentWindow(1000);
  assert.equal(w.ratio(0), null);
  for (let i = 0; i < 997; i++) w.record(10 + i, 999);
  w.record(2000, 1000);
  w.record(2001, 1001);
  w.record(2002, 30_000);
  assert.equal(w.ratio(3000), 998 / 1000);
});

test('attainment forgets changes older than the window, a bucket at a time', () => {
  const w = new AttainmentWindow(1000);
  w.record(0, 5000);
  w.record(SLO_BUCKET_MS * 10, 10);
  assert.equal(w.ratio(SLO_BUCKET_MS * 10), 0.5);
  // The first bucket ends SLO_WINDOW_MS after its end: gone; the later one stays.
  assert.equal(w.ratio(SLO_WINDOW_MS + SLO_BUCKET_MS), 1);
  assert.equal(w.ratio(SLO_WINDOW_MS + SLO_BUCKET_MS * 11), null);
});

test('ReplicationSlo fills dwcp_replication_delay_seconds and sets dwcp_slo_attainment_ratio', async () => {
  const metrics = new Metrics({ processMetrics: false });
  let now = 1_000_000;
  const slo = new ReplicationSlo(metrics, { stream: 's', destination: 'us-east' }, { targetMs: 2000, objective: 99 }, () => now);
  for (const delay of [0.1, 0.5, 1.9, 2.5]) {
    slo.observe(delay);
    now += 10;
  }
  assert.equal(slo.attainment(), 0.75);
  const text = await metrics.registry.metrics();
  assert.match(text, /dwcp_replication_delay_seconds_count\{stream="s",destination="us-east"\} 4/);
  assert.match(text, /dwcp_replication_delay_seconds_bucket\{le="1",stream="s",destination="us-east"\} 2/);
  assert.match(text, /dwcp_slo_attainment_ratio\{stream="s",destination="us-east"\} 0.75/);
});

test('without an slo only the delays are measured', async () => {
  const metrics = new Metrics({ processMetrics: false });
  const slo = new ReplicationSlo(metrics, { stream: 's', destination: 'us-east' }, undefined);
  slo.observe(3);
  assert.equal(slo.attainment(), null);
  const text = await metrics.registry.metrics();
  assert.match(text, /dwcp_replication_delay_seconds_count\{stream="s",destination="us-east"\} 1/);
  assert.doesNotMatch(text, /dwcp_slo_attainment_ratio\{/);
});
