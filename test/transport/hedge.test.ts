// Hedged resend as a pure decision, on synthetic traces of frames written
// to carriers and delivery reports (no sockets; the e2e test in
// test/e2e/delivery-acks.test.ts runs it on a slowed carrier).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HEDGE_BLOCKING_SRTT_FACTOR, HEDGE_MIN_MS, HEDGE_SRTT_FACTOR, hedgeDueBefore, nextDeliveryTime, pickHedges, type HedgeCandidate } from '../../src/transport/hedge.ts';

function frame(writtenAt: number, over: Partial<HedgeCandidate> = {}): HedgeCandidate {
  return { bytes: 100, writtenAt, hedged: false, hedgeInFlight: false, ...over };
}

test('a frame is hedged only when overdue by a few delivery times and a later frame was delivered', () => {
  const deliveryTimeMs = 20;
  const overdue = Math.max(HEDGE_MIN_MS, HEDGE_SRTT_FACTOR * deliveryTimeMs);
  const view = { now: 1000, deliveryTimeMs, newestDeliveredWrittenAt: 990, budgetBytes: 10_000 };
  // Written long ago, a later one arrived: hedge.
  assert.deepEqual(pickHedges([frame(1000 - overdue)], view), [0]);
  // Not yet overdue.
  assert.deepEqual(pickHedges([frame(1000 - overdue + 1)], view), []);
  // Overdue, but nothing written after it arrived: the whole path is slow, not its carrier.
  assert.deepEqual(pickHedges([frame(500)], { ...view, newestDeliveredWrittenAt: 400 }), []);
  // Nothing delivered yet: no estimate, no hedge.
  assert.deepEqual(pickHedges([frame(0)], { ...view, deliveryTimeMs: 0 }), []);
  // At most one hedge per frame.
  assert.deepEqual(pickHedges([frame(0, { hedged: true })], view), []);
});

test('the minimum wait holds on a fast path (ack coalescing and queueing are no reason to hedge)', () => {
  const view = { now: 1000, deliveryTimeMs: 1, newestDeliveredWrittenAt: 999, budgetBytes: 10_000 };
  assert.deepEqual(pickHedges([frame(1000 - HEDGE_MIN_MS + 1)], view), []);
  assert.deepEqual(pickHedges([frame(1000 - HEDGE_MIN_MS)], view), [0]);
});

test('hedge copies in flight stay within the budget, oldest frames first', () => {
  const view = { now: 10_000, deliveryTimeMs: 10, newestDeliveredWrittenAt: 9_990, budgetBytes: 350 };
  const frames = [frame(300), frame(100), frame(200), frame(400), frame(0, { hedged: true, hedgeInFlight: true })];
  // 100 bytes already in flight as a hedge copy: room for two more of 100, then 50 left.
  assert.deepEqual(pickHedges(frames, view), [1, 2]);
  // A slow carrier holding many frames: the budget caps what is sent twice.
  const many = Array.from({ length: 1000 }, (_, i) => frame(i));
  assert.equal(pickHedges(many, { ...view, budgetBytes: 2_500 }).length, 25);
});

