// AMST link: one agent-to-agent connection made of N carriers. The dialing
// side (OutboundLink) runs sessions over a carrier pool (carrier-pool.ts,
// carriers dialed through injected transports), keeps the frames in flight
// in a bounded window (inflight-window.ts; that bound is the backpressure
// that reaches the source), puts each frame on the carrier the scheduler
// picks (scheduler.ts), resends a dead carrier's undelivered frames on the
// others, and reconnects with backoff; every (re)connect is a new session
// and streams resume from the destination's durable position. A peer that
// speaks amst:delivered@1 reports frames it holds (delivery-acks.ts): that
// frees their carrier and link window bytes and feeds the carriers' rates,
// before durability; a frame stuck on a slow carrier is hedged (hedge.ts).

import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { Carrier, CloseInfo } from './carrier.ts';
import { CarrierPool, type CarrierPath } from './carrier-pool.ts';
import { frameEnvelope } from './envelope-framing.ts';
import { InflightWindow, type InflightEntry } from './inflight-window.ts';
import { pickCarrier } from './scheduler.ts';
import { deliveredRanges, peerHoldBytes } from './delivery-acks.ts';
import { HEDGE_HOLD_PRESSURE_FRACTION, HEDGE_WINDOW_FRACTION, hedgeDueBefore, nextDeliveryTime, pickHedges, type HedgeCandidate } from './hedge.ts';
import type { DialRequest, Endpoint, Identity, TlsMaterial, TransportKind, Transports } from './transport.ts';
import type { Delivered, Envelope } from '../wire/messages.ts';
import type { LinkMetrics } from './link-metrics.ts';
import { PathSelector, type PathMetrics, type TransportChoiceStatus } from './path-selector.ts';
import type { Ping } from '../wire/messages.ts';
import { Backoff } from '../util/backoff.ts';

export { frameEnvelope };
export type { CarrierPath };

/** How often carrier drain rates are sampled for the scheduler. */
const RATE_SAMPLE_MS = 50;
/** Wait while every usable carrier slot is still being dialed, ms. */
const REDIAL_WAIT_MS = 20;
/** A session that lasted this long resets the reconnect backoff. */
const STABLE_SESSION_MS = 5_000;

/** The link went down; the caller's session is over. */
export class LinkDownError extends Error {
  override name = 'LinkDownError';
}

/** Pick the live carrier with the fewest queued bytes (control messages). */
export function leastQueued(carriers: Iterable<Carrier | null>): Carrier | null {
  let best: Carrier | null = null;
  for (const c of carriers) {
    if (!c || c.closed) continue;
    if (!best || c.queuedBytes < best.queuedBytes) best = c;
  }
  return best;
}

/** Options of an outbound link. */
export interface OutboundLinkOptions {
  peerRegion: string;
  /** The peer region's endpoints, tried in order; each names its transport kind. */
  endpoints: Endpoint[];
  /** Carrier transports by kind (an endpoint whose kind is missing fails to dial, saying so). */
  transports: Transports;
  carriers: number;
  /** This agent's certificates, read at every dial (so rotated files reach new carriers). */
  tls: () => TlsMaterial;
  identity: Identity;
  maxFrameBytes: number;
  carrierWindowBytes: number;
  linkWindowBytes: number;
  connectTimeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  logger: Logger;
  metrics: LinkMetrics & PathMetrics;
  /**
   * amst.transport auto: measure the kinds the endpoints offer and keep the
   * best (path-selector.ts); absent, or endpoints of one kind: the first
   * endpoint that connects, in order.
   */
  autoTransport?: { reprobeIntervalMs: number; probeBytes: number; probeTimeoutMs?: number };
}

/** What the owner of a link hears. */
export interface LinkHandlers {
  /** A new session is up: streams (re)open now. */
  onUp(session: number): void;
  /** The session ended; in-flight frames are dropped, streams must resume later. */
  onDown(session: number, reason: string): void;
  /** A non-data message from the peer (StreamState, Ack, Nack, Error, Pong). */
  onMessage(envelope: Envelope): void;
}

