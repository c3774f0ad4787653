// Stage delta@1 through two real agents (in this process, real TLS sockets,
// the destination's real DirSink and chunk index): after the first sync,
// files edited in their middle cross as PutChunkDelta against the
// destination's older version, and end identical. The destination's sink
// is wrapped by the test only to see which ops it applies (never changing
// them). Fails when the stream receiver drops the delta bases the sink
// offered in its ChunkHave (the source then has no base and sends the
// changed chunks whole).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../src/agent/agent.ts';
import { loadConfig } from '../../src/config/load-config.ts';
import { writeTwoRegion } from '../../src/cli/two-region.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import type { Sink } from '../../src/streams/stream.ts';
import { objectOpCodec } from '../../src/wire/messages.ts';
import { seededBytes } from '../helpers/seeded-bytes.ts';
import { waitFor } from '../helpers/agent-process.ts';
import { applyWrappedSink } from '../helpers/apply-wrapped-sink.ts';

const KiB = 1024;
/** Files edited after the first sync: several chunks each (cdc@1 mean 64 KiB), random so only a delta is small. */
const FILES = 4;
const FILE_BYTES = 384 * KiB;
const EDIT_BYTES = 4 * KiB;

test('files edited after the first sync cross as deltas between two agents and end identical', { timeout: 300_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-agent-delta-'));
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  await mkdir(src, { recursive: true });
  await mkdir(dst, { recursive: true });
  const names = Array.from({ length: FILES }, (_, i) => `edited-${i}.bin`);
  for (const [i, name] of names.entries()) await writeFile(join(src, name), seededBytes(FILE_BYTES, 100 + i));
  const setup = await writeTwoRegion({ dir, sourcePath: src, destPath: dst, carriers: 2, scanInterval: '1s' });

  // Count the ops the destination applies, by kind.
  const applied = new Map<string, number>();
  const wrapSink = (inner: Sink): Sink => applyWrappedSink(inner, (apply, seq, meta, data) => {
    const kind = Object.keys(objectOpCodec.decode(meta)).find((k) => k !== 'toJSON') ?? 'unknown';
    applied.set(kind, (applied.get(kind) ?? 0) + 1);
    return apply(seq, meta, data);
  });
  const logger = pino({ level: 'silent' });
  const dest = await Agent.start(await loadConfig(setup.destConfig), { logger, wrapSink });
  const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger });
  const inSync = async (): Promise<boolean> => {
    const s = source.status().senders;
    return s.length === 1 && s[0].progress?.inSync === true && s[0].durableSeq === s[0].sentSeq && (await compareTrees(src, dst)).identical;
  };
  try {
    await waitFor('first sync', inSync, 120_000, 100);
    applied.clear();

    // Edit each file in its middle, in place.
    for (const [i, name] of names.entries()) {
      const fh = await open(join(src, name), 'r+');
      try {
        await fh.write(seededBytes(EDIT_BYTES, 200 + i), 0, EDIT_BYTES, FILE_BYTES / 2);
      } finally {
        await fh.close();
      }
    }
    await waitFor('edits synced', inSync, 120_000, 100);
    assert.deepEqual((await compareTrees(src, dst)).differences, []);
    assert.equal(applied.get('recipe'), FILES, `each edited file committed by recipe (ops applied: ${JSON.stringify([...applied])})`);
    assert.ok((applied.get('chunkDelta') ?? 0) >= FILES, `each edited file sent its changed chunk as a delta (ops applied: ${JSON.stringify([...applied])})`);
  } finally {
    await Promise.allSettled([source.stop(), dest.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
});
