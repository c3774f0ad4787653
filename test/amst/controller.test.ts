// The AMST controller as a pure function, driven by synthetic traces.
// FAKE PATH: a real WAN cannot run inside a unit test, so `pathSample`
// below is a small model of a bottleneck fitted to what the lab measured
// (README "netbench"): loss-based flows capped by Mathis, bbr flows at a
// fraction of the link, demand above the link builds a queue (RTT grows up
// to the queue depth). The netbench e2e test runs the controller on the
// real emulated link.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decide, initialState, mathisBytesPerS, chooseCongestion, QUEUE_RTT_FACTOR, REPROBE_INTERVALS, MODEL_STEP_FACTOR,
  type ControllerConfig, type ControllerState, type Decision, type IntervalSample,
} from '../../src/amst/controller.ts';

interface Path {
  rateBytesPerS: number;
  rttMs: number;
  loss: number;
  queueMs: number;
}

const MBIT = 125_000;
const METRO: Path = { rateBytesPerS: 1000 * MBIT, rttMs: 10, loss: 0, queueMs: 50 };
const CONTINENTAL: Path = { rateBytesPerS: 1000 * MBIT, rttMs: 50, loss: 0.001, queueMs: 50 };
const INTERCONTINENTAL: Path = { rateBytesPerS: 1000 * MBIT, rttMs: 100, loss: 0.01, queueMs: 50 };
const SATELLITE: Path = { rateBytesPerS: 100 * MBIT, rttMs: 600, loss: 0.02, queueMs: 50 };

/** Interval used by these traces, ms. */
const INTERVAL_MS = 1000;

function config(over: Partial<ControllerConfig> = {}): ControllerConfig {
  return { minStreams: 1, maxStreams: 512, bandwidthCapBytesPerS: null, availableCongestion: ['reno', 'cubic', 'bbr'], congestionControl: 'auto', intervalMs: INTERVAL_MS, ...over };
}

/** Per-flow rate on the path for a congestion control. */
function perFlow(path: Path, cc: string): number {
  if (cc === 'bbr') return path.rateBytesPerS * (path.loss > 0 ? 0.6 : 0.9);
  return Math.min(path.rateBytesPerS, mathisBytesPerS(path.rttMs * 1000, path.loss));
}

/** The default goodput wobble of interval i: a deterministic +-3 %. */
function sineWobble(i: number): number {
  return 0.03 * Math.sin(i * 1.7);
}

/** One interval of n flows on the path, with a wobble (relative; default +-3 %). */
function pathSample(path: Path, n: number, cc: string, i: number, wobble = sineWobble(i)): IntervalSample {
  const demand = (n * perFlow(path, cc)) / path.rateBytesPerS;
  const goodput = Math.min(path.rateBytesPerS, n * perFlow(path, cc)) * (1 + wobble);
  const queueMs = demand > 1 ? Math.min(path.queueMs, (demand - 1) * path.rttMs * 0.5) : 0;
  const rttUs = (path.rttMs + queueMs) * 1000;
  const sent = goodput / Math.max(n, 1);
  return {
    goodputBytesPerS: goodput,
    carrierCount: n,
    carriers: Array.from({ length: n }, () => ({ rttUs, minRttUs: path.rttMs * 1000, sentBytes: sent, retransBytes: sent * path.loss, deliveryRateBytesPerS: sent })),
  };
}

interface Trace {
  decisions: Decision[];
  goodputs: number[];
  rttsMs: number[];
  state: ControllerState;
}

/** Run the controller for `intervals` on a path (which may change over time). */
function run(cfg: ControllerConfig, pathAt: (i: number) => Path, intervals: number, start?: ControllerState, wobble: (i: number) => number = sineWobble): Trace {
  let state = start ?? initialState(cfg);
  const trace: Trace = { decisions: [], goodputs: [], rttsMs: [], state };
  for (let i = 0; i < intervals; i++) {
    const sample = pathSample(pathAt(i), state.carriers, state.congestionControl, i, wobble(i));
    trace.goodputs.push(sample.goodputBytesPerS);
    trace.rttsMs.push(sample.carriers[0].rttUs / 1000);
    const { decision, state: next } = decide(cfg, sample, state);
    trace.decisions.push(decision);
    state = next;
  }
  trace.state = state;
  return trace;
}

