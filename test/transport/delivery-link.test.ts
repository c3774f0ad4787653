// Delivery acknowledgements on a real link (TLS carriers on loopback, a TCP
// relay in the path), with a receiver that reports delivery of every frame
// it holds and never makes anything durable:
// - one carrier slowed to a crawl does not hold the link window: every
//   frame is delivered (its stuck frames hedged onto the fast carriers),
//   and the slow copies arrive later as duplicates, counted;
// - a stalled apply (nothing durable) still stops the sender, at the hold
//   the receiver announced, and a durable Ack lets it go on.
// On the base commit neither completes: without delivery reports only a
// durable Ack frees the window.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { OutboundLink } from '../../src/transport/link.ts';
import { InboundLink } from '../../src/transport/inbound-link.ts';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import { TlsTransport } from '../../src/transport/tls-transport.ts';
import { deliveryCapability } from '../../src/transport/delivery-acks.ts';
import type { CarrierServer, Identity } from '../../src/transport/transport.ts';
import { Metrics } from '../../src/agent/metrics.ts';
import { Encoding, type DataFrame } from '../../src/wire/messages.ts';
import { startTcpRelay, type Relay } from '../helpers/relay.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { TEST_HANDSHAKE_MS, TEST_MAX_FRAME_BYTES, TEST_TIMEOUT_MS, FEDERATION, makePki, removePki, type QuicPki } from '../helpers/quic-fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const FRAME_BYTES = 64 * KiB;
const STREAM_ID = 's';
/** The slow carrier's rate: a few frames a second, where the others move hundreds. */
const SLOW_BYTES_PER_S = 128 * KiB;

let pki: QuicPki;

before(async () => {
  pki = await makePki();
});

after(async () => {
  await removePki(pki);
});

function who(region: string, node: string, holdBytes: number): Identity {
  return { federation: FEDERATION, region, nodeId: node, capabilities: [deliveryCapability(holdBytes)] };
}

/** A receiver that reports delivery of every data frame and never acknowledges durability (unless the test does). */
interface Receiver {
  server: CarrierServer;
  /** Copies received per seq. */
  received: Map<number, number>;
  inbound(): InboundLink | null;
}

async function startReceiver(transport: TlsTransport, holdBytes: number | null, metrics: Metrics): Promise<Receiver> {
  const received = new Map<number, number>();
  let inbound: InboundLink | null = null;
  const onData = (link: InboundLink, frame: DataFrame): void => {
    const copies = (received.get(frame.seq) ?? 0) + 1;
    received.set(frame.seq, copies);
    if (copies > 1) metrics.framesDuplicate.inc({ stream: frame.streamId });
    link.delivered(frame.streamId, frame.seq);
  };
  const server = await transport.listen({
    host: '127.0.0.1', port: 0, tls: pki.material.server, identity: holdBytes === null ? { ...who('region-a', 'node-a', 0), capabilities: [] } : who('region-a', 'node-a', holdBytes),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, handshakeTimeoutMs: TEST_HANDSHAKE_MS, admit: () => null,
    onCarrier(carrier, hello, peer) {
      // A receiver of an older build (holdBytes null) ignores the source's announcement and reports nothing.
      if (!inbound || inbound.linkId !== hello.linkId) inbound = new InboundLink(peer, hello.linkId, { onMessage: (l, env) => env.data && onData(l, env.data), onClosed: () => {} }, metrics, holdBytes === null ? [] : hello.capabilities);
      inbound.add(carrier, hello.carrierIndex);
    },
    onRefused: (reason) => assert.fail(`refused: ${reason}`),
  });
  return { server, received, inbound: () => inbound };
}

function dataFrame(seq: number, payload: Buffer): Buffer {
  return frameEnvelope({ data: { streamId: STREAM_ID, seq, epoch: 1, encoding: Encoding.RAW, digest: Buffer.alloc(32), meta: Buffer.alloc(0), payload, rawLength: payload.length, resync: false } });
}

