// TCP goodput probe for an emulated link. Run as a script inside a lab
// namespace; prints one JSON line with results.
//   node tcp-probe.ts sink PORT                 -> {"bytes","seconds","mbit"} for one connection
//   node tcp-probe.ts source HOST PORT SECONDS [CC]  -> {"bytes"} sent as fast as possible, optional congestion control
import net from 'node:net';
import { setCongestion } from '../native-bindings/index.ts';

const CHUNK_BYTES = 256 * 1024;

/** Accept one connection, count bytes from first to last byte. */
function sink(port: number): void {
  const server = net.createServer((sock) => {
    let bytes = 0;
    let first = 0n;
    let last = 0n;
    sock.on('data', (chunk: Buffer) => {
      last = process.hrtime.bigint();
      if (bytes === 0) first = last;
      bytes += chunk.length;
    });
    sock.on('close', () => {
      const seconds = Number(last - first) / 1e9;
      console.log(JSON.stringify({ bytes, seconds, mbit: seconds > 0 ? (bytes * 8) / seconds / 1e6 : 0 }));
      server.close();
    });
  });
  server.listen(port, () => console.log(JSON.stringify({ event: 'listening', port })));
}

/** Connect and write as fast as the socket drains for `seconds`. */
function source(host: string, port: number, seconds: number, cc: string | undefined): void {
  const chunk = Buffer.alloc(CHUNK_BYTES, 0x5a);
  const sock = net.connect(port, host, () => {
    if (cc) setCongestion(sock, cc);
    const until = Date.now() + seconds * 1000;
    let bytes = 0;
    const pump = (): void => {
      while (Date.now() < until) {
        bytes += chunk.length;
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      sock.end(() => console.log(JSON.stringify({ bytes })));
    };
    pump();
  });
  sock.on('error', (err) => {
    console.error(`tcp-probe source: ${err.message}`);
    process.exitCode = 1;
  });
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'sink') sink(Number(rest[0]));
else if (mode === 'source') source(rest[0], Number(rest[1]), Number(rest[2]), rest[3]);
else {
  console.error(`tcp-probe: unknown mode '${mode}' (sink|source)`);
  process.exitCode = 2;
}