/** First interval after which the carrier count only moves by probes (returns within a probe's length). */
function settledAt(trace: Trace): number {
  const final = trace.decisions.findLast((d) => d.reason === 'hold' || d.reason === 'limit')?.carriers;
  if (final === undefined) return Infinity;
  let last = 0;
  trace.decisions.forEach((d, i) => {
    if (d.reason === 'grow' || d.reason === 'shed' || d.reason === 'no-gain' || d.reason === 'shed-undo' || d.reason === 'settling' || d.reason === 'measuring') return;
    if (d.carriers !== final) last = i + 1;
  });
  return last;
}

/** Intervals within which each profile-like trace must settle. */
const CONVERGE_INTERVALS = 30;

test('congestion control: bbr when offered, cubic otherwise, configured one when offered', () => {
  assert.equal(chooseCongestion(config()), 'bbr');
  assert.equal(chooseCongestion(config({ availableCongestion: ['reno', 'cubic'] })), 'cubic');
  assert.equal(chooseCongestion(config({ congestionControl: 'reno' })), 'reno');
  assert.equal(chooseCongestion(config({ congestionControl: 'bbr', availableCongestion: ['cubic'] })), 'cubic');
});

test('intercontinental with bbr: fills the link without a standing queue, settles within 30 intervals', () => {
  const trace = run(config(), () => INTERCONTINENTAL, 120);
  const tail = trace.goodputs.slice(-20);
  const held = trace.decisions.at(-1)!;
  assert.equal(held.congestionControl, 'bbr');
  assert.ok(held.carriers >= 2 && held.carriers <= 4, `held ${held.carriers} carriers`);
  assert.ok(Math.min(...tail.slice(-5)) >= 0.9 * INTERCONTINENTAL.rateBytesPerS * 0.97, `tail goodput ${tail}`);
  assert.ok(settledAt(trace) <= CONVERGE_INTERVALS, `settled at interval ${settledAt(trace)}`);
  // Outside a probe, mean RTT stays under the standing-queue bound.
  const heldRtts = trace.rttsMs.filter((_, i) => trace.decisions[i].reason === 'hold');
  assert.ok(heldRtts.length > 0 && heldRtts.every((r) => r <= QUEUE_RTT_FACTOR * INTERCONTINENTAL.rttMs), `held rtts ${heldRtts}`);
});

test('intercontinental cubic only: the model starts high, many carriers, >= 10x one flow', () => {
  const cfg = config({ availableCongestion: ['reno', 'cubic'] });
  const trace = run(cfg, () => INTERCONTINENTAL, 120);
  const held = trace.decisions.at(-1)!;
  assert.equal(held.congestionControl, 'cubic');
  // Toward the model in steps of at most MODEL_STEP_FACTOR x, each going on because it paid: 1 -> 8 -> 64 -> 512.
  const jumps = trace.decisions.filter((d, i) => d.reason === 'model' && (i === 0 || trace.decisions[i - 1].carriers !== d.carriers)).map((d) => d.carriers);
  assert.deepEqual(jumps, [MODEL_STEP_FACTOR, MODEL_STEP_FACTOR ** 2, 512], 'model jump in steps, clamped to maxStreams');
  assert.ok(held.carriers >= 100, `held ${held.carriers} carriers`);
  const one = perFlow(INTERCONTINENTAL, 'cubic');
  assert.ok(trace.goodputs.at(-1)! >= 10 * one, `goodput ${trace.goodputs.at(-1)} vs one flow ${one}`);
  assert.ok(settledAt(trace) <= CONVERGE_INTERVALS, `settled at interval ${settledAt(trace)}`);
});

