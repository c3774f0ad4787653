// AMST link: one agent-to-agent connection made of N carriers. The dialing
// side (OutboundLink) schedules data frames over carriers, bounds bytes in
// flight per carrier and per link (that bound is the backpressure that
// reaches the source), resends a dead carrier's unacknowledged frames on the
// others, and reconnects with backoff; every (re)connect is a new session
// and streams resume from the destination's durable position.

import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Carrier } from './carrier.ts';
import { dialCarrier, type Identity, type TlsMaterial } from './tls-transport.ts';
import type { SocketCarrier } from './socket-carrier.ts';
import { frameBytes } from '../wire/frame-decoder.ts';
import { envelopeCodec, type Envelope } from '../wire/messages.ts';
import type { Metrics } from '../agent/metrics.ts';
import { Backoff } from '../util/backoff.ts';

/** How often carrier drain rates are sampled for the scheduler. */
const RATE_SAMPLE_MS = 50;
/** Weight of a new sample in the drain-rate average. */
const RATE_EWMA_WEIGHT = 0.3;
/** Floor for a carrier's estimated rate (bytes/s), so a new carrier gets work. */
const MIN_RATE_BYTES_PER_S = 1_000_000;
/** A carrier retired by a lower carrier count closes at the latest this long after, ms. */
const RETIRE_TIMEOUT_MS = 10_000;
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

/** Encode and frame one envelope. */
export function frameEnvelope(envelope: Envelope): Buffer {
  return frameBytes(envelopeCodec.encode(envelope));
}

/** Options of an outbound link. */
export interface OutboundLinkOptions {
  peerRegion: string;
  endpoints: Array<{ host: string; port: number }>;
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
  metrics: Metrics;
  tuneSocket?: (socket: Socket) => void;
  /** Applies a congestion control to a carrier's TCP socket (the AMST controller's second knob). */
  setSocketCongestion?: (socket: Socket, name: string) => void;
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

interface InflightFrame {
  framed: Buffer;
  /** Slot index of the carrier holding the frame (-1 before the first send). */
  carrier: number;
  /** The carrier object itself, so a redialed slot is not charged for it. */
  via: Carrier | null;
  sentAt: number;
}

interface CarrierSlot {
  carrier: SocketCarrier | null;
  /** Estimated delivery rate, bytes/s (acknowledged bytes per second, averaged). */
  rate: number;
  /** Bytes of frames on this carrier not yet acknowledged. */
  outstanding: number;
  /** Acknowledged bytes since the last rate sample. */
  delivered: number;
  /** Redial delays of this carrier slot. */
  backoff: Backoff;
  redialTimer: NodeJS.Timeout | null;
  /** When a lower carrier count retired this slot (performance.now()), else null. */
  retiredAt: number | null;
}

/** The dialing side of a link: sends data frames, receives control messages. */
export class OutboundLink {
  readonly options: OutboundLinkOptions;
  private handlers: LinkHandlers | null = null;
  private slots: CarrierSlot[] = [];
  private sessionNo = 0;
  private up = false;
  private linkId = '';
  private stopped = false;
  private sessionStartedAt = 0;
  /** Reconnect delays of the link. */
  private readonly reconnect: Backoff;
  private endpointIndex = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private rateTimer: NodeJS.Timeout | null = null;
  private inflight = new Map<string, Map<number, InflightFrame>>();
  private inflightBytes = 0;
  private windowWaiters: Array<() => void> = [];
  private carrierCount: number;
  private ackedBytes = 0;
  private congestion: string | null = null;
  private rateLimit: number | null = null;
  private paceNextAt = 0;
  /** The peer's Hello capabilities, from the HelloReply of this session's carriers (HDE stages are negotiated on them). */
  private capabilities: readonly string[] = [];

  constructor(options: OutboundLinkOptions) {
    this.options = options;
    this.reconnect = new Backoff({ initialMs: options.initialBackoffMs, maxMs: options.maxBackoffMs });
    this.carrierCount = options.carriers;
  }

  /** Current session number (0 before the first). */
  get session(): number {
    return this.up ? this.sessionNo : 0;
  }

  /** What the peer announced in its HelloReply (empty before the first carrier is up). */
  get peerCapabilities(): readonly string[] {
    return this.capabilities;
  }

