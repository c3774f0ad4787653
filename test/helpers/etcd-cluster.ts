// A real etcd cluster on loopback for tests: N members of Debian's etcd-server
// (/usr/bin/etcd), each with free ports on 127.0.0.1 and a data dir under
// os.tmpdir(). Members are ended by pid only.

import { freePort } from '../../src/cli/free-port.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Where Debian's etcd-server installs the binary. */
const ETCD_BINARY = '/usr/bin/etcd';
/** Raft heartbeat, short for fast tests on loopback. */
const HEARTBEAT_MS = 100;
/** Raft election timeout (10 heartbeats, etcd's recommended ratio). */
const ELECTION_TIMEOUT_MS = 1000;
/** How long to wait for members to answer /health. */
const READY_TIMEOUT_MS = 30_000;
/** Poll interval while waiting for health. */
const READY_POLL_MS = 100;
/** Deadline of one health probe. */
const HEALTH_PROBE_TIMEOUT_MS = 1000;
/** How long to wait for a killed member to be reaped. */
const EXIT_TIMEOUT_MS = 5000;

/** A running etcd cluster started by startEtcdCluster. */
export interface EtcdCluster {
  /** Client URLs, one per member, e.g. http://127.0.0.1:40123. */
  readonly endpoints: string[];
  /** SIGKILL member i (by pid) and wait for it to exit. */
  kill(i: number): Promise<void>;
  /** Start member i again on its data dir and wait until it answers healthy. */
  restart(i: number): Promise<void>;
  /** Kill every member and remove the temp dirs. */
  stop(): Promise<void>;
}

/** One member's fixed settings and current process. */
interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  logPath: string;
  process: ChildProcess | undefined;
}

/** Pids started here, killed if the test process exits without stop(). */
const livePids = new Set<number>();
let exitHookInstalled = false;

/** True when the member's /health says it has a leader and serves. */
async function healthy(clientPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${clientPort}/health`, { signal: AbortSignal.timeout(HEALTH_PROBE_TIMEOUT_MS) });
    const body = (await res.json()) as { health?: string };
    return res.ok && body.health === 'true';
  } catch {
    return false;
  }
}

/** Wait until every given member is healthy, failing after READY_TIMEOUT_MS. */
async function waitHealthy(members: Member[]): Promise<void> {
  const until = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const states = await Promise.all(members.map((m) => healthy(m.clientPort)));
    if (states.every(Boolean)) return;
    const dead = members.find((m) => m.process === undefined || m.process.exitCode !== null || m.process.signalCode !== null);
    if (dead !== undefined) throw new Error(`etcd member ${dead.name} exited during start; log: ${dead.logPath}`);
    if (Date.now() > until) {
      const names = members.filter((_, i) => !states[i]).map((m) => m.name);
      throw new Error(`etcd cluster not healthy within ${READY_TIMEOUT_MS} ms (members ${names.join(', ')}); logs in ${path.dirname(members[0].logPath)}`);
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
}

/**
 * Start a real etcd cluster on loopback (default 3 members) and wait until
 * it answers. With autoCompactionRetention (e.g. '2s') members compact
 * their history periodically, as production clusters do.
 */
export async function startEtcdCluster(options: { members?: number; autoCompactionRetention?: string } = {}): Promise<EtcdCluster> {
  if (!existsSync(ETCD_BINARY)) {
    throw new Error('etcd not found: install Debian package etcd-server (npm test\'s set-up does this)');
  }
  const count = options.members ?? 3;
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`start etcd cluster: members must be a positive integer, got ${count}`);

  // Lay out members: ports, data dirs, the initial cluster string.
  const root = await mkdtemp(path.join(os.tmpdir(), 'dwcp-etcd-'));
  const members: Member[] = [];
  for (let i = 0; i < count; i++) {
    members.push({
      name: `m${i}`,
      clientPort: await freePort(),
      peerPort: await freePort(),
      dataDir: path.join(root, `m${i}.etcd`),
      logPath: path.join(root, `m${i}.log`),
      process: undefined,
    });
  }
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
  const token = `dwcp-test-${path.basename(root)}`;

  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const pid of livePids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    });
  }

  // Spawn one member; its output goes to a log file beside its data dir.
  const launch = (m: Member): void => {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--advertise-client-urls=http://127.0.0.1:${m.clientPort}`,
      `--listen-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peerPort}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${token}`,
      '--initial-cluster-state=new',
      `--heartbeat-interval=${HEARTBEAT_MS}`,
      `--election-timeout=${ELECTION_TIMEOUT_MS}`,
      '--logger=zap',
      '--log-outputs=stderr',
    ];
    if (options.autoCompactionRetention !== undefined) args.push('--auto-compaction-mode=periodic', `--auto-compaction-retention=${options.autoCompactionRetention}`);
    const log = openSync(m.logPath, 'a');
    const child = spawn(ETCD_BINARY, args, { stdio: ['ignore', log, log] });
    closeSync(log);
    const pid = child.pid;
    if (pid === undefined) throw new Error(`spawn etcd member ${m.name}: no pid`);
    livePids.add(pid);
    child.once('exit', () => livePids.delete(pid));
    m.process = child;
  };

  // Kill by pid and wait for the exit.
  const killMember = async (m: Member): Promise<void> => {
    const child = m.process;
    m.process = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid!, 'SIGKILL');
    const timeout = new Promise<void>((_, reject) => {
      setTimeout(() => reject(new Error(`etcd member ${m.name} (pid ${child.pid}) did not exit after SIGKILL`)), EXIT_TIMEOUT_MS).unref();
    });
    await Promise.race([exited, timeout]);
  };

  const member = (i: number): Member => {
    const m = members[i];
    if (m === undefined) throw new Error(`etcd cluster: no member ${i} (members 0..${members.length - 1})`);
    return m;
  };

  try {
    for (const m of members) launch(m);
    await waitHealthy(members);
  } catch (err) {
    await Promise.allSettled(members.map(killMember));
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  return {
    endpoints: members.map((m) => `http://127.0.0.1:${m.clientPort}`),
    kill: async (i) => killMember(member(i)),
    restart: async (i) => {
      const m = member(i);
      await killMember(m);
      launch(m);
      await waitHealthy([m]);
    },
    stop: async () => {
      await Promise.allSettled(members.map(killMember));
      await rm(root, { recursive: true, force: true });
    },
  };
}
