// TCP+TLS carriers: dialing, accepting, and the Hello handshake that every
// carrier starts with. Both sides present certificates of the federation CA
// (mutual TLS). Host names are not checked (agents dial IPs); identity is the
// dwcp:// URI SAN of each certificate (peer-identity.ts): the dialer checks
// the server names the region it dialed, the acceptor checks the Hello
// against the client certificate.

import tls from 'node:tls';
import type { Socket } from 'node:net';
import { SocketCarrier } from './socket-carrier.ts';
import { helloIdentityRefusal, peerCertificateIdentity, serverIdentityProblem, type AgentName, type IdentityProblem } from './peer-identity.ts';
import type { TlsMaterial } from '../config/tls-files.ts';
import { PROTOCOL_VERSION, type Envelope, type Hello, type HelloReply } from '../wire/messages.ts';

/** Certificates and key of this agent, PEM (read from the config's tls files). */
export type { TlsMaterial };

/** Who this agent is, as told in the handshake. */
export interface Identity {
  federation: string;
  region: string;
  nodeId: string;
  capabilities: string[];
}

/** Default time allowed for TCP + TLS + Hello. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** The handshake was refused or broken. */
export class HandshakeError extends Error {
  override name = 'HandshakeError';
}

/** Options to dial one carrier. */
export interface DialOptions {
  host: string;
  port: number;
  tls: TlsMaterial;
  identity: Identity;
  /** Region the dialer means to reach: the server's certificate must name it. */
  peerRegion: string;
  linkId: string;
  index: number;
  maxFrameBytes: number;
  timeoutMs?: number;
  /** Called with the TCP socket before any data flows (congestion control, buffers). */
  tuneSocket?: (socket: Socket) => void;
}

/** Dial, TLS-handshake and Hello-handshake one carrier. */
export async function dialCarrier(options: DialOptions): Promise<{ carrier: SocketCarrier; reply: HelloReply }> {
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const socket = tls.connect({
    host: options.host,
    port: options.port,
    ca: options.tls.ca,
    cert: options.tls.cert,
    key: options.tls.key,
    // Identity is the certificate's dwcp:// SAN, not a DNS name (agents dial IPs).
    checkServerIdentity: (_host, cert) => {
      const problem = serverIdentityProblem(cert, options.identity.federation, options.peerRegion);
      return problem === null ? undefined : new HandshakeError(problem);
    },
  });
  socket.setNoDelay(true);
  socket.on('connect', () => options.tuneSocket?.(socket as unknown as Socket));
  const carrier = new SocketCarrier(socket, options.index, options.maxFrameBytes, socket as unknown as Socket);
  const first = await firstMessage(carrier, timeoutMs, `dial ${options.host}:${options.port}`, () => {
    carrier.send({
      hello: {
        protocolVersion: PROTOCOL_VERSION,
        federation: options.identity.federation,
        region: options.identity.region,
        nodeId: options.identity.nodeId,
        capabilities: options.identity.capabilities,
        linkId: options.linkId,
        carrierIndex: options.index,
      },
    });
  }, socket);
  const reply = first.helloReply;
  if (!reply) {
    carrier.fail('expected HelloReply');
    throw new HandshakeError(`dial ${options.host}:${options.port}: peer answered without a HelloReply`);
  }
  if (!reply.accepted) {
    carrier.close('refused by peer');
    throw new HandshakeError(`dial ${options.host}:${options.port}: refused: ${reply.refusal}`);
  }
  carrier.handshakeDone();
  return { carrier, reply };
}

/** Options for the carrier server. */
export interface ServerOptions {
  host: string;
  port: number;
  tls: TlsMaterial;
  identity: Identity;
  maxFrameBytes: number;
  handshakeTimeoutMs?: number;
  /** Decide on a Hello from a certified peer: return a refusal message, or null to accept. */
  admit(hello: Hello, peer: AgentName): string | null;
  /** An accepted carrier, ready to attach; peer is what its certificate names. */
  onCarrier(carrier: SocketCarrier, hello: Hello, peer: AgentName): void;
  /** A connection that was refused or broke before the handshake finished (identity: why its certificate did not fit). */
  onRefused(reason: string, remote: string, identity?: IdentityProblem): void;
  tuneSocket?: (socket: Socket) => void;
}

