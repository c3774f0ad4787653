// The QUIC transport behind the transport seam: an OutboundLink given only
// `{ quic: new QuicTransport() }` and a `quic://` endpoint dials its
// carriers, moves frames to an InboundLink behind a QUIC listener, reads
// path stats through the transport, and when one carrier is cut mid-transfer
// resends that carrier's frames on the others and redials the slot: every
// frame arrives and is acknowledged, applied in order, digests intact.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import pino from 'pino';
import { OutboundLink } from '../../src/transport/link.ts';
import { InboundLink } from '../../src/transport/inbound-link.ts';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import { QuicTransport } from '../../src/transport/quic/quic-transport.ts';
import { Metrics } from '../../src/agent/metrics.ts';
import type { Carrier } from '../../src/transport/carrier.ts';
import { Encoding, type DataFrame } from '../../src/wire/messages.ts';
import { TEST_HANDSHAKE_MS, TEST_MAX_FRAME_BYTES, TEST_TIMEOUT_MS, identity, makePki, removePki, type QuicPki } from '../helpers/quic-fixture.ts';

/** Frames sent. */
const FRAMES = 600;
/** Payload bytes per frame. */
const FRAME_BYTES = 64 * 1024;
/** Carriers of the link. */
const CARRIERS = 4;
/** The frame after which one server-side carrier is cut. */
const CUT_AFTER = 200;
const STREAM_ID = 's';

let pki: QuicPki;

before(async () => {
  pki = await makePki();
});

after(async () => {
  await removePki(pki);
});

test('a link over QUIC carriers delivers every frame in order through a carrier cut, with path stats from the transport', { timeout: TEST_TIMEOUT_MS }, async () => {
  const transport = new QuicTransport();
  const metrics = new Metrics({ processMetrics: false });
  const pool = Array.from({ length: 16 }, () => randomBytes(FRAME_BYTES));
  const digests = pool.map((p) => createHash('sha256').update(p).digest());

  // The accepting side: in-order apply, acknowledge the contiguous prefix.
  let next = 1;
  let mismatches = 0;
  const pending = new Set<number>();
  const serverCarriers: Carrier[] = [];
  let inbound: InboundLink | null = null;
  const onData = (link: InboundLink, frame: DataFrame): void => {
    if (!Buffer.from(frame.payload).equals(pool[frame.seq % pool.length])) mismatches++;
    if (frame.seq < next) return;
    pending.add(frame.seq);
    const before = next;
    while (pending.delete(next)) next++;
    if (next !== before) link.send({ ack: { streamId: STREAM_ID, durableSeq: next - 1, chain: Buffer.alloc(0) } });
  };
  const server = await transport.listen({
    host: '127.0.0.1', port: 0, tls: pki.material.server, identity: identity('region-a', 'node-a'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, handshakeTimeoutMs: TEST_HANDSHAKE_MS, admit: () => null,
    onCarrier(carrier, hello, peer) {
      serverCarriers.push(carrier);
      if (!inbound || inbound.linkId !== hello.linkId) inbound = new InboundLink(peer, hello.linkId, { onMessage: (l, env) => env.data && onData(l, env.data), onClosed: () => {} }, metrics);
      inbound.add(carrier, hello.carrierIndex);
    },
    onRefused: (reason) => assert.fail(`refused: ${reason}`),
  });

  // The dialing side: a link that knows only the QUIC transport.
  const link = new OutboundLink({
    peerRegion: 'region-a', endpoints: [{ kind: 'quic', host: '127.0.0.1', port: server.port }], transports: { quic: transport },
    carriers: CARRIERS, tls: () => pki.material.client, identity: identity('region-b', 'node-b'),
    maxFrameBytes: TEST_MAX_FRAME_BYTES, carrierWindowBytes: 1024 * 1024, linkWindowBytes: 16 * 1024 * 1024,
    connectTimeoutMs: TEST_HANDSHAKE_MS, initialBackoffMs: 100, maxBackoffMs: 1_000, logger: pino({ level: 'silent' }), metrics,
  });
  let acked = 0;
  const session = await new Promise<number>((resolve) => link.start({
    onUp: resolve,
    onDown: () => {},
    onMessage: (env) => {
      if (env.ack) acked = Math.max(acked, env.ack.durableSeq);
      if (env.ack) link.acknowledge(env.ack.streamId, env.ack.durableSeq);
    },
  }));
  try {
    for (let seq = 1; seq <= FRAMES; seq++) {
      const i = seq % pool.length;
      await link.sendData(session, STREAM_ID, seq, frameEnvelope({ data: { streamId: STREAM_ID, seq, epoch: 1, encoding: Encoding.RAW, digest: digests[i], meta: Buffer.alloc(0), payload: pool[i], rawLength: FRAME_BYTES, resync: false } }));
      if (seq === CUT_AFTER) {
        // Path stats come through the transport while the carriers are busy.
        const paths = link.carrierPaths();
        assert.ok(paths.length >= 1 && paths.every((p) => p.carrier.kind === 'quic' && p.stats.rttUs > 0), `paths ${JSON.stringify(paths.map((p) => p.stats))}`);
        serverCarriers[0].close('cut by the test');
      }
    }
    const deadline = Date.now() + TEST_TIMEOUT_MS / 2;
    while (acked < FRAMES && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(acked, FRAMES, `acknowledged ${acked} of ${FRAMES}`);
    assert.equal(mismatches, 0);
    assert.equal(next, FRAMES + 1);
    // The cut slot is dialed again over QUIC.
    while (serverCarriers.length <= CARRIERS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.equal(serverCarriers.length, CARRIERS + 1, 'the cut carrier was redialed');
  } finally {
    link.close();
    (inbound as InboundLink | null)?.close('done');
    await server.close();
  }
});
