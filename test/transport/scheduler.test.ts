// The link's scheduler as pure functions, driven by synthetic traces.
// FAKE PATH: carriers here are a small model (each delivers a fixed number
// of bytes per millisecond, in order, and acknowledges what it delivered);
// the e2e and netbench tests run the scheduler on real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MIN_RATE_BYTES_PER_S, nextRate, pickCarrier, type CarrierLoad } from '../../src/transport/scheduler.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Rate samples are taken this often in the link, ms. */
const SAMPLE_MS = 50;

function load(over: Partial<CarrierLoad> = {}): CarrierLoad {
  return { usable: true, queuedBytes: 0, outstandingBytes: 0, rateBytesPerS: MIN_RATE_BYTES_PER_S, ...over };
}

/** A modelled carrier: frames queue, `bytesPerMs` of them are delivered (and acknowledged) each millisecond. */
interface SimCarrier {
  bytesPerMs: number;
  queue: number[];
  /** Bytes of the head frame already delivered. */
  headDone: number;
  outstanding: number;
  delivered: number;
  rate: number;
  assigned: number[];
}

/**
 * Run a link over modelled carriers: frames of frameBytes enter while the
 * window has room, each goes where pickCarrier says, carriers deliver, rates
 * are sampled every SAMPLE_MS. rateAt(i, ms) gives a carrier's bytes/ms at a
 * time. Returns the time all frames were acknowledged and the carriers.
 */
function simulate(rateAt: (i: number, ms: number) => number, carriers: number, frames: number, frameBytes: number, windowBytes: number): { doneMs: number; sims: SimCarrier[] } {
  const sims: SimCarrier[] = Array.from({ length: carriers }, () => ({ bytesPerMs: 0, queue: [], headDone: 0, outstanding: 0, delivered: 0, rate: MIN_RATE_BYTES_PER_S, assigned: [] }));
  let sent = 0;
  let acked = 0;
  let inflight = 0;
  for (let ms = 0; ms < 600_000; ms++) {
    // Fill the window.
    while (sent < frames && (inflight === 0 || inflight + frameBytes <= windowBytes)) {
      const loads = sims.map((s) => load({ queuedBytes: s.outstanding, outstandingBytes: s.outstanding, rateBytesPerS: s.rate }));
      const i = pickCarrier(loads, frameBytes, -1, 64 * MiB);
      assert.ok(i >= 0, 'a carrier must take the frame');
      sims[i].queue.push(frameBytes);
      sims[i].outstanding += frameBytes;
      sims[i].assigned.push(ms);
      inflight += frameBytes;
      sent++;
    }
    // Deliver.
    sims.forEach((s, i) => {
      let budget = rateAt(i, ms);
      while (budget > 0 && s.queue.length > 0) {
        const step = Math.min(budget, s.queue[0] - s.headDone);
        s.headDone += step;
        budget -= step;
        if (s.headDone === s.queue[0]) {
          s.queue.shift();
          s.headDone = 0;
          s.outstanding -= frameBytes;
          s.delivered += frameBytes;
          inflight -= frameBytes;
          acked++;
        }
      }
    });
    // Sample rates.
    if (ms % SAMPLE_MS === SAMPLE_MS - 1) {
      for (const s of sims) {
        s.rate = nextRate(s.rate, s.delivered, s.outstanding, SAMPLE_MS / 1000);
        s.delivered = 0;
      }
    }
    if (acked === frames) return { doneMs: ms + 1, sims };
  }
  assert.fail('the trace did not finish');
}

test('two carriers at 10:1: most bytes go to the fast one and the transfer ends near the ideal time', () => {
  // 100 MB/s and 10 MB/s, in bytes per millisecond.
  const rates = [100_000, 10_000];
  const frames = 2000;
  const frameBytes = 64 * KiB;
  const { doneMs, sims } = simulate((i) => rates[i], 2, frames, frameBytes, 8 * MiB);
  const idealMs = (frames * frameBytes) / (rates[0] + rates[1]);
  const fastShare = sims[0].assigned.length / frames;
  assert.ok(fastShare > 0.85, `fast carrier took ${(fastShare * 100).toFixed(1)} % of frames (ideal 91 %)`);
  assert.ok(doneMs < idealMs * 1.15, `done after ${doneMs} ms, ideal ${idealMs.toFixed(0)} ms`);
});