test('metro: few carriers (<= 4) with bbr and with cubic', () => {
  for (const available of [['cubic', 'bbr'], ['cubic']]) {
    const trace = run(config({ availableCongestion: available }), () => METRO, 60);
    const held = trace.decisions.at(-1)!;
    assert.ok(held.carriers <= 4, `${available}: ${held.carriers} carriers`);
    assert.ok(settledAt(trace) <= CONVERGE_INTERVALS, `${available}: settled at interval ${settledAt(trace)}`);
  }
});

test('continental and satellite: settle, within maxStreams, near the link rate', () => {
  for (const [name, path, intervals] of [['continental', CONTINENTAL, 60], ['satellite', SATELLITE, 200]] as const) {
    for (const available of [['cubic', 'bbr'], ['cubic']]) {
      const trace = run(config({ availableCongestion: available }), () => path, intervals);
      assert.ok(trace.decisions.every((d) => d.carriers >= 1 && d.carriers <= 512), `${name}: out of range`);
      // Best reachable: the link, or what maxStreams loss-limited flows can carry.
      const reachable = Math.min(path.rateBytesPerS, 512 * perFlow(path, trace.decisions.at(-1)!.congestionControl));
      const held = Math.max(...trace.goodputs.slice(-20));
      assert.ok(held >= 0.85 * reachable, `${name} ${available}: ${held} of ${reachable}`);
      const limit = name === 'satellite' ? 6 * CONVERGE_INTERVALS : CONVERGE_INTERVALS;
      assert.ok(settledAt(trace) <= limit, `${name} ${available}: settled at ${settledAt(trace)}`);
    }
  }
});

test('never exceeds maxStreams', () => {
  const cfg = config({ availableCongestion: ['cubic'], maxStreams: 48 });
  const trace = run(cfg, () => INTERCONTINENTAL, 100);
  assert.ok(trace.decisions.every((d) => d.carriers <= 48), 'a decision went above maxStreams');
  assert.equal(Math.max(...trace.decisions.map((d) => d.carriers)), 48);
});

test('bandwidth cap: sheds to the cap and never grows while at it', () => {
  const cap = 20 * MBIT;
  const cfg = config({ availableCongestion: ['cubic'], bandwidthCapBytesPerS: cap });
  const trace = run(cfg, () => INTERCONTINENTAL, 150);
  // The model aims at the cap, not at the link.
  const model = trace.decisions.find((d) => d.reason === 'model')!;
  assert.ok(model.carriers <= Math.ceil(cap / perFlow(INTERCONTINENTAL, 'cubic')) + 1, `model ${model.carriers}`);
  trace.decisions.forEach((d, i) => {
    if (i > 0 && d.carriers > trace.decisions[i - 1].carriers) assert.ok(trace.goodputs[i] < cap, `grew at ${i} with goodput ${trace.goodputs[i]} >= cap`);
  });
  const tail = trace.goodputs.slice(-30);
  assert.ok(tail.every((g) => g <= cap * 1.15), `tail above cap: ${Math.max(...tail)}`);
});

test('sheds carriers when the path improves (loss falls from 1 % to 0.01 %)', () => {
  const cfg = config({ availableCongestion: ['cubic'] });
  const better: Path = { ...INTERCONTINENTAL, loss: 0.0001 };
  const trace = run(cfg, (i) => (i < 60 ? INTERCONTINENTAL : better), 200);
  const before = trace.decisions[59].carriers;
  const after = trace.decisions.at(-1)!.carriers;
  assert.ok(after <= before / 4, `before ${before}, after ${after}`);
  assert.ok(trace.goodputs.at(-1)! >= 0.9 * better.rateBytesPerS, `goodput after ${trace.goodputs.at(-1)}`);
});