  /** Live carriers right now. */
  get liveCarriers(): number {
    return this.slots.filter((s) => s.carrier && !s.carrier.closed).length;
  }

  /** Bytes sent and not yet acknowledged durable. */
  get bytesInFlight(): number {
    return this.inflightBytes;
  }

  /** The TCP sockets of live carriers (for TCP_INFO sampling). */
  get sockets(): Socket[] {
    return this.slots.flatMap((s) => (s.carrier && !s.carrier.closed && s.carrier.tcpSocket ? [s.carrier.tcpSocket] : []));
  }

  /** Bytes acknowledged durable since the link was created (goodput, framed). */
  get acknowledgedBytes(): number {
    return this.ackedBytes;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Carriers the link aims for (live or being dialed). */
  get targetCarriers(): number {
    return this.carrierCount;
  }

  /** Congestion control for every carrier, now and for later dials (needs setSocketCongestion). */
  setCongestionControl(name: string): void {
    if (name === this.congestion || !this.options.setSocketCongestion) return;
    this.congestion = name;
    for (const socket of this.sockets) this.applyCongestion(socket);
  }

  /** Pace data frames to at most this many bytes/s (the bandwidth cap); null: unpaced. */
  setRateLimit(bytesPerS: number | null): void {
    this.rateLimit = bytesPerS !== null && bytesPerS > 0 ? bytesPerS : null;
  }

  /** Start connecting; handlers hear about sessions and messages. */
  start(handlers: LinkHandlers): void {
    this.handlers = handlers;
    this.rateTimer = setInterval(() => this.sampleRates(), RATE_SAMPLE_MS);
    this.rateTimer.unref();
    void this.connect();
  }

  /** Change the carrier count at runtime (the AMST controller's knob). */
  setCarrierCount(n: number): void {
    const count = Math.max(1, Math.floor(n));
    const old = this.carrierCount;
    this.carrierCount = count;
    if (!this.up) return;
    // Grow: reuse slots still retiring, dial the others. Shrink: retire the
    // highest slots; they get no new frames and close once their frames are
    // acknowledged (so a shed does not resend what is already in flight).
    while (this.slots.length < count) this.slots.push(this.emptySlot());
    for (let i = old; i < count; i++) {
      const slot = this.slots[i];
      if (slot.carrier && !slot.carrier.closed) slot.retiredAt = null;
      else if (!slot.redialTimer) this.dialSlot(i);
    }
    const now = performance.now();
    for (let i = count; i < this.slots.length; i++) this.slots[i].retiredAt ??= now;
    this.closeRetired();
  }

  /** Stop the link: close carriers, stop reconnecting. */
  close(): void {
    this.stopped = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.rateTimer) clearInterval(this.rateTimer);
    for (const s of this.slots) {
      if (s.redialTimer) clearTimeout(s.redialTimer);
      s.carrier?.close('link closed');
    }
    this.endSession('link closed');
  }

  /** Send a control message on the least-queued carrier; false when no carrier is up. */
  sendControl(envelope: Envelope): boolean {
    const carrier = leastQueued(this.slots.map((s) => s.carrier));
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
    let frames = this.inflight.get(streamId);
    if (!frames) {
      frames = new Map();
      this.inflight.set(streamId, frames);
    }
    const entry: InflightFrame = { framed, carrier: -1, via: null, sentAt: performance.now() };
    frames.set(seq, entry);
    this.inflightBytes += framed.length;
    this.options.metrics.linkInflightBytes.set({ peer: this.options.peerRegion }, this.inflightBytes);
    await this.schedule(entry, -1);
  }

  /**
   * The destination made everything up to durableSeq durable: release those
   * frames. Returns the send times of the released frames' oldest, for lag.
   */
  acknowledge(streamId: string, durableSeq: number): number | null {
    return this.release(streamId, durableSeq, true);
  }

  /**
   * A stream's sender stopped: its frames in flight will never be
   * acknowledged to it (the next session resumes from the destination's
   * checkpoint). Free their window without counting them as delivered.
   */
  forgetStream(streamId: string): void {
    this.release(streamId, Number.MAX_SAFE_INTEGER, false);
    this.inflight.delete(streamId);
  }

