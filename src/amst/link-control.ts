// Wiring between the agent's config, an OutboundLink and the AMST loop: the
// native bindings (TCP_INFO, TCP_CONGESTION) are reached only from here and
// from native-bindings/index.ts, and handed to the socket transports as a
// SocketControl, so the link and the transports stay addon-free.

import type { Logger } from 'pino';
import { AmstLoop, AMST_INTERVAL_MS, type AmstTick } from './amst-loop.ts';
import { chooseCongestion, type ControllerConfig } from './controller.ts';
import type { Socket } from 'node:net';
import { availableCongestion, setCongestion, setNotSentLowat, tcpInfo } from '../../native-bindings/index.ts';
import type { AmstConfig } from '../config/config.ts';
import type { Metrics } from '../agent/metrics.ts';
import type { OutboundLink, OutboundLinkOptions } from '../transport/link.ts';
import type { SocketControl } from '../transport/socket-control.ts';

/** Link options that follow from the amst config: the first carrier count. */
export function amstLinkOptions(amst: AmstConfig): Pick<OutboundLinkOptions, 'carriers'> {
  return { carriers: startingCarriers(amst) };
}

/** The kernel's socket knobs and counters for the socket transports (TLS, WebSocket), through the native bindings. */
export const NATIVE_SOCKET_CONTROL: SocketControl = {
  tune: tuneCarrierSocket,
  pathStats: (socket) => {
    const info = tcpInfo(socket);
    return { rttUs: info.rttUs, minRttUs: info.minRttUs, bytesSent: info.bytesSent, bytesRetrans: info.bytesRetrans, deliveryRateBytesPerS: info.deliveryRateBps / 8 };
  },
  congestionControls: () => {
    try {
      return availableCongestion();
    } catch {
      return []; // native bindings missing: the kernel default stays
    }
  },
  setCongestion: (socket, name) => setCongestion(socket, name),
};

/**
 * Unsent bytes a carrier's kernel socket may hold, bytes. Without a bound
 * the kernel buffers megabytes per carrier (autotuned up to tcp_wmem), the
 * scheduler cannot steer frames away from a slow carrier, and with hundreds
 * of carriers one late frame blocks in-order delivery (measured in the lab:
 * 300 carriers on loopback stalled with the 192 MiB link window full).
 */
export const CARRIER_NOTSENT_LOWAT_BYTES = 256 * 1024;

/** Bound a carrier socket's unsent kernel queue (best effort: no addon, no bound). */
export function tuneCarrierSocket(socket: Socket): void {
  try {
    setNotSentLowat(socket, CARRIER_NOTSENT_LOWAT_BYTES);
  } catch {
    // native bindings missing or socket already closed: the link still works, less evenly.
  }
}

/** Carriers a link starts with: `carriers`, inside [minStreams, maxStreams] when adaptive. */
export function startingCarriers(amst: AmstConfig): number {
  return amst.adaptive ? Math.max(amst.minStreams, Math.min(amst.maxStreams, amst.carriers)) : amst.carriers;
}

/** The controller's config for an amst config, given the kernel's algorithms. */
export function controllerConfig(amst: AmstConfig, available: string[], intervalMs = AMST_INTERVAL_MS): ControllerConfig {
  return {
    minStreams: amst.minStreams,
    maxStreams: amst.maxStreams,
    bandwidthCapBytesPerS: amst.bandwidthCapBytesPerS,
    availableCongestion: available,
    congestionControl: amst.congestionControl,
    intervalMs,
  };
}

/**
 * Start the controller loop on a link (amst.adaptive), exporting its
 * decisions as metrics; null when adaptive is off or the native bindings are
 * missing (then the link keeps its fixed carrier count, and says so).
 */
export function startAmst(link: OutboundLink, amst: AmstConfig, metrics: Metrics, logger: Logger, onTick?: (tick: AmstTick) => void): AmstLoop | null {
  const peer = link.options.peerRegion;
  link.setRateLimit(amst.bandwidthCapBytesPerS);
  let available: string[];
  try {
    available = availableCongestion();
  } catch (err) {
    logger.warn({ peer, err: (err as Error).message }, 'amst controller off: native bindings unavailable');
    return null;
  }
  if (!amst.adaptive) {
    // Fixed carriers: still apply the configured congestion control.
    link.setCongestionControl(chooseCongestion(controllerConfig(amst, available)));
    return null;
  }
  const loop = new AmstLoop(link, {
    controller: controllerConfig(amst, available),
    initialCarriers: startingCarriers(amst),
    onTick: (tick) => {
      metrics.amstCarriersTarget.set({ peer }, tick.decision.carriers);
      metrics.amstDecisions.inc({ peer, reason: tick.decision.reason });
      metrics.amstGoodput.set({ peer }, tick.sample.goodputBytesPerS);
      metrics.amstRtt.set({ peer }, tick.meanRttMs / 1000);
      onTick?.(tick);
    },
  });
  loop.start();
  return loop;
}