test('fairness guard: a standing queue sheds and caps growth', () => {
  // A path whose RTT is inflated by other flows (queue present whatever we do).
  const cfg = config();
  let state = initialState(cfg, 8);
  const decisions: Decision[] = [];
  for (let i = 0; i < 20; i++) {
    const sample = pathSample(INTERCONTINENTAL, state.carriers, 'bbr', i);
    for (const c of sample.carriers) c.rttUs = 200_000;
    const r = decide(cfg, sample, state);
    decisions.push(r.decision);
    state = r.state;
  }
  assert.ok(decisions.some((d) => d.reason === 'queue'), 'no queue decision');
  assert.ok(decisions.at(-1)!.carriers < 8, `still ${decisions.at(-1)!.carriers}`);
  for (let i = 1; i < decisions.length; i++) assert.ok(decisions[i].carriers <= decisions[i - 1].carriers, `grew at ${i}`);
});

test('metro cubic filling its own queue: queue-drop loss does not trigger the model (measured in the lab)', () => {
  // One cubic flow on 10 ms / 1 Gbit/s fills the 50 ms queue: RTT ~45 ms, drops ~0.3 %.
  const cfg = config({ availableCongestion: ['cubic'] });
  let state = initialState(cfg);
  const decisions: Decision[] = [];
  for (let i = 0; i < 40; i++) {
    const sent = 120_000_000 / state.carriers;
    const sample: IntervalSample = {
      goodputBytesPerS: 118_000_000, carrierCount: state.carriers,
      carriers: Array.from({ length: state.carriers }, () => ({ rttUs: 45_000, minRttUs: 10_000, sentBytes: sent, retransBytes: sent * 0.003, deliveryRateBytesPerS: sent })),
    };
    const r = decide(cfg, sample, state);
    decisions.push(r.decision);
    state = r.state;
  }
  assert.ok(decisions.every((d) => d.carriers <= 4), `carriers ${decisions.map((d) => d.carriers)}`);
});

test('a model jump is given time to ramp, and one that did not pay is bisected, not abandoned', () => {
  // FAKE PATH as above, plus a ramp: new carriers deliver nothing for their
  // first 4 intervals (handshakes, slow start), as 512 cubic carriers did in the lab.
  const cfg = config({ congestionControl: 'cubic' });
  let state = initialState(cfg);
  let carriersSince = 0;
  let lastCount = state.carriers;
  const counts: number[] = [];
  for (let i = 0; i < 60; i++) {
    if (state.carriers !== lastCount) {
      carriersSince = i;
      lastCount = state.carriers;
    }
    const sample = pathSample(INTERCONTINENTAL, state.carriers, 'cubic', i);
    if (i - carriersSince < 4 && i > 3) sample.goodputBytesPerS = Math.min(sample.goodputBytesPerS, 0.5 * MBIT);
    state = decide(cfg, sample, state).state;
    counts.push(state.carriers);
  }
  assert.ok(Math.max(...counts.slice(-10)) >= 64, `cubic carriers after a slow ramp: ${counts.join(',')}`);
});

// ---- stable control (issue 9 item 4) ----

/** A seeded generator in [0, 1) (noise that is not a neat sine). */
function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

/** Run on a path with +-`noise` seeded random goodput wobble (instead of the sine). */
function runNoisy(cfg: ControllerConfig, pathAt: (i: number) => Path, intervals: number, noise: number, seed = 7): Trace {
  const random = seeded(seed);
  return run(cfg, pathAt, intervals, undefined, () => noise * (2 * random() - 1));
}

/** Held counts (reason hold) and the number of times the count left the held one, from interval `from` on. */
function heldAndExcursions(trace: Trace, from: number): { held: Set<number>; excursions: number } {
  const held = new Set(trace.decisions.slice(from).filter((d) => d.reason === 'hold').map((d) => d.carriers));
  let excursions = 0;
  for (let i = Math.max(1, from); i < trace.decisions.length; i++) {
    if (trace.decisions[i].carriers !== trace.decisions[i - 1].carriers && trace.decisions[i - 1].reason === 'hold') excursions++;
  }
  return { held, excursions };
}