  /** Drop a stream's frames up to seq from flight; acknowledged ones count toward goodput and rates. */
  private release(streamId: string, upToSeq: number, acknowledged: boolean): number | null {
    const frames = this.inflight.get(streamId);
    if (!frames) return null;
    let oldest: number | null = null;
    for (const [seq, entry] of frames) {
      if (seq > upToSeq) break;
      if (oldest === null) oldest = entry.sentAt;
      frames.delete(seq);
      this.inflightBytes -= entry.framed.length;
      if (acknowledged) this.ackedBytes += entry.framed.length;
      const slot = this.chargedSlot(entry);
      if (slot) {
        slot.outstanding -= entry.framed.length;
        if (acknowledged) slot.delivered += entry.framed.length;
      }
    }
    this.options.metrics.linkInflightBytes.set({ peer: this.options.peerRegion }, this.inflightBytes);
    this.wakeWindowWaiters();
    return oldest;
  }

  /** Frames of a stream in flight (sent, not yet durable). */
  inflightFrames(streamId: string): number {
    return this.inflight.get(streamId)?.size ?? 0;
  }

  /** Send time of the oldest frame of a stream still in flight. */
  oldestInflight(streamId: string): number | null {
    const frames = this.inflight.get(streamId);
    if (!frames) return null;
    for (const entry of frames.values()) return entry.sentAt;
    return null;
  }

  /** The destination could not verify a frame: send it again on another carrier. */
  resend(streamId: string, seq: number): boolean {
    const entry = this.inflight.get(streamId)?.get(seq);
    if (!entry) return false;
    void this.schedule(entry, entry.carrier);
    return true;
  }

  // ---- sessions ----

