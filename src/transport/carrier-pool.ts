// The carriers of one outbound link session: N slots, each dialed through
// the transport its endpoint names, redialed with backoff when its carrier
// dies, retired when the carrier count goes down. It keeps per slot what the
// scheduler reads (unsent queue, bytes outstanding, delivery rate) and
// applies the congestion control knob. Sessions are the link's business:
// the pool only dials, adopts, counts and closes.

import type { Carrier, CarrierHandlers, CloseInfo } from './carrier.ts';
import { formatEndpoint } from './endpoint.ts';
import { MIN_RATE_BYTES_PER_S, nextRate, type CarrierLoad } from './scheduler.ts';
import type { DialRequest, Endpoint, PathStats, Transports } from './transport.ts';
import { Backoff } from '../util/backoff.ts';

/** A carrier retired by a lower carrier count closes at the latest this long after, ms. */
const RETIRE_TIMEOUT_MS = 10_000;

/** One carrier slot. */
interface CarrierSlot {
  carrier: Carrier | null;
  /** Estimated delivery rate, bytes/s (acknowledged bytes per second, averaged). */
  rate: number;
  /** Bytes of frames on this carrier not yet acknowledged. */
  outstanding: number;
  /** Acknowledged bytes since the last rate sample. */
  delivered: number;
  /** Redial delays of this slot. */
  backoff: Backoff;
  redialTimer: NodeJS.Timeout | null;
  /** When a lower carrier count retired this slot (performance.now()), else null. */
  retiredAt: number | null;
}

/** One live carrier's path counters. */
export interface CarrierPath {
  carrier: Carrier;
  stats: PathStats;
}

/** What a pool needs to dial: everything of a DialRequest but the endpoint, link id and slot. */
export type DialTemplate = () => Omit<DialRequest, 'endpoint' | 'linkId' | 'index'>;

/** Options of a pool. */
export interface CarrierPoolOptions {
  endpoints: Endpoint[];
  transports: Transports;
  dialTemplate: DialTemplate;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A congestion control could not be applied to a carrier (logged by the owner). */
  onCongestionError(name: string, err: Error): void;
}

/** What the owner hears of its carriers. */
export interface PoolHandlers {
  /** A message from a carrier of the current generation. */
  onMessage: CarrierHandlers['onMessage'];
  /** A carrier took its slot (first dial or redial). */
  onCarrierAdopted(index: number): void;
  /** A carrier of the current generation closed (slot index, the carrier, why). */
  onCarrierClosed(index: number, carrier: Carrier, info: CloseInfo): void;
  /** A redial of a slot failed (for debug logs); the pool schedules the next. */
  onRedialFailed(index: number, err: Error): void;
}

/** Slots of carriers for one link. */
export class CarrierPool {
  private readonly options: CarrierPoolOptions;
  private slots: CarrierSlot[] = [];
  /** Bumped by reset(): carriers, timers and dials of older generations are ignored. */
  private generation = 0;
  private endpointIndex = 0;
  private linkId = '';
  private target = 1;
  private congestion: string | null = null;
  private handlers: PoolHandlers | null = null;

  constructor(options: CarrierPoolOptions) {
    if (options.endpoints.length === 0) throw new Error('carrier pool: no endpoints');
    this.options = options;
  }

  /** The endpoint dials use now. */
  get endpoint(): Endpoint {
    return this.options.endpoints[this.endpointIndex % this.options.endpoints.length];
  }

  /** Slots in use by the scheduler (the carrier count). */
  get targetCount(): number {
    return this.target;
  }

  /** Live carriers (retiring ones included). */
  get live(): number {
    return this.slots.filter((s) => s.carrier && !s.carrier.closed).length;
  }

  /** Live carriers, slot by slot (null where none). */
  get carriers(): Array<Carrier | null> {
    return this.slots.map((s) => s.carrier);
  }

  /** Dial the first endpoint of this kind from now on; false when none is of that kind. */
  selectKind(kind: Endpoint['kind']): boolean {
    const index = this.options.endpoints.findIndex((e) => e.kind === kind);
    if (index < 0) return false;
    this.endpointIndex = index;
    return true;
  }

