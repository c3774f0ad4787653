// A QUIC carrier pair on loopback, real @currentspace/http3 connections:
// frames arrive identical and in order, both sides close cleanly with the
// reason, and the transport reports path measurements from the library.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import type { CloseInfo } from '../../src/transport/carrier.ts';
import { Encoding, type Envelope } from '../../src/wire/messages.ts';
import { TEST_TIMEOUT_MS, dial, identity, useListener } from '../helpers/quic-fixture.ts';

/** Frames sent in the ordering test. */
const FRAME_COUNT = 3000;

const setup = useListener();

// Frame i: a payload of varying size whose bytes depend on i.
function frame(i: number): Envelope {
  const size = 4 + ((i * 7919) % 65_536);
  const payload = Buffer.alloc(size, i % 251);
  payload.writeUInt32BE(i, 0);
  return { data: { streamId: 's', seq: i, epoch: 1, encoding: Encoding.RAW, digest: createHash('sha256').update(payload).digest(), meta: Buffer.alloc(0), payload, rawLength: size, resync: false } };
}

test('a QUIC carrier pair moves many frames identical and in order, then closes cleanly on both sides', { timeout: TEST_TIMEOUT_MS }, async () => {
  const accepting = setup.listener.nextCarrier();
  const { carrier: client, reply } = await dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'));
  assert.equal(reply.accepted, true);
  assert.equal(reply.region, 'region-a');
  assert.equal(client.kind, 'quic');
  const server = await accepting;
  assert.deepEqual(setup.listener.accepted.at(-1)!.peer, { federation: 'fed', region: 'region-b', node: 'node-b' });

  // Receive everything; fail on the first frame out of order or changed.
  let next = 0;
  let problem: string | null = null;
  const serverClosed = new Promise<CloseInfo>((resolve) => {
    server.attach({
      onMessage(envelope) {
        const want = frame(next);
        if (!envelope.data || envelope.data.seq !== next || !Buffer.from(envelope.data.payload).equals(want.data!.payload as Buffer)) problem ??= `frame ${next} differs (got seq ${envelope.data?.seq})`;
        next++;
        if (next === FRAME_COUNT) server.write(frameEnvelope({ pong: { nonce: 7, sentUnixMicros: 0 } }));
      },
      onClose: resolve,
    });
  });
  const echoed = new Promise<void>((resolve) => client.attach({ onMessage: (e) => { if (e.pong) resolve(); }, onClose: () => {} }));

  // Send with backpressure, as the link does.
  for (let i = 0; i < FRAME_COUNT; i++) {
    assert.ok(client.write(frameEnvelope(frame(i))));
    if (client.queuedBytes > 4 * 1024 * 1024) await client.drained();
  }
  await echoed;
  assert.equal(problem, null);
  assert.equal(next, FRAME_COUNT);

  // Path measurements from the library's own metrics.
  const stats = setup.transport.pathStats(client);
  assert.ok(stats, 'a live carrier has path stats');
  assert.ok(stats.rttUs > 0 && stats.minRttUs > 0 && stats.minRttUs <= stats.rttUs);
  assert.ok(stats.bytesSent >= client.writtenBytes, `bytes sent ${stats.bytesSent} cover the ${client.writtenBytes} written`);
  assert.deepEqual(setup.transport.congestionControls(), []);

  // A clean close reaches the peer with its reason, not as a protocol error.
  client.close('test done');
  const info = await serverClosed;
  assert.equal(info.protocolError, false);
  assert.match(info.reason, /test done/);
  assert.equal(client.closed, true);
  assert.equal(setup.transport.pathStats(client), null);
  assert.equal(client.write(Buffer.from([0, 0, 0, 1, 0])), false, 'writes after close are dropped');
});