/** A data frame in flight: its framed bytes, held by a carrier. */
type Inflight = InflightEntry<Buffer, Carrier>;

/** The dialing side of a link: sends data frames, receives control messages. */
export class OutboundLink {
  readonly options: OutboundLinkOptions;
  private handlers: LinkHandlers | null = null;
  private readonly pool: CarrierPool;
  private readonly window: InflightWindow<Buffer, Carrier>;
  private sessionNo = 0;
  private up = false;
  private stopped = false;
  private sessionStartedAt = 0;
  /** Reconnect delays of the link. */
  private readonly reconnect: Backoff;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private rateTimer: NodeJS.Timeout | null = null;
  private windowWaiters: Array<() => void> = [];
  /** Frames waiting for a carrier with room; a carrier joining wakes them too (see schedule). */
  private carrierWaiters: Array<() => void> = [];
  private carrierCount: number;
  private ackedBytes = 0;
  /** Bytes that reached the destination: at delivery, or at durability for frames never reported delivered. */
  private reached = 0;
  /** Smoothed time from writing a frame to its delivery report, ms (0: none yet). */
  private deliveryTimeMs = 0;
  /** Write time of the newest-written frame reported delivered, ms. */
  private newestDeliveredWrittenAt = Number.NEGATIVE_INFINITY;
  private rateLimit: number | null = null;
  private paceNextAt = 0;
  private linkId = '';
  /** The owner heard onUp for the current session (not yet while auto's first probe runs). */
  private announced = false;
  /** amst.transport auto with several kinds offered: measures them and picks (null otherwise). */
  private readonly selector: PathSelector | null;
  private readonly pongListeners = new Set<(pong: Ping) => void>();

  constructor(options: OutboundLinkOptions) {
    this.options = options;
    this.reconnect = new Backoff({ initialMs: options.initialBackoffMs, maxMs: options.maxBackoffMs });
    this.carrierCount = options.carriers;
    this.window = new InflightWindow(options.linkWindowBytes);
    this.pool = new CarrierPool({
      endpoints: options.endpoints,
      transports: options.transports,
      initialBackoffMs: options.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
      dialTemplate: () => this.dialTemplate(),
      onCongestionError: (congestion, err) => options.logger.warn({ peer: options.peerRegion, congestion, err: err.message }, 'set congestion control failed'),
    });
    const auto = options.autoTransport;
    const kinds = new Set(options.endpoints.map((e) => e.kind));
    this.selector = auto && kinds.size > 1
      ? new PathSelector(this, { peerRegion: options.peerRegion, endpoints: options.endpoints, transports: options.transports, ...auto, metrics: options.metrics, logger: options.logger })
      : null;
  }

  /** Current session number, once announced to the owner (0 before, and while auto's first probe runs). */
  get session(): number {
    return this.up && this.announced ? this.sessionNo : 0;
  }

  /** What the peer announced in its HelloReply (empty before the first carrier is up). */
  get peerCapabilities(): readonly string[] {
    return this.pool.peerCapabilities;
  }

  /** Live carriers right now. */
  get liveCarriers(): number {
    return this.pool.live;
  }

  /** Bytes sent and not yet delivered (or durable): what the link window bounds. */
  get bytesInFlight(): number {
    return this.window.bytes;
  }

  /** Bytes the destination reported delivered and not yet durable. */
  get bytesDeliveredNotDurable(): number {
    return this.window.deliveredBytes;
  }

  /** Path counters of the live carriers (TCP_INFO, QUIC stats), read through their transports. */
  carrierPaths(): CarrierPath[] {
    return this.pool.paths();
  }

  /** Bytes acknowledged durable since the link was created (goodput, framed). */
  get acknowledgedBytes(): number {
    return this.ackedBytes;
  }

