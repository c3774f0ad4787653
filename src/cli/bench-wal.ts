// `dwcp bench-wal` (npm run bench:wal): one pgbench run on one primary,
// replicated at the same time (a) by native PostgreSQL streaming replication
// to a standby and (b) through DWCP (primary -> agent A -> agent B ->
// standby on B's walsender endpoint). Both paths go through a counting proxy
// (native: standby -> primary; DWCP: A -> B), which gives bytes on the wire
// and lets the bench hold both back to build the same WAL backlog and time
// each catch-up. Printed, not asserted: numbers depend on the machine.

import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { AgentProcess, waitFor } from './agent-child.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from './postgres-lab.ts';
import { parseLsn } from '../streams/pg-wal/lsn.ts';
import { readSpoolState } from '../streams/pg-wal/wal-spool.ts';
import { startCountingProxy, type CountingProxy } from './counting-proxy.ts';
import { writePgTwoRegion } from './pg-two-region.ts';
import { formatBytes } from './progress.ts';
import { cpuSeconds } from '../util/proc-stat.ts';

/** Interval of primary LSN samples for the replay lag, ms. */
const LAG_SAMPLE_INTERVAL_MS = 50;
/** Interval of standby replay polls, ms (the lag's resolution). */
const REPLAY_POLL_INTERVAL_MS = 5;
/** Longest wait for a standby to catch up, ms. */
const CATCH_UP_TIMEOUT_MS = 300_000;
const WALSENDER_USER = 'bench';
const WALSENDER_PASSWORD = 'bench-secret';
const NATIVE_SLOT = 'bench_native';

/** One replication path under test. */
interface Path {
  name: string;
  proxy: CountingProxy;
  standby: Pg;
  client: pg.Client;
  /** Replay polls: when (ms) the standby had replayed up to lsn. */
  replays: Array<{ atMs: number; lsn: number }>;
}

