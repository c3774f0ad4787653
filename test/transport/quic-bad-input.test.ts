// Bad input at the QUIC listener, from certified peers on real connections:
// garbage and oversized frames, before the Hello (in place of the proof
// request) and after it (on an accepted carrier), are refused with a logged
// reason, close the connection with the reason, and are refused at the
// length prefix: the announced body is never waited for or buffered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectQuicAsync } from '@currentspace/http3';
import { QUIC_ALPN } from '../../src/transport/quic/quic-transport.ts';
import { PROOF_MAX_FRAME_BYTES } from '../../src/transport/quic/server-proof.ts';
import type { CloseInfo } from '../../src/transport/carrier.ts';
import { TEST_HANDSHAKE_MS, TEST_MAX_FRAME_BYTES, TEST_TIMEOUT_MS, dial, identity, useListener } from '../helpers/quic-fixture.ts';

/** What a peer announces in an oversized length prefix, bytes. */
const ANNOUNCED_BYTES = 1024 * 1024 * 1024;

/** What it then actually sends of that body, bytes. */
const SENT_BYTES = 64 * 1024;

const setup = useListener();

// A length prefix followed by `body`.
function framed(length: number, body: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(length);
  return Buffer.concat([prefix, body]);
}

// Connect with the client's certificate and write `bytes` as the first thing on the stream; resolves with how the server closed it.
async function firstBytes(bytes: Buffer): Promise<{ errorCode: number; reason: string }> {
  const { client } = setup.pki.material;
  const session = await connectQuicAsync({ host: '127.0.0.1', port: setup.listener.server.port }, { cert: client.cert, key: client.key, rejectUnauthorized: false, alpn: [QUIC_ALPN], connectTimeoutMs: TEST_HANDSHAKE_MS });
  const closed = new Promise<{ errorCode: number; reason: string }>((resolve) => session.on('close', resolve));
  const stream = session.openStream();
  stream.on('error', () => {});
  stream.write(bytes);
  return closed;
}

test('garbage in place of the proof request is refused with a logged reason', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  const closed = await firstBytes(framed(14, Buffer.from('GET / HTTP/1.1')));
  assert.match((await refusal).reason, /quic: proof request: not JSON \(14 bytes\)/);
  assert.equal(closed.errorCode, 1);
  assert.match(closed.reason, /proof request: not JSON/);
});

test('an oversized proof request is refused at its length prefix', { timeout: TEST_TIMEOUT_MS }, async () => {
  const refusal = setup.listener.nextRefusal();
  const closed = await firstBytes(framed(ANNOUNCED_BYTES, Buffer.alloc(SENT_BYTES, 0x41)));
  assert.match((await refusal).reason, new RegExp(`frame length ${ANNOUNCED_BYTES} exceeds maximum ${PROOF_MAX_FRAME_BYTES}`));
  assert.equal(closed.errorCode, 1);
});

// An accepted carrier pair; resolves with the server side's close once `bytes` were written raw by the client.
async function afterHello(bytes: Buffer): Promise<{ server: CloseInfo; client: CloseInfo }> {
  const accepting = setup.listener.nextCarrier();
  const { carrier: client } = await dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'));
  const server = await accepting;
  const serverClosed = new Promise<CloseInfo>((resolve) => server.attach({ onMessage: () => {}, onClose: resolve }));
  const clientClosed = new Promise<CloseInfo>((resolve) => client.attach({ onMessage: () => {}, onClose: resolve }));
  client.write(bytes);
  return { server: await serverClosed, client: await clientClosed };
}

test('a garbage frame on an accepted carrier closes it as a protocol error, the reason reaching the peer', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { server, client } = await afterHello(framed(8, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])));
  assert.equal(server.protocolError, true);
  assert.match(server.reason, /malformed envelope \(8 bytes\)/);
  assert.match(client.reason, /quic connection closed \(code 1: malformed envelope/);
});

test('an oversized frame on an accepted carrier is refused at its length prefix', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { server } = await afterHello(framed(ANNOUNCED_BYTES, Buffer.alloc(SENT_BYTES)));
  assert.equal(server.protocolError, true);
  assert.match(server.reason, new RegExp(`frame length ${ANNOUNCED_BYTES} exceeds maximum ${TEST_MAX_FRAME_BYTES}`));
});

test('the listener still accepts a good carrier after all that', { timeout: TEST_TIMEOUT_MS }, async () => {
  const accepting = setup.listener.nextCarrier();
  const { carrier } = await dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'));
  (await accepting).close('done');
  carrier.close('done');
});