  /** Bytes that reached the destination since the link was created: delivered, or durable when never reported delivered (the AMST controller's goodput). */
  get reachedBytes(): number {
    return this.reached;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Carrier kind of the current session (the endpoint it connected to), null while down. */
  get transport(): TransportKind | null {
    return this.up ? this.pool.endpoint.kind : null;
  }

  /** Why the link runs its kind: the auto choice and its last probe, or single_kind (one kind offered or configured). */
  get transportChoice(): TransportChoiceStatus {
    return this.selector?.status() ?? { kind: this.transport, reason: 'single_kind', probedAt: null, probeReason: null, measurements: [] };
  }

  /** The running session's link id (probe carriers join it), null while down. */
  sessionLinkId(): string | null {
    return this.up ? this.linkId : null;
  }

  /** What every dial of this link sends, endpoint, link id and slot excepted. */
  dialTemplate(): Omit<DialRequest, 'endpoint' | 'linkId' | 'index'> {
    const o = this.options;
    return { tls: o.tls(), identity: o.identity, peerRegion: o.peerRegion, maxFrameBytes: o.maxFrameBytes, timeoutMs: o.connectTimeoutMs };
  }

  /** Hear Pongs from the peer (a probe's answers); returns the unregister function. */
  listenPongs(onPong: (pong: Ping) => void): () => void {
    this.pongListeners.add(onPong);
    return () => this.pongListeners.delete(onPong);
  }

  /** End the session and reconnect on the first endpoint of this kind (the auto choice). */
  switchTo(kind: TransportKind, why: string): void {
    if (this.stopped || !this.pool.selectKind(kind)) return;
    this.endSession(why);
    this.scheduleReconnect();
  }

  /** Carriers the link aims for (live or being dialed). */
  get targetCarriers(): number {
    return this.carrierCount;
  }

  /** Congestion control for every carrier, now and for later dials (where the carrier's transport has the knob). */
  setCongestionControl(name: string): void {
    this.pool.setCongestion(name);
  }

  /** Pace data frames to at most this many bytes/s (the bandwidth cap); null: unpaced. */
  setRateLimit(bytesPerS: number | null): void {
    this.rateLimit = bytesPerS !== null && bytesPerS > 0 ? bytesPerS : null;
  }

  /** Start connecting; handlers hear about sessions and messages. */
  start(handlers: LinkHandlers): void {
    this.handlers = handlers;
    this.rateTimer = setInterval(() => {
      this.pool.sampleRates(RATE_SAMPLE_MS / 1000);
      this.hedge();
    }, RATE_SAMPLE_MS);
    this.rateTimer.unref();
    this.selector?.start();
    void this.connect();
  }

  /** Change the carrier count at runtime (the AMST controller's knob). */
  setCarrierCount(n: number): void {
    this.carrierCount = Math.max(1, Math.floor(n));
    if (this.up) this.pool.setCount(this.carrierCount);
  }

  /** Stop the link: close carriers, stop reconnecting. */
  close(): void {
    this.stopped = true;
    this.selector?.stop();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.rateTimer) clearInterval(this.rateTimer);
    this.endSession('link closed');
    this.pool.closeAll('link closed');
  }

  /** Send a control message on the least-queued carrier; false when no carrier is up. */
  sendControl(envelope: Envelope): boolean {
    const carrier = leastQueued(this.pool.carriers);
    if (!carrier) return false;
    const framed = frameEnvelope(envelope);
    this.options.metrics.wireBytesSent.inc({ peer: this.options.peerRegion }, framed.length);
    return carrier.write(framed);
  }

  /**
   * Send one data frame of a stream. Resolves once it is queued on a carrier;
   * waits first while the link window is full (backpressure). Throws
   * LinkDownError when the session ended, or when the stream's own session
   * (signal) ended while it waited: a frame of an ended stream session must
   * not enter flight after forgetStream() (the next session reuses its seq).
   */
  async sendData(session: number, streamId: string, seq: number, framed: Buffer, signal?: AbortSignal): Promise<void> {
    await this.pace(framed.length);
    await this.reserve(framed.length, session);
    if (signal?.aborted) throw new LinkDownError(`stream ${streamId}: its session ended while the frame waited for the window`);
    const entry = this.window.add(streamId, seq, framed, framed.length, performance.now());
    this.windowGauges();
    await this.schedule(entry, null);
  }

