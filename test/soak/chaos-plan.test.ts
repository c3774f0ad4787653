// The soak's chaos script is a pure function of its seed: bounded, only
// the enabled kinds, every kind in the first round, kills on both sides,
// one quorum loss (the second etcd event), single-member restarts otherwise.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ETCD_MEMBERS, FAULT_KINDS, parseFaults, planChaos, type FaultKind } from '../../soak/chaos-plan.ts';

test('chaos plan: same seed, same script; another seed, another script', () => {
  const a = planChaos({ seed: 7, faults: FAULT_KINDS, maxEvents: 20 });
  assert.deepEqual(planChaos({ seed: 7, faults: FAULT_KINDS, maxEvents: 20 }), a);
  assert.notDeepEqual(planChaos({ seed: 8, faults: FAULT_KINDS, maxEvents: 20 }), a);
});

test('chaos plan: bounded by maxEvents, only enabled kinds, every kind in the first round', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const faults: FaultKind[] = ['kill', 'carrier', 'etcd'];
    const plan = planChaos({ seed, faults, maxEvents: 11 });
    assert.equal(plan.length, 11);
    assert.deepEqual(plan.map((e) => e.index), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.ok(plan.every((e) => faults.includes(e.kind)), `seed ${seed}: a kind that was not enabled`);
    assert.deepEqual(new Set(plan.slice(0, faults.length).map((e) => e.kind)), new Set(faults), `seed ${seed}: first round`);
    assert.ok(plan.every((e) => e.gapMs > 0 && e.holdMs > 0));
  }
  assert.deepEqual(planChaos({ seed: 1, faults: FAULT_KINDS, maxEvents: 0 }), []);
  assert.deepEqual(planChaos({ seed: 1, faults: [], maxEvents: 5 }), []);
  assert.throws(() => planChaos({ seed: 1, faults: FAULT_KINDS, maxEvents: -1 }), /maxEvents/);
});

test('chaos plan: kills alternate between sender and receiver; exactly one quorum loss, the second etcd event', () => {
  for (let seed = 1; seed <= 50; seed++) {
    const plan = planChaos({ seed, faults: FAULT_KINDS, maxEvents: 24 });
    const kills = plan.filter((e) => e.kind === 'kill').map((e) => e.action.type);
    for (let i = 1; i < kills.length; i++) assert.notEqual(kills[i], kills[i - 1], `seed ${seed}: two ${kills[i]} in a row`);
    const etcd = plan.filter((e) => e.action.type === 'etcd-restart');
    const sizes = etcd.map((e) => (e.action.type === 'etcd-restart' ? e.action.members : []));
    assert.equal(sizes[1].length, 2, `seed ${seed}: the second etcd event takes two members`);
    assert.notEqual(sizes[1][0], sizes[1][1]);
    assert.ok(sizes.every((m, i) => i === 1 || m.length === 1), `seed ${seed}: quorum kept in every other etcd event`);
    assert.ok(sizes.flat().every((m) => m >= 0 && m < ETCD_MEMBERS));
    // The quorum loss outlasts the agents' 2 s lease.
    assert.ok(etcd[1].holdMs > 2_000);
  }
});

test('parse faults: known kinds once each', () => {
  assert.deepEqual(parseFaults('kill,carrier, etcd'), ['kill', 'carrier', 'etcd']);
  assert.deepEqual(parseFaults('disk'), ['disk']);
  assert.throws(() => parseFaults(''), /faults: empty list/);
  assert.throws(() => parseFaults('kill,flood'), /faults: unknown kind "flood"/);
  assert.throws(() => parseFaults('kill,kill'), /faults: kind "kill" given twice/);
});
