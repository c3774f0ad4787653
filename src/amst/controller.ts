// The AMST controller: a pure function of measurements (no sockets, no
// clocks; time is counted in intervals, as etcd raft counts ticks). Each
// interval the link hands it one sample and its previous state; it answers
// how many carriers to run and with which congestion control.
//
// Policy (DESIGN.md "AMST"; measured numbers in README "netbench"):
// 1. Congestion control: the configured one if the kernel offers it; for
//    `auto`, bbr when offered (it is not loss-limited), else cubic.
// 2. Model: a loss-based flow is capped near MSS*1.22/(RTT*sqrt(loss))
//    (Mathis). The first measurement heads for carriers = target / that
//    cap, in steps of at most MODEL_STEP_FACTOR x that go on while each
//    pays, clamped to [minStreams, maxStreams] (target = the bandwidth cap, else
//    targetHintBytesPerS). bbr is not loss-limited, so with bbr the model
//    starts at minStreams; loss seen with a standing queue is congestion
//    (our own queue overflowing), so then the model is skipped too.
// 3. Hill-climb on measured goodput: after each change wait for the new
//    carriers to ramp up (settle, in RTTs), average goodput over a few
//    intervals, then compare with the count before. Growth continues while
//    goodput rises by more than GAIN_THRESHOLD; a step that adds nothing is
//    undone and the count is held.
// 4. Shedding: in hold, probe one step down every REPROBE_INTERVALS (or at
//    once when the model now asks for fewer carriers, i.e. the path
//    improved); keep the smaller count if goodput stays within
//    GAIN_THRESHOLD of the shed reference: the goodput before the first
//    shed since the path last changed or a growth paid (never of the step
//    before, nor of a count a shed reached: small losses must not add up
//    to a collapse). A standing queue
//    (mean RTT > QUEUE_RTT_FACTOR x base RTT) sheds one step at once.
// 4b. Settling (issue 9 item 4: carriers flapped 4..20 on a constant
//    link): a step counts only when its gain beats the measured noise of
//    goodput too (NOISE_GAIN_FACTOR x its mean deviation), and each probe
//    that came back to the held count doubles the wait before the next
//    (up to MAX_REPROBE_INTERVALS), so a steady path keeps one count. A
//    path change (held goodput moving by more than CHANGE_THRESHOLD and
//    CHANGE_NOISE_FACTOR x the noise) probes at once and starts over.
//    Symmetrically, a shed is kept only when it lost less than
//    GAIN_THRESHOLD minus the noise margin a growth must beat (on a noisy
//    path: no measured loss at all, or more), so noise cannot walk the
//    count down.
// 4c. Long paths (issue 9: at 600 ms RTT 2 carriers were judged against 1
//    before either ramped, and per-second goodput swung 0..240 Mbit/s
//    around ~85 on a 100 Mbit/s link): a measurement
//    spans at least MEASURE_RTTS round trips; a verdict that ends a climb
//    or a descent (no gain, a loss, the limit) waits while the window holds
//    fewer than MIN_MEASURE_BYTES or its goodput still rises (newer half
//    above the older by RAMP_THRESHOLD), for at most RAMP_RTTS, while a
//    step that already paid goes on at once (more carriers ramp a long
//    path faster). Goodput noise is kept per MEASURE_INTERVALS-long mean,
//    so a longer window expects less of it, and a probe from hold is
//    judged against the mean of the whole hold, not its last window. (The
//    carriers' own TCP counters were as bursty as delivery in the lab, so
//    they would not help.)
// 5. Limits: never above maxStreams, never below minStreams, never grow
//    while goodput is at or above the bandwidth cap, shed while above it.
// 6. Fairness guard: a standing queue on the bottleneck means we (or others)
//    fill a shared queue; we shed and remember that count as a ceiling, so
//    the link settles at the fewest carriers that fill the path without a
//    queue and leaves room for other flows; the ceiling is lifted slowly
//    (one step per CEILING_RELAX_INTERVALS) so a transient queue is no cap
//    forever. Growth that raises RTT without goodput is "no gain" and undone.

