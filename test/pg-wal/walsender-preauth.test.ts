// The walsender endpoint before authentication, where any client is a
// stranger: SCRAM for an unknown user costs what it costs for a known one
// and runs no PBKDF2 on the event loop; connections are capped (all, and
// unauthenticated ones); startups that do not finish are closed after the
// auth timeout; and an oversized startup message is refused instead of
// buffered.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { BodyReader, BodyWriter, MessageSocket, message, parseErrorFields, startupMessage } from '../../src/streams/pg-wal/pg-protocol.ts';
import { ReplicationClient } from '../../src/streams/pg-wal/replication-client.ts';
import { startWalsenderServer } from '../../src/streams/pg-wal/walsender-server.ts';

const KNOWN_USER = 'replicator';
/** Attempts per user for the timing comparison and the loop-delay check. */
const ATTEMPTS = 200;

let spool: string;
before(() => {
  spool = mkdtempSync(join(tmpdir(), 'dwcp-preauth-'));
});
after(() => rmSync(spool, { recursive: true, force: true }));

/** A raw client on loopback that reads the server's messages one by one. */
async function rawClient(port: number, localAddress?: string): Promise<{ socket: Socket; conn: MessageSocket }> {
  const socket = connect({ port, host: '127.0.0.1', localAddress });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  return { socket, conn: new MessageSocket(socket, { startup: false, maxLength: 1024 * 1024 }) };
}

/**
 * Startup and SASL up to the server-first-message, then a wrong proof:
 * returns the salt the server offered, the time the exchange took, and the
 * SQLSTATE it ended with.
 */
async function scramAttempt(port: number, user: string): Promise<{ salt: string; ms: number; code: string }> {
  const { socket, conn } = await rawClient(port);
  try {
    const started = performance.now();
    socket.write(startupMessage({ user, replication: 'true' }));
    const sasl = await conn.read();
    assert.equal(sasl?.type, 'R');
    assert.equal(new BodyReader(sasl.body).int32(), 10, 'AuthenticationSASL');
    const first = Buffer.from('n,,n=,r=clientnonce0123456789');
    socket.write(message('p', new BodyWriter().cstring('SCRAM-SHA-256').int32(first.length).bytes(first).build()));
    const cont = await conn.read();
    assert.equal(cont?.type, 'R');
    const r = new BodyReader(cont.body);
    assert.equal(r.int32(), 11, 'AuthenticationSASLContinue');
    const serverFirst = r.rest().toString('utf8');
    const nonce = /r=([^,]+)/.exec(serverFirst)![1];
    const salt = /s=([^,]+)/.exec(serverFirst)![1];
    socket.write(message('p', Buffer.from(`c=biws,r=${nonce},p=${Buffer.alloc(32, 7).toString('base64')}`)));
    const end = await conn.read();
    const ms = performance.now() - started;
    assert.equal(end?.type, 'E');
    return { salt, ms, code: parseErrorFields(end.body).code };
  } finally {
    socket.destroy();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** SQLSTATE and text of the ErrorResponse the server sends first (['closed', ''] when it closes without one). */
async function firstError(client: { conn: MessageSocket }): Promise<[string, string]> {
  const m = await client.conn.read().catch(() => null);
  if (!m) return ['closed', ''];
  if (m.type !== 'E') return [`message ${m.type}`, ''];
  const f = parseErrorFields(m.body);
  return [f.code, f.message];
}

test('an unknown user costs what a known one does, gets a stable salt, and no PBKDF2 runs on the event loop', { timeout: 120_000 }, async () => {
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: { [KNOWN_USER]: 'secret-pw' }, trustCidrs: [] }, maxUnauthenticated: ATTEMPTS });
  // Count synchronous PBKDF2 calls made while attempts run (the server's own import sees the spy too).
  const original = crypto.pbkdf2Sync;
  let pbkdf2SyncCalls = 0;
  crypto.pbkdf2Sync = ((...args: Parameters<typeof original>) => {
    pbkdf2SyncCalls++;
    return original(...args);
  }) as typeof original;
  syncBuiltinESMExports();
  const loop = monitorEventLoopDelay({ resolution: 10 });
  try {
    loop.enable();
    const known: number[] = [];
    const unknown: number[] = [];
    const salts = { known: new Set<string>(), unknown: new Set<string>() };
    // Interleaved, so load on the machine hits both alike.
    for (let i = 0; i < ATTEMPTS; i++) {
      const k = await scramAttempt(server.port, KNOWN_USER);
      const u = await scramAttempt(server.port, 'nobody-here');
      assert.equal(k.code, '28P01');
      assert.equal(u.code, '28P01', 'an unknown user fails like a wrong password');
      known.push(k.ms);
      unknown.push(u.ms);
      salts.known.add(k.salt);
      salts.unknown.add(u.salt);
    }
    loop.disable();
    assert.equal(pbkdf2SyncCalls, 0, 'no synchronous PBKDF2 while clients authenticate');
    assert.equal(salts.unknown.size, 1, 'an unknown user sees the same salt every time (it cannot be told from a known one)');
    assert.equal(salts.known.size, 1);
    assert.notEqual([...salts.unknown][0], [...salts.known][0]);
    const [mk, mu] = [median(known), median(unknown)];
    assert.ok(mu < 3 * mk && mk < 3 * mu, `median exchange: known ${mk.toFixed(3)} ms, unknown ${mu.toFixed(3)} ms`);
    // A generous bound: the event loop was never held for long.
    assert.ok(loop.max / 1e6 < 500, `event loop delay max ${(loop.max / 1e6).toFixed(1)} ms`);
  } finally {
    loop.disable();
    crypto.pbkdf2Sync = original;
    syncBuiltinESMExports();
    await server.close();
  }
});

