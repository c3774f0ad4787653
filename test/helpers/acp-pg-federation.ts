// A two-region ACP federation (two real 3-member etcd clusters, N agent
// processes per region) carrying one pg-wal stream from a real PostgreSQL 15
// primary to a far standby. Configs come from writeAcpConfigs with their
// streams section replaced by the pg-wal stream: every source agent has the
// same primary and slot (only the elected one streams); every destination
// agent shares one spool directory and has its own walsender port. The
// standby reads from the first destination agent, the one the source
// region's links dial first. Optionally objects streams ride beside it, the
// source region dials the first destination agent through a TCP relay (to
// cut carriers), and the spool lives where the caller says (a small disk).

import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '../../src/cli/free-port.ts';
import { AgentProcess, waitFor } from './agent-process.ts';
import { DEST, SOURCE, writeAcpConfigs, type AgentSpec, type StreamSpec } from './acp-federation.ts';
import { startTcpRelay, type Relay } from './relay.ts';
import { auditProblems } from './federation.ts';
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.ts';
import { PG_SUPERUSER, startPostgres, type Pg } from './postgres.ts';
import { spoolFlushLsn, WALSENDER_PASSWORD, WALSENDER_USER } from '../pg-wal-e2e/pg-federation.ts';

/** Id of the pg-wal stream. */
export const PG_STREAM = 'pg-main';
/** Physical slot of the stream on the primary. */
export const PG_SLOT = 'dwcp_pg_main';
/** How long the first WAL may take to reach the destination spool, ms. */
const FIRST_WAL_TIMEOUT_MS = 60_000;

/** Options of startAcpPgFederation. */
export interface AcpPgOptions {
  /** Work directory (certs, configs, data dirs, spool); removed by cleanup. */
  dir: string;
  agentsPerRegion: number;
  /** Agents in the destination region (default agentsPerRegion). */
  destAgents?: number;
  /** Lease TTL, e.g. '2s'. */
  leaseTtl: string;
  checkpointInterval?: string;
  /** Objects streams carried beside the pg-wal stream (default none). */
  objectStreams?: StreamSpec[];
  /** Destination spool directory (default <dir>/spool/pg-main). */
  spoolDir?: string;
  /** Source agents dial the first destination agent through a TCP relay (default false). */
  relay?: boolean;
  /** etcd members compact their history this often, e.g. '2s' (default never). */
  etcdCompaction?: string;
}

/** A running primary -> ACP federation -> far standby. */
export interface AcpPgFederation {
  primary: Pg;
  standby: Pg;
  etcd: Record<string, EtcdCluster>;
  specs: Record<string, AgentSpec[]>;
  agents: Record<string, AgentProcess[]>;
  /** The destination region's shared spool directory. */
  spoolDir: string;
  /** Walsender port of each destination agent (index as in agents[DEST]). */
  walsenderPorts: number[];
  /** The relay between the source region and the first destination agent, when asked for. */
  relay: Relay | null;
  /** Index of the source agent whose /status lists a sender of the stream, or -1. */
  sendingAgent(): Promise<number>;
  /** Problems (gap, double apply) in the merged audit logs of the destination agents. */
  auditProblems(): Promise<string[]>;
  /** Number of applied frames in the merged audit logs. */
  auditCount(): Promise<number>;
  /** Merged audit logs of the destination agents for any stream, sorted. */
  auditSeqs(streamId: string): Promise<number[]>;
  /** The last log lines of every agent. */
  tail(lines: number): string;
  cleanup(): Promise<void>;
}

/** The pg-wal entry of one agent's streams section. */
function pgWalStreamYaml(primaryPort: number, spoolDir: string, walsenderPort: number): string {
  return `  - id: ${PG_STREAM}
    kind: pg-wal
    source:
      region: ${SOURCE}
      connection: { host: "127.0.0.1", port: ${primaryPort}, user: "${PG_SUPERUSER}" }
      slot: ${PG_SLOT}
      synchronous: false
    destinations:
      - region: ${DEST}
        path: ${spoolDir}
        walsender: { host: 127.0.0.1, port: ${walsenderPort}, users: { "${WALSENDER_USER}": "${WALSENDER_PASSWORD}" }, trust: [] }
`;
}

