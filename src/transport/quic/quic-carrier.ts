// A carrier over one QUIC connection: one bidirectional stream carrying
// framed Envelopes exactly as a TLS socket does (the SocketCarrier's
// FrameDecoder state machine reads it; a QUIC stream is a Duplex). The
// connection and its stream live and die together: closing the carrier
// closes the connection with the reason (a protocol error with QUIC
// application error PROTOCOL_ERROR_CODE, so the peer's log names it too),
// and a connection closed by the peer or by idle timeout closes the carrier.

import type { Duplex } from 'node:stream';
import { SocketCarrier } from '../socket-carrier.ts';
import type { Carrier, CarrierHandlers, CloseInfo } from '../carrier.ts';

/** QUIC application error code of a clean close. */
export const CLOSE_CODE = 0;

/** QUIC application error code of a close because the peer broke the protocol. */
export const PROTOCOL_ERROR_CODE = 1;

/** Longest close reason sent in CONNECTION_CLOSE, characters (the frame must fit a packet). */
export const MAX_CLOSE_REASON_CHARS = 200;

/** TLS alerts a QUIC handshake may end with (RFC 8446 6; QUIC sends alert N as CRYPTO_ERROR 0x100 + N). */
const TLS_ALERTS: Record<number, string> = {
  40: 'handshake_failure', 42: 'bad_certificate', 43: 'unsupported_certificate', 44: 'certificate_revoked',
  45: 'certificate_expired', 46: 'certificate_unknown', 48: 'unknown_ca', 116: 'certificate_required', 120: 'no_application_protocol',
};

/** First QUIC CRYPTO_ERROR code (0x100 + TLS alert). */
const CRYPTO_ERROR_BASE = 0x100;

/** A connection close as words: its code (a TLS alert named when it is one) and its reason. */
export function describeClose(info: { errorCode: number; reason: string }): string {
  const alert = info.errorCode - CRYPTO_ERROR_BASE;
  // quiche reports some refusals (no client certificate) as CRYPTO_ERROR 0x100 with the reason in words.
  const code = alert === 0 ? 'tls error' : alert > 0 && alert < CRYPTO_ERROR_BASE ? `tls alert ${alert} ${TLS_ALERTS[alert] ?? ''}`.trimEnd() : `code ${info.errorCode}`;
  return info.reason ? `${code}: ${info.reason}` : code;
}

/** Transport counters of a QUIC connection, as @currentspace/http3 reports them. */
export interface QuicMetrics {
  packetsIn: number;
  packetsOut: number;
  bytesIn: number;
  bytesOut: number;
  rttMs: number;
  cwnd: number;
}

/** What a carrier needs of a QUIC connection (client and server sessions both fit). */
export interface QuicConnection {
  close(errorCode?: number, reason?: string): unknown;
  getMetrics(): QuicMetrics | null;
  on(event: 'close', listener: (info: { errorCode: number; reason: string }) => void): unknown;
}

/** One QUIC connection of a link, framing Envelopes on one stream. */
export class QuicCarrier implements Carrier {
  readonly kind = 'quic' as const;
  /** The QUIC connection underneath (for its metrics). */
  readonly connection: QuicConnection;
  private slot: number;
  private readonly frames: SocketCarrier;
  private connectionClosed = false;

  /** Frame `stream` of `connection`; until handshakeDone only a small Hello is accepted. */
  constructor(connection: QuicConnection, stream: Duplex, index: number, maxFrameBytes: number) {
    this.connection = connection;
    this.slot = index;
    this.frames = new SocketCarrier(stream, index, maxFrameBytes);
    // The peer closed the connection (or it timed out): the carrier closes with its reason.
    connection.on('close', (info) => this.frames.close(`quic connection closed (${describeClose(info)})`));
  }

  get index(): number {
    return this.slot;
  }

  /** Set the carrier's slot (the acceptor learns it from the Hello). */
  set index(value: number) {
    this.slot = value;
  }

  get closed(): boolean {
    return this.frames.closed;
  }

  get queuedBytes(): number {
    return this.frames.queuedBytes;
  }

  get writtenBytes(): number {
    return this.frames.writtenBytes;
  }

  /** Why the carrier closed, once it has. */
  get closedWith(): CloseInfo | null {
    return this.frames.closedWith;
  }

  attach(handlers: CarrierHandlers): void {
    // Close the connection first, so the peer learns the reason whatever the handler does.
    this.frames.attach({
      onMessage: (envelope, wireBytes) => handlers.onMessage(envelope, wireBytes),
      onClose: (info) => {
        this.closeConnection(info);
        handlers.onClose(info);
      },
    });
    if (this.frames.closedWith) this.closeConnection(this.frames.closedWith);
  }

  detach(): void {
    this.frames.detach();
  }

  handshakeDone(): void {
    this.frames.handshakeDone();
  }

  write(framed: Buffer): boolean {
    return this.frames.write(framed);
  }

  drained(): Promise<void> {
    return this.frames.drained();
  }

  close(reason: string): void {
    this.frames.close(reason);
    this.closeConnection({ reason, protocolError: false });
  }

  /** Close because the peer broke the protocol. */
  fail(reason: string): void {
    this.frames.fail(reason);
    this.closeConnection({ reason, protocolError: true });
  }

  // Tell the peer why, once; a connection already closed ignores it.
  private closeConnection(info: CloseInfo): void {
    if (this.connectionClosed) return;
    this.connectionClosed = true;
    const code = info.protocolError ? PROTOCOL_ERROR_CODE : CLOSE_CODE;
    const result = this.connection.close(code, info.reason.slice(0, MAX_CLOSE_REASON_CHARS));
    if (result instanceof Promise) result.catch(() => {});
  }
}
