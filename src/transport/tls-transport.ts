// TCP+TLS carriers (endpoints `tls://host:port` or plain `host:port`): mutual
// TLS on a TCP socket (secure-socket.ts), then the Hello (hello-handshake.ts).

import tls from 'node:tls';
import type { Socket } from 'node:net';
import { SocketCarrier } from './socket-carrier.ts';
import { NO_SOCKET_CONTROL, setSocketCongestion, socketPathStats, type SocketControl } from './socket-control.ts';
import { clientTlsOptions, secureConnected, serverTlsOptions } from './secure-socket.ts';
import { acceptHello, dialHello, HANDSHAKE_TIMEOUT_MS } from './hello-handshake.ts';
import { peerCertificateIdentity } from './peer-identity.ts';
import type { Carrier } from './carrier.ts';
import type { CarrierServer, DialRequest, Identity, ListenOptions, PathStats, TlsMaterial, Transport } from './transport.ts';
import type { HelloReply } from '../wire/messages.ts';

export { HandshakeError, HANDSHAKE_TIMEOUT_MS } from './hello-handshake.ts';
export type { Identity, TlsMaterial };

/** The TCP+TLS transport. */
export class TlsTransport implements Transport {
  readonly kind = 'tls' as const;
  private readonly control: SocketControl;

  /** A TLS transport tuning and measuring its sockets through control (the native layer, injected). */
  constructor(control: SocketControl = NO_SOCKET_CONTROL) {
    this.control = control;
  }

  async dial(request: DialRequest): Promise<{ carrier: SocketCarrier; reply: HelloReply }> {
    const { endpoint } = request;
    const what = `dial tls://${endpoint.host}:${endpoint.port}`;
    const secure = { tls: request.tls, federation: request.identity.federation, peerRegion: request.peerRegion, timeoutMs: request.timeoutMs, what };
    const socket = tls.connect({ host: endpoint.host, port: endpoint.port, ...clientTlsOptions(secure) });
    socket.setNoDelay(true);
    socket.once('connect', () => this.control.tune(socket));
    await secureConnected(socket, secure);
    const carrier = new SocketCarrier('tls', socket, request.index, request.maxFrameBytes, socket);
    const reply = await dialHello(carrier, { identity: request.identity, linkId: request.linkId, index: request.index, timeoutMs: request.timeoutMs }, what);
    return { carrier, reply };
  }

  async listen(options: ListenOptions): Promise<CarrierServer> {
    const server = tls.createServer({ ...serverTlsOptions(options.tls), handshakeTimeout: options.handshakeTimeoutMs });
    server.on('tlsClientError', (err, socket) => {
      options.onRefused(`tls: ${err.message}`, `${socket.remoteAddress}:${socket.remotePort}`);
    });
    server.on('secureConnection', (socket) => {
      const remote = `${socket.remoteAddress}:${socket.remotePort}`;
      socket.setNoDelay(true);
      this.control.tune(socket);
      const carrier = new SocketCarrier('tls', socket, -1, options.maxFrameBytes, socket);
      // Who the peer is comes from its certificate, read once the TLS handshake is done.
      acceptHello(carrier, peerCertificateIdentity(socket.getPeerCertificate()), remote, options);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => options.onRefused(`server: ${err.message}`, ''));
    const port = (server.address() as { port: number }).port;
    return {
      kind: 'tls',
      port,
      setTlsMaterial: (material) => server.setSecureContext({ ca: material.ca, cert: material.cert, key: material.key }),
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  pathStats(carrier: Carrier): PathStats | null {
    return socketPathStats(this.control, carrier);
  }

  congestionControls(): string[] {
    return this.control.congestionControls();
  }

  setCongestion(carrier: Carrier, name: string): void {
    setSocketCongestion(this.control, carrier, name);
  }
}

/** Options to dial one TLS carrier (tests and tools that speak to an agent directly). */
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
  /** Called with the TCP socket before any data flows. */
  tuneSocket?: (socket: Socket) => void;
}

/** Dial, TLS-handshake and Hello-handshake one TLS carrier. */
export function dialCarrier(options: DialOptions): Promise<{ carrier: SocketCarrier; reply: HelloReply }> {
  const control: SocketControl = { ...NO_SOCKET_CONTROL, tune: options.tuneSocket ?? (() => {}) };
  return new TlsTransport(control).dial({
    endpoint: { kind: 'tls', host: options.host, port: options.port },
    tls: options.tls,
    identity: options.identity,
    peerRegion: options.peerRegion,
    linkId: options.linkId,
    index: options.index,
    maxFrameBytes: options.maxFrameBytes,
    timeoutMs: options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS,
  });
}