/** What the controller may do. */
export interface ControllerConfig {
  /** Fewest carriers (>= 1). */
  minStreams: number;
  /** Most carriers. */
  maxStreams: number;
  /** Bandwidth cap in bytes/s, or null for none. */
  bandwidthCapBytesPerS: number | null;
  /** Congestion controls the kernel offers (tcp_available_congestion_control). */
  availableCongestion: string[];
  /** The configured choice; auto prefers bbr. */
  congestionControl: 'auto' | 'bbr' | 'cubic' | 'reno';
  /** Length of one interval, ms (to turn RTTs into intervals). */
  intervalMs: number;
  /** Path rate the model aims for when no cap is set, bytes/s. */
  targetHintBytesPerS?: number;
}

/** TCP_INFO-derived numbers of one carrier over one interval. */
export interface CarrierSample {
  /** Smoothed RTT, microseconds. */
  rttUs: number;
  /** Lowest RTT seen on this carrier, microseconds. */
  minRttUs: number;
  /** Bytes sent in the interval, retransmissions included. */
  sentBytes: number;
  /** Bytes retransmitted in the interval. */
  retransBytes: number;
  /** Kernel delivery rate estimate, bytes/s. */
  deliveryRateBytesPerS: number;
}

/** One interval's measurements of the whole link. */
export interface IntervalSample {
  /** Bytes acknowledged by the destination in the interval, per second. */
  goodputBytesPerS: number;
  /** Live carriers during the interval. */
  carrierCount: number;
  /** Per live carrier. */
  carriers: CarrierSample[];
}

/** Why the controller chose what it chose (metric label). */
export type DecisionReason = 'init' | 'model' | 'settling' | 'measuring' | 'grow' | 'no-gain' | 'shed' | 'shed-undo' | 'queue' | 'cap' | 'hold' | 'limit';

/** The controller's answer for the next interval. */
export interface Decision {
  carriers: number;
  congestionControl: string;
  reason: DecisionReason;
}

/** A measured goodput at a carrier count. */
interface Point {
  carriers: number;
  goodput: number;
}

/** Everything the controller remembers between intervals. */
export interface ControllerState {
  carriers: number;
  congestionControl: string;
  phase: 'start' | 'climb' | 'descend' | 'hold';
  /** Intervals to skip before measuring the current count. */
  settleLeft: number;
  /** Goodput samples at the current count, after settling. */
  window: number[];
  /** Mean carrier RTT of the same samples, microseconds. */
  rttWindow: number[];
  /** Where the last move started (what the current count is compared with). */
  previous: Point | null;
  /** Lowest RTT seen on the path, microseconds (0 = none yet). */
  baseRttUs: number;
  /** Retransmitted and sent bytes at the current count (loss estimate). */
  retransBytes: number;
  sentBytes: number;
  /** Upper bound from the fairness guard (maxStreams when none). */
  ceiling: number;
  /** Intervals left in hold before the next probe. */
  holdLeft: number;
  /** Intervals until the ceiling is raised one step. */
  relaxLeft: number;
  /** Intervals seen. */
  intervals: number;
  /** Probes in a row that came back to the held count (each doubles the wait before the next). */
  probesConfirmed: number;
  /** Mean relative deviation of goodput samples in hold from the held goodput (0 = none measured). */
  noise: number;
  /** Held goodput this hold is compared with for a path change, bytes/s (null: none yet). */
  holdGoodput: number | null;
  /** What a shed is judged against: the held point before the first shed since the path changed or a growth paid; null: none yet. */
  shedReference: Point | null;
  /** Intervals the current count may still wait for its goodput to stop rising before it is judged. */
  rampLeft: number;
  /** Sum and number of the samples of this hold since it began or the path last changed (a probe from hold is judged against their mean). */
  holdSum: number;
  holdSamples: number;
  /** Where the model's steps are heading while each pays (0: not heading for the model). */
  modelTarget: number;
}

