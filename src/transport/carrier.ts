// A carrier is one transport connection inside a link (TCP+TLS today;
// WebSocket and QUIC plug in behind the same interface). It moves whole
// framed Envelopes; it knows nothing of streams or sequence numbers.

import type { Envelope } from '../wire/messages.ts';

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
  /** Position of this carrier within its link. */
  readonly index: number;
  /** Transport kind, for metrics. */
  readonly kind: 'tls' | 'ws' | 'quic';
  /** True once closed; writes are then dropped. */
  readonly closed: boolean;
  /** Bytes accepted by write() and not yet handed to the kernel. */
  readonly queuedBytes: number;
  /** Bytes handed to write() since the carrier opened. */
  readonly writtenBytes: number;
  /** Start delivering messages to handlers (after the handshake). */
  attach(handlers: CarrierHandlers): void;
  /** Queue one already framed message; returns false when closed. */
  write(framed: Buffer): boolean;
  /** Resolves when queued bytes fall to zero or the carrier closes. */
  drained(): Promise<void>;
  /** Close with a reason (idempotent). */
  close(reason: string): void;
  /** The socket underneath when it is a TCP socket (for TCP_INFO and tuning). */
  readonly tcpSocket?: import('node:net').Socket;
}
