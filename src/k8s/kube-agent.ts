// An agent in Kubernetes mode: its config comes from its DWCPFederation and
// DWCPStreams (KubeConfigSource) plus its node-local fields, every change
// goes through the agent's one reconcile path (Agent.reconfigure), a
// change the agent cannot apply live is reported as an Event, and the
// status of the streams it sends is written back (StatusReporter).

import { readFile } from 'node:fs/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import type { Logger } from 'pino';
import { pino } from 'pino';
import { Agent, type AgentOptions } from '../agent/agent.ts';
import type { Config } from '../config/config.ts';
import { ConfigError } from '../config/config-error.ts';
import type { ConfigOptions } from '../config/load-config.ts';
import type { BackoffOptions } from '../util/backoff.ts';
import { CRD_GROUP, CRD_VERSION, NODE_LOCAL_FIELDS, STREAM_NAMES } from './crd-schema.ts';
import { KubeConfigSource } from './kube-config-source.ts';
import { StatusReporter, STATUS_TICK_MS } from './status-reporter.ts';
import { StatusWriter } from './status-writer.ts';

/** Retry delays of list/watch, ms: as client-go's reflector, at most a few seconds apart. */
export const KUBE_RETRY: BackoffOptions = { initialMs: 200, maxMs: 5_000 };

/** How the agent finds its CRs. */
export interface KubeAgentOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  federation: string;
  /** Node-local config fields as written (region, nodeId, dataDir, listen, http, tls). */
  nodeLocal: Record<string, unknown>;
  load?: ConfigOptions;
  agent?: AgentOptions;
  logger?: Logger;
  /** Status: tick and least interval between writes without a condition change, ms. */
  statusTickMs?: number;
  statusMinIntervalMs?: number;
}

/** A running agent following its CRs. */
export interface KubeAgent {
  agent: Agent;
  source: KubeConfigSource;
  writer: StatusWriter;
  /** Stop following, stop writing status, stop the agent. */
  close(): Promise<void>;
}

/** Wait for a valid config from the CRs, start the agent on it, then follow. */
export async function startKubeAgent(options: KubeAgentOptions): Promise<KubeAgent> {
  const logger = options.logger ?? options.agent?.logger ?? pino();
  let agent: Agent | null = null;
  // The one reconcile path; a change the agent refuses becomes an Event on the federation.
  const apply = async (config: Config): Promise<void> => {
    if (!agent) return;
    const diff = await agent.reconfigure(config);
    if (diff.refused.length > 0) await source.refused(diff.refused);
  };
  const source: KubeConfigSource = new KubeConfigSource({
    kubeConfig: options.kubeConfig,
    namespace: options.namespace,
    federation: options.federation,
    nodeLocal: options.nodeLocal,
    load: options.load,
    logger,
    retry: KUBE_RETRY,
    onConfig: apply,
    onInvalid: () => agent?.metrics.configChanges.inc({ result: 'invalid' }),
  });
  const first = await source.start();
  try {
    agent = await Agent.start(first, { ...options.agent, logger: options.agent?.logger ?? logger });
  } catch (err) {
    await source.close();
    throw err;
  }
  // A change that arrived while the agent started.
  const latest = source.latest();
  if (latest && latest !== first) await apply(latest);
  const writer = new StatusWriter({ kubeConfig: options.kubeConfig, group: CRD_GROUP, version: CRD_VERSION, namespace: options.namespace, plural: STREAM_NAMES.plural, logger, minIntervalMs: options.statusMinIntervalMs });
  const reporter = new StatusReporter(agent, source, writer, options.statusTickMs ?? STATUS_TICK_MS);
  const running = agent;
  return {
    agent: running,
    source,
    writer,
    close: async () => {
      await reporter.close();
      await source.close();
      await running.stop();
    },
  };
}

/**
 * The node's own config file (YAML: region, nodeId, dataDir, listen, http,
 * tls), as written; checked with the rest once composed. Any other field is
 * refused: node-local fields win over the DWCPFederation's spec, so a
 * federation-wide field here (a whole config file passed by mistake) would
 * silently override the CRs.
 */
export async function readNodeLocal(path: string): Promise<Record<string, unknown>> {
  let tree: unknown;
  try {
    tree = parse(await readFile(path, 'utf8'), { uniqueKeys: true });
  } catch (err) {
    throw new ConfigError(path, [{ path: '', message: `cannot read node config: ${(err as Error).message.split('\n')[0]}` }]);
  }
  if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) throw new ConfigError(path, [{ path: '', message: 'must be a mapping of node-local fields' }]);
  const allowed: readonly string[] = NODE_LOCAL_FIELDS;
  const foreign = Object.keys(tree).filter((key) => !allowed.includes(key));
  if (foreign.length > 0) {
    throw new ConfigError(path, foreign.map((key) => ({ path: key, message: `not a node-local field (${allowed.join(', ')}); it belongs in the DWCPFederation or a DWCPStream` })));
  }
  return tree as Record<string, unknown>;
}
