// What a soak run found: the events with their recovery times, the agents
// that died on their own, catch-up and audit, and the verdict; printed as
// a summary and written as JSON.

import type { ChaosAction, FaultKind, StreamKind } from './chaos-plan.ts';
import type { Audit, CatchUp } from './audit.ts';
import type { ChurnCounts } from './tree-churn.ts';
import type { UnexpectedExit } from './supervisor.ts';

/** One injected event. */
export interface EventRecord {
  index: number;
  kind: FaultKind;
  action: ChaosAction;
  /** e.g. "kill -9 sender of pg-wal". */
  description: string;
  target: string;
  /** Ms since the run started when the fault began. */
  atMs: number;
  /** How long the fault lasted, ms. */
  faultMs: number;
  /** From the end of the fault until both streams made durable progress again, ms; null when they did not within the bound. */
  recoverMs: number | null;
  /** The same per stream: which one stalled. */
  streamRecoverMs: Record<StreamKind, number | null>;
  note: string;
  /** Set when the harness could not carry the event out. */
  error: string | null;
}

/** Per fault kind: how many and how long recovery took. */
export interface KindSummary {
  count: number;
  recovered: number;
  recoverMsMax: number | null;
  recoverMsMean: number | null;
}

/** The whole run. */
export interface SoakReport {
  seed: number;
  faults: FaultKind[];
  startedAt: string;
  /** Setup until the chaos began, ms. */
  setupMs: number;
  /** Length of the chaos phase, ms. */
  chaosMs: number;
  totalMs: number;
  events: EventRecord[];
  byKind: Partial<Record<FaultKind, KindSummary>>;
  unexpectedExits: UnexpectedExit[];
  load: { churn: ChurnCounts; pgbenchTransactions: number; errors: string[] };
  catchUp: CatchUp | null;
  audit: Audit | null;
  /** The sink tmpfs at the end (the WAL spool keeps every segment, so it grows with the run). */
  sinkDisk: { sizeBytes: number; usedBytes: number } | null;
  /** What stopped the run early: an interrupt, a lab part that failed (e.g. the standby did not answer the audit). */
  harnessErrors: string[];
  /** Empty when the run passed. */
  failures: string[];
  verdict: 'pass' | 'fail';
}

/** Count and recovery statistics per kind. */
export function summarizeKinds(events: EventRecord[]): Partial<Record<FaultKind, KindSummary>> {
  const out: Partial<Record<FaultKind, KindSummary>> = {};
  for (const e of events) {
    const s = (out[e.kind] ??= { count: 0, recovered: 0, recoverMsMax: null, recoverMsMean: null });
    s.count++;
    if (e.recoverMs === null) continue;
    s.recoverMsMean = ((s.recoverMsMean ?? 0) * s.recovered + e.recoverMs) / (s.recovered + 1);
    s.recovered++;
    s.recoverMsMax = Math.max(s.recoverMsMax ?? 0, e.recoverMs);
  }
  for (const s of Object.values(out)) if (s.recoverMsMean !== null) s.recoverMsMean = Math.round(s.recoverMsMean);
  return out;
}

/** Everything that makes the run fail, in words. */
export function failuresOf(report: Omit<SoakReport, 'failures' | 'verdict'>): string[] {
  const failures: string[] = [];
  for (const e of report.events) {
    if (e.error !== null) failures.push(`event ${e.index} (${e.description}): ${e.error}`);
    else if (e.recoverMs === null) {
      const stalled = Object.entries(e.streamRecoverMs).filter(([, v]) => v === null).map(([k]) => k);
      failures.push(`event ${e.index} (${e.description}): ${stalled.join(' and ')} made no durable progress again`);
    }
  }
  for (const x of report.unexpectedExits) failures.push(`agent ${x.agent} exited on its own (${x.status}) at ${x.atMs} ms during ${x.duringEvent}`);
  for (const err of report.load.errors) failures.push(`load: ${err}`);
  for (const err of report.harnessErrors) failures.push(`harness: ${err}`);
  if (report.catchUp === null) failures.push('catch-up not reached (run aborted or failed before)');
  else failures.push(...report.catchUp.problems);
  if (report.audit === null) failures.push('audit not run');
  else {
    const a = report.audit;
    for (const d of a.treeDifferences) failures.push(`tree: ${d}`);
    for (const d of a.tableDifferences) failures.push(`table: ${d}`);
    for (const [id, s] of Object.entries(a.streams)) for (const p of s.problems) failures.push(`audit ${id}: ${p}`);
    for (const h of a.halted) failures.push(`halted: ${h}`);
  }
  return failures;
}

