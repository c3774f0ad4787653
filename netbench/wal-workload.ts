// netbench lab --workload wal: a PostgreSQL primary in namespace A, two
// standbys in namespace B: one streaming natively across the emulated link,
// one from the local DWCP agent's walsender endpoint (primary -> agent A ->
// link -> agent B -> standby). Phases: a WAL backlog built with both paths
// held back, released to each path in turn (catch-up time and rate), then
// pgbench with both paths live (replay lag from each standby's replay
// position against the primary's). Bytes per path from iptables counters on
// the link device (same counter for both).

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createLab, type Lab, type LinkProfile } from './lab.ts';
import { LabAgent } from './lab-agent.ts';
import { PathCounters } from './path-counters.ts';
import { setCongestionControl, type WORKLOAD_CCS } from './objects-workload.ts';
import { walMarkdown, walSvg } from './wal-report.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from '../src/cli/postgres-lab.ts';
import { writePgTwoRegion } from '../src/cli/pg-two-region.ts';
import { parseLsn } from '../src/streams/pg-wal/lsn.ts';
import { readSpoolState } from '../src/streams/pg-wal/wal-spool.ts';

/** Primary LSN sample interval (resolution of the time lag), ms. */
const PRIMARY_SAMPLE_INTERVAL_MS = 100;
/** Standby replay sample interval, ms. */
const STANDBY_SAMPLE_INTERVAL_MS = 1000;
/** Poll interval while waiting for a standby to reach an LSN, ms. */
const CATCH_UP_POLL_MS = 100;
/** Rows per backlog INSERT (about 150 bytes of WAL each). */
const BACKLOG_ROWS_PER_INSERT = 50_000;
/** Most backlog INSERTs (bounds the loop whatever the target). */
const BACKLOG_MAX_INSERTS = 100_000;
/** Floor of a catch-up time limit, s; it grows with the backlog at a tenth of the link rate. */
const CATCH_UP_TIMEOUT_FLOOR_S = 300;
const WALSENDER_USER = 'netbench';
const WALSENDER_PASSWORD = 'netbench-secret';
const NATIVE_SLOT = 'netbench_native';
/** TUN device of namespace A (lab.ts). */
const TUN_A = 'dwcp-wan-a';

/** Options of the WAL workload. */
export interface WalWorkloadOptions {
  name: string;
  profile: LinkProfile;
  cc: (typeof WORKLOAD_CCS)[number];
  /** WAL bytes of the backlog phase. */
  backlogBytes: number;
  /** Seconds of pgbench in the steady phase. */
  pgbenchSeconds: number;
  /** pgbench scale (-i -s), clients (-c) and rate (-R, tps). */
  scale: number;
  clients: number;
  rate: number;
  out: string;
  progress: (line: string) => void;
}

/** One path's numbers. */
export interface WalPathRow {
  path: 'native' | 'dwcp';
  /** Backlog: WAL bytes, seconds from release to replayed, link bytes. */
  backlogWalBytes: number;
  catchUpSeconds: number;
  backlogWireBytes: number;
  /** pgbench phase: WAL bytes, link bytes, replay lag percentiles (ms) and bytes behind at the samples. */
  steadyWalBytes: number;
  steadyWireBytes: number;
  lagMs: { p50: number; p95: number; max: number };
  lagBytes: { p50: number; p95: number; max: number };
  /** Standby equal to the primary at the end (pgbench_accounts balance sum, backlog row count). */
  dataMatches: boolean;
  notes: string[];
}

/** Everything the WAL workload produced. */
export interface WalWorkloadResult {
  name: string;
  profile: LinkProfile;
  cc: string;
  rows: WalPathRow[];
  /** Per-second samples of the pgbench phase: seconds since start, lag in ms per path. */
  series: Array<{ atS: number; native: number; dwcp: number }>;
  files: { markdown: string; json: string; svg: string };
}

