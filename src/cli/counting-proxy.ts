// A loopback TCP proxy for benchmarks: counts the bytes it forwards in each
// direction and can pause forwarding (TCP flow control then stalls both
// ends without closing anything), so a replication path can be held back to
// build a backlog and released to time its catch-up.

import { connect, createServer, type Server, type Socket } from 'node:net';

/** A running proxy. */
export interface CountingProxy {
  port: number;
  /** Bytes forwarded client -> target and target -> client since start. */
  readonly bytes: { up: number; down: number };
  /** Stop forwarding (connections stay open). */
  pause(): void;
  /** Forward again. */
  resume(): void;
  close(): Promise<void>;
}

/** Listen on 127.0.0.1 (free port) and forward each connection to target(). */
export async function startCountingProxy(target: () => { host: string; port: number }): Promise<CountingProxy> {
  const sockets = new Set<Socket>();
  const bytes = { up: 0, down: 0 };
  let paused = false;
  const server: Server = createServer((client) => {
    const { host, port } = target();
    const upstream = connect(port, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
      if (paused) s.pause();
    }
    client.on('data', (d: Buffer) => {
      bytes.up += d.length;
      if (!upstream.write(d)) client.pause();
    });
    upstream.on('data', (d: Buffer) => {
      bytes.down += d.length;
      if (!client.write(d)) upstream.pause();
    });
    upstream.on('drain', () => !paused && client.resume());
    client.on('drain', () => !paused && upstream.resume());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('counting proxy: no port');
  return {
    port: address.port,
    bytes,
    pause() {
      paused = true;
      for (const s of sockets) s.pause();
    },
    resume() {
      paused = false;
      for (const s of sockets) s.resume();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
