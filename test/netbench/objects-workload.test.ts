// The objects workload end to end on the emulated WAN (short version of
// `dwcp netbench lab --workload objects`): rsync -a, rsync -az and two DWCP
// agent processes sync the same generated tree, then the same change set.
// Asserts correctness only (identical trees after each phase, counters
// read), never speed. NEEDS ROOT, ip netns, /dev/net/tun, rsync and the
// native build: without them createLab throws saying what is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { METRO } from '../../netbench/lab.ts';
import { runObjectsWorkload } from '../../netbench/objects-workload.ts';

const MiB = 2 ** 20;
/** The host's default congestion control, which a new namespace may always use (see setCongestionControl). */
const HOST_CC = readFileSync('/proc/sys/net/ipv4/tcp_congestion_control', 'utf8').trim() === 'cubic' ? 'cubic' : 'bbr';

test('objects workload: every tool leaves an identical tree after the initial sync and after the changes', async () => {
  const out = await mkdtemp(join(tmpdir(), 'dwcp-objects-workload-'));
  try {
    const result = await runObjectsWorkload({
      name: 'metro', profile: METRO, cc: HOST_CC, sizeBytes: 24 * MiB, out, progress: () => {},
    });
    const label = (r: { tool: string; phase: string }): string => `${r.phase} ${r.tool}`;
    assert.deepEqual(result.rows.map(label).sort(), [
      'incremental dwcp', 'incremental rsync -a', 'incremental rsync -az', 'initial dwcp', 'initial rsync -a', 'initial rsync -az',
    ]);
    // The change set touched all three kinds, so the incremental phase proves updates, additions and deletions.
    assert.ok(result.mutation.changed > 0 && result.mutation.added > 0 && result.mutation.deleted > 0, JSON.stringify(result.mutation));
    for (const r of result.rows) {
      assert.equal(r.identical, true, `${label(r)}: ${r.notes.join('; ')}`);
      assert.ok(r.treeBytes > 0, `${label(r)}: tree bytes`);
      assert.ok(r.cpuSecondsSource >= 0 && r.cpuSecondsDest >= 0, `${label(r)}: cpu`);
      assert.ok(r.peakRssSourceBytes > 0 && r.peakRssDestBytes > 0, `${label(r)}: peak rss`);
    }
    // The link counter sees every tool's initial copy: at least the incompressible half of the tree.
    for (const r of result.rows.filter((x) => x.phase === 'initial')) {
      assert.ok(r.wireBytes > r.treeBytes / 3, `${label(r)}: ${r.wireBytes} wire bytes for ${r.treeBytes}`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