/** Start primary, etcd clusters, agents (destination first), wait for WAL in the spool, then the standby. */
export async function startAcpPgFederation(options: AcpPgOptions): Promise<AcpPgFederation> {
  const etcd: Record<string, EtcdCluster> = {};
  const agents: Record<string, AgentProcess[]> = { [SOURCE]: [], [DEST]: [] };
  let primary: Pg | undefined;
  let standby: Pg | undefined;
  let relay: Relay | null = null;
  const cleanup = async (): Promise<void> => {
    await standby?.stop().catch(() => undefined);
    for (const list of Object.values(agents)) for (const a of list) await a.kill9().catch(() => undefined);
    await relay?.close().catch(() => undefined);
    await primary?.stop().catch(() => undefined);
    for (const c of Object.values(etcd)) await c.stop().catch(() => undefined);
    await rm(options.dir, { recursive: true, force: true });
  };
  const tail = (lines: number): string =>
    Object.values(agents).flat().map((a) => `--- ${a.configPath}\n${a.logs.slice(-lines).join('\n')}`).join('\n');
  try {
    primary = await startPostgres();
    etcd[SOURCE] = await startEtcdCluster({ members: 3, autoCompactionRetention: options.etcdCompaction });
    etcd[DEST] = await startEtcdCluster({ members: 3, autoCompactionRetention: options.etcdCompaction });
    const specs = await writeAcpConfigs({
      dir: options.dir,
      agentsPerRegion: options.agentsPerRegion,
      destAgents: options.destAgents,
      streams: options.objectStreams ?? [],
      etcd: { [SOURCE]: etcd[SOURCE].endpoints, [DEST]: etcd[DEST].endpoints },
      leaseTtl: options.leaseTtl,
      checkpointInterval: options.checkpointInterval,
    });
    const spoolDir = options.spoolDir ?? join(options.dir, 'spool', PG_STREAM);
    const walsenderPorts: number[] = [];
    for (const _ of specs[DEST]) walsenderPorts.push(await freePort());
    if (options.relay) relay = await startTcpRelay(specs[DEST][0].port);
    // Put the pg-wal stream first in the streams section, before any objects
    // streams; source agents dial the relay instead of the first destination agent.
    const header = '\nstreams:\n';
    for (const region of [SOURCE, DEST]) {
      for (const [i, s] of specs[region].entries()) {
        let yaml = await readFile(s.configPath, 'utf8');
        const at = yaml.lastIndexOf(header);
        if (at < 0) throw new Error(`acp pg federation: no streams section in ${s.configPath}`);
        const port = region === DEST ? walsenderPorts[i] : walsenderPorts[0];
        yaml = yaml.slice(0, at + header.length) + pgWalStreamYaml(primary.port, spoolDir, port) + yaml.slice(at + header.length);
        if (relay !== null && region === SOURCE) yaml = yaml.replace(`"127.0.0.1:${specs[DEST][0].port}"`, `"127.0.0.1:${relay.port}"`);
        await writeFile(s.configPath, yaml);
      }
    }
    for (const region of [DEST, SOURCE]) {
      for (const s of specs[region]) agents[region].push(new AgentProcess(s.configPath, s.httpPort));
      await Promise.all(agents[region].map((a) => a.start()));
    }
    await waitFor('first durable WAL in the destination spool', async () => (await spoolFlushLsn(spoolDir)) > 0, FIRST_WAL_TIMEOUT_MS);
    standby = await startPostgres({
      standbyOf: {
        host: '127.0.0.1',
        port: primary.port,
        conninfo: `host=127.0.0.1 port=${walsenderPorts[0]} user=${WALSENDER_USER} password=${WALSENDER_PASSWORD} application_name=far_standby sslmode=disable`,
      },
      settings: { wal_retrieve_retry_interval: "'200ms'" },
    });
    const auditSeqs = async (streamId = PG_STREAM): Promise<number[]> => {
      const seqs: number[] = [];
      for (const s of specs[DEST]) {
        const text = await readFile(join(s.dataDir, 'audit', `${streamId}.log`), 'utf8').catch(() => '');
        for (const line of text.split('\n')) if (line !== '') seqs.push(Number(line));
      }
      return seqs.sort((a, b) => a - b);
    };
    return {
      primary,
      standby,
      etcd,
      specs,
      agents,
      spoolDir,
      walsenderPorts,
      relay,
      sendingAgent: async () => {
        for (const [i, a] of agents[SOURCE].entries()) {
          const st = await a.status().catch(() => null);
          if (st?.senders.some((x) => (x as { streamId?: string }).streamId === PG_STREAM)) return i;
        }
        return -1;
      },
      auditProblems: async () => auditProblems(await auditSeqs()),
      auditCount: async () => (await auditSeqs()).length,
      auditSeqs,
      tail,
      cleanup,
    };
  } catch (err) {
    const logs = tail(15);
    await cleanup();
    throw new Error(`start acp pg federation: ${(err as Error).message}\n${logs}`, { cause: err });
  }
}
