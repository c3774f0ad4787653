// The end of a soak: with the load stopped, wait until every stream caught
// up, then audit what arrived. Nothing lost: the destination tree is
// identical to the source (content, size, mode, mtime) and every pgbench
// table of the standby has the primary's checksum. Nothing applied twice:
// the destination's audit log of each stream holds 1..n exactly once (the
// receiver rolls its log back to the checkpoint when it recovers, so the
// log is the durable history), and n is the sender's durable position.
// Every stream caught up: no sender or receiver halted.

import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentStatus } from '../src/agent/agent.ts';
import { compareTrees } from '../src/cli/tree-compare.ts';
import { DEST, SOURCE } from '../test/helpers/acp-federation.ts';
import { auditProblems } from '../test/helpers/federation.ts';
import { PGBENCH_TABLES, primaryFlushLsn, replayLsn, spoolFlushLsn, tableChecksum } from '../test/pg-wal-e2e/pg-federation.ts';
import type { StreamKind } from './chaos-plan.ts';
import type { SoakLab } from './lab.ts';

/** Poll interval while waiting for catch-up, ms. */
const POLL_MS = 500;
/** The objects source is taken as caught up only when in sync on two polls this far apart with no new durable frame (a scan interval and a half: the last change was scanned). */
const SETTLE_MS = 1_500;
/** Reads of a stream's audit log and sender position until they agree (the stream may still move on idle WAL). */
const STABLE_READ_ATTEMPTS = 5;

/** Lag when the load stopped and how long catching up took. */
export interface CatchUp {
  caughtUp: boolean;
  /** Objects: frames sent but not durable, and files the source still had to send, when the load stopped. */
  objectsLagAtStop: { frames: number; filesPending: number } | null;
  /** pg-wal: bytes between the primary's flushed WAL end and the destination's durable spool end when the load stopped. */
  pgWalLagBytesAtStop: number;
  objectsMs: number | null;
  pgWalMs: number | null;
  /** Why not caught up. */
  problems: string[];
}

/** The audit's verdict. */
export interface Audit {
  treeIdentical: boolean;
  treeFiles: number;
  treeDifferences: string[];
  tablesIdentical: boolean;
  tableDifferences: string[];
  /** Per stream id: frames in the durable history, and gaps or double applies. */
  streams: Record<string, { applied: number; senderDurableSeq: number | null; problems: string[] }>;
  /** Streams halted at the end (sender or receiver), with the reason. */
  halted: string[];
}

/** Statuses of the running agents of a region (skips agents that do not answer). */
async function statuses(lab: SoakLab, region: string): Promise<AgentStatus[]> {
  const out: AgentStatus[] = [];
  for (const a of lab.fed.agents[region]) {
    if (!a.running) continue;
    const st = await a.status().catch(() => null);
    if (st !== null) out.push(st);
  }
  return out;
}

/** The sender of a stream in the source region, if one runs. */
async function senderStatus(lab: SoakLab, stream: StreamKind): Promise<AgentStatus['senders'][number] | undefined> {
  const id = lab.streamId(stream);
  for (const st of await statuses(lab, SOURCE)) {
    const s = st.senders.find((x) => x.streamId === id);
    if (s !== undefined) return s;
  }
  return undefined;
}