async function connectTo(server: Pg): Promise<pg.Client> {
  const client = new pg.Client({ host: '127.0.0.1', port: server.port, user: PG_SUPERUSER, database: 'postgres' });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

async function lsnOf(client: pg.Client, sql: string): Promise<number> {
  const r = await client.query<{ lsn: string | null }>(sql);
  return r.rows[0].lsn ? parseLsn(r.rows[0].lsn) : 0;
}

const FLUSH_SQL = 'SELECT pg_current_wal_flush_lsn()::text AS lsn';
const REPLAY_SQL = 'SELECT pg_last_wal_replay_lsn()::text AS lsn';

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Entry point of `dwcp bench-wal`. */
export async function benchWalCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scale: { type: 'string', default: '5' },
      clients: { type: 'string', default: '4' },
      transactions: { type: 'string', default: '1500' },
      rate: { type: 'string', default: '400' },
      backlog: { type: 'string', default: '1500' },
      seed: { type: 'string', default: '42' },
      level: { type: 'string', default: '3' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(
      'Usage: dwcp bench-wal [--scale 5] [--clients 4] [--transactions 1500] [--rate 400] [--backlog 1500] [--seed 42] [--level 3] [--keep]\n\n' +
        'pgbench (fixed seed; --transactions per client at --rate tps) on one primary, replicated by native\n' +
        'streaming and through DWCP in one run; then --backlog transactions per client with both paths held\n' +
        'back, and each path released in turn to time its catch-up. Needs PostgreSQL 15 and the dwcp-test user.\n',
    );
    return 0;
  }
  const out = process.stdout;
  const clients = Number(values.clients);
  const perClient = Number(values.transactions);
  const backlogPerClient = Number(values.backlog);
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-bench-wal-'));
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    // Primary with pgbench tables, a slot for the native standby.
    out.write(`primary: initdb, pgbench -i -s ${values.scale} ...\n`);
    const primary = await startPostgres();
    cleanups.push(() => primary.stop());
    await primary.pgbench(['-i', '-s', values.scale, '-q']);
    await primary.query(`SELECT pg_create_physical_replication_slot('${NATIVE_SLOT}', true)`);
    const primaryClient = await connectTo(primary);
    cleanups.push(() => primaryClient.end());

    // DWCP: A -> proxy -> B; native: standby -> proxy -> primary.
    let destPort = 0;
    const dwcpProxy = await startCountingProxy(() => ({ host: '127.0.0.1', port: destPort }));
    const nativeProxy = await startCountingProxy(() => ({ host: '127.0.0.1', port: primary.port }));
    cleanups.push(() => dwcpProxy.close(), () => nativeProxy.close());
    const setup = await writePgTwoRegion({
      dir,
      primary: { host: '127.0.0.1', port: primary.port, user: PG_SUPERUSER },
      // A fixed level: on loopback the online choice would chase free bandwidth, not bytes.
      level: Number(values.level),
      adaptiveLevel: false,
      walsenderUsers: { [WALSENDER_USER]: WALSENDER_PASSWORD },
      destPortSeenBySource: dwcpProxy.port,
    });
    destPort = setup.ports.dest;
    const agentB = new AgentProcess(setup.destConfig, setup.ports.destHttp);
    const agentA = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
    // SIGTERM, not kill -9: an agent run with --cpu-prof writes its profile only on a clean exit.
    cleanups.push(() => agentA.terminate(), () => agentB.terminate());
    out.write(`agents: A (eu-west) -> B (us-east), zstd level ${values.level} (fixed), TCP+TLS carriers ...\n`);
    await agentB.start([]);
    await agentA.start([]);
    await waitFor('WAL in agent B spool', async () => ((await readSpoolState(setup.spoolDir))?.flushLsn ?? 0) > 0, 60_000);

    out.write('standbys: pg_basebackup x2 ...\n');
    const nativeStandby = await startPostgres({
      standbyOf: { host: '127.0.0.1', port: primary.port, slot: NATIVE_SLOT, conninfo: `host=127.0.0.1 port=${nativeProxy.port} user=${PG_SUPERUSER} application_name=native_standby` },
      settings: { wal_retrieve_retry_interval: "'200ms'" },
    });
    cleanups.push(() => nativeStandby.stop());
    const dwcpStandby = await startPostgres({
      standbyOf: { host: '127.0.0.1', port: primary.port, conninfo: `host=127.0.0.1 port=${setup.ports.walsender} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=dwcp_standby sslmode=disable` },
      settings: { wal_retrieve_retry_interval: "'200ms'" },
    });
    cleanups.push(() => dwcpStandby.stop());
    const paths: Path[] = [
      { name: 'native streaming', proxy: nativeProxy, standby: nativeStandby, client: await connectTo(nativeStandby), replays: [] },
      { name: 'dwcp (A -> B -> standby)', proxy: dwcpProxy, standby: dwcpStandby, client: await connectTo(dwcpStandby), replays: [] },
    ];
    cleanups.push(...paths.map((p) => () => p.client.end()));
    const caughtUp = async (path: Path, lsn: number): Promise<void> => {
      await waitFor(`${path.name} standby to replay ${lsn}`, async () => (await lsnOf(path.client, REPLAY_SQL)) >= lsn, CATCH_UP_TIMEOUT_MS, 20);
    };
    const start = await lsnOf(primaryClient, FLUSH_SQL);
    await Promise.all(paths.map((p) => caughtUp(p, start)));

    // Steady phase: pgbench at a fixed rate; sample primary LSN and each standby's replay.
    out.write(`steady: pgbench -c ${clients} -t ${perClient} -R ${values.rate} --random-seed=${values.seed} ...\n`);
    const wire0 = paths.map((p) => p.proxy.bytes.up + p.proxy.bytes.down);
    const lsn0 = await lsnOf(primaryClient, FLUSH_SQL);
    const agentCpu = async (): Promise<number[]> => [await cpuSeconds(agentA.pid), await cpuSeconds(agentB.pid)];
    const cpu0 = await agentCpu();
    const primarySamples: Array<{ atMs: number; lsn: number }> = [];
    let sampling = true;
    const samplers = [
      (async () => {
        while (sampling) {
          primarySamples.push({ atMs: performance.now(), lsn: await lsnOf(primaryClient, FLUSH_SQL) });
          await new Promise((r) => setTimeout(r, LAG_SAMPLE_INTERVAL_MS));
        }
      })(),
      ...paths.map(async (p) => {
        while (sampling) {
          p.replays.push({ atMs: performance.now(), lsn: await lsnOf(p.client, REPLAY_SQL) });
          await new Promise((r) => setTimeout(r, REPLAY_POLL_INTERVAL_MS));
        }
      }),
    ];
    await primary.pgbench(['-n', `--random-seed=${values.seed}`, '-c', String(clients), '-j', '1', '-t', String(perClient), '-R', values.rate]);
    const lsn1 = await lsnOf(primaryClient, FLUSH_SQL);
    await Promise.all(paths.map((p) => caughtUp(p, lsn1)));
    sampling = false;
    await Promise.all(samplers);
    const walBytes = lsn1 - lsn0;
    const transactions = clients * perClient;
    const wire = paths.map((p, i) => p.proxy.bytes.up + p.proxy.bytes.down - wire0[i]);
    // Replay lag of a primary sample: until the standby's first poll at or past its LSN.
    const lags = paths.map((p) => {
      const out: number[] = [];
      for (const s of primarySamples) {
        if (s.lsn <= lsn0) continue;
        const hit = p.replays.find((r) => r.atMs >= s.atMs && r.lsn >= s.lsn);
        if (hit) out.push(hit.atMs - s.atMs);
      }
      return out.sort((a, b) => a - b);
    });

    // Backlog phase: hold both paths back, write, release each in turn and time the catch-up.
    out.write(`backlog: both paths held back, pgbench -c ${clients} -t ${backlogPerClient} ...\n`);
    for (const p of paths) p.proxy.pause();
    const cpu1 = await agentCpu();
    const b0 = await lsnOf(primaryClient, FLUSH_SQL);
    await primary.pgbench(['-n', `--random-seed=${Number(values.seed) + 1}`, '-c', String(clients), '-j', '1', '-t', String(backlogPerClient)]);
    const b1 = await lsnOf(primaryClient, FLUSH_SQL);
    const catchUp: number[] = [];
    // The agents' CPU over DWCP's catch-up alone: the backlog phase also
    // counts the agents idling while pgbench writes, which on a busy machine
    // (or under --cpu-prof, whose sampler threads run while idle) outweighs it.
    let catchUpCpu = [0, 0];
    for (const p of paths) {
      const before = p.proxy === dwcpProxy ? await agentCpu() : null;
      const t0 = performance.now();
      p.proxy.resume();
      await caughtUp(p, b1);
      catchUp.push((performance.now() - t0) / 1000);
      if (before) catchUpCpu = (await agentCpu()).map((c, i) => c - before[i]);
    }
    const cpu2 = await agentCpu();

    // One table, native streaming as the baseline.
    const ms = (v: number): string => (Number.isNaN(v) ? 'n/a' : v.toFixed(0));
    out.write(`\nsteady: ${transactions} transactions (${clients} clients x ${perClient}, ${values.rate} tps, seed ${values.seed}), WAL ${formatBytes(walBytes)}; backlog: ${formatBytes(b1 - b0)} of WAL (${clients * backlogPerClient} transactions)\n\n`);
    out.write('| path | WAL bytes | bytes on the wire | wire / WAL | wire bytes per txn | catch-up of backlog (s) | replay lag p50 / p95 / max (ms) |\n|---|---|---|---|---|---|---|\n');
    paths.forEach((p, i) => {
      const l = lags[i];
      out.write(`| ${p.name} | ${formatBytes(walBytes)} | ${formatBytes(wire[i])} | ${(wire[i] / walBytes).toFixed(3)} | ${(wire[i] / transactions).toFixed(0)} | ${catchUp[i].toFixed(2)} | ${ms(percentile(l, 0.5))} / ${ms(percentile(l, 0.95))} / ${ms(l.at(-1) ?? NaN)} |\n`);
    });
    // The agents' CPU per GiB of WAL in each phase (from /proc: user + system, worker threads included).
    const perGiB = (cpu: number, bytes: number): string => (cpu / (bytes / 2 ** 30)).toFixed(1);
    out.write(`\nagents' CPU s per GiB of WAL: steady A ${perGiB(cpu1[0] - cpu0[0], walBytes)}, B ${perGiB(cpu1[1] - cpu0[1], walBytes)}; backlog (written while held back, then caught up) A ${perGiB(cpu2[0] - cpu1[0], b1 - b0)}, B ${perGiB(cpu2[1] - cpu1[1], b1 - b0)} (${(cpu2[0] - cpu1[0]).toFixed(1)} / ${(cpu2[1] - cpu1[1]).toFixed(1)} CPU s); DWCP catch-up alone A ${perGiB(catchUpCpu[0], b1 - b0)}, B ${perGiB(catchUpCpu[1], b1 - b0)} (${catchUpCpu[0].toFixed(1)} / ${catchUpCpu[1].toFixed(1)} CPU s)\n`);
    out.write(`\nloopback, ${availableParallelism()} cores; wire = both directions through a counting proxy (native: standby<->primary; dwcp: A<->B, TLS); PostgreSQL 15, pgbench scale ${values.scale}\n`);
    return 0;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}
