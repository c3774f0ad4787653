// A TCP relay to 127.0.0.1:targetPort that a test can cut: sever() drops
// every open connection and refuses new ones until heal(). Used to put a
// client on the far side of a network gap (its streams break, its reconnects
// fail) while the server keeps working for everyone else.

import net from 'node:net';

/** A running severable relay. */
export interface SeverableRelay {
  /** `http://127.0.0.1:<port>`: the relay's address as a client URL. */
  readonly endpoint: string;
  /** Drop every open connection and refuse new ones. */
  sever(): void;
  /** Accept and forward connections again. */
  heal(): void;
  /** Drop everything and stop listening. */
  close(): Promise<void>;
}

/** Start a relay forwarding to 127.0.0.1:targetPort. */
export async function startSeverableRelay(targetPort: number): Promise<SeverableRelay> {
  const sockets = new Set<net.Socket>();
  let severed = false;
  const server = net.createServer((client) => {
    if (severed) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy();
    sockets.clear();
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    sever: () => {
      severed = true;
      dropAll();
    },
    heal: () => {
      severed = false;
    },
    close: async () => {
      severed = true;
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