/** Accept carriers: mutual TLS, then Hello checked against the client certificate; refusals are answered and logged. */
export async function startCarrierServer(options: ServerOptions): Promise<tls.Server> {
  const server = tls.createServer({
    ca: options.tls.ca,
    cert: options.tls.cert,
    key: options.tls.key,
    requestCert: true,
    rejectUnauthorized: true,
    handshakeTimeout: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
  });
  server.on('tlsClientError', (err, socket) => {
    options.onRefused(`tls: ${err.message}`, `${socket.remoteAddress}:${socket.remotePort}`);
  });
  server.on('secureConnection', (socket) => {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    options.tuneSocket?.(socket as unknown as Socket);
    const carrier = new SocketCarrier(socket, -1, options.maxFrameBytes, socket as unknown as Socket);
    // Who the peer is comes from its certificate, read once the TLS handshake is done.
    const certified = peerCertificateIdentity(socket.getPeerCertificate());
    firstMessage(carrier, options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS, `accept ${remote}`, () => {}, socket).then(
      (first) => {
        const decision: HelloDecision = first.hello ? decideHello(first.hello, certified, options) : { refusal: 'first message was not a Hello' };
        const refusal = 'refusal' in decision ? decision.refusal : null;
        const reply: HelloReply = {
          accepted: refusal === null,
          refusal: refusal ?? '',
          protocolVersion: PROTOCOL_VERSION,
          federation: options.identity.federation,
          region: options.identity.region,
          nodeId: options.identity.nodeId,
          capabilities: options.identity.capabilities,
        };
        carrier.send({ helloReply: reply });
        if ('refusal' in decision) {
          options.onRefused(`handshake refused: ${decision.refusal}`, remote, decision.problem);
          // Let the refusal reach the peer before closing.
          socket.end();
          setTimeout(() => carrier.close(`refused: ${decision.refusal}`), 1000).unref();
          return;
        }
        (carrier as { index: number }).index = decision.hello.carrierIndex;
        carrier.handshakeDone();
        options.onCarrier(carrier, decision.hello, decision.peer);
      },
      (err: Error) => options.onRefused(err.message, remote),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => options.onRefused(`server: ${err.message}`, ''));
  return server;
}

/** A Hello's fate: accepted from a certified peer, or a refusal (with the identity problem when that was it). */
type HelloDecision = { hello: Hello; peer: AgentName } | { refusal: string; problem?: IdentityProblem };

// Protocol checks, then the Hello against the certificate, then the owner's admit.
function decideHello(hello: Hello, certified: AgentName | string, options: ServerOptions): HelloDecision {
  const protocol = helloRefusal(hello, options.identity);
  if (protocol !== null) return { refusal: protocol };
  if (typeof certified === 'string') return { refusal: `identity: ${certified}`, problem: 'no_identity' };
  const identity = helloIdentityRefusal(hello, certified, options.identity);
  if (identity !== null) return { refusal: `identity: ${identity.message}`, problem: identity.problem };
  const admitted = options.admit(hello, certified);
  return admitted === null ? { hello, peer: certified } : { refusal: admitted };
}

/** Protocol-level checks every Hello must pass. */
function helloRefusal(hello: Hello, identity: Identity): string | null {
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return `protocol version ${hello.protocolVersion} is not supported (this agent speaks ${PROTOCOL_VERSION})`;
  }
  if (hello.federation !== identity.federation) {
    return `federation "${hello.federation}" does not match this agent's federation "${identity.federation}"`;
  }
  if (!hello.linkId) return 'hello has no link id';
  return null;
}

/** Wait for the first message on a fresh carrier, then detach so the owner can attach. */
function firstMessage(carrier: SocketCarrier, timeoutMs: number, what: string, start: () => void, socket: tls.TLSSocket): Promise<Envelope> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      carrier.close('handshake timeout');
      reject(new HandshakeError(`${what}: no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    carrier.attach({
      onMessage(envelope) {
        clearTimeout(timer);
        carrier.detach();
        resolve(envelope);
      },
      onClose(info) {
        clearTimeout(timer);
        reject(new HandshakeError(`${what}: ${info.reason}`));
      },
    });
    if (socket.encrypted && !socket.connecting && (socket as { authorized?: boolean }).authorized) start();
    else socket.once('secureConnect', start);
  });
}
