// WebSocket carriers (endpoints `wss://host:port/path`), for paths where only
// HTTP passes: L7 proxies and gateways. Two TLS layers:
// - the hop: HTTPS to whatever answers at the endpoint (the agent itself, or
//   a reverse proxy such as nginx that passes the WebSocket upgrade on);
// - inside the WebSocket's binary messages, mutual TLS end to end between
//   the two agents (secure-socket.ts), then the Hello (hello-handshake.ts).
// So identity is checked exactly as on a TLS carrier, and a proxy that
// terminates the hop's TLS sees the upgrade request and ciphertext only: it
// cannot read frames, and cannot pose as a region without that region's key
// (docs/transport.md).

import https from 'node:https';
import tls from 'node:tls';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, createWebSocketStream } from 'ws';
import { SocketCarrier } from './socket-carrier.ts';
import { NO_SOCKET_CONTROL, setSocketCongestion, socketPathStats, type SocketControl } from './socket-control.ts';
import { clientTlsOptions, secureAccept, secureConnected } from './secure-socket.ts';
import { acceptHello, dialHello, HandshakeError } from './hello-handshake.ts';
import { formatEndpoint } from './endpoint.ts';
import type { Carrier } from './carrier.ts';
import type { CarrierServer, DialRequest, ListenOptions, PathStats, Transport } from './transport.ts';
import type { HelloReply } from '../wire/messages.ts';

/**
 * Largest WebSocket message accepted, bytes. Messages carry inner TLS
 * output (records of at most 16 KiB, written a few at a time), never whole
 * frames; a bigger one is refused (close 1009) before it is buffered.
 */
export const WS_MAX_MESSAGE_BYTES = 1024 * 1024;

/** The WebSocket transport. */
export class WsTransport implements Transport {
  readonly kind = 'ws' as const;
  private readonly control: SocketControl;

  /** A WebSocket transport tuning and measuring its TCP sockets through control (the native layer, injected). */
  constructor(control: SocketControl = NO_SOCKET_CONTROL) {
    this.control = control;
  }

  async dial(request: DialRequest): Promise<{ carrier: SocketCarrier; reply: HelloReply }> {
    const { endpoint } = request;
    const what = `dial ${formatEndpoint(endpoint)}`;
    const deadline = Date.now() + request.timeoutMs;

    // The hop: HTTPS + upgrade to whatever answers at the endpoint.
    let hop: tls.TLSSocket | null = null;
    const ws = new WebSocket(formatEndpoint(endpoint), {
      maxPayload: WS_MAX_MESSAGE_BYTES,
      perMessageDeflate: false,
      handshakeTimeout: request.timeoutMs,
      createConnection: ((options: tls.ConnectionOptions) => {
        hop = tls.connect({ ...options, ...hopTlsOptions(request.tls.ca) });
        hop.setNoDelay(true);
        hop.once('secureConnect', () => this.control.tune(hop as unknown as Socket));
        return hop;
      }) as unknown as typeof import('node:net').createConnection,
    });
    await opened(ws, what);

    // Inside: mutual TLS between the agents, then the Hello.
    const stream = createWebSocketStream(ws);
    const secure = { tls: request.tls, federation: request.identity.federation, peerRegion: request.peerRegion, timeoutMs: Math.max(1, deadline - Date.now()), what };
    const inner = tls.connect({ socket: stream, ...clientTlsOptions(secure) });
    await secureConnected(inner, secure);
    const carrier = new SocketCarrier('ws', inner, request.index, request.maxFrameBytes, hop ?? undefined);
    failOnWebSocketError(ws, carrier);
    const reply = await dialHello(carrier, { identity: request.identity, linkId: request.linkId, index: request.index, timeoutMs: Math.max(1, deadline - Date.now()) }, what);
    return { carrier, reply };
  }

