// A bounded run of every fuzz target inside the test suite: jazzer with a
// fixed seed and a fixed number of executions, starting from the committed
// seed corpus (so every seed is checked against the target's properties,
// then mutations of them). A finding fails the test with its reproducer's
// path and jazzer's report; keep the reproducer in fuzz/regressions/ once
// the bug is fixed. Longer runs: `npm run fuzz -- --target NAME --seconds N`.

import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { DEFAULT_FUZZ_SEED, FUZZ_TARGETS, runFuzzTarget } from '../../fuzz/run.ts';

/** Lines of jazzer's report shown on a finding. */
const REPORT_TAIL_LINES = 40;

for (const [name, target] of Object.entries(FUZZ_TARGETS)) {
  test(`fuzz target ${name}: ${target.testRuns} executions with seed ${DEFAULT_FUZZ_SEED} find nothing`, { timeout: 600_000 }, async () => {
    const result = await runFuzzTarget(name, { runs: target.testRuns });
    const report = result.output.split('\n').filter((line) => !/^#\d+\s+(NEW|REDUCE|pulse)/.test(line)).slice(-REPORT_TAIL_LINES).join('\n');
    assert.equal(result.exitCode, 0, `fuzz target ${name} found a bug; reproducer ${result.reproducer ?? '(not written)'}; replay: node fuzz/run.ts --target ${name} --reproduce ${result.reproducer}\n${report}`);
    // Every execution ran: the seeds loaded and jazzer reached its bound.
    assert.match(result.output, new RegExp(`Done ${target.testRuns} runs`), report);
    rmSync(result.workDir, { recursive: true, force: true });
  });
}