function startLink(port: number, carriers: number, linkWindowBytes: number, holdBytes: number, metrics: Metrics): OutboundLink {
  return new OutboundLink({
    peerRegion: 'region-a', endpoints: [{ kind: 'tls', host: '127.0.0.1', port }], transports: { tls: new TlsTransport() },
    carriers, tls: () => pki.material.client, identity: who('region-b', 'node-b', holdBytes),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, carrierWindowBytes: 512 * KiB, linkWindowBytes,
    connectTimeoutMs: TEST_HANDSHAKE_MS, initialBackoffMs: 100, maxBackoffMs: 1_000, logger: pino({ level: 'silent' }), metrics,
  });
}

/** Send frames 1, 2, ... in the background until stopped (or 1000 are sent); `sent` is the last one queued. */
function keepSending(link: OutboundLink, session: number, payload: Buffer): { readonly sent: number; stop(): Promise<void> } {
  let sent = 0;
  let stopped = false;
  const done = (async () => {
    for (let seq = 1; seq <= 1000 && !stopped; seq++) {
      await link.sendData(session, STREAM_ID, seq, dataFrame(seq, payload));
      sent = seq;
    }
  })().catch(() => {});
  return {
    get sent() {
      return sent;
    },
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

test('one slow carrier does not hold the link window: every frame delivered, stuck ones hedged, late copies dropped as duplicates', { timeout: TEST_TIMEOUT_MS }, async () => {
  const FRAMES = 400;
  const LINK_WINDOW = 4 * MiB;
  const metrics = new Metrics({ processMetrics: false });
  const receiver = await startReceiver(new TlsTransport(), 64 * MiB, metrics);
  const relay: Relay = await startTcpRelay(receiver.server.port);
  const link = startLink(relay.port, 4, LINK_WINDOW, 64 * MiB, metrics);
  const payload = randomBytes(FRAME_BYTES);
  const session = await new Promise<number>((resolve) => link.start({ onUp: resolve, onDown: () => {}, onMessage: () => {} }));
  try {
    await waitFor('four carriers', async () => relay.connections() === 4, 10_000, 20);
    assert.ok(relay.throttleOne(SLOW_BYTES_PER_S), 'a carrier connection to slow down');
    // 25 MiB through a 4 MiB window that no durable Ack ever frees: only delivery can.
    for (let seq = 1; seq <= FRAMES; seq++) await link.sendData(session, STREAM_ID, seq, dataFrame(seq, payload));
    await waitFor('every frame delivered', async () => link.bytesInFlight === 0, TEST_TIMEOUT_MS / 4, 50);
    for (let seq = 1; seq <= FRAMES; seq++) assert.ok((receiver.received.get(seq) ?? 0) >= 1, `frame ${seq} arrived`);
    const hedged = (await metrics.registry.getSingleMetric('dwcp_frames_resent_total')!.get()).values.filter((v) => v.labels.reason === 'hedge').reduce((a, v) => a + v.value, 0);
    assert.ok(hedged > 0, 'frames stuck on the slow carrier were hedged');
    const delivered = (await metrics.registry.getSingleMetric('dwcp_link_delivered_frames_total')!.get()).values[0]?.value ?? 0;
    assert.equal(delivered, FRAMES, 'each frame counted delivered once');
    // Lift the throttle: the slow copies arrive and are duplicates.
    relay.throttleOne(null);
    await waitFor('late copies arrive', async () => [...receiver.received.values()].some((n) => n > 1), TEST_TIMEOUT_MS / 4, 50);
    const duplicates = (await metrics.registry.getSingleMetric('dwcp_frames_duplicate_total')!.get()).values[0]?.value ?? 0;
    assert.ok(duplicates > 0 && duplicates <= hedged, `duplicates ${duplicates}, hedged ${hedged}`);
    let framedBytes = 0;
    for (let seq = 1; seq <= FRAMES; seq++) framedBytes += dataFrame(seq, payload).length;
    assert.equal(link.bytesDeliveredNotDurable, framedBytes, 'all delivered, none durable');
  } finally {
    link.close();
    receiver.inbound()?.close('done');
    await relay.close();
    await receiver.server.close();
  }
});

test('a stalled apply (nothing durable) stops the sender at the announced hold; a durable Ack lets it go on', { timeout: TEST_TIMEOUT_MS }, async () => {
  const LINK_WINDOW = 1 * MiB;
  const HOLD = 4 * MiB;
  const metrics = new Metrics({ processMetrics: false });
  const receiver = await startReceiver(new TlsTransport(), HOLD, metrics);
  const link = startLink(receiver.server.port, 2, LINK_WINDOW, HOLD, metrics);
  const payload = randomBytes(FRAME_BYTES);
  const framed = dataFrame(1, payload).length;
  const session = await new Promise<number>((resolve) => link.start({ onUp: resolve, onDown: () => {}, onMessage: () => {} }));
  const sender = keepSending(link, session, payload);
  try {
    // Delivery frees the 1 MiB window; the 4 MiB hold is what stops the sender.
    const fit = Math.floor(HOLD / framed);
    await waitFor(`${fit} frames sent`, async () => sender.sent >= fit, TEST_TIMEOUT_MS / 4, 20);
    await waitFor('all delivered', async () => link.bytesInFlight === 0, TEST_TIMEOUT_MS / 4, 20);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sender.sent, fit, `the sender stopped at the hold (${sender.sent} frames of ${framed} bytes)`);
    assert.ok(sender.sent * framed > LINK_WINDOW, 'delivery let more than the link window in');
    assert.ok(link.bytesDeliveredNotDurable <= HOLD, `delivered-not-durable ${link.bytesDeliveredNotDurable}`);
    const gauge = (await metrics.registry.getSingleMetric('dwcp_link_delivered_not_durable_bytes')!.get()).values[0]?.value ?? 0;
    assert.equal(gauge, link.bytesDeliveredNotDurable);
    // The destination makes the first half durable: the sender goes on.
    link.acknowledge(STREAM_ID, Math.floor(fit / 2));
    await waitFor('the sender goes on', async () => sender.sent > fit, TEST_TIMEOUT_MS / 4, 20);
    assert.ok(link.bytesDeliveredNotDurable + link.bytesInFlight <= HOLD);
  } finally {
    link.close();
    await sender.stop();
    receiver.inbound()?.close('done');
    await receiver.server.close();
  }
});

test('a peer without amst:delivered@1 works as before: no reports, only durable Acks free the window', { timeout: TEST_TIMEOUT_MS }, async () => {
  const LINK_WINDOW = 1 * MiB;
  const metrics = new Metrics({ processMetrics: false });
  const receiver = await startReceiver(new TlsTransport(), null, metrics);
  const link = startLink(receiver.server.port, 2, LINK_WINDOW, 4 * MiB, metrics);
  const payload = randomBytes(FRAME_BYTES);
  const framed = dataFrame(1, payload).length;
  const session = await new Promise<number>((resolve) => link.start({ onUp: resolve, onDown: () => {}, onMessage: () => {} }));
  const sender = keepSending(link, session, payload);
  try {
    const fit = Math.floor(LINK_WINDOW / framed);
    await waitFor(`${fit} frames received`, async () => receiver.received.size >= fit, TEST_TIMEOUT_MS / 4, 20);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(sender.sent, fit, 'the link window alone bounds the sender');
    assert.equal(receiver.inbound()!.reportsDelivery, false);
    assert.equal(link.bytesDeliveredNotDurable, 0);
    assert.equal((await metrics.registry.getSingleMetric('dwcp_link_delivered_frames_total')!.get()).values[0]?.value ?? 0, 0);
    link.acknowledge(STREAM_ID, fit);
    await waitFor('the sender goes on after a durable Ack', async () => sender.sent > fit, TEST_TIMEOUT_MS / 4, 20);
  } finally {
    link.close();
    await sender.stop();
    receiver.inbound()?.close('done');
    await receiver.server.close();
  }
});
