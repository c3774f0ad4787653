// End to end, stage dedup@1 between two real agent processes over TCP+TLS:
// both announce cdc@1 and dedup@1, so a copy of an 8 MiB file already at the
// destination, and a 1 KiB insert at the start of it, cost a few chunks on
// the wire instead of the file; the tree is identical and the audit shows
// every sequence number applied exactly once, also when either agent is
// killed (kill -9) in the middle of a batch of delta transfers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { auditProblems, startFederation } from '../helpers/federation.ts';
import { sleep, waitFor } from '../helpers/agent-process.ts';
import { seededBytes } from '../helpers/seeded-bytes.ts';

const MiB = 1024 * 1024;
/** The sample tree's large file (src/cli/sample-tree.ts). */
const LARGE = 'big/large.bin';
/** Wire bytes a deduped change may cost: a few 256 KiB chunks, the recipe, frame and control overhead. */
const DEDUP_WIRE_BOUND = 2 * MiB;

test('a copied file and an insert at the start of a large file cross as a few chunks between real agents', { timeout: 300_000 }, async (t) => {
  const fed = await startFederation({ totalBytes: 40 * MiB, largestBytes: 8 * MiB });
  try {
    await fed.waitInSync(120_000);
    const large = (await stat(join(fed.sourcePath, LARGE))).size;
    assert.ok(large >= 8 * MiB, `large file is ${large} bytes`);

    /** Apply a change at the source, wait until the destination has it and the source is in sync; the wire bytes it cost. */
    async function change(what: string, apply: () => Promise<void>, arrived: () => Promise<boolean>): Promise<number> {
      const before = await fed.source.metric('dwcp_wire_bytes_sent_total');
      await apply();
      await waitFor(what, arrived, 120_000, 250);
      await fed.waitInSync(120_000);
      const cmp = await compareTrees(fed.sourcePath, fed.destPath);
      assert.deepEqual(cmp.differences, [], what);
      return (await fed.source.metric('dwcp_wire_bytes_sent_total')) - before;
    }
    const sizeAt = async (path: string): Promise<number> => (await stat(join(fed.destPath, path)).catch(() => null))?.size ?? -1;

    // A copy of a file the destination holds: a recipe of held chunks.
    const copied = await change('copy arrives', () => copyFile(join(fed.sourcePath, LARGE), join(fed.sourcePath, 'copy.bin')), async () => (await sizeAt('copy.bin')) === large);
    t.diagnostic(`copy of ${large} bytes: ${copied} wire bytes`);
    assert.ok(copied < DEDUP_WIRE_BOUND, `copy of ${large} bytes cost ${copied} wire bytes`);

    // 1 KiB inserted at the start: the chunks around the edit.
    const edited = Buffer.concat([Buffer.alloc(1024, 7), await readFile(join(fed.sourcePath, LARGE))]);
    const inserted = await change('insert arrives', () => writeFile(join(fed.sourcePath, LARGE), edited), async () => (await sizeAt(LARGE)) === edited.length);
    t.diagnostic(`1 KiB insert into ${edited.length} bytes: ${inserted} wire bytes`);
    assert.ok(inserted < DEDUP_WIRE_BOUND, `insert into ${edited.length} bytes cost ${inserted} wire bytes`);

    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
    assert.equal(await fed.dest.metric('dwcp_verify_failures_total'), 0);
  } finally {
    await fed.cleanup();
  }
});

test('kill -9 of either agent in the middle of delta transfers: completes identical, nothing applied twice', { timeout: 400_000 }, async (t) => {
  const fed = await startFederation({ totalBytes: 40 * MiB, largestBytes: 8 * MiB });
  try {
    await fed.waitInSync(120_000);
    const large = await readFile(join(fed.sourcePath, LARGE));
    const arrivedCount = async (names: string[]): Promise<number> => {
      let n = 0;
      for (const name of names) if ((await stat(join(fed.destPath, name)).catch(() => null))?.size === large.length) n++;
      return n;
    };

    // Batches of files half held (the large file's first half) and half new: chunk data plus a recipe each.
    for (const [round, victim] of [[1, fed.dest], [2, fed.source]] as const) {
      const names = Array.from({ length: 8 }, (_, i) => `delta-${round}-${i}.bin`);
      for (const [i, name] of names.entries()) {
        await writeFile(join(fed.sourcePath, name), Buffer.concat([large.subarray(0, large.length / 2), seededBytes(large.length / 2, 100 * round + i)]));
      }
      await waitFor(`round ${round}: some delta files arrive`, async () => (await arrivedCount(names)) >= 2, 120_000, 50);
      t.diagnostic(`round ${round}: ${await arrivedCount(names)} of ${names.length} files there when the ${victim === fed.dest ? 'destination' : 'source'} is killed`);
      await victim.kill9();
      await sleep(500);
      await victim.start();
      await waitFor(`round ${round}: every delta file arrives`, async () => (await arrivedCount(names)) === names.length, 180_000, 250);
      await fed.waitInSync(180_000);
      const cmp = await compareTrees(fed.sourcePath, fed.destPath);
      assert.deepEqual(cmp.differences, [], `round ${round}`);
    }
    assert.deepEqual(auditProblems(await fed.auditSeqs()), []);
  } finally {
    await fed.cleanup();
  }
});
