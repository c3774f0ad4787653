// The link's in-flight window as a pure structure: synthetic and seeded
// random traces of sends, durable acknowledgements, delivery
// acknowledgements, carrier deaths and session ends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InflightWindow } from '../../src/transport/inflight-window.ts';

type Holder = 'a' | 'b' | 'c';

test('durable acknowledgements are cumulative per stream and free the window in order', () => {
  const w = new InflightWindow<string, Holder>(1000);
  for (let seq = 1; seq <= 4; seq++) w.add('s1', seq, `s1/${seq}`, 100, seq * 10);
  w.add('s2', 7, 's2/7', 300, 5);
  assert.equal(w.bytes, 700);
  assert.equal(w.oldestSentAt('s1'), 10);
  const released = w.durable('s1', 2);
  assert.deepEqual(released.map((e) => e.frame), ['s1/1', 's1/2']);
  assert.equal(w.bytes, 500);
  assert.equal(w.count('s1'), 2);
  assert.equal(w.oldestSentAt('s1'), 30);
  // An old (repeated) acknowledgement releases nothing; one beyond the last releases all.
  assert.deepEqual(w.durable('s1', 1), []);
  assert.deepEqual(w.durable('s1', 99).map((e) => e.seq), [3, 4]);
  assert.equal(w.count('s1'), 0);
  assert.equal(w.oldestSentAt('s1'), null);
  // Another stream is untouched.
  assert.equal(w.count('s2'), 1);
  assert.equal(w.bytes, 300);
});

test('fits: the limit bounds undelivered bytes; an empty window lets one oversized frame in', () => {
  const w = new InflightWindow<null, Holder>(1000);
  assert.equal(w.fits(5000), true, 'empty window takes an oversized frame');
  w.add('s', 1, null, 600, 0);
  assert.equal(w.fits(400), true);
  assert.equal(w.fits(401), false);
  w.add('s', 2, null, 400, 0);
  assert.equal(w.fits(1), false);
  w.durable('s', 1);
  assert.equal(w.fits(600), true);
  assert.throws(() => new InflightWindow(0), /limit must be positive, got 0/);
});

test('delivery acknowledgements free window bytes, keep the frame listed until durable, and stop its resend', () => {
  const w = new InflightWindow<string, Holder>(1000);
  // The destination announced it holds 2000 bytes delivered-not-durable.
  w.setHoldLimit(2000);
  const e1 = w.add('s', 1, 'f1', 400, 0);
  const e2 = w.add('s', 2, 'f2', 400, 0);
  e1.holder = 'a';
  e2.holder = 'a';
  assert.equal(w.fits(400), false);
  assert.equal(w.delivered('s', 1), e1);
  assert.equal(w.delivered('s', 1), null, 'a repeated delivery is no news');
  assert.equal(w.delivered('s', 9), null, 'unknown frame');
  assert.equal(w.bytes, 400);
  assert.equal(w.fits(400), true);
  assert.equal(w.count('s'), 2, 'delivered frames stay until durable');
  // Carrier a dies: only the undelivered frame goes out again.
  assert.deepEqual(w.heldBy('a').map((e) => e.seq), [2]);
  // Durable releases both; the delivered one is not charged twice.
  assert.equal(w.durable('s', 2).length, 2);
  assert.equal(w.bytes, 0);
});

test('heldBy follows the holder a frame was last written to; forget and clear empty the window', () => {
  const w = new InflightWindow<string, Holder>(10_000);
  const frames = [1, 2, 3].map((seq) => w.add('s', seq, `f${seq}`, 100, seq));
  frames[0].holder = 'a';
  frames[1].holder = 'b';
  frames[2].holder = 'a';
  assert.deepEqual(w.heldBy('a').map((e) => e.seq), [1, 3]);
  // Carrier a dies; frame 1 is resent on c.
  frames[0].holder = 'c';
  assert.deepEqual(w.heldBy('a').map((e) => e.seq), [3]);
  assert.deepEqual(w.heldBy('c').map((e) => e.seq), [1]);
  w.add('t', 1, 't1', 50, 0);
  assert.deepEqual(w.forget('s').map((e) => e.seq), [1, 2, 3]);
  assert.equal(w.bytes, 50);
  w.clear();
  assert.equal(w.bytes, 0);
  assert.equal(w.count('t'), 0);
});

test('a seeded random trace keeps the byte count equal to the undelivered frames, and within the limit', () => {
  // Mulberry32: a fixed seed makes the trace the same on every run.
  let seed = 0x5eed;
  const random = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const limit = 64 * 1024;
  const w = new InflightWindow<number, Holder>(limit);
  const streams = ['s1', 's2', 's3'];
  const nextSeq = new Map(streams.map((s) => [s, 1]));
  const holders: Holder[] = ['a', 'b', 'c'];
  // The model: every live frame and whether it was delivered.
  const model = new Map<string, { bytes: number; delivered: boolean; seq: number; stream: string }>();
  for (let step = 0; step < 20_000; step++) {
    const stream = streams[Math.floor(random() * streams.length)];
    const op = random();
    if (op < 0.5) {
      const bytes = 1 + Math.floor(random() * 16 * 1024);
      if (!w.fits(bytes)) continue;
      const seq = nextSeq.get(stream)!;
      nextSeq.set(stream, seq + 1);
      w.add(stream, seq, seq, bytes, step).holder = holders[Math.floor(random() * 3)];
      model.set(`${stream}/${seq}`, { bytes, delivered: false, seq, stream });
    } else if (op < 0.7) {
      const seq = Math.floor(random() * nextSeq.get(stream)!);
      if (w.delivered(stream, seq)) model.get(`${stream}/${seq}`)!.delivered = true;
    } else if (op < 0.95) {
      const upTo = Math.floor(random() * nextSeq.get(stream)!);
      const released = w.durable(stream, upTo);
      for (const e of released) {
        assert.ok(e.seq <= upTo);
        model.delete(`${stream}/${e.seq}`);
      }
      for (const m of model.values()) assert.ok(m.stream !== stream || m.seq > upTo, 'a frame at or below the durable point stayed');
    } else if (op < 0.99) {
      for (const e of w.heldBy(holders[Math.floor(random() * 3)])) assert.equal(e.delivered, false);
    } else {
      w.clear();
      model.clear();
    }
    const undelivered = [...model.values()].filter((m) => !m.delivered).reduce((a, m) => a + m.bytes, 0);
    assert.equal(w.bytes, undelivered, `step ${step}`);
    assert.ok(w.bytes <= limit || [...model.values()].filter((m) => !m.delivered).length === 1, `step ${step}: ${w.bytes} bytes over the limit`);
  }
});