/** Goodput must rise by more than this fraction for a step to count. */
export const GAIN_THRESHOLD = 0.05;
/** Mean RTT above this multiple of the base RTT means a standing queue. */
export const QUEUE_RTT_FACTOR = 1.25;
/** RTT excess below this is jitter, not a queue (loopback and metro paths), microseconds. */
export const QUEUE_MIN_EXCESS_US = 2_000;
/** Samples averaged per measurement (at least; long paths take more, see MEASURE_RTTS). */
export const MEASURE_INTERVALS = 2;
/** A measurement spans at least this many RTTs: one bbr gain cycle (8 RTTs, 4.8 s at 600 ms). */
export const MEASURE_RTTS = 8;
/**
 * ...and at least this many bytes delivered, unless the ramp wait ran out:
 * 32 frames of 128 KiB, so one frame more or less moves the mean by ~3 %,
 * under GAIN_THRESHOLD (at 600 ms and a few Mbit/s a 2 s window held a handful).
 */
export const MIN_MEASURE_BYTES = 4 * 1024 * 1024;
/** Goodput whose newer half-window beats the older half by this fraction is still ramping. */
export const RAMP_THRESHOLD = 0.1;
/**
 * Longest wait for a count's goodput to stop rising, RTTs (lab, satellite:
 * one bbr carrier still climbed after 50 s; 512 cubic ones took ~10 s to
 * connect and ~10 s more to reach the link).
 */
export const RAMP_RTTS = 30;
/** RTTs a change needs to ramp up (handshakes + slow start) before measuring. */
export const SETTLE_RTTS = 8;
/**
 * A jump to the model multiplies the count by at most this per step (1 ->
 * 8 -> 64 -> 512), each step going on only when it paid: in the lab 511
 * carriers dialed at once took 8 s to connect on one run and 70 s on a
 * busier one (the source's event loop stalled for seconds in handshakes).
 */
export const MODEL_STEP_FACTOR = 8;
/** A model step adding more carriers than this waits MODEL_SETTLE_INTERVALS (smaller ones settle by RTTs: intercontinental, 3 steps cost 22 s of a 30 s row). */
export const MODEL_SETTLE_NEW_CARRIERS = 64;
/** Intervals a step of the jump to the model that adds more than MODEL_SETTLE_NEW_CARRIERS waits before it is measured. */
export const MODEL_SETTLE_INTERVALS = 5;
/** A step that did not pay and was more than this many times the previous count is bisected. */
export const BISECT_RATIO = 4;
/** Intervals in hold before probing again. */
export const REPROBE_INTERVALS = 20;
/** Longest wait between probes once probes keep confirming the count, intervals. */
export const MAX_REPROBE_INTERVALS = 640;
/** A step must gain more than this many times the goodput noise (mean relative deviation) to count. */
export const NOISE_GAIN_FACTOR = 2;
/** Held goodput moving by more than this fraction (and CHANGE_NOISE_FACTOR x noise) is a path change. */
export const CHANGE_THRESHOLD = 0.2;
/** ...and by more than this many times the noise. */
export const CHANGE_NOISE_FACTOR = 4;
/** Weight of a new sample in the noise average. */
const NOISE_EWMA_WEIGHT = 0.1;
/** Intervals before the fairness ceiling is lifted by one step. */
export const CEILING_RELAX_INTERVALS = 60;
/** Growth per step as a fraction of the count (at least one carrier). */
export const STEP_FRACTION = 0.25;
/** Model's path rate when no cap is given: 1 Gbit/s, in bytes/s. */
export const DEFAULT_TARGET_BYTES_PER_S = 125_000_000;
/** Segment size assumed by the model, bytes. */
export const MODEL_MSS_BYTES = 1448;
/** Mathis constant sqrt(3/2). */
const MATHIS_C = 1.22;
/** Fewer retransmitted bytes than this fraction count as no loss. */
const LOSS_FLOOR = 1e-5;

/** Pick the congestion control: the configured one if offered, else bbr, else cubic. */
export function chooseCongestion(config: ControllerConfig): string {
  const offered = config.availableCongestion;
  if (config.congestionControl !== 'auto' && offered.includes(config.congestionControl)) return config.congestionControl;
  if (offered.includes('bbr')) return 'bbr';
  if (offered.includes('cubic')) return 'cubic';
  return offered[0] ?? 'cubic';
}

/** Mathis per-flow cap in bytes/s for RTT (us) and loss (fraction); Infinity without loss. */
export function mathisBytesPerS(rttUs: number, loss: number): number {
  if (loss <= LOSS_FLOOR || rttUs <= 0) return Infinity;
  return (MODEL_MSS_BYTES * MATHIS_C) / ((rttUs / 1e6) * Math.sqrt(loss));
}

