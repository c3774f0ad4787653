// A frame waiting for room on a full carrier takes a carrier that joins
// meanwhile (TLS carriers on loopback, a TCP relay slowing the first one to
// a crawl). Lab (satellite, cubic only): the controller went 1 -> 8
// carriers, but the frame waiting on the first carrier's 1 MiB queue
// (~50 s to drain at ~20 KB/s) ignored the seven new ones: 1 MiB in flight
// on 8 carriers for 20 s. On the base commit this test times out waiting.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { OutboundLink } from '../../src/transport/link.ts';
import { InboundLink } from '../../src/transport/inbound-link.ts';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import { TlsTransport } from '../../src/transport/tls-transport.ts';
import { deliveryCapability } from '../../src/transport/delivery-acks.ts';
import type { Identity } from '../../src/transport/transport.ts';
import { Metrics } from '../../src/agent/metrics.ts';
import { Encoding } from '../../src/wire/messages.ts';
import { startTcpRelay } from '../helpers/relay.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { TEST_HANDSHAKE_MS, TEST_MAX_FRAME_BYTES, TEST_TIMEOUT_MS, FEDERATION, makePki, removePki, type QuicPki } from '../helpers/quic-fixture.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const FRAME_BYTES = 64 * KiB;
const STREAM_ID = 's';
/** The first carrier's rate through the relay: its queue cannot drain within the test. */
const CRAWL_BYTES_PER_S = 8 * KiB;
/** Frames that must move after the second carrier joined (4 MiB). */
const FRAMES_AFTER_JOIN = 64;

let pki: QuicPki;

before(async () => {
  pki = await makePki();
});

after(async () => {
  await removePki(pki);
});

function who(region: string, node: string): Identity {
  return { federation: FEDERATION, region, nodeId: node, capabilities: [deliveryCapability(256 * MiB)] };
}

function dataFrame(seq: number, payload: Buffer): Buffer {
  return frameEnvelope({ data: { streamId: STREAM_ID, seq, epoch: 1, encoding: Encoding.RAW, digest: Buffer.alloc(32), meta: Buffer.alloc(0), payload, rawLength: payload.length, resync: false } });
}

test('a frame waiting on a full carrier goes to a carrier that joined meanwhile', { timeout: TEST_TIMEOUT_MS }, async () => {
  const metrics = new Metrics({ processMetrics: false });
  // Receiver: reports every frame delivered (so only carrier queues bound the sender).
  const transport = new TlsTransport();
  let inbound: InboundLink | null = null;
  const server = await transport.listen({
    host: '127.0.0.1', port: 0, tls: pki.material.server, identity: who('region-a', 'node-a'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, handshakeTimeoutMs: TEST_HANDSHAKE_MS, admit: () => null,
    onCarrier(carrier, hello, peer) {
      if (!inbound || inbound.linkId !== hello.linkId) {
        inbound = new InboundLink(peer, hello.linkId, { onMessage: (l, env) => env.data && l.delivered(env.data.streamId, env.data.seq), onClosed: () => {} }, metrics, hello.capabilities);
      }
      inbound.add(carrier, hello.carrierIndex);
    },
    onRefused: (reason) => assert.fail(`refused: ${reason}`),
  });
  const relay = await startTcpRelay(server.port);
  const link = new OutboundLink({
    peerRegion: 'region-a', endpoints: [{ kind: 'tls', host: '127.0.0.1', port: relay.port }], transports: { tls: new TlsTransport() },
    carriers: 1, tls: () => pki.material.client, identity: who('region-b', 'node-b'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, carrierWindowBytes: 512 * KiB, linkWindowBytes: 64 * MiB,
    connectTimeoutMs: TEST_HANDSHAKE_MS, initialBackoffMs: 100, maxBackoffMs: 1_000, logger: pino({ level: 'silent' }), metrics,
  });
  const session = await new Promise<number>((resolve) => link.start({ onUp: resolve, onDown: () => {}, onMessage: () => {} }));
  const payload = randomBytes(FRAME_BYTES);
  let sent = 0;
  let stopped = false;
  const sending = (async () => {
    for (let seq = 1; seq <= 2000 && !stopped; seq++) {
      await link.sendData(session, STREAM_ID, seq, dataFrame(seq, payload));
      sent = seq;
    }
  })().catch(() => {});
  try {
    // The only carrier crawls: the sender fills its queue and the kernel's, then waits.
    await waitFor('one carrier', async () => relay.connections() === 1, 10_000, 20);
    assert.ok(relay.throttleOne(CRAWL_BYTES_PER_S), 'a carrier connection to slow down');
    let last = -1;
    await waitFor('the sender blocked on the crawling carrier', async () => {
      const blocked = sent === last && sent > 0;
      last = sent;
      return blocked;
    }, TEST_TIMEOUT_MS / 4, 500);
    const blockedAt = sent;
    // A second carrier joins: the waiting frame, and the ones after it, go there.
    link.setCarrierCount(2);
    await waitFor('second carrier', async () => relay.connections() === 2, 10_000, 20);
    await waitFor(`${FRAMES_AFTER_JOIN} frames sent after the join`, async () => sent >= blockedAt + FRAMES_AFTER_JOIN, TEST_TIMEOUT_MS / 4, 50);
  } finally {
    stopped = true;
    link.close();
    await sending;
    await relay.close();
    await server.close();
  }
});
