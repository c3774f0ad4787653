// One pg-wal stream with two destination regions, all real processes on
// loopback: a PostgreSQL 15 primary, agent eu-west streaming from it, and
// agents us-east and ap-south each spooling the WAL and serving it on a
// walsender endpoint. Embedded ACP per agent (one agent per region).

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki } from '../../src/cli/dev-pki.ts';
import { freePort } from '../../src/cli/free-port.ts';
import { AgentProcess, waitFor } from '../helpers/agent-process.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from '../helpers/postgres.ts';
import { spoolFlushLsn, WALSENDER_PASSWORD, WALSENDER_USER } from './pg-federation.ts';

/** Regions: the source, then the two destinations in config order. */
export const SOURCE = 'eu-west';
export const FIRST_DEST = 'us-east';
export const SECOND_DEST = 'ap-south';
/** The stream's configured slot (kept by the first destination). */
export const SLOT = 'dwcp_pg_main';
const STREAM = 'pg-main';
/** How long the first WAL may take to reach a spool, ms. */
const FIRST_WAL_TIMEOUT_MS = 60_000;
/** How long an agent may take to answer /healthz on a loaded machine, ms (AgentProcess.start gives up after 20 s). */
const SLOW_START_TIMEOUT_MS = 180_000;

/**
 * AgentProcess.start, waiting longer for /healthz: on a machine shared by
 * many test runs a node process may need more than start()'s 20 s to load.
 * start() leaves the child running when it gives up, so keep polling it.
 */
export async function startAgent(agent: AgentProcess): Promise<void> {
  try {
    await agent.start([]);
  } catch (err) {
    if (!/did not answer \/healthz/.test((err as Error).message)) throw err;
    await waitFor(`${agent.configPath} to answer /healthz`, async () => {
      const res = await fetch(`http://127.0.0.1:${agent.httpPort}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(() => null);
      return res?.ok === true;
    }, SLOW_START_TIMEOUT_MS, 500);
  }
}

/** Per-region agent, config, spool and walsender port. */
export interface RegionRun {
  agent: AgentProcess;
  spoolDir: string;
  walsenderPort: number;
}

/** A running primary -> eu-west -> {us-east, ap-south}. */
export interface PgTwoDestinations {
  dir: string;
  primary: Pg;
  regions: Record<string, RegionRun>;
  /** A standby of the primary that streams from the walsender endpoint of region. */
  startStandby(region: string): Promise<Pg>;
  tail(lines: number): string;
  cleanup(): Promise<void>;
}

/** Start the primary and the three agents (destinations first); wait for WAL in both spools. */
export async function startPgTwoDestinations(): Promise<PgTwoDestinations> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-pg-2dest-'));
  const names = [SOURCE, FIRST_DEST, SECOND_DEST];
  const regions: Record<string, RegionRun> = {};
  const standbys: Pg[] = [];
  let primary: Pg | undefined;
  const tail = (lines: number): string => Object.entries(regions).map(([n, r]) => `--- ${n}\n${r.agent.logs.slice(-lines).join('\n')}`).join('\n');
  const cleanup = async (): Promise<void> => {
    for (const s of standbys) await s.stop().catch(() => undefined);
    for (const r of Object.values(regions)) await r.agent.kill9().catch(() => undefined);
    await primary?.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    primary = await startPostgres();
    const certs = await createDevPki(join(dir, 'tls'), Object.fromEntries(names.map((n) => [n, { federation: 'demo', region: n, node: `${n}-node-1` }])));
    const ports: Record<string, { listen: number; http: number; walsender: number }> = {};
    for (const n of names) ports[n] = { listen: await freePort(), http: await freePort(), walsender: await freePort() };
    const destinations = [FIRST_DEST, SECOND_DEST].map((n) => `      - region: ${n}
        path: ${join(dir, n, 'spool')}
        walsender: { host: 127.0.0.1, port: ${ports[n].walsender}, users: { "${WALSENDER_USER}": "${WALSENDER_PASSWORD}" }, trust: [] }
`).join('');
    for (const n of names) {
      const dataDir = join(dir, n);
      await mkdir(dataDir, { recursive: true });
      const yaml = `federation: demo
region: ${n}
nodeId: ${n}-node-1
dataDir: ${dataDir}
listen: { host: 127.0.0.1, port: ${ports[n].listen} }
http: { host: 127.0.0.1, port: ${ports[n].http} }
tls: { ca: ${certs[n].caFile}, cert: ${certs[n].certFile}, key: ${certs[n].keyFile} }
regions:
${names.map((r) => `  - name: ${r}\n    endpoints: ["127.0.0.1:${ports[r].listen}"]`).join('\n')}
amst:
  carriers: 2
hde:
  level: 3
acp:
  backend: embedded
checkpoint:
  interval: 50ms
streams:
  - id: ${STREAM}
    kind: pg-wal
    source:
      region: ${SOURCE}
      connection: { host: "127.0.0.1", port: ${primary.port}, user: "${PG_SUPERUSER}" }
      slot: ${SLOT}
    destinations:
${destinations}`;
      const configPath = join(dir, `${n}.yaml`);
      await writeFile(configPath, yaml);
      regions[n] = { agent: new AgentProcess(configPath, ports[n].http), spoolDir: join(dataDir, 'spool'), walsenderPort: ports[n].walsender };
    }
    for (const n of [FIRST_DEST, SECOND_DEST, SOURCE]) await startAgent(regions[n].agent);
    for (const n of [FIRST_DEST, SECOND_DEST]) {
      await waitFor(`first durable WAL in the ${n} spool`, async () => (await spoolFlushLsn(regions[n].spoolDir)) > 0, FIRST_WAL_TIMEOUT_MS);
    }
    const p = primary;
    return {
      dir,
      primary: p,
      regions,
      startStandby: async (region) => {
        const standby = await startPostgres({
          standbyOf: {
            host: '127.0.0.1',
            port: p.port,
            conninfo: `host=127.0.0.1 port=${regions[region].walsenderPort} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=standby_${region.replace('-', '_')} sslmode=disable`,
          },
          settings: { wal_retrieve_retry_interval: "'200ms'" },
        });
        standbys.push(standby);
        return standby;
      },
      tail,
      cleanup,
    };
  } catch (err) {
    const logs = tail(15);
    await cleanup();
    throw new Error(`start pg two destinations: ${(err as Error).message}\n${logs}`, { cause: err });
  }
}