  /**
   * The destination made everything up to durableSeq durable: release those
   * frames. Returns the send times of the released frames' oldest, for lag.
   */
  acknowledge(streamId: string, durableSeq: number): number | null {
    return this.release(this.window.durable(streamId, durableSeq), true);
  }

  /**
   * A stream's sender stopped: its frames in flight will never be
   * acknowledged to it (the next session resumes from the destination's
   * checkpoint). Free their window without counting them as delivered.
   */
  forgetStream(streamId: string): void {
    this.release(this.window.forget(streamId), false);
  }

  /** Account frames that left the window; acknowledged ones count toward goodput and rates. Returns the oldest send time. */
  private release(released: Inflight[], acknowledged: boolean): number | null {
    if (released.length === 0) return null;
    for (const entry of released) {
      if (acknowledged) this.ackedBytes += entry.bytes;
      if (acknowledged && !entry.delivered) this.reached += entry.bytes;
      // A delivered frame left its carrier's count when its delivery was reported.
      if (!entry.delivered) this.releaseCarriers(entry, acknowledged);
    }
    this.windowGauges();
    this.wakeWindowWaiters();
    return released[0].sentAt;
  }

  /** Take a frame's bytes off the carriers holding its copies; the copy that counts as delivered is the hedge's when there is one. */
  private releaseCarriers(entry: Inflight, acknowledged: boolean): void {
    if (entry.hedgeHolder) {
      this.pool.release(entry.holder, entry.bytes, false);
      this.pool.release(entry.hedgeHolder, entry.bytes, acknowledged);
      entry.hedgeHolder = null;
    } else {
      this.pool.release(entry.holder, entry.bytes, acknowledged);
    }
  }

  /** The destination holds these frames (amst:delivered@1): free their windows, stop their resends, feed the rates. */
  private onDelivered(delivered: Delivered): void {
    const now = performance.now();
    let frames = 0;
    let bytes = 0;
    for (const range of deliveredRanges(delivered)) {
      for (const entry of this.window.deliveredRange(range.streamId, range.first, range.last)) {
        frames++;
        bytes += entry.bytes;
        // Delivery time of a frame sent once is what a carrier takes; a hedged one's is ambiguous.
        if (!entry.hedged) this.deliveryTimeMs = nextDeliveryTime(this.deliveryTimeMs, now - entry.writtenAt);
        if (entry.writtenAt > this.newestDeliveredWrittenAt) this.newestDeliveredWrittenAt = entry.writtenAt;
        this.releaseCarriers(entry, true);
      }
    }
    if (frames === 0) return;
    this.reached += bytes;
    const peer = { peer: this.options.peerRegion };
    this.options.metrics.linkDeliveredFrames.inc(peer, frames);
    this.options.metrics.linkDeliveredBytes.inc(peer, bytes);
    this.windowGauges();
    this.wakeWindowWaiters();
  }

