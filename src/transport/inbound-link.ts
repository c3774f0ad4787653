// The accepting side of a link: the carriers a peer dialed with one link id.
// It hands every message to its owner and sends replies (StreamState, Ack,
// Nack) on whichever carrier has the least queued. When its last carrier
// closes, the session is over. Its peer region and node are what the
// peer's certificate names (checked against the Hello at accept). To a peer
// whose Hello announced amst:delivered@1 it reports held data frames,
// coalesced (delivery-acks.ts).

import type { Carrier } from './carrier.ts';
import type { Envelope } from '../wire/messages.ts';
import type { AgentName } from './peer-identity.ts';
import { frameEnvelope } from './envelope-framing.ts';
import { leastQueued } from './link.ts';
import type { LinkMetrics } from './link-metrics.ts';
import { DeliveryAcker, peerHoldBytes } from './delivery-acks.ts';

/** What the owner of an inbound link hears. */
export interface InboundHandlers {
  onMessage(link: InboundLink, envelope: Envelope): void;
  onClosed(link: InboundLink, reason: string): void;
}

/** Carriers from one peer session. */
export class InboundLink {
  /** The peer's region, from its certificate. */
  readonly peerRegion: string;
  /** The peer's node, from its certificate. */
  readonly peerNode: string;
  readonly linkId: string;
  private readonly carriers = new Map<number, Carrier>();
  private readonly handlers: InboundHandlers;
  private readonly metrics: LinkMetrics;
  private closedReason: string | null = null;
  /** Coalesces delivery reports; null when the peer did not announce amst:delivered@1. */
  private readonly acker: DeliveryAcker | null;

  /**
   * A session of a certified peer (never a Hello's claim) with the link id
   * its Hello chose; `peerCapabilities` are its Hello's (delivery reports
   * only go to a peer that reads them).
   */
  constructor(peer: AgentName, linkId: string, handlers: InboundHandlers, metrics: LinkMetrics, peerCapabilities: readonly string[] = []) {
    this.peerRegion = peer.region;
    this.peerNode = peer.node;
    this.linkId = linkId;
    this.handlers = handlers;
    this.metrics = metrics;
    this.acker = peerHoldBytes(peerCapabilities) !== null ? new DeliveryAcker((delivered) => this.send({ delivered })) : null;
  }

  /** True when the peer reads delivery reports. */
  get reportsDelivery(): boolean {
    return this.acker !== null;
  }

  /** A data frame of a stream is held (queued to apply, or applied): report it soon, coalesced. No-op for a peer without amst:delivered@1. */
  delivered(streamId: string, seq: number): void {
    if (!this.closedReason) this.acker?.add(streamId, seq);
  }

  /** True once every carrier closed or close() was called. */
  get closed(): boolean {
    return this.closedReason !== null;
  }

  /** Add a carrier of this session at the slot its Hello named (a redial replaces the one there). */
  add(carrier: Carrier, index: number): void {
    if (this.closedReason) return carrier.close('link closed');
    this.carriers.get(index)?.close('replaced by a redial');
    this.carriers.set(index, carrier);
    this.metrics.carriers.set({ peer: this.peerRegion, direction: 'in' }, this.carriers.size);
    carrier.attach({
      onMessage: (envelope, wireBytes) => {
        this.metrics.wireBytesReceived.inc({ peer: this.peerRegion }, wireBytes);
        if (!this.closedReason) this.handlers.onMessage(this, envelope);
      },
      onClose: (info) => {
        if (info.protocolError) this.metrics.protocolErrors.inc({ reason: 'carrier' });
        if (this.carriers.get(index) === carrier) this.carriers.delete(index);
        this.metrics.carriers.set({ peer: this.peerRegion, direction: 'in' }, this.carriers.size);
        if (this.carriers.size === 0) this.finish(`all carriers closed (last: ${info.reason})`);
      },
    });
  }

  /** Send a message to the peer; false when no carrier is left. */
  send(envelope: Envelope): boolean {
    const carrier = leastQueued(this.carriers.values());
    if (!carrier) return false;
    const framed = frameEnvelope(envelope);
    this.metrics.wireBytesSent.inc({ peer: this.peerRegion }, framed.length);
    return carrier.write(framed);
  }

  /** Close every carrier (a newer session of the same peer replaced this one, or shutdown). */
  close(reason: string): void {
    for (const c of this.carriers.values()) c.close(reason);
    this.finish(reason);
  }

  private finish(reason: string): void {
    if (this.closedReason) return;
    this.closedReason = reason;
    this.acker?.stop();
    this.handlers.onClosed(this, reason);
  }
}
