// Send raw bytes to a TCP port on loopback and collect everything that
// comes back until the server closes (bad-input tests of the walsender endpoint).

import { connect } from 'node:net';

/** Write bytes on connect; resolve with all bytes received once the peer closes. */
export function rawExchange(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(parts)));
  });
}
