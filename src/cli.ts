#!/usr/bin/env node
// The dwcp command line. Each command is a small function; errors reach the
// user as one clear line (config errors list every field at fault) and a
// non-zero exit code.

import { parseArgs } from 'node:util';
import { dirname, resolve } from 'node:path';
import { Agent, DEFAULT_DRAIN_GRACE_MS } from './agent/agent.ts';
import { loadConfig } from './config/load-config.ts';
import { ConfigFileWatch } from './config/config-file-watch.ts';
import { ConfigError } from './config/config-error.ts';
import { configJsonSchema } from './config/schema.ts';
import { runDemo } from './cli/demo.ts';
import { parseSize } from './config/units.ts';
import { shareCompileCache } from './util/compile-cache.ts';

shareCompileCache();

const HELP = `dwcp: multi-region WAN replication of PostgreSQL WAL and object deltas

Usage: dwcp <command> [options]

Commands:
  agent --config FILE      Run the agent (one per node; DaemonSet in Kubernetes).
                           SIGTERM drains: applied data is checkpointed, then exit.
  demo [--size 300MB]      Two agents on loopback replicate a generated sample tree
       [--carriers 4]      and verify it identical. No setup needed beyond npm run demo.
       [--keep]
  bench [--size 1GiB]      Replicate a generated tree with DWCP and with rsync -a on
                           loopback in one run; print times, ratio, bytes on the wire.
  bench-wal                The same pgbench run replicated by native PostgreSQL streaming
                           and through DWCP (primary -> A -> B -> standby) in one run;
                           print WAL bytes, wire bytes, catch-up time, replay lag.
  wal-restore %f %p        restore_command for a standby: fetch a WAL file from the
       [--url URL --user U | --config FILE [--stream ID] | --spool DIR]
                           agent's /wal/ HTTP endpoint (exit 1: missing).
  netbench lab --profile NAME   Emulated WAN (root): one TCP flow, fixed N flows, DWCP
                           AMST adaptive and iperf3 over one link; table, JSON, SVG.
  netbench live --peer H:P Bounded DWCP link run to a peer (see netbench --help).
  status [--url URL]       Print a running agent's streams, links and lag
                           (default http://127.0.0.1:9464/status).
  certs ca --out DIR       Issue a federation CA with openssl.
  certs agent ...          Issue an agent certificate naming dwcp://<federation>/<region>/<node>
                           (see dwcp certs --help and docs/threat-model.md).
  config check FILE        Validate a config file; every problem names its field.
  config schema            Print the config file's JSON Schema.
  config reference         Print the config reference (markdown, as in README.md).
  crds [--out DIR]         Print the DWCPFederation and DWCPStream CRDs (YAML, generated
                           from the config schema); --out writes one file per CRD.
  help                     This text.

Agent endpoints: /metrics (Prometheus), /healthz, /readyz, /status on http.port (9464).
Docs: README.md (quick start, config reference, metrics).
`;

const AGENT_USAGE = `Usage: dwcp agent --config FILE [--audit]
       dwcp agent --kube --federation NAME --config NODE_FILE [--namespace NS] [--kubeconfig PATH]

Runs the agent. Logs are JSON on stdout (pino). --audit records durably applied
sequence numbers under <dataDir>/audit/ (for verification runs).

File mode: FILE is watched, and read again on SIGHUP; a change applies live
(streams added, removed, retuned; peers; tuning) or is refused with its field
path, and the running config stays.

Kubernetes mode (--kube): the config is the DWCPFederation NAME and the
DWCPStreams naming it, in namespace NS (default: $POD_NAMESPACE, the
kubeconfig context's, or "default"), plus NODE_FILE: this node's fields
(region, nodeId, dataDir, listen, http, tls). The kubeconfig is PATH, or
in-cluster / $KUBECONFIG. The elected sender of each stream writes its status.
`;

/** Exit codes. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
/** An error reached the process unhandled: a bug (sysexits EX_SOFTWARE). */
const EXIT_BUG = 70;

/**
 * Last resort for the agent process: an error that reached the process
 * unhandled is a bug, never one stream's I/O error (sinks, sources and
 * links catch those where they occur and halt or retry that stream only).
 * Log it as such and exit, so the supervisor restarts a clean agent
 * instead of one in an unknown state.
 */
function installBugGuard(log: (err: unknown, origin: string) => void): void {
  const die = (err: unknown, origin: string): void => {
    try {
      log(err, origin);
    } finally {
      process.exit(EXIT_BUG);
    }
  };
  process.on('unhandledRejection', (reason) => die(reason, 'unhandledRejection'));
  process.on('uncaughtException', (err, origin) => die(err, origin));
}

/** How the guard reports: the error, its stack, and that it is a bug. */
function bugReport(err: unknown, origin: string): { origin: string; err: string; stack?: string } {
  return { origin, err: err instanceof Error ? err.message : String(err), stack: err instanceof Error ? err.stack : undefined };
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return 0;
    case 'agent':
      return agentCommand(rest);
    case 'demo':
      return demoCommand(rest);
    case 'bench': {
      const { benchCommand } = await import('./cli/bench.ts');
      return benchCommand(rest);
    }
    case 'bench-wal': {
      const { benchWalCommand } = await import('./cli/bench-wal.ts');
      return benchWalCommand(rest);
    }
    case 'wal-restore': {
      const { walRestoreCommand } = await import('./cli/wal-restore-command.ts');
      return walRestoreCommand(rest);
    }
    case 'status':
      return statusCommand(rest);
    case 'netbench': {
      const { netbenchCommand } = await import('../netbench/netbench-cli.ts');
      return netbenchCommand(rest);
    }
    case 'certs': {
      const { certsCommand } = await import('./cli/certs.ts');
      return certsCommand(rest);
    }
    case 'config':
      return configCommand(rest);
    case 'crds': {
      const { crdsCommand } = await import('./cli/crds.ts');
      return crdsCommand(rest);
    }
    default:
      process.stderr.write(`dwcp: unknown command "${command}"\n\n${HELP}`);
      return EXIT_USAGE;
  }
}

