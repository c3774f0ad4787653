// amst.transport auto's decision as pure functions (path-choice.ts), on
// measurements recorded in this repository: docs/transport.md's one-carrier
// figures (loopback: TLS 52.2 MiB/s, QUIC 38.2 MiB/s; intercontinental
// 100 ms / 1 % loss: one QUIC carrier ~1.6 MB/s, one cubic TCP flow
// 1.7 Mbit/s), and the probe's own failure texts (a QUIC dial where UDP is
// dropped, a TLS or QUIC dial where only an HTTP proxy passes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePath, reprobeReason, LOSS_SHIFT, RTT_SHIFT_FACTOR, SWITCH_MARGIN, type KindMeasurement, type ReprobeInput } from '../../src/transport/path-choice.ts';

const MiB = 1024 * 1024;
const ORDER = ['tls', 'ws', 'quic'] as const;

const loopback: KindMeasurement[] = [
  { kind: 'tls', goodputBytesPerS: 52.2 * MiB, rttUs: 60, error: null },
  { kind: 'quic', goodputBytesPerS: 38.2 * MiB, rttUs: 300, error: null },
];
const intercontinental: KindMeasurement[] = [
  { kind: 'tls', goodputBytesPerS: 1.7e6 / 8, rttUs: 101_000, error: null },
  { kind: 'quic', goodputBytesPerS: 1.6e6, rttUs: 104_000, error: null },
];
const udpDropped: KindMeasurement[] = [
  { kind: 'quic', goodputBytesPerS: null, rttUs: 0, error: 'probe quic://10.203.0.2:7401: dial quic://10.203.0.2:7401: QUIC connect timed out after 3000 ms' },
  { kind: 'tls', goodputBytesPerS: 3.1 * MiB, rttUs: 20_000, error: null },
];
const onlyProxy: KindMeasurement[] = [
  { kind: 'tls', goodputBytesPerS: null, rttUs: 0, error: 'probe tls://10.203.0.2:7400: connect ETIMEDOUT 10.203.0.2:7400' },
  { kind: 'quic', goodputBytesPerS: null, rttUs: 0, error: 'probe quic://10.203.0.2:7401: dial quic://10.203.0.2:7401: QUIC connect timed out after 3000 ms' },
  { kind: 'ws', goodputBytesPerS: 20 * MiB, rttUs: 500, error: null },
];

test('a clean fast path: TLS measures best and is chosen, from either kind', () => {
  assert.deepEqual(choosePath(loopback, null, ['quic', 'tls']), { kind: 'tls', reason: 'measured_best' });
  assert.deepEqual(choosePath(loopback, 'quic', ['quic', 'tls']), { kind: 'tls', reason: 'measured_best' });
  assert.deepEqual(choosePath(loopback, 'tls', ['quic', 'tls']), { kind: 'tls', reason: 'kept' });
});

test('intercontinental with loss: QUIC measures best and the link moves to it', () => {
  assert.deepEqual(choosePath(intercontinental, 'tls', ORDER), { kind: 'quic', reason: 'measured_best' });
});

test('UDP dropped: QUIC did not answer, TLS is the fallback', () => {
  assert.deepEqual(choosePath(udpDropped, 'quic', ['quic', 'tls']), { kind: 'tls', reason: 'only_reachable' });
  assert.deepEqual(choosePath(udpDropped, 'tls', ['quic', 'tls']), { kind: 'tls', reason: 'only_reachable' });
});

test('only an HTTP proxy passes: WebSocket is the fallback', () => {
  assert.deepEqual(choosePath(onlyProxy, 'ws', ORDER), { kind: 'ws', reason: 'only_reachable' });
});

test('nothing answered: no kind, the link keeps dialing its endpoints', () => {
  const none = udpDropped.map((m) => ({ ...m, goodputBytesPerS: null, error: 'refused' }));
  assert.deepEqual(choosePath(none, 'tls', ORDER), { kind: null, reason: 'none_reachable' });
});

test('one kind measured: single_kind', () => {
  assert.deepEqual(choosePath([loopback[0]], 'tls', ['tls']), { kind: 'tls', reason: 'single_kind' });
});

test('hysteresis: the kind in use stays unless another beats it by more than SWITCH_MARGIN', () => {
  const near = [
    { kind: 'tls' as const, goodputBytesPerS: 100 * MiB, rttUs: 0, error: null },
    { kind: 'quic' as const, goodputBytesPerS: 100 * MiB * (1 + SWITCH_MARGIN) - 1, rttUs: 0, error: null },
  ];
  assert.deepEqual(choosePath(near, 'tls', ORDER), { kind: 'tls', reason: 'kept' });
  // Before any session the best wins outright.
  assert.deepEqual(choosePath(near, null, ORDER), { kind: 'quic', reason: 'measured_best' });
  const far = [near[0], { ...near[1], goodputBytesPerS: 100 * MiB * (1 + SWITCH_MARGIN) + MiB }];
  assert.deepEqual(choosePath(far, 'tls', ORDER), { kind: 'quic', reason: 'measured_best' });
});

test('an exact tie goes to the kind listed first', () => {
  const tie = [
    { kind: 'quic' as const, goodputBytesPerS: MiB, rttUs: 0, error: null },
    { kind: 'ws' as const, goodputBytesPerS: MiB, rttUs: 0, error: null },
  ];
  assert.equal(choosePath(tie, null, ['ws', 'quic']).kind, 'ws');
  assert.equal(choosePath(tie, null, ['quic', 'ws']).kind, 'quic');
});

const base: ReprobeInput = { nowMs: 100_000, lastProbeAtMs: 0, intervalMs: 600_000, minGapMs: 30_000, confirmPending: false, kindFailed: false, rttAtChoiceUs: 100_000, rttNowUs: 100_000, lossAtChoice: 0.01, lossNow: 0.01 };

test('re-probe: first, on schedule, to confirm a switch, when the kind failed, when RTT or loss shift; never sooner than the gap', () => {
  assert.equal(reprobeReason({ ...base, lastProbeAtMs: null }), 'first');
  assert.equal(reprobeReason(base), null);
  assert.equal(reprobeReason({ ...base, nowMs: 600_000 }), 'schedule');
  assert.equal(reprobeReason({ ...base, kindFailed: true }), 'kind_failed');
  assert.equal(reprobeReason({ ...base, confirmPending: true, kindFailed: true }), 'confirm', 'a pending switch is confirmed first');
  assert.equal(reprobeReason({ ...base, rttNowUs: base.rttAtChoiceUs * RTT_SHIFT_FACTOR }), 'rtt_shift');
  assert.equal(reprobeReason({ ...base, rttNowUs: base.rttAtChoiceUs / RTT_SHIFT_FACTOR }), 'rtt_shift');
  assert.equal(reprobeReason({ ...base, rttNowUs: base.rttAtChoiceUs * 1.5 }), null);
  assert.equal(reprobeReason({ ...base, lossNow: 0.01 + LOSS_SHIFT + 0.001 }), 'loss_shift');
  assert.equal(reprobeReason({ ...base, lossNow: null }), null, 'unknown loss (QUIC) never shifts');
  assert.equal(reprobeReason({ ...base, rttNowUs: 0 }), null, 'unknown RTT never shifts');
  // Within the gap after a probe, even a failed kind waits (a flapping path does not probe without end).
  assert.equal(reprobeReason({ ...base, nowMs: 10_000, kindFailed: true }), null);
  assert.equal(reprobeReason({ ...base, nowMs: 10_000, rttNowUs: 1_000_000 }), null);
  assert.equal(reprobeReason({ ...base, nowMs: 10_000, confirmPending: true }), null);
});
