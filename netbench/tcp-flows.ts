// N plain TCP flows as a baseline for netbench. Run as a script inside a lab
// namespace; one JSON line per event.
//   node tcp-flows.ts sink PORT
//     Accept any number of connections and discard; on SIGTERM print
//     {"event":"summary", bytes, cpuSeconds}.
//   node tcp-flows.ts source HOST PORT SECONDS FLOWS CC
//     FLOWS connections with congestion control CC writing as fast as they
//     drain for SECONDS; a {"event":"tick"} line per second and a final
//     {"event":"summary", ackedBytes, seconds, meanRttMs, retransSegments, cpuSeconds}.
import net from 'node:net';
import { setCongestion, tcpInfo, type TcpInfo } from '../native-bindings/index.ts';

const CHUNK_BYTES = 256 * 1024;
const TICK_MS = 1_000;

function print(obj: object): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Discard everything from any number of connections. */
function sink(port: number): void {
  let bytes = 0;
  const server = net.createServer((sock) => {
    sock.on('data', (chunk: Buffer) => { bytes += chunk.length; });
    sock.on('error', () => {});
  });
  server.listen(port, () => print({ event: 'listening', port }));
  process.on('SIGTERM', () => {
    print({ event: 'summary', bytes, cpuSeconds: cpuSeconds() });
    process.exit(0);
  });
}

/** FLOWS connections writing for SECONDS. */
async function source(host: string, port: number, seconds: number, flows: number, cc: string): Promise<void> {
  const chunk = Buffer.alloc(CHUNK_BYTES, 0x5a);
  const sockets = await Promise.all(Array.from({ length: flows }, () => new Promise<net.Socket>((resolve, reject) => {
    const sock = net.connect(port, host, () => {
      setCongestion(sock, cc);
      resolve(sock);
    });
    sock.once('error', reject);
  })));
  const startedAt = performance.now();
  const cpu0 = cpuSeconds();
  const until = startedAt + seconds * 1000;
  const last = new Map<net.Socket, TcpInfo>();
  const info = (s: net.Socket): TcpInfo | null => {
    try {
      const i = tcpInfo(s);
      last.set(s, i);
      return i;
    } catch {
      return last.get(s) ?? null;
    }
  };

  // Per second: acknowledged bytes, mean RTT and retransmissions of all flows.
  const rtts: number[] = [];
  let prevAcked = 0;
  let prevRetrans = 0;
  const tick = setInterval(() => {
    const infos = sockets.map(info).filter((i): i is TcpInfo => i !== null);
    const acked = infos.reduce((a, i) => a + i.bytesAcked, 0);
    const retrans = infos.reduce((a, i) => a + i.totalRetrans, 0);
    const rtt = infos.reduce((a, i) => a + i.rttUs, 0) / Math.max(infos.length, 1) / 1000;
    rtts.push(rtt);
    print({ event: 'tick', atMs: Math.round(performance.now() - startedAt), goodputBytesPerS: acked - prevAcked, carriers: flows, rttMs: +rtt.toFixed(2), retransSegments: retrans - prevRetrans });
    prevAcked = acked;
    prevRetrans = retrans;
  }, TICK_MS);

  // Each flow writes as fast as it drains until the deadline.
  await Promise.all(sockets.map((sock) => new Promise<void>((resolve) => {
    const pump = (): void => {
      while (performance.now() < until) {
        if (!sock.write(chunk)) return void sock.once('drain', pump);
      }
      resolve();
    };
    sock.on('error', () => resolve());
    pump();
  })));
  clearInterval(tick);
  const infos = sockets.map(info).filter((i): i is TcpInfo => i !== null);
  const elapsed = (performance.now() - startedAt) / 1000;
  print({
    event: 'summary', seconds: elapsed, ackedBytes: infos.reduce((a, i) => a + i.bytesAcked, 0),
    meanRttMs: rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : 0,
    retransSegments: infos.reduce((a, i) => a + i.totalRetrans, 0), cpuSeconds: cpuSeconds() - cpu0,
  });
  for (const s of sockets) s.destroy();
  process.exit(0);
}

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'sink') sink(Number(rest[0]));
else if (mode === 'source') {
  source(rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3]), rest[4] ?? 'cubic').catch((err: Error) => {
    process.stderr.write(`tcp-flows source: ${err.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write(`tcp-flows: unknown mode '${mode}' (sink|source)\n`);
  process.exit(2);
}
