// The transport seam: how carriers of one kind (TCP+TLS, WebSocket, QUIC)
// are dialed, accepted and measured. The link and the agent hold Transports
// by kind and never import a concrete carrier. Every transport ends its dial
// and its accept with the same Hello handshake over the new Carrier
// (hello-handshake.ts), so identity is checked the same way whatever the
// kind: a peer is what its certificate's dwcp:// URI SAN names.

import type { Carrier } from './carrier.ts';
import type { AgentName, IdentityProblem } from './peer-identity.ts';
import type { TlsMaterial } from '../config/tls-files.ts';
import type { Hello, HelloReply } from '../wire/messages.ts';

/** Kinds of carrier, as endpoints name them (`tls://`, `wss://`, `quic://`). */
export type TransportKind = 'tls' | 'ws' | 'quic';

/** Certificates and key of this agent, PEM (read from the config's tls files). */
export type { TlsMaterial };

/** Who this agent is, as told in the handshake. */
export interface Identity {
  federation: string;
  region: string;
  nodeId: string;
  capabilities: string[];
}

/** Where a peer accepts carriers of one kind. */
export interface Endpoint {
  kind: TransportKind;
  host: string;
  port: number;
  /** HTTP path of the upgrade request (kind ws only; '/' when the URL has none). */
  path?: string;
}

/** What a dial needs besides the endpoint. */
export interface DialRequest {
  endpoint: Endpoint;
  /** This agent's certificates (read at every dial, so rotated files reach new carriers). */
  tls: TlsMaterial;
  identity: Identity;
  /** Region the dialer means to reach: the peer's certificate must name it. */
  peerRegion: string;
  linkId: string;
  /** Carrier slot within the link (sent in the Hello). */
  index: number;
  maxFrameBytes: number;
  /** Time allowed for connect + security handshake + Hello, ms. */
  timeoutMs: number;
}

/** A dialed carrier, Hello done and accepted: ready to attach. */
export interface Dialed {
  carrier: Carrier;
  reply: HelloReply;
}

/** What a listening transport needs from the agent. */
export interface ListenOptions {
  host: string;
  port: number;
  /** HTTP path of the upgrade request (kind ws only; default '/'). */
  path?: string;
  tls: TlsMaterial;
  identity: Identity;
  maxFrameBytes: number;
  /** Time allowed for the security handshake + Hello, ms. */
  handshakeTimeoutMs: number;
  /** Decide on a Hello from a certified peer: a refusal message, or null to accept. */
  admit(hello: Hello, peer: AgentName): string | null;
  /** An accepted carrier, ready to attach; peer is what its certificate names. */
  onCarrier(carrier: Carrier, hello: Hello, peer: AgentName): void;
  /** A connection refused or broken before the handshake finished, with why (identity: the certificate problem). */
  onRefused(reason: string, remote: string, identity?: IdentityProblem): void;
}

/** A running listener of one transport. */
export interface CarrierServer {
  readonly kind: TransportKind;
  /** The bound port (the configured one, or the kernel's pick for port 0). */
  readonly port: number;
  /** Use these certificates for later handshakes (rotation). */
  setTlsMaterial(material: TlsMaterial): void;
  /** Stop accepting; carriers already handed over stay open. */
  close(): Promise<void>;
}

/**
 * Path counters of one carrier, cumulative since it opened (the AMST loop
 * turns them into per-interval samples): TCP_INFO for socket carriers, the
 * QUIC library's own statistics for QUIC.
 */
export interface PathStats {
  /** Smoothed RTT, microseconds. */
  rttUs: number;
  /** Lowest RTT seen, microseconds. */
  minRttUs: number;
  /** Bytes sent since the carrier opened, retransmissions included. */
  bytesSent: number;
  /** Bytes retransmitted since the carrier opened. */
  bytesRetrans: number;
  /** Current delivery rate estimate, bytes/s. */
  deliveryRateBytesPerS: number;
}

/** One kind of carrier: dial, listen, measure. */
export interface Transport {
  readonly kind: TransportKind;
  /** Connect, secure, and run the Hello; rejects with a HandshakeError naming the endpoint. */
  dial(request: DialRequest): Promise<Dialed>;
  /** Accept carriers: security handshake, then the Hello checked against the peer's certificate. */
  listen(options: ListenOptions): Promise<CarrierServer>;
  /** Path counters of a carrier this transport made, or null when unavailable (closing, no native bindings). */
  pathStats(carrier: Carrier): PathStats | null;
  /** Congestion controls this transport can apply (empty: none, the knob is ignored). */
  congestionControls(): string[];
  /** Apply a congestion control to one carrier; throws naming the algorithm when it cannot. */
  setCongestion(carrier: Carrier, name: string): void;
}

/** Transports an agent or a link can use, by kind (the ones configured). */
export type Transports = Partial<Record<TransportKind, Transport>>;
