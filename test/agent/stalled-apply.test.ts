// A destination whose apply stalls keeps the source bounded, with delivery
// acknowledgements on: two real agents in this process over real TLS
// sockets, the destination's sink wrapped by the test so its apply waits on
// a gate (fault injection passed in, never read from the environment).
// While the apply is stalled the source keeps at most the hold the
// destination announced (2 x linkWindow) not yet durable, delivered or not,
// the destination never cuts it off for exceeding its pending bound, and
// once the gate opens the tree completes identical.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { writeTwoRegion } from '../../src/cli/two-region.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import type { Sink } from '../../src/streams/stream.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { applyWrappedSink } from '../helpers/apply-wrapped-sink.ts';

const MiB = 1024 * 1024;
const LINK_WINDOW = 2 * MiB;
/** What the destination announces it holds: 2 x linkWindow. */
const HOLD = 2 * LINK_WINDOW;
/** Frames applied before the gate closes. */
const APPLIED_BEFORE_STALL = 3;
/** Samples of the source's bytes not yet durable while stalled, and their spacing. */
const STALL_SAMPLES = 20;
const STALL_SAMPLE_MS = 100;

async function metric(agent: Agent, name: string): Promise<number> {
  const m = agent.metrics.registry.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.reduce((sum, v) => sum + v.value, 0);
}

test('a stalled apply: the source keeps at most the announced hold not durable, is never cut off, and completes once apply resumes', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-stall-'));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(dst, { recursive: true });
  await generateSampleTree(src, { totalBytes: 24 * MiB, largestBytes: 8 * MiB, seed: 5 });
  const setup = await writeTwoRegion({ dir, sourcePath: src, destPath: dst, carriers: 2, level: -1, chunk: '256KiB', amstExtra: `  linkWindow: 2MiB\n  carrierWindow: 512KiB\n  maxFrame: 1MiB\n  adaptive: false\n` });
  let applied = 0;
  let open: () => void = () => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  const wrapSink = (inner: Sink): Sink => applyWrappedSink(inner, async (apply, seq, meta, data) => {
    if (++applied > APPLIED_BEFORE_STALL) await gate;
    return apply(seq, meta, data);
  });
  const logger = pino({ level: 'silent' });
  const dest = await Agent.start(await loadConfig(setup.destConfig), { logger, wrapSink });
  const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger });
  try {
    // Stalled: frames are delivered (held at the destination) beyond the link window, up to the hold.
    await waitFor('frames delivered and held', async () => (await metric(source, 'dwcp_link_delivered_not_durable_bytes')) > LINK_WINDOW / 2, 120_000, 50);
    let most = 0;
    for (let i = 0; i < STALL_SAMPLES; i++) {
      const notDurable = (await metric(source, 'dwcp_link_delivered_not_durable_bytes')) + (await metric(source, 'dwcp_link_inflight_bytes'));
      most = Math.max(most, notDurable);
      await sleep(STALL_SAMPLE_MS);
    }
    assert.ok(most <= HOLD, `the source kept ${most} bytes not durable, above the ${HOLD}-byte hold`);
    assert.ok(most > LINK_WINDOW, `delivery let more than the link window wait at the destination (${most})`);
    assert.equal(await metric(dest, 'dwcp_protocol_errors_total'), 0, 'the destination never cut the source off');
    assert.ok(applied <= APPLIED_BEFORE_STALL + 1, `nothing applied past the gate (${applied})`);
    // The apply resumes: everything arrives.
    open();
    await waitFor('in sync', async () => {
      const s = source.status().senders;
      return s.length === 1 && s[0].progress?.inSync === true && s[0].durableSeq === s[0].sentSeq && s[0].durableSeq > 0;
    }, 240_000, 100);
    assert.deepEqual((await compareTrees(src, dst)).differences, []);
  } finally {
    open();
    await Promise.allSettled([source.stop(), dest.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
});
