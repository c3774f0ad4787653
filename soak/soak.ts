// One soak run: start the lab, load it (tree churn, pgbench), play the
// seeded chaos script for a bounded time and count, measure how long each
// fault takes to heal, stop the load, wait for catch-up, audit, and clean
// up every process, file and mount whatever happened (try/finally, plus
// SIGINT/SIGTERM: the first signal aborts the run and cleans up, a second
// exits at once).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentProcess, waitFor } from '../src/cli/agent-child.ts';
import { DEST, SOURCE } from '../test/helpers/acp-federation.ts';
import { auditLab, waitCaughtUp, type Audit, type CatchUp } from './audit.ts';
import { describeAction, planChaos, type FaultKind, type PlannedEvent } from './chaos-plan.ts';
import { inject } from './inject.ts';
import { startSoakLab, type SoakLab } from './lab.ts';
import { startPgLoad, type PgLoad } from './pg-load.ts';
import { failuresOf, summarizeKinds, type EventRecord, type SoakReport } from './report.ts';
import { startSupervisor, type Supervisor } from './supervisor.ts';
import { startTreeChurn, type ChurnCounts, type TreeChurn } from './tree-churn.ts';

/** Options of runSoak. */
export interface SoakOptions {
  /** Length of the chaos phase, ms (setup, catch-up and audit come on top). */
  chaosMs: number;
  seed: number;
  faults: FaultKind[];
  /** Most events to inject (default: one per 5 s of chaos, at least 4). */
  maxEvents?: number;
  /** Size of the sink tmpfs, bytes (default when root 192 MiB + 32 MiB per chaos minute, else 0; 0 keeps the sink on the temp disk, no disk faults). */
  diskBytes?: number;
  /** etcd members compact their history this often, e.g. '5s', as production clusters do (default never). */
  etcdCompaction?: string;
  /** One tree change every this many ms (default 100). */
  churnIntervalMs?: number;
  /** pgbench rate, transactions a second (default 50). */
  pgRate?: number;
  /** Bound on one event's recovery, ms (default 60 s). */
  recoveryTimeoutMs?: number;
  /** Bound on the final catch-up, ms (default 120 s). */
  catchUpTimeoutMs?: number;
  /** Write every agent's log lines here at the end, one file per agent (default: not kept). */
  logDir?: string;
  /** Progress lines (default none). */
  log?: (line: string) => void;
}

/** Default sink tmpfs: a base plus room per chaos minute, since the WAL spool keeps every segment (about 15 MiB a minute at 50 tps measured here). */
const DISK_BASE_BYTES = 192 * 1024 * 1024;
const DISK_BYTES_PER_CHAOS_MINUTE = 32 * 1024 * 1024;
/** One event per this much chaos time when maxEvents is not given, ms. */
const MS_PER_EVENT = 5_000;
/** Fewest events by default. */
const MIN_EVENTS = 4;
/** Poll interval of the recovery check, ms. */
const RECOVERY_POLL_MS = 200;
/** How long the first frames of both streams may take before the chaos starts, ms. */
const WARM_UP_TIMEOUT_MS = 120_000;
/** Attempts to start the lab. */
const LAB_START_ATTEMPTS = 2;
/** pgbench scale of the primary's tables. */
const PGBENCH_SCALE = 1;

