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

/** What the socket transports (TLS, WebSocket) share: measurement and the congestion knob through a SocketControl. */
export class SocketMeasurement {
  protected readonly control: SocketControl;

  /** Measure and tune through control (the native layer, injected; default none). */
  constructor(control: SocketControl = NO_SOCKET_CONTROL) {
    this.control = control;
  }

  /** TCP_INFO of a socket carrier's TCP socket as path counters, or null (another kind, closing, no bindings). */
  pathStats(carrier: Carrier): PathStats | null {
    if (!(carrier instanceof SocketCarrier) || !carrier.tcpSocket || carrier.closed) return null;
    try {
      return this.control.pathStats(carrier.tcpSocket);
    } catch {
      return null; // closing or not yet connected
    }
  }

  /** Congestion controls the kernel offers. */
  congestionControls(): string[] {
    return this.control.congestionControls();
  }

  /** Set a socket carrier's congestion control; throws when it has no TCP socket or the kernel refuses. */
  setCongestion(carrier: Carrier, name: string): void {
    if (!(carrier instanceof SocketCarrier) || !carrier.tcpSocket) throw new Error(`set congestion control "${name}": carrier ${carrier.index} (${carrier.kind}) has no TCP socket`);
    this.control.setCongestion(carrier.tcpSocket, name);
  }
}
