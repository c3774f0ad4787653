// record-batch@1 over a real link: two agents in this process over TLS. When
// both announce it, thousands of small files share a few hundred frames;
// when the destination is of a version without it (it does not announce the
// capability), every record goes alone as before; both trees end identical.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent, CAPABILITIES } from '../../src/agent/agent.ts';
import { RECORD_BATCH_CAPABILITY } from '../../src/agent/record-batch.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { writeTwoRegion } from '../../src/cli/two-region.ts';
import { waitFor } from '../helpers/agent-process.ts';

const MiB = 1024 * 1024;

async function replicate(destCapabilities: string[] | undefined): Promise<{ files: number; frames: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-batch-'));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(dst, { recursive: true });
  const tree = await generateSampleTree(src, { totalBytes: 8 * MiB, smallShare: 0.9, seed: 11 });
  const setup = await writeTwoRegion({ dir, sourcePath: src, destPath: dst, carriers: 2 });
  const logger = pino({ level: 'warn' });
  const dest = await Agent.start(await loadConfig(setup.destConfig), { logger, capabilities: destCapabilities });
  const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger });
  try {
    await waitFor('in sync', async () => {
      const s = source.status().senders;
      return s.length === 1 && s[0].progress?.inSync === true && s[0].durableSeq === s[0].sentSeq && s[0].durableSeq > 0;
    }, 120_000, 100);
    const compared = await compareTrees(src, dst);
    assert.ok(compared.identical, `trees differ: ${JSON.stringify(compared).slice(0, 500)}`);
    const frames = (await source.metrics.framesSent.get()).values.reduce((sum, v) => sum + v.value, 0);
    return { files: tree.files, frames };
  } finally {
    await Promise.allSettled([source.stop(), dest.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

test('with record-batch@1 on both ends small files share frames; a destination without it gets one record a frame; both trees identical', { timeout: 300_000 }, async () => {
  const batched = await replicate(undefined);
  assert.ok(batched.files > 200, `the tree has ${batched.files} files`);
  assert.ok(batched.frames < batched.files / 2, `${batched.frames} frames for ${batched.files} files with batching`);
  const older = await replicate(CAPABILITIES.filter((c) => c !== RECORD_BATCH_CAPABILITY));
  assert.ok(older.frames >= older.files, `${older.frames} frames for ${older.files} files without batching`);
});