/** A connection that never throws on the socket's error event (the query reports it). */
async function connect(server: Pg): Promise<pg.Client> {
  const client = new pg.Client({ host: server.host, port: server.port, user: PG_SUPERUSER, database: 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function lsn(client: pg.Client, sql: string): Promise<number> {
  const r = await client.query<{ lsn: string | null }>(sql);
  return r.rows[0].lsn ? parseLsn(r.rows[0].lsn) : 0;
}

const FLUSH_SQL = 'SELECT pg_current_wal_flush_lsn()::text AS lsn';
const REPLAY_SQL = 'SELECT pg_last_wal_replay_lsn()::text AS lsn';

/** The p-th value of a sorted list (0 when empty). */
function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function summary(values: number[]): { p50: number; p95: number; max: number } {
  const s = [...values].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p95: percentile(s, 0.95), max: s.at(-1) ?? 0 };
}

/** Poll until the standby has replayed target; returns the seconds from `since`. */
async function replayedBy(client: pg.Client, target: number, since: number, timeoutMs: number, what: string): Promise<number> {
  const deadline = since + timeoutMs;
  for (;;) {
    if ((await lsn(client, REPLAY_SQL)) >= target) return (performance.now() - since) / 1000;
    if (performance.now() > deadline) throw new Error(`wal workload: ${what} standby did not replay ${target} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, CATCH_UP_POLL_MS));
  }
}

/** Run the WAL workload over one lab and write the reports. */
export async function runWalWorkload(o: WalWorkloadOptions): Promise<WalWorkloadResult> {
  await mkdir(o.out, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-netbench-wal-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  let lab: Lab | undefined;
  try {
    lab = await createLab(o.profile);
    setCongestionControl(lab, o.cc);
    const subnet = `${lab.addrA.slice(0, lab.addrA.lastIndexOf('.'))}.0/30`;
    const timeoutMs = 1000 * (CATCH_UP_TIMEOUT_FLOOR_S + (o.profile.rateMbit > 0 ? (10 * 8 * o.backlogBytes) / (o.profile.rateMbit * 1e6) : 0));

    o.progress(`primary in ${lab.nsA}: initdb, pgbench -i -s ${o.scale}`);
    const primary = await startPostgres({
      namespace: lab.nsA, listenAddresses: [lab.addrA],
      hba: [`host all all ${subnet} trust`, `host replication all ${subnet} trust`],
      settings: { max_wal_size: "'4GB'", max_slot_wal_keep_size: '-1' },
    });
    cleanups.push(() => primary.stop());
    await primary.pgbench(['-i', '-s', String(o.scale), '-q']);
    await primary.query(`SELECT pg_create_physical_replication_slot('${NATIVE_SLOT}', true)`);
    await primary.query('CREATE TABLE netbench_backlog (id bigint, payload text)');
    const primaryClient = await connect(primary);
    cleanups.push(() => primaryClient.end());

    // DWCP: agent A (namespace A) reads the primary; agent B (namespace B) serves the standby.
    const fed = await writePgTwoRegion({
      dir: join(dir, 'dwcp'), primary: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER },
      walsenderUsers: { [WALSENDER_USER]: WALSENDER_PASSWORD }, hosts: { source: lab.addrA, dest: lab.addrB },
      amstExtra: `  congestionControl: ${o.cc}`,
    });
    const agentB = await LabAgent.start(lab, lab.nsB, fed.destConfig, fed.ports.destHttp);
    cleanups.push(() => agentB.stop());
    let agentA = await LabAgent.start(lab, lab.nsA, fed.sourceConfig, fed.ports.sourceHttp);
    cleanups.push(() => agentA.stop());
    const spoolDeadline = performance.now() + timeoutMs;
    while (((await readSpoolState(fed.spoolDir))?.flushLsn ?? 0) === 0) {
      if (performance.now() > spoolDeadline) throw new Error(`wal workload: no WAL in agent B's spool: ${agentA.tail()}`);
      await new Promise((r) => setTimeout(r, CATCH_UP_POLL_MS));
    }

    o.progress(`standbys in ${lab.nsB}: pg_basebackup x2 across the link`);
    const nativeConninfo = `host=${lab.addrA} port=${primary.port} user=${PG_SUPERUSER} application_name=native_standby`;
    const native = await startPostgres({
      namespace: lab.nsB, standbyOf: { host: lab.addrA, port: primary.port, slot: NATIVE_SLOT, conninfo: nativeConninfo },
      settings: { wal_retrieve_retry_interval: "'200ms'" },
    });
    cleanups.push(() => native.stop());
    const dwcp = await startPostgres({
      namespace: lab.nsB,
      standbyOf: { host: lab.addrA, port: primary.port, conninfo: `host=127.0.0.1 port=${fed.ports.walsender} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=dwcp_standby sslmode=disable` },
      settings: { wal_retrieve_retry_interval: "'200ms'" },
    });
    cleanups.push(() => dwcp.stop());
    const clients = { native: await connect(native), dwcp: await connect(dwcp) };
    cleanups.push(() => clients.native.end(), () => clients.dwcp.end());
    const start = await lsn(primaryClient, FLUSH_SQL);
    for (const [name, c] of Object.entries(clients)) await replayedBy(c, start, performance.now(), timeoutMs, name);

    // Counters: native = the primary's port, dwcp = agent B's carrier port; both from namespace A's link device.
    const counters = PathCounters.install(lab.nsA, TUN_A, [
      { name: 'native', port: primary.port, side: 'local' },
      { name: 'dwcp', port: fed.ports.dest, side: 'remote' },
    ]);

    // Backlog: hold both paths (native: no primary_conninfo; dwcp: agent A stopped; the slots keep the WAL).
    o.progress(`backlog: both paths held, ${(o.backlogBytes / 1e6).toFixed(0)} MB of WAL`);
    await native.query("ALTER SYSTEM SET primary_conninfo = ''");
    await native.query('SELECT pg_reload_conf()');
    await agentA.stop();
    const b0 = await lsn(primaryClient, FLUSH_SQL);
    for (let i = 0; i < BACKLOG_MAX_INSERTS && (await lsn(primaryClient, FLUSH_SQL)) - b0 < o.backlogBytes; i++) {
      await primaryClient.query(`INSERT INTO netbench_backlog SELECT g, md5(g::text) || repeat('x', 32) FROM generate_series(1, ${BACKLOG_ROWS_PER_INSERT}) g`);
    }
    const b1 = await lsn(primaryClient, FLUSH_SQL);
    const catchUp: Record<string, { seconds: number; wire: number }> = {};
    // Released in turn, so neither shares the link with the other.
    for (const path of ['native', 'dwcp'] as const) {
      o.progress(`  release ${path}`);
      const before = counters.read()[path];
      const t0 = performance.now();
      if (path === 'native') {
        await native.query(`ALTER SYSTEM SET primary_conninfo = '${nativeConninfo}'`);
        await native.query('SELECT pg_reload_conf()');
      } else {
        agentA = await LabAgent.start(lab, lab.nsA, fed.sourceConfig, fed.ports.sourceHttp);
      }
      const seconds = await replayedBy(clients[path], b1, t0, timeoutMs, path);
      catchUp[path] = { seconds, wire: counters.read()[path] - before };
      o.progress(`    ${seconds.toFixed(1)} s`);
    }

    // pgbench with both paths live; primary sampled often, standbys every second.
    o.progress(`pgbench: ${o.pgbenchSeconds} s, -c ${o.clients} -R ${o.rate}`);
    const wire0 = counters.read();
    const s0 = await lsn(primaryClient, FLUSH_SQL);
    const primarySamples: Array<{ atMs: number; lsn: number }> = [];
    const replaySamples: Array<{ atMs: number; native: number; dwcp: number }> = [];
    const t0 = performance.now();
    let sampling = true;
    const samplers = [
      (async () => {
        while (sampling) {
          primarySamples.push({ atMs: performance.now(), lsn: await lsn(primaryClient, FLUSH_SQL) });
          await new Promise((r) => setTimeout(r, PRIMARY_SAMPLE_INTERVAL_MS));
        }
      })(),
      (async () => {
        while (sampling) {
          const atMs = performance.now();
          replaySamples.push({ atMs, native: await lsn(clients.native, REPLAY_SQL), dwcp: await lsn(clients.dwcp, REPLAY_SQL) });
          await new Promise((r) => setTimeout(r, STANDBY_SAMPLE_INTERVAL_MS));
        }
      })(),
    ];
    try {
      await primary.pgbench(['-n', '--random-seed=42', '-c', String(o.clients), '-j', '1', '-T', String(o.pgbenchSeconds), '-R', String(o.rate)]);
    } finally {
      sampling = false;
      await Promise.all(samplers);
    }
    const s1 = await lsn(primaryClient, FLUSH_SQL);
    for (const [name, c] of Object.entries(clients)) await replayedBy(c, s1, performance.now(), timeoutMs, name);
    const wire1 = counters.read();

    // Lag at a standby sample: time since the primary first had WAL the standby had not replayed.
    const lagAt = (atMs: number, replayed: number): { ms: number; bytes: number } => {
      const primaryNow = [...primarySamples].reverse().find((p) => p.atMs <= atMs)?.lsn ?? replayed;
      if (replayed >= primaryNow) return { ms: 0, bytes: 0 };
      const firstAhead = primarySamples.find((p) => p.lsn > replayed);
      return { ms: firstAhead ? Math.max(0, atMs - firstAhead.atMs) : 0, bytes: primaryNow - replayed };
    };
    const series = replaySamples.map((s) => ({ atS: (s.atMs - t0) / 1000, native: lagAt(s.atMs, s.native).ms, dwcp: lagAt(s.atMs, s.dwcp).ms }));

    // Data on each standby equals the primary's.
    const check = 'SELECT (SELECT sum(abalance) FROM pgbench_accounts)::text AS balance, (SELECT count(*) FROM netbench_backlog)::text AS backlog, (SELECT count(*) FROM pgbench_history)::text AS history';
    const [expected] = (await primaryClient.query(check)).rows;
    const rows: WalPathRow[] = [];
    for (const path of ['native', 'dwcp'] as const) {
      const [got] = (await clients[path].query(check)).rows;
      const dataMatches = JSON.stringify(got) === JSON.stringify(expected);
      rows.push({
        path, backlogWalBytes: b1 - b0, catchUpSeconds: catchUp[path].seconds, backlogWireBytes: catchUp[path].wire,
        steadyWalBytes: s1 - s0, steadyWireBytes: wire1[path] - wire0[path],
        lagMs: summary(replaySamples.map((s) => lagAt(s.atMs, s[path]).ms)),
        lagBytes: summary(replaySamples.map((s) => lagAt(s.atMs, s[path]).bytes)),
        dataMatches, notes: dataMatches ? [] : [`standby ${JSON.stringify(got)} vs primary ${JSON.stringify(expected)}`],
      });
    }
    rows.find((r) => r.path === 'dwcp')!.notes.push('catch-up includes starting agent A (it was stopped to hold the path)');

    const files = { markdown: join(o.out, 'wal.md'), json: join(o.out, 'wal.json'), svg: join(o.out, 'wal.svg') };
    const title = `${o.name}, ${o.cc}`;
    await writeFile(files.markdown, walMarkdown(title, o.profile, rows));
    await writeFile(files.json, JSON.stringify({ name: o.name, profile: o.profile, cc: o.cc, options: { backlogBytes: o.backlogBytes, pgbenchSeconds: o.pgbenchSeconds, scale: o.scale, clients: o.clients, rate: o.rate }, rows, series }, null, 2) + '\n');
    await writeFile(files.svg, walSvg(`wal workload: ${title}: replay lag during pgbench`, series));
    return { name: o.name, profile: o.profile, cc: o.cc, rows, series, files };
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => o.progress(`cleanup: ${err.message}`));
    await lab?.close().catch((err: Error) => o.progress(`lab close: ${err.message}`));
    await rm(dir, { recursive: true, force: true });
  }
}
