// A QUIC connection the library reported closed is never addressed again.
// @currentspace/http3 0.9.0 names a server connection by a slab index and
// gives the index of a closed connection to the next one it accepts (three
// connections in turn on one listener all had handle 0), so a late close on
// an old session ends whichever connection holds its index now. That is how
// a fresh-clone CI run saw a dialer's connection closed under it ("server
// proof: stream error: application error (connection closed by the server:
// code 12)"): the carrier of the test before, closed by its peer, closed its
// session once more a tick later and hit the next dial's connection, still
// in its handshake on the server (a close before the handshake is confirmed
// goes out as APPLICATION_ERROR 0x0c without a reason, RFC 9000 10.2.3).
//
// The late close lands on another connection only when one is accepted in
// that tick, so these tests do not wait for that: they watch every call the
// transport makes on the library's server sessions (a spy on the real
// class; the connections are real) and fail on any made after the session's
// 'close' event, in each way a carrier or a handshake ends.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { QuicServerSession } from '@currentspace/http3';
import { TEST_TIMEOUT_MS, dial, identity, useListener } from '../helpers/quic-fixture.ts';

const setup = useListener();

/** Calls made on server sessions after their 'close' event, as "method: reason". */
const late: string[] = [];

/** Waiting for the next server session's 'close' event. */
const closeWaiters: Array<() => void> = [];

// Resolves when the next server session emits 'close'.
function nextSessionClose(): Promise<void> {
  return new Promise((resolve) => closeWaiters.push(resolve));
}

const original = { emit: QuicServerSession.prototype.emit, close: QuicServerSession.prototype.close, getMetrics: QuicServerSession.prototype.getMetrics };

before(() => {
  const closed = new WeakSet<QuicServerSession>();
  QuicServerSession.prototype.emit = function (this: QuicServerSession, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'close') return original.emit.call(this, event, ...args);
    closed.add(this);
    const result = original.emit.call(this, event, ...args);
    closeWaiters.shift()?.();
    return result;
  };
  QuicServerSession.prototype.close = function (this: QuicServerSession, errorCode?: number, reason?: string): void {
    if (closed.has(this)) late.push(`close: ${reason}`);
    original.close.call(this, errorCode, reason);
  };
  QuicServerSession.prototype.getMetrics = function (this: QuicServerSession) {
    if (closed.has(this)) late.push('getMetrics');
    return original.getMetrics.call(this);
  };
});

after(() => {
  Object.assign(QuicServerSession.prototype, original);
});

// Let the turns after a close run (a stream's 'close' comes a tick after its session's).
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await nextTurn();
}

test('an accepted carrier closed by the dialer: the server side does not close its session again', { timeout: TEST_TIMEOUT_MS }, async () => {
  late.length = 0;
  const accepting = setup.listener.nextCarrier();
  const { carrier } = await dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'));
  const server = await accepting;
  const serverClosed = new Promise((resolve) => server.attach({ onMessage: () => {}, onClose: resolve }));
  carrier.close('done');
  await serverClosed;
  assert.equal(setup.transport.pathStats(server), null);
  await settle();
  assert.deepEqual(late, []);
});

test('a Hello refused by the listener, then closed by the dialer: no call on the closed session', { timeout: TEST_TIMEOUT_MS }, async () => {
  late.length = 0;
  const refusal = setup.listener.nextRefusal();
  const sessionClosed = nextSessionClose();
  await assert.rejects(dial(setup.transport, setup.listener, setup.pki.material.otherRegion, identity('region-b', 'node-b')), /refused: identity/);
  await refusal;
  await sessionClosed;
  await settle();
  assert.deepEqual(late, []);
});

test('a server proof refused by the dialer: the listener does not close the session the dialer closed', { timeout: TEST_TIMEOUT_MS }, async () => {
  late.length = 0;
  const refusal = setup.listener.nextRefusal();
  const sessionClosed = nextSessionClose();
  await assert.rejects(dial(setup.transport, setup.listener, setup.pki.material.client, identity('region-b', 'node-b'), 'region-x'), /not an agent of federation "fed" region "region-x"/);
  await refusal;
  await sessionClosed;
  await settle();
  assert.deepEqual(late, []);
});