  /** Move on to the next endpoint (after a session's connect failed). */
  nextEndpoint(): void {
    this.endpointIndex++;
  }

  /** Start a new generation of `count` empty slots for a session with this link id; old carriers are the caller's to close. */
  reset(linkId: string, count: number, handlers: PoolHandlers): void {
    this.stopTimers();
    this.generation++;
    this.linkId = linkId;
    this.target = count;
    this.handlers = handlers;
    this.slots = Array.from({ length: count }, () => this.emptySlot());
  }

  /** What the peer announced in the HelloReply of the last carrier dialed (HDE stages are negotiated on it). */
  peerCapabilities: readonly string[] = [];

  /** Dial slot `index` once through the current endpoint's transport. */
  async dial(index: number): Promise<Carrier> {
    const endpoint = this.endpoint;
    const transport = this.options.transports[endpoint.kind];
    if (!transport) throw new Error(`dial ${formatEndpoint(endpoint)}: no ${endpoint.kind} transport in this agent`);
    const { carrier, reply } = await transport.dial({ ...this.options.dialTemplate(), endpoint, linkId: this.linkId, index });
    this.peerCapabilities = reply.capabilities;
    return carrier;
  }

  /** Put a dialed carrier in its slot and start hearing it. */
  adopt(index: number, carrier: Carrier): void {
    const slot = this.slots[index] ?? (this.slots[index] = this.emptySlot());
    slot.carrier = carrier;
    slot.outstanding = 0;
    slot.delivered = 0;
    slot.retiredAt = null;
    const generation = this.generation;
    this.applyCongestion(carrier);
    carrier.attach({
      onMessage: (envelope, wireBytes) => {
        if (generation === this.generation) this.handlers?.onMessage(envelope, wireBytes);
      },
      onClose: (info) => {
        if (generation !== this.generation) return;
        if (slot.carrier === carrier) {
          slot.carrier = null;
          slot.outstanding = 0;
        }
        this.handlers?.onCarrierClosed(index, carrier, info);
      },
    });
    this.handlers?.onCarrierAdopted(index);
  }

  /** Redial a slot after its backoff delay (unless one is pending, or the slot is beyond the count). */
  scheduleRedial(index: number): void {
    const slot = this.slots[index] ?? (this.slots[index] = this.emptySlot());
    if (slot.redialTimer) return;
    const generation = this.generation;
    slot.redialTimer = setTimeout(() => {
      slot.redialTimer = null;
      if (generation !== this.generation || index >= this.target) return;
      this.redial(index);
    }, slot.backoff.next());
    slot.redialTimer.unref();
  }

  /** Change the carrier count: grow by reusing retiring slots and dialing others, shrink by retiring the highest. */
  setCount(count: number): void {
    const old = this.target;
    this.target = count;
    while (this.slots.length < count) this.slots.push(this.emptySlot());
    for (let i = old; i < count; i++) {
      const slot = this.slots[i];
      if (slot.carrier && !slot.carrier.closed) slot.retiredAt = null;
      else if (!slot.redialTimer) this.redial(i);
    }
    // Retired slots get no new frames and close once their frames are acknowledged (a shed resends nothing).
    const now = performance.now();
    for (let i = count; i < this.slots.length; i++) this.slots[i].retiredAt ??= now;
    this.closeRetired();
  }

  /** The scheduler's view of the slots in use (retired ones are unusable). */
  loads(): CarrierLoad[] {
    return this.slots.slice(0, this.target).map((s) => ({
      usable: s.carrier !== null && !s.carrier.closed,
      queuedBytes: s.carrier?.queuedBytes ?? 0,
      outstandingBytes: s.outstanding,
      rateBytesPerS: s.rate,
    }));
  }

  /** The carrier in a slot, if live. */
  carrierAt(index: number): Carrier | null {
    const c = this.slots[index]?.carrier ?? null;
    return c && !c.closed ? c : null;
  }

  /** Resolves when a carrier the scheduler may use drains (null when none is live among them). */
  usableDrained(): Promise<void> | null {
    const usable = this.slots.slice(0, this.target).flatMap((s) => (s.carrier && !s.carrier.closed ? [s.carrier.drained()] : []));
    return usable.length > 0 ? Promise.race(usable).then(() => {}) : null;
  }

