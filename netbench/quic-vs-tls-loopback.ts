// One QUIC carrier against one TLS carrier on loopback, in one process and
// one run: goodput of the same bytes (DataFrames, sent with backpressure as
// the link does) and the CPU seconds of both ends together (process CPU,
// the QUIC library's worker threads included). A rough figure for the
// receive- and send-side cost of each carrier kind, not a WAN benchmark.
//
//   node netbench/quic-vs-tls-loopback.ts [MiB]        (default 256)

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki } from '../src/cli/dev-pki.ts';
import { QuicTransport } from '../src/transport/quic/quic-transport.ts';
import { TlsTransport } from '../src/transport/tls-transport.ts';
import { frameEnvelope } from '../src/transport/envelope-framing.ts';
import type { Carrier } from '../src/transport/carrier.ts';
import type { TlsMaterial, Transport } from '../src/transport/transport.ts';
import { Encoding } from '../src/wire/messages.ts';

const MiB = 1024 * 1024;
/** Payload bytes per frame. */
const FRAME_PAYLOAD_BYTES = 256 * 1024;
/** Bytes a sender lets queue before it waits for drain. */
const SEND_QUEUE_BYTES = 8 * MiB;
/** Largest frame accepted. */
const MAX_FRAME_BYTES = 4 * MiB;
/** Handshake time allowed, ms. */
const HANDSHAKE_MS = 10_000;

const totalBytes = Number(process.argv[2] ?? 256) * MiB;
const frames = Math.ceil(totalBytes / FRAME_PAYLOAD_BYTES);
const payload = Buffer.alloc(FRAME_PAYLOAD_BYTES, 0x5a);
const framed = (seq: number): Buffer => frameEnvelope({ data: { streamId: 's', seq, epoch: 1, encoding: Encoding.RAW, digest: Buffer.alloc(32), meta: Buffer.alloc(0), payload, rawLength: payload.length, resync: false } });
const identity = (region: string, nodeId: string) => ({ federation: 'bench', region, nodeId, capabilities: [] });

// Send every frame over `client`; resolve when `server` has received the last one.
async function pump(client: Carrier, server: Carrier): Promise<{ seconds: number; cpuSeconds: number }> {
  const start = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  let received = 0;
  const done = new Promise<void>((resolve, reject) => server.attach({
    onMessage(envelope) {
      if (envelope.data?.seq !== received) reject(new Error(`frame ${received} arrived as ${envelope.data?.seq}`));
      if (++received === frames) resolve();
    },
    onClose: (info) => reject(new Error(`server carrier closed: ${info.reason}`)),
  }));
  client.attach({ onMessage: () => {}, onClose: () => {} });
  for (let seq = 0; seq < frames; seq++) {
    client.write(framed(seq));
    if (client.queuedBytes > SEND_QUEUE_BYTES) await client.drained();
  }
  await done;
  const used = process.cpuUsage(cpu);
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, cpuSeconds: (used.user + used.system) / 1e6 };
}

// One carrier pair of `transport` on loopback, then the pump.
async function over(transport: Transport, a: TlsMaterial, b: TlsMaterial): Promise<{ seconds: number; cpuSeconds: number }> {
  let accepted!: (c: Carrier) => void;
  const serverCarrier = new Promise<Carrier>((r) => { accepted = r; });
  const server = await transport.listen({ host: '127.0.0.1', port: 0, tls: a, identity: identity('a', 'na'), maxFrameBytes: MAX_FRAME_BYTES, handshakeTimeoutMs: HANDSHAKE_MS, admit: () => null, onCarrier: (c) => accepted(c), onRefused: (r) => console.error(`${transport.kind} refused:`, r) });
  const { carrier } = await transport.dial({ endpoint: { kind: transport.kind, host: '127.0.0.1', port: server.port }, tls: b, identity: identity('b', 'nb'), peerRegion: 'a', linkId: 'l', index: 0, maxFrameBytes: MAX_FRAME_BYTES, timeoutMs: HANDSHAKE_MS });
  const result = await pump(carrier, await serverCarrier);
  carrier.close('done');
  await server.close();
  return result;
}

const dir = await mkdtemp(join(tmpdir(), 'dwcp-quic-bench-'));
try {
  const certs = await createDevPki(dir, { a: { federation: 'bench', region: 'a', node: 'na' }, b: { federation: 'bench', region: 'b', node: 'nb' } });
  const material = async (n: 'a' | 'b'): Promise<TlsMaterial> => ({ ca: await readFile(certs[n].caFile), cert: await readFile(certs[n].certFile), key: await readFile(certs[n].keyFile) });
  const [a, b] = [await material('a'), await material('b')];
  const rows: Array<[string, { seconds: number; cpuSeconds: number }]> = [['tls', await over(new TlsTransport(), a, b)], ['quic', await over(new QuicTransport(), a, b)]];
  console.log(`| carrier | MiB | seconds | goodput MiB/s | CPU s (both ends) | CPU s per GiB |`);
  console.log(`|---|---|---|---|---|---|`);
  for (const [kind, r] of rows) {
    const mib = (frames * FRAME_PAYLOAD_BYTES) / MiB;
    console.log(`| ${kind} | ${mib} | ${r.seconds.toFixed(2)} | ${(mib / r.seconds).toFixed(1)} | ${r.cpuSeconds.toFixed(2)} | ${((r.cpuSeconds * 1024) / mib).toFixed(1)} |`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