  private async connect(): Promise<void> {
    if (this.stopped) return;
    // Dial all carriers of a new session; at least one must succeed.
    this.linkId = randomUUID();
    const count = this.carrierCount;
    this.slots = Array.from({ length: count }, () => this.emptySlot());
    const results = await Promise.allSettled(Array.from({ length: count }, (_, i) => this.dialOne(i)));
    if (this.stopped) {
      for (const r of results) if (r.status === 'fulfilled') r.value.close('link closed');
      return;
    }
    const connected = results.filter((r) => r.status === 'fulfilled').length;
    if (connected === 0) {
      const reason = (results[0] as PromiseRejectedResult).reason as Error;
      this.endpointIndex++;
      const retryInMs = this.scheduleReconnect();
      this.options.logger.warn({ peer: this.options.peerRegion, err: reason.message, retryInMs }, 'link connect failed');
      return;
    }
    // Session is up: attach carriers, redial the ones that failed.
    this.sessionNo++;
    this.up = true;
    this.sessionStartedAt = performance.now();
    if (this.sessionNo > 1) this.options.metrics.linkReconnects.inc({ peer: this.options.peerRegion });
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') this.adopt(i, r.value);
      else this.scheduleRedial(i);
    });
    this.options.logger.info({ peer: this.options.peerRegion, session: this.sessionNo, carriers: connected, linkId: this.linkId }, 'link up');
    this.handlers?.onUp(this.sessionNo);
  }

  private emptySlot(): CarrierSlot {
    return { carrier: null, rate: MIN_RATE_BYTES_PER_S, outstanding: 0, delivered: 0, backoff: new Backoff({ initialMs: this.options.initialBackoffMs, maxMs: this.options.maxBackoffMs }), redialTimer: null, retiredAt: null };
  }

  private async dialOne(index: number): Promise<SocketCarrier> {
    const endpoint = this.options.endpoints[this.endpointIndex % this.options.endpoints.length];
    const { carrier, reply } = await dialCarrier({
      host: endpoint.host,
      port: endpoint.port,
      tls: this.options.tls(),
      identity: this.options.identity,
      peerRegion: this.options.peerRegion,
      linkId: this.linkId,
      index,
      maxFrameBytes: this.options.maxFrameBytes,
      timeoutMs: this.options.connectTimeoutMs,
      tuneSocket: (socket) => {
        this.options.tuneSocket?.(socket);
        this.applyCongestion(socket);
      },
    });
    this.capabilities = reply.capabilities;
    return carrier;
  }

  private applyCongestion(socket: Socket): void {
    if (this.congestion === null || !this.options.setSocketCongestion) return;
    try {
      this.options.setSocketCongestion(socket, this.congestion);
    } catch (err) {
      this.options.logger.warn({ peer: this.options.peerRegion, congestion: this.congestion, err: (err as Error).message }, 'set congestion control failed');
    }
  }

  private adopt(index: number, carrier: SocketCarrier): void {
    const slot = this.slots[index] ?? (this.slots[index] = this.emptySlot());
    slot.carrier = carrier;
    slot.outstanding = 0;
    slot.delivered = 0;
    slot.retiredAt = null;
    const session = this.sessionNo;
    carrier.attach({
      onMessage: (envelope, wireBytes) => {
        this.options.metrics.wireBytesReceived.inc({ peer: this.options.peerRegion }, wireBytes);
        if (session === this.sessionNo) this.handlers?.onMessage(envelope);
      },
      onClose: (info) => this.onCarrierClosed(session, index, carrier, info.reason, info.protocolError),
    });
    this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, this.liveCarriers);
  }

  private onCarrierClosed(session: number, index: number, carrier: SocketCarrier, reason: string, protocolError: boolean): void {
    if (session !== this.sessionNo || !this.up || this.stopped) return;
    if (protocolError) this.options.metrics.protocolErrors.inc({ reason: 'carrier' });
    this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, this.liveCarriers);
    if (this.slots[index]?.carrier === carrier) {
      this.slots[index].carrier = null;
      this.slots[index].outstanding = 0;
    }
    if (this.liveCarriers === 0) {
      this.endSession(`all carriers closed (last: ${reason})`);
      this.scheduleReconnect();
      return;
    }
    if (index < this.carrierCount) this.options.logger.warn({ peer: this.options.peerRegion, carrier: index, reason }, 'carrier lost; resending its frames');
    // Its unacknowledged frames go out on the others.
    for (const [streamId, frames] of this.inflight) {
      for (const entry of frames.values()) {
        if (entry.carrier === index) {
          this.options.metrics.framesResent.inc({ stream: streamId, reason: 'carrier_lost' });
          void this.schedule(entry, index);
        }
      }
    }
    if (index < this.carrierCount) this.scheduleRedial(index);
  }

  private scheduleRedial(index: number): void {
    const slot = this.slots[index] ?? (this.slots[index] = this.emptySlot());
    if (this.stopped || slot.redialTimer) return;
    const session = this.sessionNo;
    slot.redialTimer = setTimeout(() => {
      slot.redialTimer = null;
      if (session !== this.sessionNo || !this.up || this.stopped || index >= this.carrierCount) return;
      this.dialSlot(index);
    }, slot.backoff.next());
    slot.redialTimer.unref();
  }

  private dialSlot(index: number): void {
    const session = this.sessionNo;
    this.dialOne(index).then(
      (carrier) => {
        if (session !== this.sessionNo || !this.up || this.stopped) return carrier.close('stale session');
        this.slots[index] = this.slots[index] ?? this.emptySlot();
        this.slots[index].backoff.reset();
        this.adopt(index, carrier);
      },
      (err: Error) => {
        this.options.logger.debug({ peer: this.options.peerRegion, carrier: index, err: err.message }, 'carrier redial failed');
        this.scheduleRedial(index);
      },
    );
  }

  private endSession(reason: string): void {
    if (!this.up) return;
    this.up = false;
    const session = this.sessionNo;
    // Drop in-flight frames: the next session resumes from the destination's durable position.
    this.inflight.clear();
    this.inflightBytes = 0;
    this.options.metrics.linkInflightBytes.set({ peer: this.options.peerRegion }, 0);
    this.options.metrics.carriers.set({ peer: this.options.peerRegion, direction: 'out' }, 0);
    for (const s of this.slots) {
      if (s.redialTimer) clearTimeout(s.redialTimer);
      s.redialTimer = null;
      s.carrier?.close(reason);
    }
    this.wakeWindowWaiters();
    if (performance.now() - this.sessionStartedAt > STABLE_SESSION_MS) this.reconnect.reset();
    if (this.stopped) this.options.logger.info({ peer: this.options.peerRegion, session }, 'link closed');
    else this.options.logger.warn({ peer: this.options.peerRegion, session, reason }, 'link down');
    this.handlers?.onDown(session, reason);
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
    const fits = (): boolean => this.inflightBytes === 0 || this.inflightBytes + bytes <= this.options.linkWindowBytes;
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!this.up || session !== this.sessionNo) return reject(new LinkDownError(`link to ${this.options.peerRegion} is down`));
        if (fits()) return resolve();
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

  private wakeWindowWaiters(): void {
    const waiters = this.windowWaiters;
    this.windowWaiters = [];
    for (const w of waiters) w();
  }

  /** Put a frame on the carrier expected to finish it first (avoiding `avoid` when possible). */
  private async schedule(entry: InflightFrame, avoid: number): Promise<void> {
    const session = this.sessionNo;
    for (;;) {
      if (!this.up || session !== this.sessionNo) return;
      const chosen = this.pickCarrier(entry.framed.length, avoid);
      if (chosen >= 0) {
        const carrier = this.slots[chosen].carrier as SocketCarrier;
        // Move the frame's bytes to the carrier now holding it.
        const previous = this.chargedSlot(entry);
        if (previous) previous.outstanding -= entry.framed.length;
        this.slots[chosen].outstanding += entry.framed.length;
        entry.carrier = chosen;
        entry.via = carrier;
        carrier.write(entry.framed);
        this.options.metrics.wireBytesSent.inc({ peer: this.options.peerRegion }, entry.framed.length);
        return;
      }
      // Every carrier is full: wait until one the scheduler may use drains
      // (a retired carrier's drain must not wake this loop, or it spins).
      const usable = this.slots.slice(0, this.carrierCount).flatMap((s) => (s.carrier && !s.carrier.closed ? [s.carrier.drained()] : []));
      if (usable.length > 0) await Promise.race(usable);
      else if (this.liveCarriers > 0) await new Promise((r) => setTimeout(r, REDIAL_WAIT_MS).unref());
      else return;
    }
  }

  /** The slot whose outstanding bytes include this frame, if its carrier still lives. */
  private chargedSlot(entry: InflightFrame): CarrierSlot | null {
    const slot = this.slots[entry.carrier];
    return slot && entry.via && slot.carrier === entry.via ? slot : null;
  }

  private pickCarrier(bytes: number, avoid: number): number {
    let best = -1;
    let bestEta = Infinity;
    let fallback = -1;
    for (let i = 0; i < this.slots.length && i < this.carrierCount; i++) {
      const c = this.slots[i].carrier;
      if (!c || c.closed) continue;
      if (c.queuedBytes + bytes > this.options.carrierWindowBytes && c.queuedBytes > 0) continue;
      if (i === avoid) {
        fallback = i;
        continue;
      }
      // Expected completion: what the carrier still has to deliver, plus this frame, at its rate.
      const eta = (this.slots[i].outstanding + bytes) / Math.max(this.slots[i].rate, MIN_RATE_BYTES_PER_S);
      if (eta < bestEta) {
        bestEta = eta;
        best = i;
      }
    }
    return best >= 0 ? best : fallback;
  }

  private sampleRates(): void {
    // Acknowledged bytes per second, per carrier, averaged; only a busy carrier tells its rate.
    const seconds = RATE_SAMPLE_MS / 1000;
    for (const slot of this.slots) {
      if (!slot.carrier || slot.carrier.closed) continue;
      if (slot.outstanding > 0 || slot.delivered > 0) slot.rate = slot.rate * (1 - RATE_EWMA_WEIGHT) + (slot.delivered / seconds) * RATE_EWMA_WEIGHT;
      slot.delivered = 0;
    }
    this.closeRetired();
  }

  /** Close retired carriers whose frames are all acknowledged, or that waited too long. */
  private closeRetired(): void {
    const now = performance.now();
    for (let i = this.carrierCount; i < this.slots.length; i++) {
      const slot = this.slots[i];
      if (!slot.carrier || slot.carrier.closed || slot.retiredAt === null) continue;
      if (slot.outstanding <= 0 || now - slot.retiredAt > RETIRE_TIMEOUT_MS) slot.carrier.close('carrier count reduced');
    }
  }
}
