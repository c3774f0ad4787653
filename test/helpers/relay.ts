// Test relays that sit between two agents. The TCP relay forwards bytes
// and can destroy one connection on demand (a carrier dying mid-transfer),
// or slow one down (a carrier on a slow path: its client-to-target bytes
// pass at a set rate, the other direction at full speed).
// The TLS relay is a peer that lies: it holds certificates of the right
// regions (the destination's to answer the source, the source's to dial the
// destination), so every identity check passes; it terminates TLS on both
// sides and flips one byte inside a data frame's payload, so only DWCP's own
// digests can catch it.

import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { DevCert } from '../../src/cli/dev-pki.ts';

/** A running relay. */
export interface Relay {
  port: number;
  /** Connections currently open (client side). */
  connections(): number;
  /** Destroy one open connection; returns false when none. */
  destroyOne(): boolean;
  /** Pass the oldest open connection's client-to-target bytes at bytesPerS (null: full speed again); false when none (or not supported). */
  throttleOne(bytesPerS: number | null): boolean;
  /** Bytes flipped so far (TLS relay). */
  flips(): number;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/** How often a throttled connection passes its next share of bytes, ms. */
const THROTTLE_TICK_MS = 20;
/** A throttled connection stops reading its client beyond this many held bytes. */
const THROTTLE_HOLD_BYTES = 256 * 1024;
/** Throttles in force, by client socket (to change or lift one). */
const throttles = new WeakMap<net.Socket, { rate: number | null; timer: NodeJS.Timeout }>();

/** Forward client -> upstream at bytesPerS from now on (null: pipe at full speed again, after what is held). */
function throttle(client: net.Socket, upstream: net.Socket, bytesPerS: number | null): void {
  const existing = throttles.get(client);
  if (existing) {
    existing.rate = bytesPerS;
    return;
  }
  if (bytesPerS === null) return;
  client.unpipe(upstream);
  const held: Buffer[] = [];
  let heldBytes = 0;
  client.on('data', (chunk: Buffer) => {
    held.push(chunk);
    heldBytes += chunk.length;
    if (heldBytes > THROTTLE_HOLD_BYTES) client.pause();
  });
  const state = {
    rate: bytesPerS as number | null,
    timer: setInterval(() => {
      // Pass this tick's share (everything once the throttle is lifted).
      let budget = state.rate === null ? Infinity : (state.rate * THROTTLE_TICK_MS) / 1000;
      while (budget > 0 && held.length > 0) {
        const chunk = held[0];
        const n = Math.min(chunk.length, budget);
        if (!upstream.destroyed) upstream.write(chunk.subarray(0, n));
        if (n === chunk.length) held.shift();
        else held[0] = chunk.subarray(n);
        heldBytes -= n;
        budget -= n;
      }
      if (heldBytes <= THROTTLE_HOLD_BYTES && client.isPaused()) client.resume();
      if (client.destroyed) clearInterval(state.timer);
    }, THROTTLE_TICK_MS),
  };
  state.timer.unref();
  throttles.set(client, state);
  client.resume();
}

/** Plain TCP forwarder to 127.0.0.1:targetPort. */
export async function startTcpRelay(targetPort: number): Promise<Relay> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.push(pair);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      const i = pairs.indexOf(pair);
      if (i >= 0) pairs.splice(i, 1);
    };
    client.pipe(upstream).on('error', drop);
    upstream.pipe(client).on('error', drop);
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const port = await listen(server);
  return {
    port,
    connections: () => pairs.length,
    destroyOne: () => {
      // Out of the list now: the sockets' close events come later, and a
      // second call right away must pick another connection.
      const pair = pairs.pop();
      if (!pair) return false;
      pair[0].destroy();
      pair[1].destroy();
      return true;
    },
    throttleOne: (bytesPerS) => {
      const pair = pairs[0];
      if (!pair) return false;
      throttle(pair[0], pair[1], bytesPerS);
      return true;
    },
    flips: () => 0,
    close: () => {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * TLS-terminating relay that flips one byte in the payload of the first
 * `count` data frames larger than minFrameBytes going from client to target.
 * It shows serverCert to the client and dials the target with clientCert.
 */
export async function startFlippingRelay(targetPort: number, serverCert: DevCert, clientCert: DevCert, count: number, minFrameBytes = 64 * 1024): Promise<Relay> {
  const read = (c: DevCert): { ca: Buffer; cert: Buffer; key: Buffer } => ({ ca: readFileSync(c.caFile), cert: readFileSync(c.certFile), key: readFileSync(c.keyFile) });
  const material = read(serverCert);
  const upstreamMaterial = read(clientCert);
  let flipped = 0;
  const open: tls.TLSSocket[] = [];
  const server = tls.createServer({ ...material, requestCert: true, rejectUnauthorized: true }, (client) => {
    const upstream = tls.connect({ host: '127.0.0.1', port: targetPort, ...upstreamMaterial, checkServerIdentity: () => undefined });
    open.push(client, upstream);
    // Parse client->target framing: 4-byte length, then body; flip inside big bodies.
    let pending = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4) {
        const len = pending.readUInt32BE(0);
        if (pending.length < 4 + len) break;
        const frame = Buffer.from(pending.subarray(0, 4 + len));
        pending = pending.subarray(4 + len);
        if (len > minFrameBytes && flipped < count) {
          // Near the end of the body is the payload (only raw_length follows it).
          frame[frame.length - 16] ^= 0x5a;
          flipped++;
        }
        upstream.write(frame);
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  const port = await listen(server);
  return {
    port,
    connections: () => open.filter((s) => !s.destroyed).length / 2,
    destroyOne: () => false,
    throttleOne: () => false,
    flips: () => flipped,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