/** Carrier count the model asks for on this path. */
export function modelCarriers(config: ControllerConfig, cc: string, rttUs: number, loss: number): number {
  if (cc === 'bbr') return clamp(config, config.minStreams);
  const target = config.bandwidthCapBytesPerS ?? config.targetHintBytesPerS ?? DEFAULT_TARGET_BYTES_PER_S;
  const perFlow = mathisBytesPerS(rttUs, loss);
  return clamp(config, Number.isFinite(perFlow) ? Math.ceil(target / perFlow) : config.minStreams);
}

/** The state before the first interval, running `initial` carriers. */
export function initialState(config: ControllerConfig, initial = config.minStreams): ControllerState {
  const count = clamp(config, initial);
  return {
    carriers: count, congestionControl: chooseCongestion(config), phase: 'start', settleLeft: -1, window: [], rttWindow: [],
    previous: null, baseRttUs: 0, retransBytes: 0, sentBytes: 0, ceiling: config.maxStreams,
    holdLeft: REPROBE_INTERVALS, relaxLeft: CEILING_RELAX_INTERVALS, intervals: 0,
    probesConfirmed: 0, noise: 0, holdGoodput: null, shedReference: null, rampLeft: -1,
    holdSum: 0, holdSamples: 0, modelTarget: 0,
  };
}

