// A carrier over one QUIC connection: one bidirectional stream carrying
// framed Envelopes exactly as a TLS socket does (a QUIC stream is a Duplex,
// so the SocketCarrier and its FrameDecoder state machine read it). The
// connection and its stream live and die together: closing the carrier
// closes the connection with the reason (a protocol error with QUIC
// application error PROTOCOL_ERROR_CODE, so the peer's log names it too),
// and a connection closed by the peer or by idle timeout closes the carrier.

import type { Duplex } from 'node:stream';
import { SocketCarrier } from '../socket-carrier.ts';
import type { OpenSession } from './open-session.ts';

/** QUIC application error code of a clean close. */
export const CLOSE_CODE = 0;

/** QUIC application error code of a close because the peer broke the protocol. */
export const PROTOCOL_ERROR_CODE = 1;

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

/**
 * A carrier over `stream`, the one stream of `connection`: the socket
 * carrier's framing with kind 'quic'. When the carrier closes (destroying
 * its stream) the connection closes with the carrier's reason; when the
 * connection closes (peer, idle timeout) the carrier closes with the peer's.
 */
export function quicCarrier(connection: OpenSession, stream: Duplex, index: number, maxFrameBytes: number): SocketCarrier {
  const carrier = new SocketCarrier('quic', stream, index, maxFrameBytes);
  // The stream closes a tick after a connection closed by the peer: OpenSession then sends nothing.
  stream.once('close', () => {
    const info = carrier.closedWith ?? { reason: 'stream closed', protocolError: false };
    connection.close(info.protocolError ? PROTOCOL_ERROR_CODE : CLOSE_CODE, info.reason);
  });
  connection.onClose((info) => carrier.close(`quic connection closed (${describeClose(info)})`));
  connection.onError((err) => carrier.close(`quic connection error: ${err.message}`));
  return carrier;
}