/** Wait (at most timeoutMs) until both streams caught up; the load must have stopped. */
export async function waitCaughtUp(lab: SoakLab, timeoutMs: number, signal: AbortSignal): Promise<CatchUp> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  const { fed } = lab;
  const target = await primaryFlushLsn(fed.primary);
  const objectsAtStop = await senderStatus(lab, 'objects');
  const result: CatchUp = {
    caughtUp: false,
    objectsLagAtStop: objectsAtStop ? { frames: objectsAtStop.sentSeq - objectsAtStop.durableSeq, filesPending: (objectsAtStop.progress?.filesTotal ?? 0) - (objectsAtStop.progress?.filesDone ?? 0) } : null,
    pgWalLagBytesAtStop: Math.max(0, target - (await spoolFlushLsn(fed.spoolDir))),
    objectsMs: null,
    pgWalMs: null,
    problems: [],
  };

  // Objects: in sync, nothing unacknowledged, and still so SETTLE_MS later.
  const objectsSettled = async (): Promise<boolean> => {
    const first = await senderStatus(lab, 'objects');
    if (first?.progress?.inSync !== true || first.sentSeq !== first.durableSeq) return false;
    await sleep(SETTLE_MS);
    const second = await senderStatus(lab, 'objects');
    return second?.progress?.inSync === true && second.durableSeq === first.durableSeq && second.sentSeq === second.durableSeq;
  };
  // pg-wal: the spool and the standby's replay reached the primary's WAL end at stop.
  const walDone = async (): Promise<boolean> => (await spoolFlushLsn(fed.spoolDir)) >= target && (await replayLsn(fed.standby)) >= target;

  while (Date.now() < deadline && !signal.aborted) {
    if (result.objectsMs === null && (await objectsSettled().catch(() => false))) result.objectsMs = Date.now() - started;
    if (result.pgWalMs === null && (await walDone().catch(() => false))) result.pgWalMs = Date.now() - started;
    if (result.objectsMs !== null && result.pgWalMs !== null) {
      result.caughtUp = true;
      return result;
    }
    await sleep(POLL_MS);
  }
  if (result.objectsMs === null) result.problems.push(`objects stream not caught up within ${timeoutMs} ms (sender: ${JSON.stringify(await senderStatus(lab, 'objects').catch(() => undefined)) ?? 'none'})`);
  if (result.pgWalMs === null) {
    const spool = await spoolFlushLsn(fed.spoolDir).catch(() => -1);
    const replay = await replayLsn(fed.standby).catch(() => -1);
    result.problems.push(`pg-wal stream not caught up within ${timeoutMs} ms (primary ${target}, spool ${spool}, standby replay ${replay})`);
  }
  return result;
}

/** Audit trees, tables and the durable histories. */
export async function auditLab(lab: SoakLab): Promise<Audit> {
  const { fed } = lab;
  const tree = await compareTrees(lab.sourcePath, lab.destPath);
  const tableDifferences: string[] = [];
  for (const [table, order] of PGBENCH_TABLES) {
    const [p, s] = await Promise.all([tableChecksum(fed.primary, table, order), tableChecksum(fed.standby, table, order)]);
    if (p !== s) tableDifferences.push(`${table}: primary ${p}, standby ${s}`);
  }
  const streams: Audit['streams'] = {};
  for (const stream of ['objects', 'pg-wal'] as const) {
    const id = lab.streamId(stream);
    // The sender's durable position read before and after the log: WAL the
    // primary writes on its own may move both meanwhile; then read again.
    let seqs: number[] = [];
    let senderDurableSeq: number | null = null;
    for (let attempt = 0; attempt < STABLE_READ_ATTEMPTS; attempt++) {
      const before = (await senderStatus(lab, stream))?.durableSeq ?? null;
      seqs = await fed.auditSeqs(id);
      senderDurableSeq = (await senderStatus(lab, stream))?.durableSeq ?? null;
      if (before === senderDurableSeq && senderDurableSeq === seqs.length) break;
      await sleep(POLL_MS);
    }
    const problems = auditProblems(seqs);
    if (senderDurableSeq === null) problems.push(`no sender of ${id} at the end`);
    else if (senderDurableSeq !== seqs.length) problems.push(`sender durable at seq ${senderDurableSeq}, audit log holds ${seqs.length} frames`);
    if (seqs.length === 0) problems.push(`no applied frame recorded for ${id}`);
    streams[id] = { applied: seqs.length, senderDurableSeq, problems };
  }
  const halted: string[] = [];
  for (const region of [SOURCE, DEST]) {
    for (const st of await statuses(lab, region)) {
      for (const s of st.senders) if (s.halted !== null) halted.push(`${st.nodeId} sender ${s.streamId}: ${s.halted}`);
      for (const r of st.receivers) if (r.halted !== null) halted.push(`${st.nodeId} receiver ${r.streamId}: ${r.halted}`);
    }
  }
  return {
    treeIdentical: tree.identical,
    treeFiles: tree.files,
    treeDifferences: tree.differences,
    tablesIdentical: tableDifferences.length === 0,
    tableDifferences,
    streams,
    halted,
  };
}
