// The short chaos soak: objects and pg-wal streams under load (tree churn,
// pgbench) on real agents, real etcd clusters and a real PostgreSQL
// primary and standby, while a seeded script kills agents on both sides,
// cuts carriers and restarts etcd members (once two at a time; etcd
// compacting its history all along). At the end
// every stream caught up, the destination tree equals the source, the
// standby's pgbench tables equal the primary's, and the destination's audit
// logs hold every sequence number exactly once; no agent died on its own.
// The long version: `npm run soak -- --minutes 30` (soak/README.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FaultKind } from '../../soak/chaos-plan.ts';
import { formatSummary } from '../../soak/report.ts';
import { runSoak } from '../../soak/soak.ts';

/** Fault kinds of the short soak: every kind the harness injects. */
const SOAK_TEST_FAULTS: FaultKind[] = ['kill', 'carrier', 'etcd', 'disk'];
/** Chaos phase of the short soak, ms: room for the first round of every kind and usually the quorum loss. */
const CHAOS_MS = 50_000;
/** Events at most: the first round holds every kind once, then two more. */
const MAX_EVENTS = 6;
/** etcd compacts its history every 2 s, as production clusters do periodically: watches that resume after a member restart meet compacted revisions. */
const ETCD_COMPACTION = '2s';

test('chaos soak (short): kills, carrier cuts, etcd restarts and a full sink disk under load; caught up, nothing lost, nothing applied twice', { timeout: 400_000 }, async () => {
  const report = await runSoak({ chaosMs: CHAOS_MS, seed: 1, faults: SOAK_TEST_FAULTS, maxEvents: MAX_EVENTS, etcdCompaction: ETCD_COMPACTION, log: (line) => console.log(line) });
  const summary = formatSummary(report);
  console.log(summary);

  // The script ran: the first round holds every enabled kind, each event healed.
  const kinds = new Set(report.events.map((e) => e.kind));
  for (const kind of SOAK_TEST_FAULTS) assert.ok(kinds.has(kind), `no ${kind} event was injected\n${summary}`);
  assert.ok(report.load.pgbenchTransactions > 0 && report.load.churn.create > 0, `the load ran\n${summary}`);
  assert.deepEqual(report.failures, [], summary);
  assert.equal(report.verdict, 'pass');
  assert.ok(report.audit !== null && report.audit.treeIdentical && report.audit.tablesIdentical);
  for (const [id, s] of Object.entries(report.audit.streams)) assert.ok(s.applied > 0 && s.problems.length === 0, `${id}: ${s.problems.join('; ')}`);
});
