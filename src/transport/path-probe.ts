// Goodput probe of one carrier kind on the path to a peer (issue 11 item
// 5): dial one extra carrier of that kind into the running session (the
// peer's usual checks: security handshake, Hello against the certificate),
// send a bounded run of Pings padded to PROBE_CHUNK_BYTES, and time the
// Pongs (the peer answers without the padding). Bounded by a byte budget
// and a time limit, whichever comes first; the carrier closes afterwards.
// The numbers go to choosePath (path-choice.ts).

import { randomBytes, randomInt } from 'node:crypto';
import type { Carrier } from './carrier.ts';
import { formatEndpoint } from './endpoint.ts';
import { frameEnvelope } from './envelope-framing.ts';
import type { KindMeasurement } from './path-choice.ts';
import type { DialRequest, Endpoint, Transport } from './transport.ts';
import type { Ping } from '../wire/messages.ts';

/** Padding per probe Ping, bytes (a data-frame-sized unit; far below any maxFrame). */
export const PROBE_CHUNK_BYTES = 64 * 1024;
/** Carrier slot index of probe carriers in the Hello: above any real slot (CARRIERS_MAX is 1024), so the peer keeps them apart. */
export const PROBE_CARRIER_INDEX = 0xffff_0000;
/** Unsent probe bytes queued on the carrier at most, bytes (the probe waits for the queue to drain below it). */
const PROBE_QUEUE_BYTES = 1024 * 1024;
/** Highest nonce base (nonces must stay exact as uint64 numbers: below 2^53 with room for the run). */
const NONCE_BASE_MAX = 2 ** 47;

/** One padding buffer for every probe (random, so no layer compresses it away). */
let padding: Buffer | null = null;

/** What a probe needs. */
export interface ProbeRequest {
  endpoint: Endpoint;
  /** The transport of the endpoint's kind (undefined: this agent has none, the probe fails saying so). */
  transport: Transport | undefined;
  /** The dial of the probe carrier, endpoint and slot index excepted (the session's link id, so the peer adds it to that session). */
  dial: Omit<DialRequest, 'endpoint' | 'index'>;
  /** Padding bytes to send at most. */
  budgetBytes: number;
  /** Time allowed for the whole probe after the dial, ms. */
  timeoutMs: number;
  /** Aborted when the link closes: the probe stops and closes its carrier. */
  signal?: AbortSignal;
  /** Register a listener for Pongs that come back on the session's other carriers (the peer answers on its least queued one); returns the unregister function. */
  listenPongs(onPong: (pong: Ping) => void): () => void;
}

/** Dial one carrier of the endpoint's kind and measure goodput on it; never throws (a failure is a measurement with goodput null). */
export async function probeKind(request: ProbeRequest): Promise<KindMeasurement> {
  const { endpoint, transport } = request;
  const kind = endpoint.kind;
  if (!transport) return { kind, goodputBytesPerS: null, rttUs: 0, error: `probe ${formatEndpoint(endpoint)}: no ${kind} transport in this agent` };
  let carrier: Carrier;
  try {
    ({ carrier } = await transport.dial({ ...request.dial, endpoint, index: PROBE_CARRIER_INDEX }));
  } catch (err) {
    return { kind, goodputBytesPerS: null, rttUs: 0, error: `probe ${formatEndpoint(endpoint)}: ${(err as Error).message}` };
  }
  try {
    if (request.signal?.aborted) throw new Error('link closed');
    const goodput = await measure(carrier, request);
    return { kind, goodputBytesPerS: goodput, rttUs: transport.pathStats(carrier)?.rttUs ?? 0, error: null };
  } catch (err) {
    return { kind, goodputBytesPerS: null, rttUs: 0, error: `probe ${formatEndpoint(endpoint)}: ${(err as Error).message}` };
  } finally {
    carrier.close('probe done');
  }
}

/** Send the padded Pings and time their Pongs: answered bytes over the time from the first send to the last Pong, bytes/s. */
async function measure(carrier: Carrier, request: ProbeRequest): Promise<number> {
  padding ??= randomBytes(PROBE_CHUNK_BYTES);
  const count = Math.max(1, Math.floor(request.budgetBytes / PROBE_CHUNK_BYTES));
  const base = randomInt(1, NONCE_BASE_MAX);
  let answered = 0;
  let lastPongAt = 0;
  let closedWith: string | null = null;
  let wake: (() => void) | null = null;
  const onPong = (pong: Ping): void => {
    if (pong.nonce < base || pong.nonce >= base + count) return;
    answered++;
    lastPongAt = performance.now();
    if (answered === count) wake?.();
  };
  const unlisten = request.listenPongs(onPong);
  carrier.attach({
    onMessage: (envelope) => {
      if (envelope.pong) onPong(envelope.pong);
    },
    onClose: (info) => {
      closedWith = info.reason;
      wake?.();
    },
  });
  const startedAt = performance.now();
  const deadline = startedAt + request.timeoutMs;
  const allAnswered = new Promise<void>((resolve) => { wake = resolve; });
  const onAbort = (): void => {
    closedWith = 'link closed';
    wake?.();
  };
  request.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // Send the run, never more than PROBE_QUEUE_BYTES queued, within the time limit.
    for (let i = 0; i < count && closedWith === null && performance.now() < deadline; i++) {
      carrier.write(frameEnvelope({ ping: { nonce: base + i, sentUnixMicros: Math.round(Date.now() * 1000), padding } }));
      if (carrier.queuedBytes > PROBE_QUEUE_BYTES) await Promise.race([carrier.drained(), allAnswered, sleep(deadline - performance.now())]);
    }
    // Wait for the answers until the time limit.
    if (answered < count && closedWith === null) await Promise.race([allAnswered, sleep(deadline - performance.now())]);
  } finally {
    unlisten();
    request.signal?.removeEventListener('abort', onAbort);
  }
  if (answered === 0) throw new Error(closedWith !== null ? `probe carrier closed: ${closedWith}` : `no answer within ${request.timeoutMs} ms`);
  return (answered * PROBE_CHUNK_BYTES) / Math.max((lastPongAt - startedAt) / 1000, 1e-3);
}

/** A timer promise that does not hold the process open. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)).unref());
}