/** Run a soak and return its report (it never throws for what it finds; it throws only when the lab does not come up). */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => undefined);
  const startedAt = Date.now();
  const defaultDiskBytes = DISK_BASE_BYTES + Math.ceil(options.chaosMs / 60_000) * DISK_BYTES_PER_CHAOS_MINUTE;
  const diskBytes = options.diskBytes ?? (process.getuid?.() === 0 ? defaultDiskBytes : 0);
  if (options.faults.includes('disk') && diskBytes <= 0) throw new Error('soak: the disk fault needs a sink disk (diskBytes > 0)');
  const maxEvents = options.maxEvents ?? Math.max(MIN_EVENTS, Math.floor(options.chaosMs / MS_PER_EVENT));
  const plan = planChaos({ seed: options.seed, faults: options.faults, maxEvents });

  // Signals: the first aborts the run (cleanup follows in finally), a second exits now.
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) process.exit(130);
    log(`soak: ${signal}: stopping and cleaning up (again to exit at once)`);
    abort.abort(new Error(`soak interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const events: EventRecord[] = [];
  const loadErrors: string[] = [];
  const harnessErrors: string[] = [];
  let lab = null as SoakLab | null;
  let churn: TreeChurn | null = null;
  let load: PgLoad | null = null;
  let supervisor: Supervisor | null = null;
  let currentEvent = 'warm-up';
  let setupMs = 0;
  let chaosMs = 0;
  let catchUp: CatchUp | null = null;
  let audit: Audit | null = null;
  let sinkDisk: SoakReport['sinkDisk'] = null;
  let churnCounts: ChurnCounts = { create: 0, rewrite: 0, rename: 0, delete: 0 };
  let transactions = 0;
  const stopLoad = async (): Promise<void> => {
    if (churn !== null) {
      await churn.stop();
      churnCounts = churn.counts();
    }
    if (load !== null) {
      await load.stop();
      transactions = load.transactions();
    }
    churn = null;
    load = null;
  };
  try {
    // Lab, pgbench tables, then the load and the supervisor.
    log(`soak: starting the lab (seed ${options.seed}, faults ${options.faults.join(',')}, ${plan.length} events planned)`);
    // A second try when the lab does not start: on a shared machine a free
    // port can be taken by another process between its choice and its use.
    for (let attempt = 1; lab === null; attempt++) {
      try {
        lab = await startSoakLab({ seed: options.seed, diskBytes, etcdCompaction: options.etcdCompaction });
      } catch (err) {
        if (attempt >= LAB_START_ATTEMPTS || abort.signal.aborted) throw err;
        log(`soak: lab did not start (${(err as Error).message.split('\n')[0]}); trying again`);
      }
    }
    const running = lab;
    await running.fed.primary.pgbench(['-i', '-s', String(PGBENCH_SCALE), '-q']);
    const onError = (err: Error): void => {
      if (loadErrors.length < 20) loadErrors.push(err.message);
    };
    churn = startTreeChurn(running.sourcePath, { seed: options.seed, intervalMs: options.churnIntervalMs ?? 100, onError });
    load = startPgLoad(running.fed.primary, { seed: options.seed, ratePerSecond: options.pgRate ?? 50, onError });
    const agents = new Map<string, AgentProcess>();
    for (const region of [SOURCE, DEST]) running.fed.agents[region].forEach((a, i) => agents.set(running.fed.specs[region][i].nodeId, a));
    supervisor = startSupervisor(agents, { startedAt, currentEvent: () => currentEvent });
    await waitFor('first durable frames of both streams', async () => (await running.position('objects')) > 0 && (await running.position('pg-wal')) > 0, WARM_UP_TIMEOUT_MS, 250);
    setupMs = Date.now() - startedAt;
    log(`soak: lab up after ${setupMs} ms; chaos for ${options.chaosMs} ms`);

    // The chaos script: one event at a time, each followed by its recovery.
    const chaosStart = Date.now();
    const deadline = chaosStart + options.chaosMs;
    for (const event of plan) {
      if (abort.signal.aborted || Date.now() + event.gapMs >= deadline) break;
      currentEvent = `gap before event ${event.index}`;
      await sleep(event.gapMs, undefined, { signal: abort.signal }).catch(() => undefined);
      if (abort.signal.aborted) break;
      const record = await playEvent(running, event, supervisor, startedAt, options.recoveryTimeoutMs ?? 60_000, abort.signal, (name) => (currentEvent = name));
      events.push(record);
      log(`soak: event ${record.index} ${record.description} on ${record.target}: fault ${record.faultMs} ms, recovered ${record.recoverMs === null ? 'NOT' : `after ${record.recoverMs} ms`}${record.error ? `; error: ${record.error}` : ''}`);
    }
    // Keep loading until the chaos time is up, so short scripts still soak.
    currentEvent = 'load after the last event';
    const rest = deadline - Date.now();
    if (rest > 0) await sleep(rest, undefined, { signal: abort.signal }).catch(() => undefined);
    chaosMs = Date.now() - chaosStart;

    // Stop the load, catch up, audit.
    currentEvent = 'catch-up';
    await stopLoad();
    if (!abort.signal.aborted) {
      log('soak: load stopped; waiting for catch-up');
      catchUp = await waitCaughtUp(running, options.catchUpTimeoutMs ?? 120_000, abort.signal);
      currentEvent = 'audit';
      log('soak: auditing');
      audit = await auditLab(running);
      sinkDisk = (await running.disk?.usage()) ?? null;
    }
  } catch (err) {
    // A lab that never came up has nothing to report; past that, the error is a finding of the run.
    if (setupMs === 0) throw err;
    harnessErrors.push((err as Error).message);
  } finally {
    currentEvent = 'cleanup';
    await supervisor?.stop();
    await stopLoad().catch(() => undefined);
    if (lab !== null && options.logDir !== undefined) await keepLogs(lab, options.logDir).catch((err: Error) => log(`soak: keep logs: ${err.message}`));
    await lab?.cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  if (abort.signal.aborted) harnessErrors.push(`run aborted: ${(abort.signal.reason as Error).message}`);
  const partial = {
    seed: options.seed,
    faults: options.faults,
    startedAt: new Date(startedAt).toISOString(),
    setupMs,
    chaosMs,
    totalMs: Date.now() - startedAt,
    events,
    byKind: summarizeKinds(events),
    unexpectedExits: supervisor?.exits() ?? [],
    load: { churn: churnCounts, pgbenchTransactions: transactions, errors: loadErrors },
    catchUp,
    audit,
    sinkDisk,
    harnessErrors,
  };
  const failures = failuresOf(partial);
  return { ...partial, failures, verdict: failures.length === 0 ? 'pass' : 'fail' };
}

/** Write each agent's log lines (all its runs) to <dir>/<nodeId>.log. */
async function keepLogs(lab: SoakLab, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const region of [SOURCE, DEST]) {
    for (const [i, agent] of lab.fed.agents[region].entries()) await writeFile(join(dir, `${lab.fed.specs[region][i].nodeId}.log`), agent.logs.join('\n') + '\n');
  }
}

/** Inject one event and wait until both streams make durable progress past where they stood when the fault ended. */
async function playEvent(lab: SoakLab, event: PlannedEvent, supervisor: Supervisor, startedAt: number, recoveryTimeoutMs: number, signal: AbortSignal, setCurrent: (name: string) => void): Promise<EventRecord> {
  const description = describeAction(event.action);
  const record: EventRecord = { index: event.index, kind: event.kind, action: event.action, description, target: '', atMs: Date.now() - startedAt, faultMs: 0, recoverMs: null, streamRecoverMs: { objects: null, 'pg-wal': null }, note: '', error: null };
  setCurrent(`event ${event.index} (${description})`);
  const began = Date.now();
  try {
    const done = await inject(lab, event, supervisor);
    record.target = done.target;
    record.note = done.note;
  } catch (err) {
    record.error = (err as Error).message.split('\n')[0];
  }
  record.faultMs = Date.now() - began;

  // Recovery: each audit log grows past its end at the fault's end.
  setCurrent(`recovery from event ${event.index} (${description})`);
  const ended = Date.now();
  const streams = ['objects', 'pg-wal'] as const;
  const before = { objects: await lab.position('objects'), 'pg-wal': await lab.position('pg-wal') };
  const deadline = ended + recoveryTimeoutMs;
  while (Date.now() < deadline && !signal.aborted) {
    for (const stream of streams) {
      if (record.streamRecoverMs[stream] === null && (await lab.position(stream)) > before[stream]) record.streamRecoverMs[stream] = Date.now() - ended;
    }
    if (streams.every((s) => record.streamRecoverMs[s] !== null)) {
      record.recoverMs = Date.now() - ended;
      break;
    }
    await sleep(RECOVERY_POLL_MS);
  }
  if (record.recoverMs === null && signal.aborted) record.error ??= 'run aborted before the streams recovered';
  return record;
}