  /** Send once more, on a faster carrier, the frames a slow carrier has held too long (hedge.ts). */
  private hedge(): void {
    if (!this.up || this.deliveryTimeMs <= 0) return;
    const view = {
      now: performance.now(),
      deliveryTimeMs: this.deliveryTimeMs,
      newestDeliveredWrittenAt: this.newestDeliveredWrittenAt,
      budgetBytes: this.options.linkWindowBytes * HEDGE_WINDOW_FRACTION,
      holdPressure: this.window.deliveredBytes >= HEDGE_HOLD_PRESSURE_FRACTION * this.window.holdLimit,
    };
    const dueBefore = hedgeDueBefore(view);
    if (dueBefore === -Infinity) return;
    // Candidates: frames on a carrier that may be due, and hedge copies in flight (they count
    // against the budget); every 50 ms, with thousands of frames in the window, a candidate for
    // each cost ~7 % of a sender's CPU. In stream and sequence order: the first undelivered
    // frame of each stream holds its durable progress (blocking).
    const all = this.window.undelivered();
    const undelivered: typeof all = [];
    const candidates: HedgeCandidate[] = [];
    for (let i = 0; i < all.length; i++) {
      const e = all[i];
      if (e.holder === null || (e.hedgeHolder === null && (e.hedged || e.writtenAt > dueBefore))) continue;
      undelivered.push(e);
      candidates.push({ bytes: e.bytes, writtenAt: e.writtenAt, hedged: e.hedged, hedgeInFlight: e.hedgeHolder !== null, blocking: i === 0 || all[i - 1].streamId !== e.streamId });
    }
    if (candidates.length === 0) return;
    const picked = pickHedges(candidates, view);
    for (const i of picked) {
      const entry = undelivered[i];
      const holder = entry.holder!;
      const avoid = this.pool.carrierAt(holder.index) === holder ? holder.index : -1;
      const chosen = pickCarrier(this.pool.loads(), entry.bytes, avoid, this.options.carrierWindowBytes);
      const carrier = chosen >= 0 && chosen !== avoid ? this.pool.carrierAt(chosen) : null;
      if (!carrier) continue;
      // The copy goes on another carrier; the original stays where it is (whichever arrives first counts).
      entry.hedged = true;
      entry.hedgeHolder = carrier;
      this.pool.charge(null, carrier, entry.bytes);
      carrier.write(entry.frame);
      this.options.metrics.wireBytesSent.inc({ peer: this.options.peerRegion }, entry.bytes);
      this.options.metrics.framesResent.inc({ stream: entry.streamId, reason: 'hedge' });
    }
  }

  private windowGauges(): void {
    const peer = { peer: this.options.peerRegion };
    this.options.metrics.linkInflightBytes.set(peer, this.window.bytes);
    this.options.metrics.linkDeliveredNotDurableBytes.set(peer, this.window.deliveredBytes);
  }

  /** Frames of a stream in flight (sent, not yet durable). */
  inflightFrames(streamId: string): number {
    return this.window.count(streamId);
  }

  /** Send time of the oldest frame of a stream still in flight. */
  oldestInflight(streamId: string): number | null {
    return this.window.oldestSentAt(streamId);
  }

  /** The destination could not verify a frame: send it again on another carrier (a delivered one counts as undelivered again). */
  resend(streamId: string, seq: number): boolean {
    const entry = this.window.get(streamId, seq);
    if (!entry) return false;
    const avoid = entry.holder;
    if (entry.delivered) {
      // Its carriers were released at delivery: the resend is charged afresh.
      this.window.undeliver(entry);
      entry.holder = null;
      this.windowGauges();
    }
    void this.schedule(entry, avoid);
    return true;
  }

  // ---- sessions ----