test('a steady path keeps one count after settling: the held count never changes and probes back off (bbr and cubic, 10 % noise)', () => {
  for (const available of [['cubic', 'bbr'], ['cubic']]) {
    const trace = runNoisy(config({ availableCongestion: available }), () => INTERCONTINENTAL, 1000, 0.1);
    const { held, excursions } = heldAndExcursions(trace, 100);
    assert.equal(held.size, 1, `${available}: held counts after settling ${[...held]}`);
    // A probe every REPROBE_INTERVALS would leave the count ~45 times in 900 intervals; backed off, a handful.
    assert.ok(excursions <= 4, `${available}: the count left the held one ${excursions} times in 900 intervals`);
    const count = [...held][0];
    if (available.includes('bbr')) assert.ok(count <= 4, `bbr: the fewest carriers that fill the path, held ${count}`);
    else assert.ok(count >= 100, `cubic: as many as pay, held ${count}`);
  }
});

test('a step change re-settles: loss rising from 0.1 % to 0.4 % (cubic) grows the count and holds the new one', () => {
  const before: Path = { ...INTERCONTINENTAL, loss: 0.001 };
  const after: Path = { ...INTERCONTINENTAL, loss: 0.004 };
  const cfg = config({ availableCongestion: ['cubic'] });
  const trace = runNoisy(cfg, (i) => (i < 400 ? before : after), 1000, 0.05);
  const early = heldAndExcursions({ ...trace, decisions: trace.decisions.slice(0, 400) }, 100);
  assert.equal(early.held.size, 1, `held before the change: ${[...early.held]}`);
  const late = heldAndExcursions(trace, 600);
  assert.equal(late.held.size, 1, `held after re-settling: ${[...late.held]}`);
  const [countBefore] = early.held;
  const [countAfter] = late.held;
  assert.ok(countAfter > countBefore, `the worse path needs more carriers: ${countBefore} -> ${countAfter}`);
  const reachable = Math.min(after.rateBytesPerS, 512 * perFlow(after, 'cubic'));
  const tail = trace.goodputs.slice(-50);
  assert.ok(tail.reduce((a, g) => a + g, 0) / tail.length >= 0.85 * reachable, `goodput after re-settling ${tail.at(-1)} of ${reachable}`);
});

test('shedding never collapses goodput: small losses per step do not add up (judged against where the descent started)', () => {
  // FAKE PATH: goodput grows slowly with the count, (n/64)^0.15 of 100 MB/s,
  // so each 25 % shed loses ~4 %: under GAIN_THRESHOLD one step at a time.
  const cfg = config({ availableCongestion: ['cubic'], minStreams: 1, maxStreams: 64 });
  let state = initialState(cfg, 64);
  const goodputs: number[] = [];
  const best = 100e6;
  for (let i = 0; i < 600; i++) {
    const n = state.carriers;
    const goodput = best * Math.pow(n / 64, 0.15) * (1 + 0.01 * Math.sin(i * 1.7));
    const sample: IntervalSample = {
      goodputBytesPerS: goodput, carrierCount: n,
      carriers: Array.from({ length: n }, () => ({ rttUs: 100_000, minRttUs: 100_000, sentBytes: goodput / n, retransBytes: 0, deliveryRateBytesPerS: goodput / n })),
    };
    goodputs.push(goodput);
    state = decide(cfg, sample, state).state;
  }
  // After the first measurements, goodput stays within one step's loss of the best, whatever the probes.
  const worst = Math.min(...goodputs.slice(20));
  assert.ok(worst >= 0.85 * best, `goodput fell to ${(worst / best).toFixed(2)} of the best (carriers now ${state.carriers})`);
  assert.ok(state.carriers >= 32, `shed to ${state.carriers} carriers`);
});

test('cubic shedding after the path improves keeps goodput near the link the whole way (no collapse)', () => {
  const cfg = config({ availableCongestion: ['cubic'] });
  const better: Path = { ...INTERCONTINENTAL, loss: 0.0001 };
  const trace = runNoisy(cfg, (i) => (i < 60 ? INTERCONTINENTAL : better), 400, 0.03);
  const afterChange = trace.goodputs.slice(70);
  const worst = Math.min(...afterChange);
  assert.ok(worst >= 0.7 * better.rateBytesPerS, `goodput fell to ${(worst / better.rateBytesPerS).toFixed(2)} of the link while shedding`);
  assert.ok(trace.decisions.at(-1)!.carriers < trace.decisions[59].carriers, 'it shed');
});

