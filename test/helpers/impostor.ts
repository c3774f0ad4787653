// A federation member that claims to be someone it may not be: it dials an
// agent with a certificate of the federation CA, says in its Hello which
// region and node it is, and if let in opens a stream at the epoch it likes
// and writes one file into the destination's sink.

import { readFileSync } from 'node:fs';
import { dialCarrier, HandshakeError, type TlsMaterial } from '../../src/transport/tls-transport.ts';
import type { DevCert } from '../../src/cli/dev-pki.ts';
import { objectOpCodec, type Envelope } from '../../src/wire/messages.ts';
import { frameDigest } from '../../src/encoding/digest.ts';
import type { SocketCarrier } from '../../src/transport/socket-carrier.ts';
import { waitFor } from './agent-process.ts';

/** The largest epoch a frame can carry (2^53-1): a sender claiming it would fence every later one. */
export const POISON_EPOCH = Number.MAX_SAFE_INTEGER;

/** What the impostor does. */
export interface ImpostorPlan {
  port: number;
  /** Federation its Hello names (default "demo", the two-region setup's). */
  federation?: string;
  cert: DevCert;
  /** What its Hello claims. */
  region: string;
  nodeId: string;
  /** Region it believes it dials (the server's certificate must name it). */
  peerRegion: string;
  streamId: string;
  epoch: number;
  /** Path of the file it writes into the sink, and its contents. */
  path: string;
  contents: string;
  /** Called once the data frame was sent, with what arrived so far (the test waits here for the destination to react). */
  afterData?: (received: Envelope[]) => Promise<void>;
}

/** How far it got. */
export interface ImpostorOutcome {
  /** The Hello refusal (or the dial error), null when the Hello was accepted. */
  helloRefusal: string | null;
  /** The StreamOpen refusal, null when the stream was opened (or never tried). */
  openRefusal: string | null;
  /** Every message the agent sent after the Hello. */
  received: Envelope[];
}

/** PEM material of a dev certificate. */
export function material(cert: DevCert): TlsMaterial {
  return { ca: readFileSync(cert.caFile), cert: readFileSync(cert.certFile), key: readFileSync(cert.keyFile) };
}

/** Dial, claim, open at plan.epoch, and write one file (a data frame) whatever the answer to the open. */
export async function playImpostor(plan: ImpostorPlan): Promise<ImpostorOutcome> {
  let carrier: SocketCarrier;
  try {
    ({ carrier } = await dialCarrier({
      host: '127.0.0.1',
      port: plan.port,
      tls: material(plan.cert),
      identity: { federation: plan.federation ?? 'demo', region: plan.region, nodeId: plan.nodeId, capabilities: ['objects', 'pg-wal', 'zstd', 'sha256-chain'] },
      peerRegion: plan.peerRegion,
      linkId: `impostor-${Math.random().toString(36).slice(2)}`,
      index: 0,
      maxFrameBytes: 1 << 20,
      timeoutMs: 10_000,
    }));
  } catch (err) {
    if (err instanceof HandshakeError) return { helloRefusal: err.message, openRefusal: null, received: [] };
    throw err;
  }
  const received: Envelope[] = [];
  carrier.attach({ onMessage: (e) => received.push(e), onClose: () => {} });
  try {
    carrier.send({ streamOpen: { streamId: plan.streamId, kind: 'objects', epoch: plan.epoch, sourceRegion: plan.region } });
    await waitFor('an answer to the StreamOpen', async () => received.some((e) => e.streamState && !e.streamState.more), 15_000, 50);
    const state = received.find((e) => e.streamState)!.streamState!;
    // Write the file whatever the answer: a refused open must also drop data.
    const meta = Buffer.from(objectOpCodec.encode({ put: { path: plan.path, version: { size: Buffer.byteLength(plan.contents), mtimeUs: 1_700_000_000_000_000, mode: 0o644 }, offset: 0 } }));
    const data = Buffer.from(plan.contents);
    const seq = state.durableSeq + 1;
    carrier.send({ data: { streamId: plan.streamId, seq, epoch: plan.epoch, encoding: 0, digest: frameDigest(meta, data), meta, payload: data, rawLength: data.length, resync: false } });
    await plan.afterData?.(received);
    return { helloRefusal: null, openRefusal: state.refusal === '' ? null : state.refusal, received };
  } finally {
    carrier.close('impostor done');
  }
}
