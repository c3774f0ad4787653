// UDP probes for checking an emulated link: round-trip time and one-way loss.
// Run as a script inside a lab namespace; prints one JSON line with results.
//   node udp-probe.ts echo PORT SECONDS            echo datagrams back until SECONDS pass
//   node udp-probe.ts ping HOST PORT COUNT GAP_MS  -> {"sent","received","rttMs":[...]}
//   node udp-probe.ts sink PORT SECONDS            -> {"received","unique"} (stops SECONDS after start)
//   node udp-probe.ts blast HOST PORT COUNT        numbered datagrams, paced in small batches
import dgram from 'node:dgram';
import { setTimeout as sleep } from 'node:timers/promises';

const PING_BYTES = 64;
const BLAST_BYTES = 1000;
const BLAST_BATCH = 50;
const BLAST_BATCH_GAP_MS = 5;
const PING_LATE_MS = 2_000; // replies later than this count as lost
// The default ~200 KiB holds only ~90 datagrams; a busy sink must not drop.
const SINK_RCVBUF_BYTES = 4 * 1024 * 1024;

/** Echo every datagram back to its sender for `seconds`. */
async function echo(port: number, seconds: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, from) => sock.send(msg, from.port, from.address));
  await new Promise<void>((resolve) => sock.bind(port, resolve));
  console.log(JSON.stringify({ event: 'listening', port }));
  await sleep(seconds * 1000);
  sock.close();
}

/** Send `count` pings `gapMs` apart; report each round-trip time in ms. */
async function ping(host: string, port: number, count: number, gapMs: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  const sentAt = new Map<number, bigint>();
  const rttMs: number[] = [];
  sock.on('message', (msg) => {
    const seq = msg.readUInt32BE(0);
    const t0 = sentAt.get(seq);
    if (t0 === undefined) return;
    sentAt.delete(seq);
    rttMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  });
  await new Promise<void>((resolve) => sock.bind(0, resolve));
  for (let seq = 0; seq < count; seq++) {
    const msg = Buffer.alloc(PING_BYTES);
    msg.writeUInt32BE(seq, 0);
    sentAt.set(seq, process.hrtime.bigint());
    sock.send(msg, port, host);
    await sleep(gapMs);
  }
  await sleep(PING_LATE_MS);
  sock.close();
  console.log(JSON.stringify({ sent: count, received: rttMs.length, rttMs }));
}

/** Count numbered datagrams for `seconds`. */
async function sink(port: number, seconds: number): Promise<void> {
  const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: SINK_RCVBUF_BYTES });
  const seen = new Set<number>();
  let received = 0;
  sock.on('message', (msg) => { received++; seen.add(msg.readUInt32BE(0)); });
  await new Promise<void>((resolve) => sock.bind(port, resolve));
  console.log(JSON.stringify({ event: 'listening', port }));
  await sleep(seconds * 1000);
  sock.close();
  console.log(JSON.stringify({ received, unique: seen.size }));
}

/** Send `count` numbered datagrams in paced batches (no sender-side drops). */
async function blast(host: string, port: number, count: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  for (let seq = 0; seq < count; seq++) {
    const msg = Buffer.alloc(BLAST_BYTES);
    msg.writeUInt32BE(seq, 0);
    sock.send(msg, port, host);
    if (seq % BLAST_BATCH === BLAST_BATCH - 1) await sleep(BLAST_BATCH_GAP_MS);
  }
  await sleep(BLAST_BATCH_GAP_MS);
  sock.close();
  console.log(JSON.stringify({ sent: count }));
}

const [mode, ...rest] = process.argv.slice(2);
const num = (i: number): number => Number(rest[i]);
switch (mode) {
  case 'echo': await echo(num(0), num(1)); break;
  case 'ping': await ping(rest[0], num(1), num(2), num(3)); break;
  case 'sink': await sink(num(0), num(1)); break;
  case 'blast': await blast(rest[0], num(1), num(2)); break;
  default:
    console.error(`udp-probe: unknown mode '${mode}' (echo|ping|sink|blast)`);
    process.exitCode = 2;
}
