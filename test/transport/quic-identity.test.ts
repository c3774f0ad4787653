// Mutual TLS on QUIC carriers between real connections on loopback: the
// listener refuses a client certificate of another CA (in the TLS
// handshake) and one naming another region than the Hello claims, each with
// a logged reason; the dialer refuses a server that is not of the region it
// dialed or not of its CA (the server proof, server-proof.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectQuic } from '@currentspace/http3';
import { QUIC_ALPN } from '../../src/transport/quic/quic-transport.ts';
import { TEST_HANDSHAKE_MS, TEST_TIMEOUT_MS, dial, identity, listen, useListener } from '../helpers/quic-fixture.ts';

const setup = useListener();

test('a client certificate of another CA is refused in the TLS handshake, logged with the alert', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  await assert.rejects(dial(setup.transport, setup.listener, setup.pki.material.otherCa, identity('region-b', 'node-b')), /tls alert 48 unknown_ca/);
  assert.match((await refusal).reason, /quic tls handshake failed: tls alert 48 unknown_ca/);
  assert.equal(setup.listener.accepted.length, 0);
});

test('a client without a certificate is refused in the TLS handshake, logged', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  // The server refuses once the client's handshake reaches it, which may be before or after the
  // library calls the connection ready: either way the close must reach the client with the reason.
  const session = connectQuic({ host: '127.0.0.1', port: setup.listener.server.port }, { rejectUnauthorized: false, alpn: [QUIC_ALPN], connectTimeoutMs: TEST_HANDSHAKE_MS });
  session.on('error', () => {});
  const closed = new Promise<{ errorCode: number; reason: string }>((resolve) => session.on('close', resolve));
  await session.ready().catch(() => {});
  assert.match((await refusal).reason, /quic tls handshake failed: tls error: client certificate required/);
  assert.match((await closed).reason, /client certificate required/);
  assert.equal(setup.listener.accepted.length, 0);
});

test('a client whose certificate names another region than its Hello is refused, logged as an identity problem', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  await assert.rejects(
    dial(setup.transport, setup.listener, setup.pki.material.otherRegion, identity('region-b', 'node-b')),
    /refused: identity: hello claims region "region-b" but the certificate names region "region-c"/,
  );
  const logged = await refusal;
  assert.equal(logged.identity, 'region');
  assert.match(logged.reason, /handshake refused: identity: hello claims region "region-b"/);
  assert.equal(setup.listener.accepted.length, 0);
});

test('the dialer refuses a server that is not of the region it dialed, and the server logs why', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  await assert.rejects(
    dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'), 'region-x'),
    /server certificate names dwcp:\/\/fed\/region-a\/node-a, not an agent of federation "fed" region "region-x"/,
  );
  assert.match((await refusal).reason, /server identity: server certificate names dwcp:\/\/fed\/region-a\/node-a/);
  assert.equal(setup.listener.accepted.length, 0);
});

test('the dialer refuses a server whose certificate is of another CA', { timeout: TEST_TIMEOUT_MS }, async () => {
  const impostor = await listen(setup.transport, { ...setup.pki.material.otherCa, ca: setup.pki.material.server.ca });
  try {
    await assert.rejects(dial(setup.transport, impostor, setup.pki.material.client, identity('region-b', 'node-b'), 'region-b'), /server certificate is not signed by this federation's CA/);
    assert.equal(impostor.accepted.length, 0);
  } finally {
    await impostor.server.close();
  }
});

test('the right certificates on both sides are accepted (the refusals above are about identity, not a broken setup)', { timeout: TEST_TIMEOUT_MS }, async () => {
  const accepting = setup.listener.nextCarrier();
  const { carrier } = await dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'));
  const server = await accepting;
  carrier.close('done');
  server.close('done');
});