/** One controller step: the latest sample and the previous state in, a decision and the next state out. */
export function decide(config: ControllerConfig, sample: IntervalSample, prev: ControllerState): { decision: Decision; state: ControllerState } {
  const s: ControllerState = { ...prev, window: [...prev.window], rttWindow: [...prev.rttWindow], intervals: prev.intervals + 1 };
  const out = (reason: DecisionReason): { decision: Decision; state: ControllerState } =>
    ({ decision: { carriers: s.carriers, congestionControl: s.congestionControl, reason }, state: s });

  // Path facts of this interval: base RTT, mean RTT, loss so far at this count.
  for (const c of sample.carriers) if (c.minRttUs > 0 && (s.baseRttUs === 0 || c.minRttUs < s.baseRttUs)) s.baseRttUs = c.minRttUs;
  const meanRtt = mean(sample.carriers.map((c) => c.rttUs).filter((r) => r > 0));
  s.retransBytes += sum(sample.carriers.map((c) => c.retransBytes));
  s.sentBytes += sum(sample.carriers.map((c) => c.sentBytes));
  const loss = s.sentBytes > 0 ? s.retransBytes / s.sentBytes : 0;
  if (--s.relaxLeft <= 0) {
    s.ceiling = Math.min(config.maxStreams, s.ceiling + step(s.ceiling));
    s.relaxLeft = CEILING_RELAX_INTERVALS;
  }

  // Wait for carriers still connecting and for new ones to ramp up (the
  // first carriers too, once their RTT is known).
  if (sample.carrierCount < s.carriers && s.phase !== 'start') return out('settling');
  if (s.settleLeft < 0 && meanRtt > 0) {
    s.settleLeft = settleIntervals(config, meanRtt);
    s.rampLeft = rampIntervals(config, meanRtt);
  }
  if (s.settleLeft !== 0) {
    if (s.settleLeft > 0) s.settleLeft--;
    return out('settling');
  }
  const rate = sample.goodputBytesPerS;
  s.window.push(rate);
  if (meanRtt > 0) s.rttWindow.push(meanRtt);
  // A window of enough RTTs (policy 4c).
  const need = measureIntervals(config, Math.max(mean(s.rttWindow), s.baseRttUs));
  if (s.window.length < need) return out('measuring');
  // Too few bytes, or still rising: not yet enough to say a step did not pay
  // (a verdict that goes on climbing or shedding needs no wait). A window
  // short of bytes keeps growing; a rising one slides on, its older half
  // says nothing about where this count ends up.
  const mayWait = s.phase !== 'hold' && s.rampLeft > 0;
  if (mayWait) s.rampLeft--;
  const fewBytes = mayWait && sum(s.window) * (config.intervalMs / 1000) < MIN_MEASURE_BYTES;
  if (!fewBytes && s.window.length > need) {
    s.window = s.window.slice(-need);
    s.rttWindow = s.rttWindow.slice(-need);
  }
  const ramping = mayWait && (fewBytes || rising(s.window));
  const waitRamp = (): { decision: Decision; state: ControllerState } => {
    if (fewBytes) return out('measuring');
    s.window = s.window.slice(-Math.ceil(need / 2));
    s.rttWindow = s.rttWindow.slice(-s.window.length);
    return out('settling');
  };
  const here: Point = { carriers: s.carriers, goodput: mean(s.window) };
  // RTT over the whole measurement: one interval's RTT swings with bbr's probing.
  const windowRtt = mean(s.rttWindow);
  const rttUs = windowRtt > 0 ? windowRtt : s.baseRttUs;
  const queued = s.baseRttUs > 0 && windowRtt > QUEUE_RTT_FACTOR * s.baseRttUs && windowRtt - s.baseRttUs > QUEUE_MIN_EXCESS_US;
  const cap = config.bandwidthCapBytesPerS;

  // First measurement: jump to the model. Loss seen with a standing queue
  // is our own queue overflowing, not the path's random loss: no model then.
  if (s.phase === 'start' && queued) s.phase = 'climb';
  if (s.phase === 'start') {
    const model = Math.min(modelCarriers(config, s.congestionControl, rttUs, loss), s.ceiling);
    if (model > s.carriers) return towardModel(s, config, model, here, rttUs, out);
    s.phase = 'climb';
  }

  // Limits first: over the cap, or a standing queue, sheds one step.
  if (cap !== null && here.goodput > cap * (1 + GAIN_THRESHOLD) && s.carriers > config.minStreams) {
    return move(s, config, s.carriers - step(s.carriers), 'hold', null, rttUs, out, 'cap');
  }
  if (queued && s.carriers > config.minStreams) {
    // A probe up that only built a queue confirmed the count it came from.
    if (s.phase === 'climb' && s.previous !== null) s.probesConfirmed++;
    const fewer = s.carriers - step(s.carriers);
    s.ceiling = Math.max(config.minStreams, fewer);
    s.relaxLeft = CEILING_RELAX_INTERVALS;
    return move(s, config, fewer, 'hold', null, rttUs, out, 'queue');
  }
  const mayGrow = !queued && (cap === null || here.goodput < cap) && s.carriers < Math.min(s.ceiling, config.maxStreams);

  // Climbing: keep going while each step pays (beyond the noise); undo the one that did not.
  const gain = Math.max(GAIN_THRESHOLD, NOISE_GAIN_FACTOR * s.noise);
  if (s.phase === 'climb') {
    if (s.previous === null || here.goodput > s.previous.goodput * (1 + gain)) {
      // A probe that paid: the path is not settled, and sheds are judged from here on.
      if (s.previous !== null) {
        s.probesConfirmed = 0;
        s.shedReference = null;
      }
      if (mayGrow && s.modelTarget > s.carriers) return towardModel(s, config, s.modelTarget, here, rttUs, out);
      if (mayGrow) return move(s, config, s.carriers + step(s.carriers), 'climb', here, rttUs, out, 'grow');
      if (ramping) return waitRamp();
      return hold(s, here, out, 'limit');
    }
    if (ramping) return waitRamp();
    const back = s.previous;
    // A big jump that did not pay is bisected (geometric middle), not abandoned:
    // measured here, 512 cubic carriers judged too early fell back to 1 and stayed.
    if (s.carriers > BISECT_RATIO * back.carriers) {
      const middle = Math.round(Math.sqrt(back.carriers * s.carriers));
      return move(s, config, middle, 'climb', back, rttUs, out, 'no-gain');
    }
    // Back to the count that held: one more probe confirmed it.
    s.probesConfirmed++;
    return move(s, config, back.carriers, 'hold', null, rttUs, out, 'no-gain');
  }

  // Descending: fewer carriers that lose nothing (against where the descent
  // started, so small losses cannot add up) are kept; a loss is undone.
  if (s.phase === 'descend' && s.previous !== null) {
    const from = s.shedReference ?? s.previous;
    // The noise a growth must beat, a shed must not lose to either (policy 4b): on
    // a noisy path a lucky window kept 4 -> 3 -> 2 bbr carriers on a path that 3 fill.
    const tolerance = GAIN_THRESHOLD - (gain - GAIN_THRESHOLD);
    if (here.goodput >= from.goodput * (1 - tolerance)) {
      s.probesConfirmed = 0;
      if (s.carriers > config.minStreams) return move(s, config, s.carriers - step(s.carriers), 'descend', here, rttUs, out, 'shed');
      return hold(s, here, out, 'shed');
    }
    if (ramping) return waitRamp();
    const back = s.previous;
    s.probesConfirmed++;
    return move(s, config, back.carriers, 'hold', null, rttUs, out, 'shed-undo');
  }

  // Holding: learn the noise of goodput at this count, and watch for a path change.
  // One sample's deviation, scaled to a MEASURE_INTERVALS-long mean's: a longer window averages more away.
  let changed: 'fell' | 'rose' | null = null;
  if (s.holdGoodput === null || s.holdGoodput <= 0) s.holdGoodput = here.goodput;
  else {
    const deviation = (Math.abs(rate - s.holdGoodput) / s.holdGoodput) * Math.sqrt(MEASURE_INTERVALS / need);
    const moved = (here.goodput - s.holdGoodput) / s.holdGoodput;
    // A change is told from noise only once a window of this hold was seen (its noise with it).
    if (s.holdSamples >= need && Math.abs(moved) > CHANGE_THRESHOLD && Math.abs(moved) > CHANGE_NOISE_FACTOR * s.noise) changed = moved < 0 ? 'fell' : 'rose';
    if (changed === 'rose' && s.holdSamples < rampIntervals(config, rttUs)) {
      // Early in a hold a rise is the rest of the ramp (lab: 512 cubic carriers 25 -> 120 Mbit/s), not a better path: hold on from there.
      changed = null;
      s.holdGoodput = here.goodput;
      restartHoldMean(s);
    } else if (changed === null) s.noise = s.noise === 0 ? deviation : s.noise * (1 - NOISE_EWMA_WEIGHT) + deviation * NOISE_EWMA_WEIGHT;
  }
  // Held goodput well above the shed reference: the path got better, judge sheds afresh.
  if (s.shedReference !== null && here.goodput > s.shedReference.goodput * (1 + gain)) s.shedReference = null;
  if (changed) {
    // The path changed: what the probes confirmed no longer holds.
    s.probesConfirmed = 0;
    s.holdGoodput = here.goodput;
    s.shedReference = null;
    s.holdLeft = 0;
    restartHoldMean(s);
  } else {
    s.holdSum += rate;
    s.holdSamples++;
  }
  // A probe from hold is judged against the whole hold, not its last window (one window is as noisy as the probe's).
  const held: Point = s.holdSamples >= need ? { carriers: s.carriers, goodput: s.holdSum / s.holdSamples } : here;
  // Probe down when the path improved (unless a probe since confirmed the
  // count) or the timer ran out; up on alternate probes (or when goodput fell).
  const model = modelCarriers(config, s.congestionControl, rttUs, loss);
  if (--s.holdLeft <= 0 || (model < s.carriers / 2 && s.probesConfirmed === 0)) {
    s.holdLeft = reprobeIntervals(s.probesConfirmed);
    const probeUp = (changed === 'fell' || (changed === null && s.intervals % (2 * REPROBE_INTERVALS) < REPROBE_INTERVALS)) && mayGrow;
    if (probeUp) return move(s, config, s.carriers + step(s.carriers), 'climb', held, rttUs, out, 'grow');
    if (s.carriers > config.minStreams) {
      s.shedReference ??= held;
      return move(s, config, s.carriers - step(s.carriers), 'descend', held, rttUs, out, 'shed');
    }
  }
  return out('hold');
}