test('the hold bounds delivered-but-not-durable bytes: a stalled apply still stops the sender', () => {
  const w = new InflightWindow<null, Holder>(1000);
  w.setHoldLimit(2500);
  // The destination delivers every frame but never makes anything durable (its apply is stalled).
  let seq = 0;
  while (w.fits(500)) {
    w.add('s', ++seq, null, 500, 0);
    w.delivered('s', seq);
  }
  assert.equal(seq, 5, 'five 500-byte frames fill the 2500-byte hold');
  assert.equal(w.bytes, 0, 'nothing undelivered');
  assert.equal(w.deliveredBytes, 2500);
  // Durability frees the hold.
  w.durable('s', 2);
  assert.equal(w.deliveredBytes, 1500);
  assert.equal(w.fits(1000), true);
  assert.equal(w.fits(1001), false);
  // Without an announced hold (a peer without Delivered), everything counts against the limit.
  w.setHoldLimit(null);
  assert.equal(w.fits(1), false);
});

test('deliveredRange marks each frame once, walks only frames in flight, and a Nack (undeliver) charges it again', () => {
  const w = new InflightWindow<string, Holder>(10_000);
  w.setHoldLimit(20_000);
  for (let seq = 1; seq <= 6; seq++) w.add('s', seq, `f${seq}`, 100, seq).holder = 'a';
  assert.deepEqual(w.deliveredRange('s', 2, 4).map((e) => e.seq), [2, 3, 4]);
  assert.deepEqual(w.deliveredRange('s', 3, 5).map((e) => e.seq), [5], 'only news');
  assert.deepEqual(w.deliveredRange('s', 5, 2), [], 'first > last');
  assert.deepEqual(w.deliveredRange('x', 1, 9), [], 'unknown stream');
  // A peer's huge range costs the frames in flight, not the range.
  assert.deepEqual(w.deliveredRange('s', 0, Number.MAX_SAFE_INTEGER).map((e) => e.seq), [1, 6]);
  assert.equal(w.bytes, 0);
  assert.equal(w.deliveredBytes, 600);
  const e3 = w.get('s', 3)!;
  w.undeliver(e3);
  assert.equal(w.bytes, 100);
  assert.equal(w.deliveredBytes, 500);
  assert.deepEqual(w.undelivered().map((e) => e.seq), [3]);
  w.undeliver(e3);
  assert.equal(w.bytes, 100, 'undeliver twice is a no-op');
  assert.equal(w.durable('s', 6).length, 6);
  assert.equal(w.bytes, 0);
  assert.equal(w.deliveredBytes, 0);
});

test('heldBy lists frames whose hedge copy is on the carrier too', () => {
  const w = new InflightWindow<string, Holder>(10_000);
  const e1 = w.add('s', 1, 'f1', 100, 0);
  const e2 = w.add('s', 2, 'f2', 100, 0);
  e1.holder = 'a';
  e2.holder = 'b';
  e1.hedgeHolder = 'b';
  assert.deepEqual(w.heldBy('b').map((e) => e.seq), [1, 2]);
  w.delivered('s', 1);
  assert.deepEqual(w.heldBy('b').map((e) => e.seq), [2]);
});

test('undelivered and heldBy list only undelivered frames, per stream in sequence order, a Nacked older frame included', () => {
  const w = new InflightWindow<string, Holder>(10_000);
  w.setHoldLimit(20_000);
  for (let seq = 1; seq <= 5; seq++) w.add('s', seq, `s${seq}`, 100, seq).holder = seq % 2 === 0 ? 'b' : 'a';
  w.add('t', 1, 't1', 100, 0).holder = 'a';
  w.deliveredRange('s', 1, 3);
  assert.deepEqual(w.undelivered().map((e) => `${e.streamId}${e.seq}`), ['s4', 's5', 't1']);
  // A Nack puts frame 2 back: it comes before 4 and 5 (the first undelivered frame of a stream blocks it).
  w.undeliver(w.get('s', 2)!);
  assert.deepEqual(w.undelivered().map((e) => `${e.streamId}${e.seq}`), ['s2', 's4', 's5', 't1']);
  assert.deepEqual(w.heldBy('b').map((e) => e.seq), [2, 4]);
  assert.deepEqual(w.heldBy('a').map((e) => `${e.streamId}${e.seq}`), ['s5', 't1']);
  // Durable frames leave the list whether delivered or not.
  w.durable('s', 4);
  assert.deepEqual(w.undelivered().map((e) => `${e.streamId}${e.seq}`), ['s5', 't1']);
  w.clear();
  assert.deepEqual(w.undelivered(), []);
});
