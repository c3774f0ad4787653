// A carrier is one transport connection inside a link (TCP+TLS, WebSocket
// or QUIC, made by a Transport, transport.ts). It moves whole framed
// Envelopes; it knows nothing of streams or sequence numbers.

import type { Envelope } from '../wire/messages.ts';
import type { TransportKind } from './transport.ts';

/** Largest frame a carrier accepts before the Hello handshake finished (a Hello is ~200 bytes). */
export const HANDSHAKE_MAX_FRAME_BYTES = 64 * 1024;

/** Why a carrier closed, for logs and metrics. */
export interface CloseInfo {
  reason: string;
  /** True when the peer sent something malformed (counted as a protocol error). */
  protocolError: boolean;
}

/** Callbacks a carrier reports to; set once by its owner. */
export interface CarrierHandlers {
  onMessage(envelope: Envelope, wireBytes: number): void;
  onClose(info: CloseInfo): void;
}

/** One connection of a link. */
export interface Carrier {
  /**
   * Slot of this carrier in its link on the dialing side (sent in the Hello;
   * the link's pool charges frames by it); -1 on the accepting side, where
   * the Hello's carrierIndex names the slot.
   */
  readonly index: number;
  /** Transport kind, for metrics and path measurement. */
  readonly kind: TransportKind;
  /** True once closed; writes are then dropped. */
  readonly closed: boolean;
  /** Bytes accepted by write() and not yet handed to the kernel. */
  readonly queuedBytes: number;
  /** Bytes handed to write() since the carrier opened. */
  readonly writtenBytes: number;
  /**
   * Start delivering messages to handlers. Messages that arrived while no
   * handlers were attached are delivered first, then a close that happened
   * meanwhile. Calling it again replaces the handlers.
   */
  attach(handlers: CarrierHandlers): void;
  /** Stop delivering; messages buffer until the next attach (hand-over after the Hello). */
  detach(): void;
  /**
   * The Hello handshake is done: accept frames up to the carrier's configured
   * maximum (until then only HANDSHAKE_MAX_FRAME_BYTES, a Hello is ~200 bytes).
   */
  handshakeDone(): void;
  /** Queue one already framed message; returns false when closed. */
  write(framed: Buffer): boolean;
  /** Resolves when queued bytes fall to zero or the carrier closes. */
  drained(): Promise<void>;
  /** Close with a reason (idempotent). */
  close(reason: string): void;
}
