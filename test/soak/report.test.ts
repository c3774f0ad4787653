// The soak's verdict: a clean run passes; each kind of finding (an agent
// that died on its own, an event that did not heal, a double apply, a tree
// difference, a halted stream, no catch-up) fails it; recovery statistics
// per kind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failuresOf, summarizeKinds, type EventRecord, type SoakReport } from '../../soak/report.ts';

function event(index: number, kind: EventRecord['kind'], recoverMs: number | null): EventRecord {
  return { index, kind, action: { type: 'kill-receiver' }, description: 'kill -9 receiver', target: 'us-east-node-1', atMs: 0, faultMs: 1000, recoverMs, streamRecoverMs: { objects: recoverMs, 'pg-wal': recoverMs === null ? null : 10 }, note: '', error: null };
}

function cleanRun(): Omit<SoakReport, 'failures' | 'verdict'> {
  const events = [event(1, 'kill', 400), event(2, 'etcd', 1200), event(3, 'kill', 800)];
  return {
    seed: 1,
    faults: ['kill', 'etcd'],
    startedAt: '2026-01-01T00:00:00.000Z',
    setupMs: 1,
    chaosMs: 1,
    totalMs: 1,
    events,
    byKind: summarizeKinds(events),
    unexpectedExits: [],
    load: { churn: { create: 1, rewrite: 0, rename: 0, delete: 0 }, pgbenchTransactions: 1, errors: [] },
    catchUp: { caughtUp: true, objectsLagAtStop: { frames: 0, filesPending: 0 }, pgWalLagBytesAtStop: 0, objectsMs: 1, pgWalMs: 1, problems: [] },
    sinkDisk: null,
    harnessErrors: [],
    audit: { treeIdentical: true, treeFiles: 3, treeDifferences: [], tablesIdentical: true, tableDifferences: [], streams: { objs: { applied: 5, senderDurableSeq: 5, problems: [] } }, halted: [] },
  };
}

test('soak verdict: a clean run has no failures', () => {
  assert.deepEqual(failuresOf(cleanRun()), []);
});

test('soak verdict: every kind of finding fails the run', () => {
  const cases: Array<[string, (r: ReturnType<typeof cleanRun>) => void, RegExp]> = [
    ['agent exit', (r) => r.unexpectedExits.push({ atMs: 5, agent: 'us-east-node-1', status: 'code 1', duringEvent: 'event 2 (fill sink disk)', logTail: [], restarted: true }), /exited on its own \(code 1\).*fill sink disk/],
    ['no recovery', (r) => {
      r.events[1].recoverMs = null;
      r.events[1].streamRecoverMs['pg-wal'] = null;
    }, /event 2 .*: pg-wal made no durable progress again/],
    ['injection error', (r) => (r.events[0].error = 'agent did not start'), /event 1 .*agent did not start/],
    ['double apply', (r) => r.audit!.streams.objs.problems.push('seq 3 applied twice'), /audit objs: seq 3 applied twice/],
    ['tree', (r) => r.audit!.treeDifferences.push('missing at destination: a'), /tree: missing at destination: a/],
    ['table', (r) => r.audit!.tableDifferences.push('pgbench_accounts: 1 vs 2'), /table: pgbench_accounts/],
    ['halted', (r) => r.audit!.halted.push('us-east-node-1 receiver objs: sink refused'), /halted: us-east-node-1/],
    ['catch-up', (r) => r.catchUp!.problems.push('pg-wal stream not caught up'), /pg-wal stream not caught up/],
    ['aborted', (r) => (r.catchUp = null), /catch-up not reached/],
    ['load', (r) => r.load.errors.push('pgbench run 3: exited 1'), /load: pgbench run 3/],
    ['harness', (r) => r.harnessErrors.push('run aborted: soak interrupted by SIGINT'), /harness: run aborted/],
  ];
  for (const [name, spoil, expected] of cases) {
    const r = cleanRun();
    spoil(r);
    const failures = failuresOf(r);
    assert.equal(failures.length, 1, `${name}: ${failures.join('; ')}`);
    assert.match(failures[0], expected, name);
  }
});

test('soak summary: count, recovered, mean and max recovery per kind', () => {
  const byKind = summarizeKinds([event(1, 'kill', 400), event(2, 'etcd', null), event(3, 'kill', 801), event(4, 'etcd', 1000)]);
  assert.deepEqual(byKind.kill, { count: 2, recovered: 2, recoverMsMax: 801, recoverMsMean: 601 });
  assert.deepEqual(byKind.etcd, { count: 2, recovered: 1, recoverMsMax: 1000, recoverMsMean: 1000 });
  assert.equal(byKind.disk, undefined);
});
