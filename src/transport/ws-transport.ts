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
import { WebSocket, WebSocketServer } from 'ws';
import { endWebSocket, webSocketDuplex } from './websocket-duplex.ts';
import { SocketCarrier } from './socket-carrier.ts';
import { SocketMeasurement } from './socket-control.ts';
import { bindServer, clientTlsOptions, secureConnected, serverTlsOptions } from './secure-socket.ts';
import { peerCertificateIdentity } from './peer-identity.ts';
import { acceptHello, dialHello, HandshakeError } from './hello-handshake.ts';
import { formatEndpoint } from './endpoint.ts';
import type { CarrierServer, DialRequest, ListenOptions, TlsMaterial, Transport } from './transport.ts';
import type { HelloReply } from '../wire/messages.ts';

/**
 * Largest WebSocket message accepted, bytes. Messages carry pieces of the
 * inner TLS stream (this side sends at most WS_SEND_MESSAGE_BYTES), never
 * whole frames; a bigger one is refused (close 1009) before it is buffered.
 */
export const WS_MAX_MESSAGE_BYTES = 1024 * 1024;

/**
 * The dialer pings each WebSocket this often, ms, so a proxy's idle timeout
 * (nginx proxy_read_timeout, 60 s by default) does not cut a quiet carrier.
 */
export const WS_KEEPALIVE_MS = 30_000;

/** TLS inside the WebSocket is 1.3 at least: its certificates travel encrypted, so a proxy cannot read who talks. */
const INNER_TLS_MIN_VERSION = 'TLSv1.3';

/** The WebSocket transport (its hop's TCP sockets tuned and measured through the SocketControl it is given). */
export class WsTransport extends SocketMeasurement implements Transport {
  readonly kind = 'ws' as const;

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
    const stream = webSocketDuplex(ws);
    stream.on('error', () => {}); // the TLS socket over it reports, and the carrier closes with the WebSocket
    const secure = { tls: request.tls, federation: request.identity.federation, peerRegion: request.peerRegion, timeoutMs: Math.max(1, deadline - Date.now()), what };
    const inner = tls.connect({ socket: stream, ...clientTlsOptions(secure), minVersion: INNER_TLS_MIN_VERSION });
    ws.once('close', (code) => inner.destroy(new Error(`websocket closed (${code})`)));
    await secureConnected(inner, secure);
    const carrier = new SocketCarrier('ws', inner, request.index, request.maxFrameBytes, hop ?? undefined);
    closeWithWebSocket(ws, inner, carrier);
    keepAlive(ws);
    const reply = await dialHello(carrier, { identity: request.identity, linkId: request.linkId, index: request.index, timeoutMs: Math.max(1, deadline - Date.now()) }, what);
    return { carrier, reply };
  }

  async listen(options: ListenOptions): Promise<CarrierServer> {
    const path = options.path ?? '/';
    let material = options.tls;
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
      wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, hop, remote, material, options));
    });
    const port = await bindServer(server, options);
    return {
      kind: 'ws',
      port,
      setTlsMaterial: (next) => {
        server.setSecureContext({ cert: next.cert, key: next.key });
        material = next;
      },
      close: () => new Promise<void>((resolve) => {
        wss.close();
        server.close(() => resolve());
      }),
    };
  }

  // One upgraded connection: mutual TLS inside the WebSocket, then the Hello; the first failure is the logged reason.
  private accept(ws: WebSocket, hop: tls.TLSSocket, remote: string, material: TlsMaterial, options: ListenOptions): void {
    let refused = false;
    const refuse = (reason: string): void => {
      if (refused) return;
      refused = true;
      options.onRefused(reason, remote);
    };
    // ws closes the connection itself on its protocol errors (1009 for an oversized message, 1002 ...).
    ws.on('error', (err) => refuse(`websocket: ${err.message}`));
    // The inner TLS server takes the WebSocket's byte stream as its one connection: Node's
    // own server-side verification (client certificate required, chain checked against the CA).
    // It lets an unverified client finish the handshake only so the refusal can name why (authorizationError).
    const inner = tls.createServer({ ...serverTlsOptions(material), rejectUnauthorized: false, minVersion: INNER_TLS_MIN_VERSION, handshakeTimeout: options.handshakeTimeoutMs });
    inner.on('tlsClientError', (err) => {
      refuse(`tls: ${err.message}`);
      endWebSocket(ws);
    });
    inner.on('secureConnection', (socket: tls.TLSSocket) => {
      if (refused) return socket.destroy();
      if (!socket.authorized) {
        refuse(`tls: client certificate refused: ${String(socket.authorizationError)}`);
        socket.destroy();
        endWebSocket(ws);
        return;
      }
      refused = true; // from here the Hello reports
      const carrier = new SocketCarrier('ws', socket, -1, options.maxFrameBytes, hop);
      closeWithWebSocket(ws, socket, carrier);
      acceptHello(carrier, peerCertificateIdentity(socket.getPeerCertificate()), remote, options);
    });
    const stream = webSocketDuplex(ws);
    stream.on('error', () => {}); // reported through ws or the TLS server
    ws.on('close', () => {
      if (!refused) refuse('websocket closed during the TLS handshake');
    });
    inner.emit('connection', stream);
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

/** Ping the WebSocket every WS_KEEPALIVE_MS until it closes. */
function keepAlive(ws: WebSocket): void {
  const timer = setInterval(() => ws.ping(), WS_KEEPALIVE_MS);
  timer.unref();
  ws.once('close', () => clearInterval(timer));
}

/**
 * The carrier lives as long as its WebSocket: a WebSocket protocol error
 * (oversized message, bad frame) closes it as the peer's fault, a close of
 * the WebSocket (the proxy cut it) closes it too; the TLS socket over the
 * WebSocket's stream would not notice on its own.
 */
function closeWithWebSocket(ws: WebSocket, socket: tls.TLSSocket, carrier: SocketCarrier): void {
  ws.on('error', (err) => carrier.fail(`websocket: ${err.message}`));
  ws.on('close', (code) => {
    carrier.close(`websocket closed (${code})`);
    socket.destroy();
  });
}
