// The measuring parts of the netbench workloads, without a lab: /proc stat
// parsing, the peak-RSS sampler, and the deterministic tree mutation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { cpuSeconds, parseProcStat, PeakRssSampler } from '../../netbench/proc-usage.ts';
import { procCpu } from '../../src/util/proc-stat.ts';
import { mutateTree } from '../../netbench/tree-mutation.ts';
import { generateSampleTree } from '../../src/cli/sample-tree.ts';
import { compareTrees } from '../../src/cli/tree-compare.ts';
import { scanTree } from '../../src/streams/objects/tree-scan.ts';

test('parseProcStat reads utime+stime and the children times after a command name with spaces and parentheses', () => {
  // Fields 14..17 are 250 50 100 100 ticks (CLK_TCK 100 on Linux).
  const line = '4242 (rsync (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 100 100 20 0 1 0 123 4567 89 18446744073709551615';
  const cpu = parseProcStat(line, 4242);
  assert.equal(cpu.selfSeconds, 3);
  assert.equal(cpu.withChildrenSeconds, 5);
  assert.equal(cpu.systemSeconds, 1.5);
  assert.throws(() => parseProcStat('4242 (x) S 1', 4242), /malformed \/proc\/4242\/stat/);
});

test('cpuSeconds counts children that were waited for; the sampler sees a child\'s peak RSS', async () => {
  // sh burns CPU in a child, waits, then sleeps so its stat can be read.
  const child = spawn('sh', ['-c', 'node -e "const b=Buffer.alloc(64<<20,1);let x=0;for(let i=0;i<3e7;i++)x+=i;setTimeout(()=>b.length,1500);" ; sleep 5'], { stdio: 'ignore' });
  try {
    const sampler = new PeakRssSampler([child.pid!]).start();
    // Until the node child was waited for: its CPU shows in the shell's children times
    // (the shell's own CPU may already be a tick above zero before that).
    let childrenCpu = 0;
    for (let i = 0; i < 100 && childrenCpu === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const cpu = await procCpu(child.pid!);
      childrenCpu = cpu.withChildrenSeconds - cpu.selfSeconds;
    }
    assert.ok(childrenCpu > 0, 'child cpu counted in the parent');
    assert.ok((await cpuSeconds(child.pid!)) >= childrenCpu, 'cpuSeconds includes the waited-for child');
    assert.ok((await sampler.stop()) >= 64 * 2 ** 20, 'peak rss of the node child');
  } finally {
    child.kill('SIGKILL');
  }
});

test('mutateTree changes, adds and deletes the requested shares, the same way for the same seed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-mutation-'));
  try {
    for (const name of ['a', 'b']) await generateSampleTree(join(dir, name), { totalBytes: 4 * 2 ** 20, largeFiles: 3, smallShare: 0.5 });
    const before = (await scanTree(join(dir, 'a'))).entries.filter((e) => !e.directory);
    const options = { changedShare: 0.1, addedShare: 0.05, deletedShare: 0.05, changeBytes: 4096, seed: 3 };
    const ra = await mutateTree(join(dir, 'a'), options);
    const rb = await mutateTree(join(dir, 'b'), options);
    assert.deepEqual(ra, rb);
    assert.equal(ra.deleted, Math.round(before.length * 0.05));
    assert.equal(ra.added, Math.round(before.length * 0.05));
    assert.ok(ra.changed > 0 && ra.changed <= Math.round(before.length * 0.1), JSON.stringify(ra));
    const after = (await scanTree(join(dir, 'a'))).entries.filter((e) => !e.directory);
    assert.equal(after.length, before.length - ra.deleted + ra.added);
    // Same seed, same bytes (mtimes differ: they are the time of writing).
    const cmp = await compareTrees(join(dir, 'a'), join(dir, 'b'));
    assert.ok(cmp.differences.every((d) => d.startsWith('mtime differs')), cmp.differences.join('; '));
    await assert.rejects(mutateTree(join(dir, 'a'), { ...options, changedShare: 2 }), /changedShare must be within 0\.\.1, got 2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
