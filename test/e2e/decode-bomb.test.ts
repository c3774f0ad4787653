// Compressed bombs from a federation member: data frames of 64 MiB of zeros
// that compress to about 2 KiB each, with seq 1 withheld so none can be
// applied. The receiver holds them as they came off the wire and decodes
// only what its apply loop reaches next, so its memory stays under a stated
// bound (on the base commit 24 such frames grew it by 1.4 GiB); a peer that
// keeps sending past the pending window is cut off with a logged reason.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { FEDERATION, nodeIdOf, type TwoRegion } from '../../src/cli/two-region.ts';
import { dialCarrier, type TlsMaterial } from '../../src/transport/tls-transport.ts';
import { objectOpCodec, type Envelope } from '../../src/wire/messages.ts';
import { HdePool } from '../../src/encoding/hde-pool.ts';
import { startLoneDestination, type LoneDestination } from '../helpers/lone-destination.ts';
import { type AgentProcess, waitFor, sleep } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;
/** Plaintext each bomb frame declares (the default maxFrame, so it is admitted). */
const BOMB_PLAINTEXT = 64 * MiB;
/** Link window of the destination's config (the default; maxFrame may not exceed it): its pending window is twice that in wire bytes. */
const LINK_WINDOW_MIB = 64;
/**
 * The stated bound: nothing is decoded while seq 1 is missing, so 24 bombs
 * cost their wire bytes (48 KiB); 256 MiB leaves room for allocator noise
 * and is far below the 24 x 64 MiB they declare.
 */
const RSS_GROWTH_BOUND = 256 * MiB;
/** How long RSS is watched after the bombs arrived: polls x interval. */
const RSS_WATCH_POLLS = 30;
const RSS_WATCH_INTERVAL_MS = 500;
/** At the cut-off the receiver also holds up to its pending window of wire bytes (2 x linkWindow). */
const RSS_GROWTH_BOUND_AT_CUTOFF = 2 * LINK_WINDOW_MIB * MiB + RSS_GROWTH_BOUND;

let setup: TwoRegion;
let dest: AgentProcess;
let member: TlsMaterial;
let lone: LoneDestination;

before(async () => {
  lone = await startLoneDestination('dwcp-bomb-', `  linkWindow: ${LINK_WINDOW_MIB}MiB\n  maxFrame: 64MiB`);
  ({ setup, dest, member } = lone);
});

after(async () => {
  await lone.close();
});

test('64 MiB-of-zeros frames with seq 1 withheld: receiver RSS stays bounded; past the window the peer is cut off with a reason', { timeout: 180_000 }, async () => {
  // One bomb, encoded once: a put of 64 MiB of zeros.
  const pool = new HdePool(1);
  const meta = Buffer.from(objectOpCodec.encode({ put: { path: 'bomb.bin', version: { size: BOMB_PLAINTEXT, mtimeUs: 1_700_000_000_000_000, mode: 0o644 }, offset: 0 } }));
  const bomb = await pool.encode(meta, Buffer.alloc(BOMB_PLAINTEXT), 3);
  await pool.close();
  assert.ok(bomb.payload.length < 64 * 1024, `the bomb compresses to ${bomb.payload.length} bytes`);

  const { carrier } = await dialCarrier({ host: '127.0.0.1', port: setup.ports.dest, tls: member, peerRegion: 'us-east', identity: { federation: FEDERATION, region: 'eu-west', nodeId: nodeIdOf('eu-west'), capabilities: [] }, linkId: 'bomb-link', index: 0, maxFrameBytes: 1 << 20 });
  const got: Envelope[] = [];
  let closed = false;
  carrier.attach({ onMessage: (e) => got.push(e), onClose: () => (closed = true) });
  carrier.send({ streamOpen: { streamId: 'sample', kind: 'objects', epoch: 1, sourceRegion: 'eu-west' } });
  await waitFor('stream state', async () => got.some((e) => e.streamState), 10_000, 50);
  const state = got.find((e) => e.streamState)!.streamState!;
  assert.equal(state.refusal, '');
  const base = await dest.rssBytes();
  const frame = (seq: number): Envelope => ({ data: { streamId: 'sample', seq, epoch: 1, encoding: bomb.encoding as 0 | 1 | 2, digest: bomb.digest, meta, payload: bomb.payload, rawLength: BOMB_PLAINTEXT, resync: false } });

  // 24 bombs after a withheld seq 1: nothing may be decoded.
  const first = state.durableSeq + 2;
  const wireBefore = await dest.metric('dwcp_wire_bytes_received_total');
  for (let seq = first; seq < first + 24; seq++) carrier.send(frame(seq));
  await waitFor('the receiver read the 24 bombs', async () => (await dest.metric('dwcp_wire_bytes_received_total')) - wireBefore >= 24 * bomb.payload.length, 30_000, 100);
  // Watch RSS for a while: a receiver that decodes them takes seconds to grow.
  let grown = 0;
  for (let i = 0; i < RSS_WATCH_POLLS; i++) {
    grown = Math.max(grown, (await dest.rssBytes()) - base);
    if (grown >= RSS_GROWTH_BOUND) break;
    await sleep(RSS_WATCH_INTERVAL_MS);
  }
  assert.ok(grown < RSS_GROWTH_BOUND, `RSS grew by ${grown} bytes after 24 bomb frames (bound ${RSS_GROWTH_BOUND})`);
  assert.equal(closed, false, 'within the window the peer is not cut off');

  // Keep going: past the pending window (wire bytes) the peer is cut off.
  for (let seq = first + 24; !closed && seq < first + 24 + (2 * LINK_WINDOW_MIB * MiB) / bomb.payload.length + 1000; seq++) {
    carrier.send(frame(seq));
    if (seq % 256 === 0) await sleep(10);
  }
  await waitFor('a "peer broke the stream protocol" log naming the window', async () => dest.logs.some((l) => l.includes('"msg":"peer broke the stream protocol; closing its link"') && /unapplied frames in flight, over the \d+ window/.test(l)), 30_000, 100);
  await waitFor('the bomber was cut off', async () => closed, 10_000, 50);
  const grownAfter = (await dest.rssBytes()) - base;
  assert.ok(grownAfter < RSS_GROWTH_BOUND_AT_CUTOFF, `RSS grew by ${grownAfter} bytes by the cut-off (bound ${RSS_GROWTH_BOUND_AT_CUTOFF})`);
  assert.equal((await fetch(`http://127.0.0.1:${setup.ports.destHttp}/healthz`)).status, 200, 'the agent still serves');
  assert.ok((await dest.metric('dwcp_protocol_errors_total', 'reason="stream"')) >= 1, 'protocol error counted');
});
