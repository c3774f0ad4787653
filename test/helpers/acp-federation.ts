// A two-region federation on loopback with N agents per region, each region
// on its own real 3-member etcd cluster: certificates from dev-pki, one
// config file per agent (own nodeId, listen and http ports, own dataDir),
// every source agent on the same source directories and every destination
// agent on the same destination directories (same machine). Agents run as
// real processes (AgentProcess).

import { mkdir, readFile, writeFile, rm, mkdtemp, readdir, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevPki } from '../../src/cli/dev-pki.ts';
import { freePort } from '../../src/cli/free-port.ts';
import { AgentProcess, waitFor } from './agent-process.ts';
import { startEtcdCluster, type EtcdCluster } from './etcd-cluster.ts';
import { auditProblems } from './federation.ts';

/** Source region of the generated federation. */
export const SOURCE = 'eu-west';
/** Destination region. */
export const DEST = 'us-east';
/** Federation name used in consensus keys. */
export const FEDERATION = 'acp';

/** One objects stream of the federation. */
export interface StreamSpec {
  id: string;
  sourcePath: string;
  destPath: string;
}

/** Options of writeAcpConfigs. */
export interface AcpConfigOptions {
  dir: string;
  agentsPerRegion: number;
  /** Agents in the destination region (default agentsPerRegion). */
  destAgents?: number;
  streams: StreamSpec[];
  etcd: Record<string, string[]>;
  /** Lease TTL, e.g. '2s'. */
  leaseTtl: string;
  carriers?: number;
  chunk?: string;
  checkpointInterval?: string;
  /** List each region's etcd under regions[].consensus, so destinations verify senders' epochs there. */
  verifyEpochs?: boolean;
}

/** One generated agent. */
export interface AgentSpec {
  region: string;
  nodeId: string;
  configPath: string;
  dataDir: string;
  port: number;
  httpPort: number;
}

/** Write certs and one config per agent; returns the agents of each region. */
export async function writeAcpConfigs(options: AcpConfigOptions): Promise<Record<string, AgentSpec[]>> {
  const specs: Record<string, AgentSpec[]> = { [SOURCE]: [], [DEST]: [] };
  for (const region of [SOURCE, DEST]) {
    const count = region === DEST ? (options.destAgents ?? options.agentsPerRegion) : options.agentsPerRegion;
    for (let i = 1; i <= count; i++) {
      const nodeId = `${region}-node-${i}`;
      specs[region].push({ region, nodeId, configPath: join(options.dir, `${nodeId}.yaml`), dataDir: join(options.dir, nodeId), port: await freePort(), httpPort: await freePort() });
    }
  }
  // One certificate per agent, naming its federation, region and node.
  const names = Object.fromEntries(Object.values(specs).flat().map((a) => [a.nodeId, { federation: FEDERATION, region: a.region, node: a.nodeId }]));
  const certs = await createDevPki(join(options.dir, 'tls'), names);
  const endpointsOf = (region: string): string => specs[region].map((a) => `"127.0.0.1:${a.port}"`).join(', ');
  const consensusOf = (region: string): string => options.verifyEpochs ? `\n    consensus: { endpoints: [${options.etcd[region].map((e) => `"${e}"`).join(', ')}] }` : '';
  for (const region of [SOURCE, DEST]) {
    for (const a of specs[region]) {
      const cert = certs[a.nodeId];
      await mkdir(a.dataDir, { recursive: true });
      const yaml = `# generated for ACP tests: ${specs[SOURCE].length} + ${specs[DEST].length} agents on etcd
federation: ${FEDERATION}
region: ${region}
nodeId: ${a.nodeId}
dataDir: ${a.dataDir}
listen: { host: 127.0.0.1, port: ${a.port} }
http: { host: 127.0.0.1, port: ${a.httpPort} }
tls: { ca: ${cert.caFile}, cert: ${cert.certFile}, key: ${cert.keyFile} }
regions:
  - name: ${SOURCE}
    endpoints: [${endpointsOf(SOURCE)}]${consensusOf(SOURCE)}
  - name: ${DEST}
    endpoints: [${endpointsOf(DEST)}]${consensusOf(DEST)}
amst:
  carriers: ${options.carriers ?? 2}
hde:
  level: 1
  workers: 1
  chunk: ${options.chunk ?? '256KiB'}
acp:
  backend: etcd
  endpoints: [${options.etcd[region].map((e) => `"${e}"`).join(', ')}]
  leaseTtl: ${options.leaseTtl}
  callTimeout: 1s
checkpoint:
  interval: ${options.checkpointInterval ?? '200ms'}
streams:
${options.streams.map((s) => `  - id: ${s.id}
    kind: objects
    source: { region: ${SOURCE}, path: ${s.sourcePath}, scanInterval: 1s }
    destinations:
      - { region: ${DEST}, path: ${s.destPath} }`).join('\n')}
`;
      await writeFile(a.configPath, yaml);
    }
  }
  return specs;
}

