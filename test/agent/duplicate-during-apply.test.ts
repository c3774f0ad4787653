// A copy of a frame that arrives while the receiver is applying that frame
// (a hedge's second copy, a frame moved to a joining carrier) is a
// duplicate: dropped and reported delivered again. It used to be held
// again: out of pending and not yet applied, the frame matched neither
// duplicate rule, so the copy stayed in pending, never applied nor freed,
// until its bytes pushed the pending bound over and the receiver cut an
// honest source off ("peer has ... bytes of unapplied frames in flight",
// seen twice in ~40 loopback bench runs on a loaded machine).
//
// The receiver is real (HDE pool, embedded consensus store); the link is a
// FAKE object that records what the receiver sends and whether it closed
// the link, and the sink is a stub whose apply waits on a gate.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Metrics } from '../../src/agent/metrics.ts';
import { StreamReceiver } from '../../src/agent/stream-receiver.ts';
import { EmbeddedStore } from '../../src/consensus/embedded-store.ts';
import { HdePool } from '../../src/encoding/hde-pool.ts';
import type { Sink } from '../../src/streams/stream.ts';
import type { InboundLink } from '../../src/transport/inbound-link.ts';
import type { DataFrame, Encoding, Envelope } from '../../src/wire/messages.ts';
import { waitFor } from '../helpers/agent-process.ts';

const FRAME_BYTES = 64 * 1024;
const FRAMES = 8;

test('a copy of the frame being applied is a duplicate: never held again, the source never cut off', { timeout: 60_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-dup-apply-'));
  const store = await EmbeddedStore.open(join(dir, 'consensus.log'));
  const pool = new HdePool(1);
  const metrics = new Metrics();

  // FAKE link: what the receiver sends, whether it closed the link.
  const sent: Envelope[] = [];
  let closed: string | null = null;
  const link = {
    peerNode: 'eu-west-node-1',
    delivered: () => undefined,
    send: (envelope: Envelope) => (sent.push(envelope), true),
    close: (reason: string) => (closed = reason),
  } as unknown as InboundLink;

  // Stub sink: each apply waits until the test lets it finish.
  const applied: number[] = [];
  let applying: number | null = null;
  let finish: () => void = () => undefined;
  const sink: Sink = {
    streamId: 's',
    kind: 'objects',
    recover: async () => new Uint8Array(0),
    apply: async (seq) => {
      applying = seq;
      await new Promise<void>((resolve) => (finish = resolve));
      applied.push(seq);
      applying = null;
    },
    flush: async () => new Uint8Array(0),
    close: async () => undefined,
  };
  // Room for three frames: a fourth held copy would be cut off.
  const receiver = new StreamReceiver({
    streamId: 's', kind: 'objects', sink, store, checkpointKey: '/dwcp/test/checkpoints/s', pool,
    checkpointIntervalMs: 60_000, checkpointBytes: 1 << 30, maxPendingBytes: 3 * FRAME_BYTES + 1024,
    maxFrameBytes: 1 << 20, logger: pino({ level: 'silent' }), metrics,
  });
  try {
    await receiver.open(link, { streamId: 's', kind: 'objects', epoch: 1, sourceRegion: 'eu-west' });
    await waitFor('the resume point', async () => sent.some((e) => e.streamState !== undefined), 10_000, 10);

    for (let seq = 1; seq <= FRAMES; seq++) {
      const data = Buffer.alloc(FRAME_BYTES, seq);
      const enc = await pool.encode(new Uint8Array(0), data, null); // may move data to a worker
      const frame = (): DataFrame => ({ streamId: 's', seq, epoch: 1, encoding: enc.encoding as Encoding, digest: enc.digest, meta: new Uint8Array(0), payload: Buffer.from(enc.payload), rawLength: FRAME_BYTES, resync: false });
      receiver.onData(link, frame());
      await waitFor(`frame ${seq} being applied`, async () => applying === seq, 10_000, 5);
      // The second copy arrives mid-apply.
      receiver.onData(link, frame());
      finish();
      await waitFor(`frame ${seq} applied`, async () => applied.length === seq, 10_000, 5);
    }

    assert.equal(closed, null, `the receiver cut the source off: ${closed}`);
    assert.deepEqual(applied, Array.from({ length: FRAMES }, (_, i) => i + 1), 'each frame applied once, in order');
    const duplicates = (await metrics.registry.getSingleMetric('dwcp_frames_duplicate_total')!.get()).values.reduce((sum, v) => sum + v.value, 0);
    assert.equal(duplicates, FRAMES, 'every mid-apply copy counted as a duplicate');
  } finally {
    finish();
    await receiver.close();
    await pool.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
