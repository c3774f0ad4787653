// One end of a QUIC transfer inside a netbench lab namespace, for
// test/netbench/quic-lab.test.ts. Prints JSON lines on stdout.
//
//   sink   --host H --port P --pki DIR --bytes N --carriers C
//          listen as region a; print {event:'listening'}, then once every
//          carrier delivered its share {event:'summary', digests, bytes}
//   source --host H --port P --pki DIR --bytes N --carriers C
//          dial C carriers as region b, send N bytes of pseudo-random
//          DataFrames split over them (each carrier its own in-order
//          sequence), print {event:'summary', digests, bytes}
//
// Each side prints the SHA-256 of the payload bytes per carrier in order,
// so the test can compare what was sent with what arrived.

import { createHash, type Hash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { QuicTransport } from '../../src/transport/quic/quic-transport.ts';
import { frameEnvelope } from '../../src/transport/envelope-framing.ts';
import type { Carrier } from '../../src/transport/carrier.ts';
import type { TlsMaterial } from '../../src/transport/transport.ts';
import { Encoding } from '../../src/wire/messages.ts';
import { LAB_AGENTS } from './quic-fixture.ts';

/** Payload bytes per frame. */
const LAB_FRAME_BYTES = 128 * 1024;
/** Bytes a sender lets queue per carrier before it waits for drain. */
const SEND_QUEUE_BYTES = 4 * 1024 * 1024;
/** Largest frame accepted. */
const MAX_FRAME_BYTES = 1024 * 1024;
/** Handshake time allowed (the lab's RTT and loss slow it), ms. */
const HANDSHAKE_MS = 30_000;
/** How often progress is printed, ms. */
const PROGRESS_MS = 2_000;


const { values, positionals } = parseArgs({ allowPositionals: true, options: { host: { type: 'string' }, port: { type: 'string' }, pki: { type: 'string' }, bytes: { type: 'string' }, carriers: { type: 'string' } } });
const mode = positionals[0];
const host = values.host!;
const port = Number(values.port);
const totalBytes = Number(values.bytes);
const carriers = Number(values.carriers ?? 1);
const framesTotal = Math.ceil(totalBytes / LAB_FRAME_BYTES);

const material = async (name: 'a' | 'b'): Promise<TlsMaterial> => ({
  ca: await readFile(join(values.pki!, 'dwcp-dev-ca.crt')),
  cert: await readFile(join(values.pki!, `${name}.crt`)),
  key: await readFile(join(values.pki!, `${name}.key`)),
});
const identity = (name: 'a' | 'b') => ({ federation: LAB_AGENTS[name].federation, region: LAB_AGENTS[name].region, nodeId: LAB_AGENTS[name].node, capabilities: [] });
const print = (line: Record<string, unknown>): void => { process.stdout.write(JSON.stringify(line) + '\n'); };

// Frame f's payload: deterministic bytes from its number (xorshift), the last frame cut to the total.
function payload(f: number): Buffer {
  const size = Math.min(LAB_FRAME_BYTES, totalBytes - f * LAB_FRAME_BYTES);
  const out = Buffer.allocUnsafe(size);
  let x = (f + 1) * 2654435761 >>> 0;
  for (let i = 0; i + 4 <= size; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  out.fill(0, size - (size % 4));
  return out;
}

// Frames of carrier c: f = c, c + carriers, ...
const framesOf = (c: number): number[] => Array.from({ length: framesTotal }, (_, f) => f).filter((f) => f % carriers === c);

if (mode === 'sink') {
  const transport = new QuicTransport();
  const digests = new Map<number, Hash>();
  const expected = new Map<number, number[]>();
  let bytes = 0;
  let finished = 0;
  let nextIndex = 0;
  const server = await transport.listen({
    host, port, tls: await material('a'), identity: identity('a'), maxFrameBytes: MAX_FRAME_BYTES, handshakeTimeoutMs: HANDSHAKE_MS,
    admit: () => null,
    onRefused: (reason) => print({ event: 'refused', reason }),
    onCarrier(carrier: Carrier) {
      // Carriers are told apart by the order their first frame names.
      let slot = -1;
      carrier.attach({
        onMessage(envelope) {
          const data = envelope.data;
          if (!data) return;
          if (slot < 0) {
            slot = data.seq % carriers;
            expected.set(slot, framesOf(slot));
            digests.set(slot, createHash('sha256'));
            nextIndex++;
          }
          const want = expected.get(slot)!;
          if (want.shift() !== data.seq) print({ event: 'order', carrier: slot, seq: data.seq });
          digests.get(slot)!.update(data.payload);
          bytes += data.payload.length;
          if (want.length === 0 && ++finished === carriers) {
            print({ event: 'summary', bytes, digests: Object.fromEntries([...digests].map(([c, h]) => [c, h.digest('hex')])) });
            void server.close().then(() => process.exit(0));
          }
        },
        onClose: (info) => { if (finished < carriers) print({ event: 'closed', reason: info.reason }); },
      });
    },
  });
  print({ event: 'listening', port: server.port });
  setInterval(() => print({ event: 'progress', bytes, carriers: nextIndex }), PROGRESS_MS).unref();
} else if (mode === 'source') {
  const transport = new QuicTransport();
  const tls = await material('b');
  const dialed = await Promise.all(Array.from({ length: carriers }, (_, c) => transport.dial({
    endpoint: { kind: 'quic', host, port }, tls, identity: identity('b'), peerRegion: 'a', linkId: 'lab', index: c, maxFrameBytes: MAX_FRAME_BYTES, timeoutMs: HANDSHAKE_MS,
  })));
  const digests: Record<number, string> = {};
  const started = Date.now();
  const timer = setInterval(() => print({ event: 'stats', paths: dialed.map((d) => transport.pathStats(d.carrier)) }), PROGRESS_MS);
  timer.unref();
  await Promise.all(dialed.map(async ({ carrier }, c) => {
    carrier.attach({ onMessage: () => {}, onClose: (info) => print({ event: 'closed', carrier: c, reason: info.reason }) });
    const hash = createHash('sha256');
    for (const f of framesOf(c)) {
      const body = payload(f);
      hash.update(body);
      carrier.write(frameEnvelope({ data: { streamId: 'lab', seq: f, epoch: 1, encoding: Encoding.RAW, digest: Buffer.alloc(0), meta: Buffer.alloc(0), payload: body, rawLength: body.length, resync: false } }));
      if (carrier.queuedBytes > SEND_QUEUE_BYTES) await carrier.drained();
    }
    digests[c] = hash.digest('hex');
  }));
  print({ event: 'summary', bytes: totalBytes, digests, sendSeconds: (Date.now() - started) / 1000 });
  // Carriers stay open until the test stops this process: the sink may still be receiving.
} else {
  throw new Error(`quic-lab-runner: mode "${mode}" is not sink or source`);
}