  /** Charge a frame's bytes to the carrier now holding it (and take them off the one before, if it still holds its slot). */
  charge(from: Carrier | null, to: Carrier, bytes: number): void {
    const previous = this.slotOf(from);
    if (previous) previous.outstanding -= bytes;
    const next = this.slotOf(to);
    if (next) next.outstanding += bytes;
  }

  /** A frame held by `holder` left flight; acknowledged ones count toward its rate. */
  release(holder: Carrier | null, bytes: number, acknowledged: boolean): void {
    const slot = this.slotOf(holder);
    if (!slot) return;
    slot.outstanding -= bytes;
    if (acknowledged) slot.delivered += bytes;
  }

  /** Fold the interval's acknowledged bytes into each carrier's rate; close retired carriers that are done. */
  sampleRates(intervalS: number): void {
    for (const slot of this.slots) {
      if (!slot.carrier || slot.carrier.closed) continue;
      slot.rate = nextRate(slot.rate, slot.delivered, slot.outstanding, intervalS);
      slot.delivered = 0;
    }
    this.closeRetired();
  }

  /** Congestion control for every carrier, now and for later dials. */
  setCongestion(name: string): void {
    if (name === this.congestion) return;
    this.congestion = name;
    for (const s of this.slots) if (s.carrier && !s.carrier.closed) this.applyCongestion(s.carrier);
  }

  /** Path counters of the live carriers, through their transports. */
  paths(): CarrierPath[] {
    const out: CarrierPath[] = [];
    for (const s of this.slots) {
      const carrier = s.carrier;
      if (!carrier || carrier.closed) continue;
      const stats = this.options.transports[carrier.kind]?.pathStats(carrier) ?? null;
      if (stats) out.push({ carrier, stats });
    }
    return out;
  }

  /** Close every carrier and stop redials (the session ended). */
  closeAll(reason: string): void {
    this.stopTimers();
    this.generation++;
    for (const s of this.slots) s.carrier?.close(reason);
  }

  private redial(index: number): void {
    const generation = this.generation;
    this.dial(index).then(
      (carrier) => {
        if (generation !== this.generation) return carrier.close('stale session');
        (this.slots[index] ??= this.emptySlot()).backoff.reset();
        this.adopt(index, carrier);
      },
      (err: Error) => {
        if (generation !== this.generation) return;
        this.handlers?.onRedialFailed(index, err);
        this.scheduleRedial(index);
      },
    );
  }

  private applyCongestion(carrier: Carrier): void {
    if (this.congestion === null) return;
    const transport = this.options.transports[carrier.kind];
    if (!transport || transport.congestionControls().length === 0) return;
    try {
      transport.setCongestion(carrier, this.congestion);
    } catch (err) {
      this.options.onCongestionError(this.congestion, err as Error);
    }
  }

  /** The slot whose outstanding bytes include a frame held by this carrier, if it still holds the slot. */
  private slotOf(holder: Carrier | null): CarrierSlot | null {
    if (!holder) return null;
    const slot = this.slots[holder.index];
    return slot && slot.carrier === holder ? slot : null;
  }

  /** Close retired carriers whose frames are all acknowledged, or that waited too long. */
  private closeRetired(): void {
    const now = performance.now();
    for (let i = this.target; i < this.slots.length; i++) {
      const slot = this.slots[i];
      if (!slot.carrier || slot.carrier.closed || slot.retiredAt === null) continue;
      if (slot.outstanding <= 0 || now - slot.retiredAt > RETIRE_TIMEOUT_MS) slot.carrier.close('carrier count reduced');
    }
  }

  private stopTimers(): void {
    for (const s of this.slots) {
      if (s.redialTimer) clearTimeout(s.redialTimer);
      s.redialTimer = null;
    }
  }

  private emptySlot(): CarrierSlot {
    return { carrier: null, rate: MIN_RATE_BYTES_PER_S, outstanding: 0, delivered: 0, backoff: new Backoff({ initialMs: this.options.initialBackoffMs, maxMs: this.options.maxBackoffMs }), redialTimer: null, retiredAt: null };
  }
}
