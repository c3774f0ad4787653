// Find free TCP ports on loopback for agents to listen on. Ports come from
// below the kernel's ephemeral range (32768 and up on Linux), so an outgoing
// connection's source port cannot take one between choosing and listening.

import { createServer } from 'node:net';

/** Lowest and highest port handed out (inclusive), below the ephemeral range. */
const PORT_MIN = 20_000;
const PORT_MAX = 32_000;
const ATTEMPTS = 200;

const handedOut = new Set<number>();

function tryListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** One free port on host (default 127.0.0.1), not handed out before by this process. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const port = PORT_MIN + Math.floor(Math.random() * (PORT_MAX - PORT_MIN + 1));
    if (handedOut.has(port)) continue;
    if (await tryListen(port, host)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port between ${PORT_MIN} and ${PORT_MAX} on ${host} after ${ATTEMPTS} tries`);
}
