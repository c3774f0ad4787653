// What the socket transports (TCP+TLS, WebSocket) need from the native
// layer: TCP_INFO, TCP_CONGESTION and buffer tuning of a carrier's TCP
// socket. It is injected (amst/link-control.ts builds it from
// native-bindings), so the transport layer itself stays addon-free.

import type { Socket } from 'node:net';
import type { Carrier } from './carrier.ts';
import type { PathStats } from './transport.ts';
import { SocketCarrier } from './socket-carrier.ts';

/** Socket-level knobs and counters of the kernel. */
export interface SocketControl {
  /** Called with each carrier's TCP socket before data flows (buffers, unsent bound); best effort. */
  tune(socket: Socket): void;
  /** The socket's TCP_INFO as path counters; throws when unavailable. */
  pathStats(socket: Socket): PathStats;
  /** Congestion controls the kernel offers (empty when unknown). */
  congestionControls(): string[];
  /** Set TCP_CONGESTION; throws naming an algorithm the kernel refuses. */
  setCongestion(socket: Socket, name: string): void;
}

/** No native layer: sockets untuned, unmeasured, congestion control the kernel default. */
export const NO_SOCKET_CONTROL: SocketControl = {
  tune: () => {},
  pathStats: () => {
    throw new Error('tcp info: no native bindings');
  },
  congestionControls: () => [],
  setCongestion: (_socket, name) => {
    throw new Error(`set congestion control "${name}": no native bindings`);
  },
};

/** Path counters of a socket carrier's TCP socket, or null (another kind, closing, no bindings). */
export function socketPathStats(control: SocketControl, carrier: Carrier): PathStats | null {
  if (!(carrier instanceof SocketCarrier) || !carrier.tcpSocket || carrier.closed) return null;
  try {
    return control.pathStats(carrier.tcpSocket);
  } catch {
    return null; // closing or not yet connected
  }
}

/** Set a socket carrier's congestion control; throws when it is not a socket carrier or the kernel refuses. */
export function setSocketCongestion(control: SocketControl, carrier: Carrier, name: string): void {
  if (!(carrier instanceof SocketCarrier) || !carrier.tcpSocket) throw new Error(`set congestion control "${name}": carrier ${carrier.index} (${carrier.kind}) has no TCP socket`);
  control.setCongestion(carrier.tcpSocket, name);
}