/** The human summary. */
export function formatSummary(r: SoakReport): string {
  const lines: string[] = [];
  const ms = (v: number | null): string => (v === null ? '-' : `${v}`);
  lines.push(`soak: seed ${r.seed}, faults ${r.faults.join(',')}, setup ${r.setupMs} ms, chaos ${r.chaosMs} ms, total ${r.totalMs} ms`);
  lines.push('');
  lines.push('  #  kind     event                                             target                     fault ms  recover ms  note');
  for (const e of r.events) {
    lines.push(`${String(e.index).padStart(3)}  ${e.kind.padEnd(7)}  ${e.description.padEnd(48)}  ${e.target.padEnd(25)}  ${String(e.faultMs).padStart(8)}  ${ms(e.recoverMs).padStart(10)}  ${e.error ?? e.note}${e.recoverMs === null ? ` (objects ${ms(e.streamRecoverMs.objects)}, pg-wal ${ms(e.streamRecoverMs['pg-wal'])})` : ''}`);
  }
  lines.push('');
  lines.push('events by kind:');
  for (const [kind, s] of Object.entries(r.byKind)) {
    lines.push(`  ${kind.padEnd(8)} ${s.count} injected, ${s.recovered} recovered, recovery mean ${ms(s.recoverMsMean)} ms, max ${ms(s.recoverMsMax)} ms`);
  }
  const c = r.load.churn;
  lines.push(`load: tree churn ${c.create} creates, ${c.rewrite} rewrites, ${c.rename} renames, ${c.delete} deletes; pgbench ${r.load.pgbenchTransactions} transactions`);
  lines.push(`agents exited on their own: ${r.unexpectedExits.length}`);
  for (const x of r.unexpectedExits) {
    lines.push(`  ${x.atMs} ms ${x.agent} ${x.status} during ${x.duringEvent}${x.restarted ? ' (restarted)' : ''}`);
    for (const l of x.logTail.slice(-3)) lines.push(`    ${l.slice(0, 300)}`);
  }
  if (r.catchUp !== null) {
    const k = r.catchUp;
    const lag = k.objectsLagAtStop === null ? 'no sender' : `${k.objectsLagAtStop.frames} frames unacknowledged, ${k.objectsLagAtStop.filesPending} files pending`;
    lines.push(`lag when the load stopped: objects ${lag}; pg-wal ${k.pgWalLagBytesAtStop} bytes`);
    lines.push(`caught up: ${k.caughtUp ? 'yes' : 'NO'} (objects after ${ms(k.objectsMs)} ms, pg-wal after ${ms(k.pgWalMs)} ms); final lag ${k.caughtUp ? '0' : 'see failures'}`);
  }
  if (r.audit !== null) {
    const a = r.audit;
    lines.push(`audit: tree ${a.treeIdentical ? 'identical' : 'DIFFERS'} (${a.treeFiles} files); pgbench tables ${a.tablesIdentical ? 'identical' : 'DIFFER'}`);
    for (const [id, s] of Object.entries(a.streams)) lines.push(`  ${id}: ${s.applied} frames applied once each, sender durable at ${ms(s.senderDurableSeq)}${s.problems.length > 0 ? `; PROBLEMS: ${s.problems.join('; ')}` : ''}`);
  }
  if (r.sinkDisk !== null) lines.push(`sink disk at the end: ${(r.sinkDisk.usedBytes / 2 ** 20).toFixed(1)} of ${(r.sinkDisk.sizeBytes / 2 ** 20).toFixed(0)} MiB used`);
  lines.push('');
  lines.push(`verdict: ${r.verdict.toUpperCase()}`);
  for (const f of r.failures.slice(0, 30)) lines.push(`  - ${f.slice(0, 400)}`);
  if (r.failures.length > 30) lines.push(`  ... ${r.failures.length - 30} more in the JSON`);
  return lines.join('\n');
}