  private async connect(): Promise<void> {
    if (this.stopped) return;
    // Dial all carriers of a new session; at least one must succeed.
    const linkId = randomUUID();
    this.linkId = linkId;
    const count = this.carrierCount;
    this.pool.reset(linkId, count, {
      onMessage: (envelope, wireBytes) => {
        this.options.metrics.wireBytesReceived.inc({ peer: this.options.peerRegion }, wireBytes);
        if (envelope.pong) {
          for (const listener of this.pongListeners) listener(envelope.pong);
          return;
        }
        if (!this.up) return;
        if (envelope.delivered) this.onDelivered(envelope.delivered);
        else if (this.announced) this.handlers?.onMessage(envelope);
      },
      onCarrierAdopted: () => {
        this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, this.pool.live);
        this.wakeCarrierWaiters();
      },
      onCarrierClosed: (index, carrier, info) => this.onCarrierClosed(index, carrier, info),
      onRedialFailed: (index, err) => this.options.logger.debug({ peer: this.options.peerRegion, carrier: index, err: err.message }, 'carrier redial failed'),
    });
    const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => this.pool.dial(i)));
    if (this.stopped) {
      for (const r of results) if (r.status === 'fulfilled') r.value.close('link closed');
      return;
    }
    const connected = results.filter((r) => r.status === 'fulfilled').length;
    if (connected === 0) {
      const reason = (results[0] as PromiseRejectedResult).reason as Error;
      this.pool.nextEndpoint();
      this.selector?.kindFailure();
      const retryInMs = this.scheduleReconnect();
      this.options.logger.warn({ peer: this.options.peerRegion, err: reason.message, retryInMs }, 'link connect failed');
      return;
    }
    // Session is up: adopt carriers, redial the ones that failed; what the
    // peer holds delivered-not-durable is bounded by the hold it announced.
    this.sessionNo++;
    this.up = true;
    this.window.setHoldLimit(peerHoldBytes(this.pool.peerCapabilities));
    this.deliveryTimeMs = 0;
    this.newestDeliveredWrittenAt = Number.NEGATIVE_INFINITY;
    this.sessionStartedAt = performance.now();
    if (this.sessionNo > 1) this.options.metrics.linkReconnects.inc({ peer: this.options.peerRegion });
    for (const kind of ['tls', 'ws', 'quic'] as const) this.options.metrics.linkTransport.set({ peer: this.options.peerRegion, kind }, kind === this.pool.endpoint.kind ? 1 : 0);
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') this.pool.adopt(i, r.value);
      else this.pool.scheduleRedial(i);
    });
    this.pool.setCount(this.carrierCount);
    this.options.logger.info({ peer: this.options.peerRegion, session: this.sessionNo, carriers: connected, linkId, endpoint: this.pool.endpoint.kind }, 'link up');
    // auto: the first probe runs before streams start, on idle carriers, so it
    // measures the path alone and a switch resends nothing (netbench: probes
    // beside a full session measured the kinds out of order).
    if (this.selector) {
      const session = this.sessionNo;
      const first = this.selector.firstProbeDue();
      const checked = this.selector.sessionUp();
      if (first) {
        await checked;
        if (!this.up || this.sessionNo !== session || this.stopped) return;
      }
    }
    this.announced = true;
    this.handlers?.onUp(this.sessionNo);
  }

  private onCarrierClosed(index: number, carrier: Carrier, info: CloseInfo): void {
    if (!this.up || this.stopped) return;
    if (info.protocolError) this.options.metrics.protocolErrors.inc({ reason: 'carrier' });
    this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, this.pool.live);
    if (this.pool.live === 0) {
      this.selector?.kindFailure();
      this.endSession(`all carriers closed (last: ${info.reason})`);
      this.scheduleReconnect();
      return;
    }
    const current = index < this.carrierCount;
    if (current) this.options.logger.warn({ peer: this.options.peerRegion, carrier: index, reason: info.reason }, 'carrier lost; resending its undelivered frames');
    // Its undelivered frames go out on the others, unless a hedge copy is
    // still in flight elsewhere (that copy now stands for the frame).
    for (const entry of this.window.heldBy(carrier)) {
      if (entry.hedgeHolder === carrier) {
        entry.hedgeHolder = null;
        continue;
      }
      const hedge = entry.hedgeHolder;
      entry.hedgeHolder = null;
      if (hedge && this.pool.carrierAt(hedge.index) === hedge) {
        entry.holder = hedge;
        continue;
      }
      this.options.metrics.framesResent.inc({ stream: entry.streamId, reason: 'carrier_lost' });
      void this.schedule(entry, carrier);
    }
    if (current) this.pool.scheduleRedial(index);
  }

  private endSession(reason: string): void {
    if (!this.up) return;
    this.up = false;
    const announced = this.announced;
    this.announced = false;
    const session = this.sessionNo;
    // Drop in-flight frames: the next session resumes from the destination's durable position.
    this.window.clear();
    this.windowGauges();
    this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, 0);
    this.pool.closeAll(reason);
    this.wakeWindowWaiters();
    this.wakeCarrierWaiters();
    if (performance.now() - this.sessionStartedAt > STABLE_SESSION_MS) this.reconnect.reset();
    if (this.stopped) this.options.logger.info({ peer: this.options.peerRegion, session }, 'link closed');
    else this.options.logger.warn({ peer: this.options.peerRegion, session, reason }, 'link down');
    if (announced) this.handlers?.onDown(session, reason);
  }

  /** Reconnect after the next backoff delay; returns that delay, ms (0 when none was scheduled). */
  private scheduleReconnect(): number {
    if (this.stopped || this.reconnectTimer) return 0;
    const delay = this.reconnect.next();
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
    this.reconnectTimer.unref();
    return delay;
  }

  // ---- scheduling ----

  private reserve(bytes: number, session: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.up || session !== this.sessionNo) return reject(new LinkDownError(`link to ${this.options.peerRegion} is down`));
        if (this.window.fits(bytes)) return resolve();
        this.windowWaiters.push(check);
      };
      check();
    });
  }

  /** Wait for this frame's turn under the rate limit (a frame-sized token bucket). */
  private async pace(bytes: number): Promise<void> {
    if (this.rateLimit === null) return;
    const now = performance.now();
    const start = Math.max(now, this.paceNextAt);
    this.paceNextAt = start + (bytes / this.rateLimit) * 1000;
    if (start > now) await new Promise((r) => setTimeout(r, start - now));
  }

  /** Resolves when `drained` does or a carrier joins, whichever is first (its waiter is removed either way). */
  private async drainedOrJoined(drained: Promise<void>): Promise<void> {
    let wake: () => void = () => {};
    const joined = new Promise<void>((resolve) => {
      wake = resolve;
      this.carrierWaiters.push(resolve);
    });
    await Promise.race([drained, joined]);
    this.carrierWaiters = this.carrierWaiters.filter((w) => w !== wake);
  }

  private wakeCarrierWaiters(): void {
    const waiters = this.carrierWaiters;
    this.carrierWaiters = [];
    for (const w of waiters) w();
  }

  private wakeWindowWaiters(): void {
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
  }

  /** Put a frame on the carrier expected to finish it first (avoiding `avoid` when possible). */
  private async schedule(entry: Inflight, avoid: Carrier | null): Promise<void> {
    const session = this.sessionNo;
    for (;;) {
      if (!this.up || session !== this.sessionNo) return;
      const avoidIndex = avoid && this.pool.carrierAt(avoid.index) === avoid ? avoid.index : -1;
      const chosen = pickCarrier(this.pool.loads(), entry.bytes, avoidIndex, this.options.carrierWindowBytes);
      const carrier = chosen >= 0 ? this.pool.carrierAt(chosen) : null;
      if (carrier) {
        // Move the frame's bytes to the carrier now holding it.
        this.pool.charge(entry.holder, carrier, entry.bytes);
        entry.holder = carrier;
        entry.writtenAt = performance.now();
        carrier.write(entry.frame);
        this.options.metrics.wireBytesSent.inc({ peer: this.options.peerRegion }, entry.bytes);
        return;
      }
      // Every carrier is full: wait until one the scheduler may use drains
      // (a retired carrier's drain must not wake this loop, or it spins), or
      // a carrier joins: lab, satellite, cubic: one carrier's 1 MiB queue
      // drains in ~50 s, and the frame waiting on it ignored the 7 carriers
      // added meanwhile (1 MiB in flight on 8 carriers for 20 s).
      const drained = this.pool.usableDrained();
      if (drained) await this.drainedOrJoined(drained);
      else if (this.pool.live > 0) await new Promise((r) => setTimeout(r, REDIAL_WAIT_MS).unref());
      else return;
    }
  }
}