test('connections over maxConnections, and unauthenticated ones over maxUnauthenticated, are refused with 53300', { timeout: 60_000 }, async () => {
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: {}, trustCidrs: ['127.0.0.2/32'] }, maxConnections: 4, maxUnauthenticated: 2 });
  const open: Array<{ socket: Socket; conn: MessageSocket }> = [];
  const standbys: ReplicationClient[] = [];
  const trusted = (): Promise<ReplicationClient> => ReplicationClient.connect({ host: '127.0.0.1', port: server.port, user: 'standby', localAddress: '127.0.0.2' });
  try {
    // One authenticated standby (trusted address), then two idle clients fill maxUnauthenticated: the next is refused.
    standbys.push(await trusted());
    open.push(await rawClient(server.port), await rawClient(server.port));
    assert.deepEqual(await firstError(await rawClient(server.port)), ['53300', 'sorry, too many connections still authenticating (maxUnauthenticated 2)']);
    // An idle one leaves; two more standbys authenticate: four connections, so the next is over maxConnections.
    open.shift()!.socket.destroy();
    await waitUntil(async () => {
      try {
        standbys.push(await trusted());
        return true;
      } catch {
        return false; // the server has not seen the close yet
      }
    });
    standbys.push(await trusted());
    assert.deepEqual(await firstError(await rawClient(server.port, '127.0.0.2')), ['53300', 'sorry, too many connections (maxConnections 4)']);
  } finally {
    for (const c of open) c.socket.destroy();
    for (const c of standbys) c.close();
    await server.close();
  }
});

/** Poll fn (bounded: 100 tries, 50 ms apart) until it returns true. */
async function waitUntil(fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met after 100 tries');
}

test('a startup that does not finish is closed after authTimeout; an oversized startup message is refused, not buffered', { timeout: 60_000 }, async () => {
  const server = await startWalsenderServer({ spool, host: '127.0.0.1', port: 0, auth: { users: { [KNOWN_USER]: 'pw' }, trustCidrs: [] }, authTimeoutMs: 300 });
  try {
    // Silent client, and one that stops in the middle of SASL: both are closed.
    const silent = await rawClient(server.port);
    const halfway = await rawClient(server.port);
    halfway.socket.write(startupMessage({ user: KNOWN_USER, replication: 'true' }));
    assert.equal((await halfway.conn.read())?.type, 'R');
    const closed = (s: Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
    await Promise.all([closed(silent.socket), closed(halfway.socket)]);

    // A startup packet announcing 1 MiB: an ErrorResponse (08P01) at once, before the body is sent.
    const big = await rawClient(server.port);
    const header = Buffer.alloc(8);
    header.writeUInt32BE(1024 * 1024, 0);
    header.writeUInt32BE(196608, 4);
    big.socket.write(header);
    assert.equal((await firstError(big))[0], '08P01');
    big.socket.destroy();
  } finally {
    await server.close();
  }
});
