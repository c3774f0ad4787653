// Mutual TLS for carriers, over TCP or over any duplex (a WebSocket's byte
// stream): both sides present certificates of the federation CA. Host names
// are not checked (agents dial IPs); identity is the dwcp:// URI SAN of each
// certificate (peer-identity.ts): the dialer checks the server names the
// region it dialed, the acceptor reads the client's for the Hello check.

import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { HandshakeError } from './hello-handshake.ts';
import { peerCertificateIdentity, serverIdentityProblem, type AgentName } from './peer-identity.ts';
import type { TlsMaterial } from './transport.ts';

/** What the dialer's TLS checks. */
export interface SecureDial {
  tls: TlsMaterial;
  federation: string;
  /** Region dialed: the server's certificate must name it. */
  peerRegion: string;
  timeoutMs: number;
  /** Names the dial in errors ("dial tls://10.0.0.1:7400"). */
  what: string;
}

/** TLS client options of a carrier dial: this agent's certificate, the server's checked for identity. */
export function clientTlsOptions(dial: SecureDial): tls.ConnectionOptions {
  return {
    ca: dial.tls.ca,
    cert: dial.tls.cert,
    key: dial.tls.key,
    // Identity is the certificate's dwcp:// SAN, not a DNS name (agents dial IPs).
    checkServerIdentity: (_host, cert) => {
      const problem = serverIdentityProblem(cert, dial.federation, dial.peerRegion);
      return problem === null ? undefined : new HandshakeError(problem);
    },
  };
}

/** Resolve once a dialing TLS socket is secure; reject (and destroy it) on error or timeout. */
export function secureConnected(socket: tls.TLSSocket, dial: SecureDial): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new HandshakeError(`${dial.what}: ${err.message}`, { cause: err }));
    };
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${dial.timeoutMs} ms`)), dial.timeoutMs);
    timer.unref();
    const closed = (): void => fail(new Error('closed during the TLS handshake'));
    socket.once('error', fail);
    socket.once('close', closed);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off('close', closed);
      resolve(socket);
    });
  });
}

/** TLS server options of a carrier listener: client certificates required and verified against the CA. */
export function serverTlsOptions(material: TlsMaterial): tls.TlsOptions {
  return { ca: material.ca, cert: material.cert, key: material.key, requestCert: true, rejectUnauthorized: true };
}

/**
 * Run the server side of mutual TLS over a duplex (inside a WebSocket);
 * resolves with the secure socket and the agent its client certificate
 * names (or why it names none); rejects on a TLS failure or timeout.
 */
export function secureAccept(duplex: Duplex, context: tls.SecureContext, timeoutMs: number): Promise<{ socket: tls.TLSSocket; certified: AgentName | string }> {
  const socket = new tls.TLSSocket(duplex, { isServer: true, secureContext: context, requestCert: true, rejectUnauthorized: true });
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      duplex.destroy();
      reject(new Error(`tls: ${err.message}`, { cause: err }));
    };
    const timer = setTimeout(() => fail(new Error(`no TLS handshake within ${timeoutMs} ms`)), timeoutMs);
    timer.unref();
    const closed = (): void => fail(new Error('closed during the TLS handshake'));
    socket.once('error', fail);
    socket.once('close', closed);
    socket.once('secure', () => {
      clearTimeout(timer);
      socket.off('error', fail);
      socket.off('close', closed);
      // rejectUnauthorized leaves an unverified socket open on a TLSSocket built over a duplex: refuse it here.
      if (!socket.authorized) return fail(new Error(`client certificate refused: ${String(socket.authorizationError)}`));
      resolve({ socket, certified: peerCertificateIdentity(socket.getPeerCertificate()) });
    });
  });
}