  async listen(options: ListenOptions): Promise<CarrierServer> {
    const path = options.path ?? '/';
    let context = tls.createSecureContext({ ca: options.tls.ca, cert: options.tls.cert, key: options.tls.key });
    // The hop's HTTPS: this agent's certificate; the peer is authenticated inside (a proxy has no agent certificate).
    const server = https.createServer({ cert: options.tls.cert, key: options.tls.key, handshakeTimeout: options.handshakeTimeoutMs });
    server.headersTimeout = options.handshakeTimeoutMs;
    server.requestTimeout = options.handshakeTimeoutMs;
    const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_MESSAGE_BYTES, perMessageDeflate: false });
    server.on('tlsClientError', (err, socket) => options.onRefused(`tls: ${err.message}`, `${socket.remoteAddress}:${socket.remotePort}`));
    server.on('request', (req, res) => {
      options.onRefused(`http: ${req.method} ${req.url} without a WebSocket upgrade`, `${req.socket.remoteAddress}:${req.socket.remotePort}`);
      res.writeHead(426, { connection: 'close', 'content-type': 'text/plain' }).end('websocket upgrade required\n');
    });
    server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
      const hop = socket as tls.TLSSocket;
      const remote = `${hop.remoteAddress}:${hop.remotePort}`;
      if (req.url !== path) {
        options.onRefused(`websocket: path ${JSON.stringify(req.url)} is not ${JSON.stringify(path)}`, remote);
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      hop.setNoDelay(true);
      this.control.tune(hop as unknown as Socket);
      wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, hop, remote, context, options));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => options.onRefused(`server: ${err.message}`, ''));
    return {
      kind: 'ws',
      port: (server.address() as { port: number }).port,
      setTlsMaterial: (material) => {
        server.setSecureContext({ cert: material.cert, key: material.key });
        context = tls.createSecureContext({ ca: material.ca, cert: material.cert, key: material.key });
      },
      close: () => new Promise<void>((resolve) => {
        wss.close();
        server.close(() => resolve());
      }),
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

  // One upgraded connection: mutual TLS inside the WebSocket, then the Hello; the first failure is the logged reason.
  private accept(ws: WebSocket, hop: tls.TLSSocket, remote: string, context: tls.SecureContext, options: ListenOptions): void {
    let refused = false;
    const refuse = (reason: string): void => {
      if (refused) return;
      refused = true;
      options.onRefused(reason, remote);
      ws.terminate();
    };
    ws.on('error', (err) => refuse(`websocket: ${err.message}`));
    secureAccept(createWebSocketStream(ws), context, options.handshakeTimeoutMs).then(
      ({ socket, certified }) => {
        if (refused) return socket.destroy();
        refused = true; // from here the Hello reports
        const carrier = new SocketCarrier('ws', socket, -1, options.maxFrameBytes, hop);
        failOnWebSocketError(ws, carrier);
        acceptHello(carrier, certified, remote, options);
      },
      (err: Error) => refuse(err.message),
    );
  }
}

/**
 * TLS options of the hop to the endpoint: the server's chain must lead to
 * the federation CA or a public root (a proxy may hold either). Its host
 * name is not checked: agents dial IPs, and who is at the other end is
 * proven by the inner mutual TLS, not by the hop.
 */
function hopTlsOptions(federationCa: Buffer): tls.ConnectionOptions {
  return { ca: [...tls.rootCertificates, federationCa.toString()], checkServerIdentity: () => undefined };
}

/** Resolve when the WebSocket is open; reject naming the dial on any failure first. */
function opened(ws: WebSocket, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      ws.terminate();
      reject(new HandshakeError(`${what}: websocket: ${err.message}`, { cause: err }));
    };
    ws.once('error', fail);
    ws.once('open', () => {
      ws.off('error', fail);
      resolve();
    });
  });
}

/** A WebSocket protocol error (oversized message, bad frame) closes the carrier as the peer's fault. */
function failOnWebSocketError(ws: WebSocket, carrier: SocketCarrier): void {
  ws.on('error', (err) => carrier.fail(`websocket: ${err.message}`));
}