test('a trace: one slow carrier among fast ones gets its frames hedged, fast carriers never', () => {
  // Frames written every ms round-robin to 4 carriers; carrier 3 delivers after 500 ms, the others after 10 ms.
  const slow = 3;
  const writes = Array.from({ length: 400 }, (_, i) => ({ writtenAt: i, carrier: i % 4, hedged: false }));
  let deliveryTimeMs = 0;
  let newestDelivered = Number.NEGATIVE_INFINITY;
  const delivered = new Set<number>();
  const hedgedAt = new Map<number, number>();
  for (let now = 0; now < 600; now += 50) {
    // Deliveries up to now.
    for (let i = 0; i < writes.length; i++) {
      const w = writes[i];
      const lag = w.carrier === slow ? 500 : 10;
      const arrivesAt = Math.min(w.writtenAt + lag, hedgedAt.has(i) ? hedgedAt.get(i)! + 10 : Infinity);
      if (w.writtenAt > now || delivered.has(i) || arrivesAt > now) continue;
      delivered.add(i);
      if (!w.hedged) deliveryTimeMs = nextDeliveryTime(deliveryTimeMs, arrivesAt - w.writtenAt);
      newestDelivered = Math.max(newestDelivered, w.writtenAt);
    }
    const pending = writes.map((w, i) => ({ w, i })).filter(({ w, i }) => w.writtenAt <= now && !delivered.has(i));
    const picked = pickHedges(pending.map(({ w, i }) => ({ bytes: 100, writtenAt: w.writtenAt, hedged: w.hedged, hedgeInFlight: hedgedAt.has(i) && !delivered.has(i) })), { now, deliveryTimeMs, newestDeliveredWrittenAt: newestDelivered, budgetBytes: 1_000_000 });
    for (const k of picked) {
      const { w, i } = pending[k];
      w.hedged = true;
      hedgedAt.set(i, now);
    }
  }
  const hedgedCarriers = new Set([...hedgedAt.keys()].map((i) => writes[i].carrier));
  assert.deepEqual([...hedgedCarriers], [slow], 'only the slow carrier\'s frames are hedged');
  assert.ok(hedgedAt.size >= 50, `hedged ${hedgedAt.size} of the slow carrier's 100 frames`);
  // Each hedged frame arrived long before its slow original would have.
  for (const [i, at] of hedgedAt) assert.ok(at + 10 < writes[i].writtenAt + 500, `frame ${i} hedged at ${at}`);
  assert.ok(deliveryTimeMs < 20, `delivery time follows the fast carriers: ${deliveryTimeMs} ms`);
});

test('hedgeDueBefore never leaves out a frame pickHedges would pick, and leaves out recent ones', () => {
  const view = { now: 10_000, deliveryTimeMs: 30, newestDeliveredWrittenAt: 9_000, budgetBytes: 1e12 };
  const frames = Array.from({ length: 2_000 }, (_, i) => frame(i * 5));
  const dueBefore = hedgeDueBefore(view);
  const picked = new Set(pickHedges(frames, view));
  for (const i of picked) assert.ok(frames[i].writtenAt <= dueBefore, `picked frame written at ${frames[i].writtenAt} is after ${dueBefore}`);
  // Written after the newest delivered write: not due, and skipped by the bound.
  assert.ok(frames.some((f) => f.writtenAt > dueBefore));
  assert.ok(picked.size > 0);
  assert.equal(hedgeDueBefore({ ...view, deliveryTimeMs: 0 }), -Infinity);
  // The bound is the overdue time when that is earlier than the newest delivered write.
  assert.equal(hedgeDueBefore({ ...view, newestDeliveredWrittenAt: 20_000 }), 10_000 - Math.max(HEDGE_MIN_MS, HEDGE_SRTT_FACTOR * 30));
  // Under hold pressure a blocking frame is due sooner: the bound moves with it.
  const pressed = { ...view, newestDeliveredWrittenAt: 20_000, holdPressure: true };
  const blocking = [frame(10_000 - Math.max(HEDGE_MIN_MS, HEDGE_BLOCKING_SRTT_FACTOR * 30), { blocking: true })];
  assert.deepEqual(pickHedges(blocking, pressed), [0]);
  assert.ok(blocking[0].writtenAt <= hedgeDueBefore(pressed));
});

test('under hold pressure the frame that blocks durability is hedged after one delivery time, others still wait for a few', () => {
  // Lab (satellite, 512 cubic carriers): 100-122 MiB of the 128 MiB hold sat delivered
  // behind a few stuck frames; four delivery times were 20 s and more.
  const deliveryTimeMs = 5_000;
  const view = { now: 100_000, deliveryTimeMs, newestDeliveredWrittenAt: 99_000, budgetBytes: 10_000 };
  const stuck = 100_000 - HEDGE_BLOCKING_SRTT_FACTOR * deliveryTimeMs - 1;
  const frames = [frame(stuck, { blocking: true }), frame(stuck)];
  // Without pressure neither is overdue yet (HEDGE_SRTT_FACTOR delivery times).
  assert.ok(HEDGE_SRTT_FACTOR > HEDGE_BLOCKING_SRTT_FACTOR);
  assert.deepEqual(pickHedges(frames, view), []);
  // With the hold half full, the blocking one goes at once; the other still waits.
  assert.deepEqual(pickHedges(frames, { ...view, holdPressure: true }), [0]);
  // A blocking frame written after a non-overdue one is still found (no early stop under pressure).
  assert.deepEqual(pickHedges([frame(stuck - 1), frame(stuck, { blocking: true })], { ...view, holdPressure: true }), [1]);
});