/** Intervals in hold before the next probe, after `confirmed` probes in a row came back (doubling, bounded). */
export function reprobeIntervals(confirmed: number): number {
  return Math.min(MAX_REPROBE_INTERVALS, REPROBE_INTERVALS * 2 ** Math.min(confirmed, 16));
}

/** One step of a jump to the model (at most MODEL_STEP_FACTOR times the count); later steps follow while each pays. */
function towardModel(s: ControllerState, config: ControllerConfig, model: number, here: Point, rttUs: number,
  out: (r: DecisionReason) => { decision: Decision; state: ControllerState }): { decision: Decision; state: ControllerState } {
  const before = s.carriers;
  const jumped = move(s, config, Math.min(model, s.carriers * MODEL_STEP_FACTOR), 'climb', here, rttUs, out, 'model');
  s.modelTarget = model;
  // Hundreds of new carriers need their handshakes and first RTTs before goodput means anything.
  if (s.carriers - before > MODEL_SETTLE_NEW_CARRIERS) s.settleLeft = Math.max(s.settleLeft, MODEL_SETTLE_INTERVALS);
  return jumped;
}

/** Change the count, remember where we came from, and start settling. */
function move(s: ControllerState, config: ControllerConfig, target: number, phase: ControllerState['phase'], from: Point | null,
  rttUs: number, out: (r: DecisionReason) => { decision: Decision; state: ControllerState }, reason: DecisionReason): { decision: Decision; state: ControllerState } {
  s.carriers = Math.min(clamp(config, target), Math.max(config.minStreams, s.ceiling));
  s.phase = phase;
  s.previous = from;
  s.modelTarget = 0;
  // Limits and the model move on other grounds than goodput: sheds after them are judged afresh.
  if (reason === 'queue' || reason === 'cap' || reason === 'model') s.shedReference = null;
  // A new count is held against its own goodput.
  s.holdGoodput = null;
  restartHoldMean(s);
  s.window = [];
  s.rttWindow = [];
  s.retransBytes = 0;
  s.sentBytes = 0;
  s.settleLeft = settleIntervals(config, rttUs);
  s.rampLeft = rampIntervals(config, rttUs);
  if (phase === 'hold') s.holdLeft = reprobeIntervals(s.probesConfirmed);
  return out(reason);
}