test('equal carriers share evenly', () => {
  const frames = 1200;
  const { sims } = simulate(() => 20_000, 4, frames, 128 * KiB, 16 * MiB);
  for (const s of sims) assert.ok(Math.abs(s.assigned.length - frames / 4) <= frames * 0.05, `shares ${sims.map((x) => x.assigned.length)}`);
});

test('a carrier that stalls stops getting frames once its estimate falls, and the rest carry the transfer', () => {
  const stallAtMs = 500;
  const frames = 3000;
  const frameBytes = 64 * KiB;
  // Carrier 1 stalls for good at stallAtMs (a dead path the link has not noticed yet): its
  // frames never finish, so give it back its budget only after the others are done.
  const { sims } = simulate((i, ms) => (i === 1 && ms >= stallAtMs && ms < 20_000 ? 0 : 50_000), 3, frames, frameBytes, 8 * MiB);
  const late = sims[1].assigned.filter((ms) => ms >= stallAtMs + 4 * SAMPLE_MS).length;
  assert.ok(late <= 3, `stalled carrier got ${late} frames after its stall was measured`);
});

test('pickCarrier: earliest expected completion, full queues skipped, an empty queue takes even an oversized frame', () => {
  // Outstanding 4 MiB at 10 MB/s (0.42 s) against 1 MiB at 1 MB/s (1.05 s): the first.
  assert.equal(pickCarrier([load({ outstandingBytes: 4 * MiB, rateBytesPerS: 10e6 }), load({ outstandingBytes: MiB, rateBytesPerS: 1e6 })], 64 * KiB, -1, 8 * MiB), 0);
  // Unusable (dead or retired) slots are never chosen.
  assert.equal(pickCarrier([load({ usable: false }), load({ outstandingBytes: 100 * MiB })], KiB, -1, 8 * MiB), 1);
  // Queue full on both: nothing.
  assert.equal(pickCarrier([load({ queuedBytes: 8 * MiB }), load({ queuedBytes: 7.5 * MiB })], MiB, -1, 8 * MiB), -1);
  // A frame bigger than the carrier window still goes to an empty queue.
  assert.equal(pickCarrier([load({ queuedBytes: KiB }), load()], 16 * MiB, -1, 8 * MiB), 1);
  // A rate below the floor counts as the floor (a new carrier gets work).
  assert.equal(pickCarrier([load({ rateBytesPerS: 0 }), load({ outstandingBytes: 2 * MiB, rateBytesPerS: 1.5e6 })], KiB, -1, 8 * MiB), 0);
});

test('pickCarrier: a resent frame avoids its carrier unless nothing else fits', () => {
  assert.equal(pickCarrier([load(), load({ outstandingBytes: 50 * MiB })], KiB, 0, 8 * MiB), 1);
  assert.equal(pickCarrier([load(), load({ queuedBytes: 8 * MiB })], MiB, 0, 8 * MiB), 0);
  assert.equal(pickCarrier([load()], MiB, 0, 8 * MiB), 0);
});

test('nextRate: a busy carrier moves toward its delivered rate, an idle one keeps its estimate', () => {
  assert.equal(nextRate(5e6, 0, 0, 0.05), 5e6);
  // 1 MB delivered in 50 ms is 20 MB/s: the average moves 30 % of the way.
  assert.equal(nextRate(10e6, 1e6, 0, 0.05), 10e6 * 0.7 + 20e6 * 0.3);
  // Outstanding but nothing delivered: the estimate falls.
  assert.equal(nextRate(10e6, 0, MiB, 0.05), 7e6);
});