/** A running ACP federation: two etcd clusters and the agents. */
export interface AcpFederation {
  dir: string;
  etcd: Record<string, EtcdCluster>;
  specs: Record<string, AgentSpec[]>;
  agents: Record<string, AgentProcess[]>;
  /** Merged audit logs of the destination agents for a stream, sorted. */
  auditSeqs(streamId: string): Promise<number[]>;
  /** Problems (gap, double apply) in the merged audit log. */
  auditProblems(streamId: string): Promise<string[]>;
  /** Index of the source agent that currently sends streamId (has a sender with a session), or -1. */
  sendingAgent(streamId: string): Promise<number>;
  /** The last log lines of every agent (for a failing test's message). */
  tail(lines: number): string;
  cleanup(): Promise<void>;
}

/** Start two 3-member etcd clusters, write configs, start destination agents then source agents. */
export async function startAcpFederation(options: Omit<AcpConfigOptions, 'dir' | 'etcd'> & { dir: string }): Promise<AcpFederation> {
  const etcd: Record<string, EtcdCluster> = {};
  const agents: Record<string, AgentProcess[]> = { [SOURCE]: [], [DEST]: [] };
  const cleanup = async (): Promise<void> => {
    for (const list of Object.values(agents)) for (const a of list) await a.kill9().catch(() => {});
    for (const c of Object.values(etcd)) await c.stop().catch(() => {});
  };
  try {
    etcd[SOURCE] = await startEtcdCluster({ members: 3 });
    etcd[DEST] = await startEtcdCluster({ members: 3 });
    const specs = await writeAcpConfigs({ ...options, etcd: { [SOURCE]: etcd[SOURCE].endpoints, [DEST]: etcd[DEST].endpoints } });
    // Destination agents first, then source agents; each region's agents in parallel.
    for (const region of [DEST, SOURCE]) {
      for (const s of specs[region]) agents[region].push(new AgentProcess(s.configPath, s.httpPort));
      await Promise.all(agents[region].map((a) => a.start()));
    }
    const auditSeqs = async (streamId: string): Promise<number[]> => {
      const seqs: number[] = [];
      for (const s of specs[DEST]) {
        const text = await readFile(join(s.dataDir, 'audit', `${streamId}.log`), 'utf8').catch(() => '');
        for (const line of text.split('\n')) if (line !== '') seqs.push(Number(line));
      }
      return seqs.sort((a, b) => a - b);
    };
    return {
      dir: options.dir,
      etcd,
      specs,
      agents,
      auditSeqs,
      auditProblems: async (streamId) => auditProblems(await auditSeqs(streamId)),
      sendingAgent: async (streamId) => {
        for (const [i, a] of agents[SOURCE].entries()) {
          const st = await a.status().catch(() => null);
          if (st?.senders.some((x) => (x as { streamId?: string }).streamId === streamId)) return i;
        }
        return -1;
      },
      tail: (lines) => Object.values(agents).flat().map((a, i) => `--- agent ${i} (${a.configPath})\n${a.logs.slice(-lines).join('\n')}`).join('\n'),
      cleanup: async () => {
        await cleanup();
        await rm(options.dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** A fresh temp dir for one test. */
export function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Wait until some source agent sends streamId; returns its index. */
export async function waitForSender(fed: AcpFederation, streamId: string, timeoutMs: number, except = -1): Promise<number> {
  let found = -1;
  await waitFor(`a sender of ${streamId}${except >= 0 ? ` other than agent ${except}` : ''}`, async () => {
    found = await fed.sendingAgent(streamId);
    return found >= 0 && found !== except;
  }, timeoutMs, 100);
  return found;
}

/** Move a staged tree's top-level entries into root (each rename atomic), so agents see it appear at once. */
export async function moveTreeInto(staging: string, root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  for (const name of await readdir(staging)) await rename(join(staging, name), join(root, name));
}