// ---- long paths (issue 9: satellite, 600 ms RTT, 2 % loss, 100 Mbit/s) ----

/**
 * FAKE PATH with the lab's long-path effects: a carrier delivers nothing
 * until connectIntervals after it was asked for (TCP + TLS + Hello at
 * 600 ms and 2 % loss; 511 carriers took ~10 s in the lab), then ramps
 * linearly to its per-flow cap over rampIntervals (bbr startup and loss
 * recovery at 600 ms), and each
 * interval's acknowledged goodput is bursty: whole 128 KiB frames are
 * released behind each TCP loss, so per-second goodput swung 0..240 Mbit/s
 * around a steady ~85 (seeded random factor, mean ~0.9); the carriers'
 * TCP counters were as bursty (sent 7..157 Mbit/s per second).
 */
interface RampingPath {
  rateBytesPerS: number;
  rttMs: number;
  loss: number;
  /** A flow's steady rate, bytes/s, by congestion control. */
  perFlow: (cc: string) => number;
  /** Intervals before the carriers asked for in one step are connected, per carrier asked for at once (at least 1). */
  connectPerCarrier: number;
  rampIntervals: number;
}

/** Run the controller on a ramping path; each carrier's join time is tracked. */
function runRamping(cfg: ControllerConfig, path: RampingPath, intervals: number, seed: number): Trace {
  const random = seeded(seed);
  let state = initialState(cfg);
  const joined: number[] = [0]; // interval each live carrier connected at (the first: at 0)
  const pendingJoins: number[] = [];
  const trace: Trace = { decisions: [], goodputs: [], rttsMs: [], state };
  for (let i = 0; i < intervals; i++) {
    // Connections complete; a lower count closes the newest carriers first.
    while (pendingJoins.length > 0 && pendingJoins[0] <= i) joined.push(pendingJoins.shift()!);
    const cap = path.perFlow(state.congestionControl);
    const offered = joined.reduce((a, at) => a + cap * Math.min(1, (i - at) / path.rampIntervals), 0);
    const demand = (joined.length * cap) / path.rateBytesPerS;
    const burst = random() < 0.2 ? 0.1 : 0.4 + 1.4 * random();
    const goodput = Math.min(path.rateBytesPerS, offered) * burst;
    const queueMs = demand > 1 ? Math.min(50, (demand - 1) * path.rttMs * 0.1) : 0;
    const rttUs = (path.rttMs + queueMs) * 1000;
    const n = Math.max(joined.length, 1);
    const moved = goodput / n;
    const sample: IntervalSample = {
      goodputBytesPerS: goodput, carrierCount: joined.length,
      carriers: joined.map(() => ({ rttUs, minRttUs: path.rttMs * 1000, sentBytes: moved * (1 + path.loss), retransBytes: moved * path.loss, deliveryRateBytesPerS: moved })),
    };
    trace.goodputs.push(goodput);
    trace.rttsMs.push(rttUs / 1000);
    const { decision, state: next } = decide(cfg, sample, state);
    trace.decisions.push(decision);
    // Apply: new carriers join after their connect time, extra ones close at once.
    const target = next.carriers;
    const asked = target - joined.length - pendingJoins.length;
    if (asked > 0) {
      const ready = i + 1 + Math.max(1, Math.ceil(asked * path.connectPerCarrier));
      for (let k = 0; k < asked; k++) pendingJoins.push(ready);
    } else {
      while (joined.length + pendingJoins.length > target && pendingJoins.length > 0) pendingJoins.pop();
      while (joined.length > target) joined.pop();
    }
    state = next;
  }
  trace.state = state;
  return trace;
}