/** Stay at the current count. */
function hold(s: ControllerState, here: Point, out: (r: DecisionReason) => { decision: Decision; state: ControllerState }, reason: DecisionReason): { decision: Decision; state: ControllerState } {
  s.phase = 'hold';
  s.previous = here;
  restartHoldMean(s);
  s.holdLeft = reprobeIntervals(s.probesConfirmed);
  return out(reason);
}

/** The hold's mean goodput starts over (a new count, a path change, the end of a ramp). */
function restartHoldMean(s: ControllerState): void {
  s.holdSum = 0;
  s.holdSamples = 0;
}

/** Intervals a change needs before it is measured. */
export function settleIntervals(config: ControllerConfig, rttUs: number): number {
  return Math.max(1, Math.ceil((SETTLE_RTTS * rttUs) / 1000 / config.intervalMs));
}

/** Intervals one measurement spans on a path of this RTT (policy 4c). */
export function measureIntervals(config: ControllerConfig, rttUs: number): number {
  return Math.max(MEASURE_INTERVALS, Math.ceil((MEASURE_RTTS * rttUs) / 1000 / config.intervalMs));
}

/** Intervals a count may wait for its goodput to stop rising on a path of this RTT. */
export function rampIntervals(config: ControllerConfig, rttUs: number): number {
  return Math.ceil((RAMP_RTTS * rttUs) / 1000 / config.intervalMs);
}

/** True when the newer half of a goodput window beats the older half by more than RAMP_THRESHOLD. */
function rising(window: number[]): boolean {
  const half = Math.floor(window.length / 2);
  if (half === 0) return false;
  return mean(window.slice(-half)) > mean(window.slice(0, half)) * (1 + RAMP_THRESHOLD);
}

/** Carriers added or removed by one step at count n. */
function step(n: number): number {
  return Math.max(1, Math.round(n * STEP_FRACTION));
}

function clamp(config: ControllerConfig, n: number): number {
  return Math.max(config.minStreams, Math.min(config.maxStreams, Math.round(n)));
}

function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

function mean(xs: number[]): number {
  return xs.length === 0 ? 0 : sum(xs) / xs.length;
}