async function agentCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' }, audit: { type: 'boolean' }, kube: { type: 'boolean' }, federation: { type: 'string' }, namespace: { type: 'string' }, kubeconfig: { type: 'string' } } });
  if (values.help) {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (!values.config || (values.kube && !values.federation)) {
    process.stderr.write(`dwcp agent: ${values.config ? '--kube needs --federation NAME' : '--config FILE is required'} (see dwcp agent --help)\n`);
    return EXIT_USAGE;
  }
  if (values.kube) return kubeAgentCommand(values.config, values.federation!, values.namespace, values.kubeconfig, values.audit);
  const config = await loadConfig(values.config);
  // Until the agent's logger exists the guard writes to stderr.
  let agent: Agent | null = null;
  installBugGuard((err, origin) => {
    const message = 'dwcp bug: an error reached the process unhandled (stream I/O errors are handled per stream; this is not one); exiting';
    if (agent) agent.logger.fatal(bugReport(err, origin), message);
    else process.stderr.write(`${message}: ${JSON.stringify(bugReport(err, origin))}\n`);
  });
  agent = await Agent.start(config, { audit: values.audit });
  const running = agent;
  // Live configuration: the file is watched and read again on SIGHUP; one reconcile path applies it.
  await new ConfigFileWatch({
    path: values.config,
    signals: process,
    onConfig: async (next) => void (await running.reconfigure(next)),
    onInvalid: (err) => {
      running.metrics.configChanges.inc({ result: 'invalid' });
      running.logger.error({ err: err.message }, 'config file refused; the running config stays');
    },
  }).start();
  handleSignals(running);
  await new Promise(() => {});
  return 0;
}

/** Kubernetes mode: config from the federation's CRs plus the node's own file; status written back. */
async function kubeAgentCommand(nodeFile: string, federation: string, namespace: string | undefined, kubeconfig: string | undefined, audit: boolean | undefined): Promise<number> {
  // Loaded here only: the client library is large and only this mode needs it.
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { readNodeLocal, startKubeAgent } = await import('./k8s/kube-agent.ts');
  const nodeLocal = await readNodeLocal(nodeFile);
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  // The namespace: the flag, the pod's own (downward API), the kubeconfig context's, or default.
  const ns = namespace ?? process.env.POD_NAMESPACE ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  let kube: Awaited<ReturnType<typeof startKubeAgent>> | null = null;
  installBugGuard((err, origin) => {
    const message = 'dwcp bug: an error reached the process unhandled; exiting';
    if (kube) kube.agent.logger.fatal(bugReport(err, origin), message);
    else process.stderr.write(`${message}: ${JSON.stringify(bugReport(err, origin))}\n`);
  });
  kube = await startKubeAgent({ kubeConfig: kc, namespace: ns, federation, nodeLocal, load: { baseDir: dirname(resolve(nodeFile)) }, agent: { audit } });
  handleSignals(kube.agent);
  await new Promise(() => {});
  return 0;
}

/** SIGTERM/SIGINT: RUNNING -> DRAINING -> STOPPED; a second signal exits at once. */
function handleSignals(running: Agent): void {
  let signals = 0;
  const onSignal = (signal: string): void => {
    signals++;
    if (signals > 1) process.exit(EXIT_FAILURE);
    running.logger.info({ signal }, 'signal received');
    running.drain(DEFAULT_DRAIN_GRACE_MS).then(
      () => process.exit(0),
      (err: Error) => {
        running.logger.error({ err: err.message }, 'drain failed');
        process.exit(EXIT_FAILURE);
      },
    );
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

async function demoCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { size: { type: 'string', default: '300MB' }, carriers: { type: 'string', default: '4' }, keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('Usage: dwcp demo [--size 300MB] [--carriers 4] [--keep]\n');
    return 0;
  }
  const ok = await runDemo({ totalBytes: parseSize(values.size), carriers: Number(values.carriers), keep: values.keep, out: process.stdout });
  return ok ? 0 : EXIT_FAILURE;
}

async function statusCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { url: { type: 'string', default: 'http://127.0.0.1:9464/status' } } });
  let res: Response;
  try {
    res = await fetch(values.url, { signal: AbortSignal.timeout(5000) });
  } catch (err) {
    process.stderr.write(`dwcp status: cannot reach ${values.url}: ${(err as Error).message} (is the agent running? is http.port right?)\n`);
    return EXIT_FAILURE;
  }
  process.stdout.write(await res.text());
  return res.ok ? 0 : EXIT_FAILURE;
}

async function configCommand(args: string[]): Promise<number> {
  const [sub, file] = args;
  if (sub === 'reference') {
    const { configReference } = await import('./config/config-reference.ts');
    process.stdout.write(configReference());
    return 0;
  }
  if (sub === 'schema') {
    process.stdout.write(JSON.stringify(configJsonSchema(), null, 2) + '\n');
    return 0;
  }
  if (sub === 'check' && file) {
    await loadConfig(file);
    process.stdout.write(`${file}: ok\n`);
    return 0;
  }
  process.stderr.write('Usage: dwcp config check FILE | dwcp config schema | dwcp config reference\n');
  return EXIT_USAGE;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') process.stderr.write(`dwcp: ${err.message}\n`);
    else process.stderr.write(`dwcp: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