/**
 * The lab's satellite path: one bbr flow ~35 % of the link once ramped
 * (tcp 1 x bbr 25-31 Mbit/s), ramping in ~5 s (a second carrier reached
 * 40-55 Mbit/s in 4-5 s); cubic at Mathis, 511 carriers connected in ~10 s
 * and took ~10-15 s more to reach the link.
 */
const SATELLITE_RAMPING: RampingPath = {
  rateBytesPerS: SATELLITE.rateBytesPerS, rttMs: SATELLITE.rttMs, loss: SATELLITE.loss,
  perFlow: (cc) => (cc === 'bbr' ? 0.35 * SATELLITE.rateBytesPerS : mathisBytesPerS(SATELLITE.rttMs * 1000, SATELLITE.loss)),
  connectPerCarrier: 0.02, rampIntervals: 5,
};
const SATELLITE_CUBIC_RAMPING: RampingPath = { ...SATELLITE_RAMPING, rampIntervals: 15 };

test('satellite with bbr: ramps and bursty goodput, the link still gets the carriers that fill it (>= 3, tail >= 70 % of the link)', () => {
  // Lab (this morning, before): 2 carriers judged against 1 on per-second goodput; it went back to 1 and held at ~18 Mbit/s.
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const trace = runRamping(config(), SATELLITE_RAMPING, 150, seed);
    const held = trace.decisions.at(-1)!;
    assert.equal(held.congestionControl, 'bbr');
    assert.ok(held.carriers >= 3, `seed ${seed}: held ${held.carriers} carriers (${trace.decisions.map((d) => d.carriers).join(',')})`);
    const tail = trace.goodputs.slice(-40);
    const mean = tail.reduce((a, g) => a + g, 0) / tail.length;
    // The burst factor's mean is ~0.9 (and a probe's new carrier ramps): 70 % of the link; the old controller left 28-59 %.
    assert.ok(mean >= 0.7 * SATELLITE.rateBytesPerS, `seed ${seed}: tail goodput ${(mean / SATELLITE.rateBytesPerS).toFixed(2)} of the link`);
  }
});

test('satellite cubic only: the jump to many carriers is judged only once they connected and ramped (no shed while goodput still rises)', () => {
  // Lab (delivery acks on, controller before): 512 carriers judged at t=25 s while still ramping
  // (25 -> 120 Mbit/s), read the rise as a path change, shed to 384 and had to come back.
  const cfg = config({ availableCongestion: ['cubic'] });
  for (const seed of [1, 2, 3]) {
    const trace = runRamping(cfg, SATELLITE_CUBIC_RAMPING, 120, seed);
    // The last step of the jump, to maxStreams (the steps before it each paid).
    const jump = trace.decisions.findIndex((d) => d.reason === 'model' && d.carriers === 512);
    assert.ok(jump >= 0, `seed ${seed}: no model jump to 512: ${trace.decisions.map((d) => `${d.carriers}:${d.reason}`).join(',')}`);
    const before = trace.decisions[jump - 1].carriers;
    const shown = trace.decisions.slice(jump).map((d) => `${d.carriers}:${d.reason}`).join(',');
    // Judged (first decision that is not waiting) only once the carriers connected and settled...
    const judged = trace.decisions.findIndex((d, i) => i > jump && !['settling', 'measuring'].includes(d.reason));
    const connected = jump + 1 + Math.ceil((512 - before) * SATELLITE_CUBIC_RAMPING.connectPerCarrier);
    assert.ok(judged > connected, `seed ${seed}: judged at ${judged}, connected at ${connected}: ${shown}`);
    // ...and the first shed is a timed probe, not the rest of the ramp read as a path change.
    const shed = trace.decisions.findIndex((d, i) => i > jump && d.carriers < 512);
    assert.ok(shed < 0 || shed - judged >= REPROBE_INTERVALS, `seed ${seed}: shed at ${shed}, ${shed - judged} intervals after the first judgement: ${shown}`);
    assert.equal(trace.decisions.at(-1)!.carriers, 512, `seed ${seed}: ${shown}`);
  }
});
