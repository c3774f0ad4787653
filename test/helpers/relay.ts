// Test relays that sit between two agents. The TCP relay forwards bytes
// and can destroy one connection on demand (a carrier dying mid-transfer).
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
  /** Bytes flipped so far (TLS relay). */
  flips(): number;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
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
    flips: () => flipped,
    close: () => {
      for (const s of open) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
