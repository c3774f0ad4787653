// Lab mode: two network namespaces joined by the dwcp-wanem link emulator.
// The kernel here has no netem qdisc, so delay/loss/rate come from a
// userspace emulator on TUN devices (native-bindings/wanem).
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { WANEM_PATH } from '../native-bindings/index.ts';
import { validateProfile, type LinkProfile } from './link-profile.ts';

export { METRO, CONTINENTAL, INTERCONTINENTAL, SATELLITE, PROFILES, type LinkProfile } from './link-profile.ts';

const READY_TIMEOUT_MS = 5_000;
const STATS_TIMEOUT_MS = 2_000;
const STOP_GRACE_MS = 2_000;
const TUN_A = 'dwcp-wan-a';
const TUN_B = 'dwcp-wan-b';
/** Socket buffer ceiling inside the lab, bytes: one flow must fill 1 Gbit/s x 600 ms. */
const TCP_BUFFER_MAX_BYTES = 64 * 1024 * 1024;

/** Counters of one direction of the emulated link. */
export interface DirectionStats {
  /** Wire segments delivered. */
  forwardedPackets: number;
  /** Wire bytes delivered. */
  forwardedBytes: number;
  /** Segments dropped by random loss. */
  lostPackets: number;
  /** Segments dropped because the queue was full. */
  queueDroppedPackets: number;
}

/** Counters of both directions (A->B carries what A sends). */
export interface LabStats {
  /** Traffic from namespace A to namespace B. */
  aToB: DirectionStats;
  /** Traffic from namespace B to namespace A. */
  bToA: DirectionStats;
}

/** A running emulated WAN between two namespaces. */
export interface Lab {
  /** Namespace A's name. */
  nsA: string;
  /** Namespace B's name. */
  nsB: string;
  /** Address of A's end of the link. */
  addrA: string;
  /** Address of B's end of the link. */
  addrB: string;
  /** Spawn cmd inside a namespace (ip netns exec); close() kills it if still running. */
  exec(ns: string, cmd: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** Current link counters. */
  stats(): Promise<LabStats>;
  /** Stop everything started here and delete the namespaces; returns final counters. */
  close(): Promise<LabStats | undefined>;
}

// Labs still open, torn down synchronously if the process exits first.
const openLabs = new Set<{ pids: Set<number>; namespaces: string[] }>();
let labCounter = 0;

process.on('exit', () => {
  for (const lab of openLabs) {
    for (const pid of lab.pids) killQuietly(pid, 'SIGKILL');
    for (const ns of lab.namespaces) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
});

/** Create a lab emulating `profile` in both directions. Needs root, ip netns and /dev/net/tun. */
export async function createLab(profile: LinkProfile): Promise<Lab> {
  validateProfile(profile);
  checkPrerequisites();
  const n = labCounter++;
  const nsA = `dwcp-${process.pid}-${n}-a`;
  const nsB = `dwcp-${process.pid}-${n}-b`;
  const subnet = `10.203.${n % 256}`;
  const state = { pids: new Set<number>(), namespaces: [] as string[] };
  openLabs.add(state);

  try {
    // Namespaces with loopback up and buffers big enough for long fat links.
    for (const ns of [nsA, nsB]) {
      run('ip', ['netns', 'add', ns]);
      state.namespaces.push(ns);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const buf = `4096 131072 ${TCP_BUFFER_MAX_BYTES}`;
      run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.tcp_rmem=${buf}`, `net.ipv4.tcp_wmem=${buf}`]);
    }

    // The emulator creates (and brings up) one TUN in each namespace.
    const wanem = await startWanem(nsA, nsB, profile, state.pids);

    // Addresses on the TUN devices; the /30 makes each the other's on-link peer.
    const addrA = `${subnet}.1`;
    const addrB = `${subnet}.2`;
    run('ip', ['-n', nsA, 'addr', 'add', `${addrA}/30`, 'dev', TUN_A]);
    run('ip', ['-n', nsB, 'addr', 'add', `${addrB}/30`, 'dev', TUN_B]);

    return {
      nsA, nsB, addrA, addrB,
      exec: (ns, cmd, args, options) => execIn(ns, cmd, args, options ?? {}, [nsA, nsB], state.pids),
      stats: () => wanem.stats(),
      close: () => closeLab(state, wanem),
    };
  } catch (err) {
    await closeLab(state, undefined);
    throw err;
  }
}

/** Throw with the reason if this machine cannot run a lab. */
function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) throw new Error('lab: needs root (network namespaces and TUN devices)');
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) {
    throw new Error(`lab: 'ip netns' unavailable: ${ip.error?.message ?? ip.stderr.trim()}`);
  }
  if (!existsSync('/dev/net/tun')) throw new Error('lab: /dev/net/tun missing (TUN unavailable)');
  if (!existsSync(WANEM_PATH)) {
    throw new Error(`lab: ${WANEM_PATH} missing: native bindings not built: run npm run setup (needs gcc)`);
  }
}

/** Run a command to completion; throw with its stderr on failure. */
function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`lab: ${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  }
}

/** Send a signal, ignoring a process that is already gone. */
function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already exited
  }
}

/** Spawn inside one of the lab's namespaces and track the pid for close(). */
function execIn(ns: string, cmd: string, args: string[], options: SpawnOptions,
  allowed: string[], pids: Set<number>): ChildProcess {
  if (!allowed.includes(ns)) throw new Error(`lab exec: namespace ${ns} is not part of this lab`);
  // `ip netns exec` execs the command in place, so the pid is the command's.
  const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], options);
  if (child.pid !== undefined) {
    const pid = child.pid;
    pids.add(pid);
    child.once('exit', () => pids.delete(pid));
  }
  return child;
}

/** The running emulator process and its counters. */
interface Wanem {
  child: ChildProcess;
  stats(): Promise<LabStats>;
  stop(): Promise<LabStats | undefined>;
}

/** dwcp-wanem command line for a profile (same parameters both ways). */
function wanemArgs(nsA: string, nsB: string, p: LinkProfile): string[] {
  const args = ['--ns-a', nsA, '--ns-b', nsB, '--tun-a', TUN_A, '--tun-b', TUN_B,
    '--delay-ms', String(p.delayMs), '--jitter-ms', String(p.jitterMs ?? 0),
    '--loss', String(p.loss), '--rate-mbit', String(p.rateMbit), '--mtu', String(p.mtu ?? 1500)];
  if (p.queueMs !== undefined) args.push('--queue-ms', String(p.queueMs));
  if (p.seed !== undefined) args.push('--seed', String(p.seed));
  return args;
}

/** Start dwcp-wanem and wait for its ready line; throws with its stderr if it dies. */
async function startWanem(nsA: string, nsB: string, p: LinkProfile, pids: Set<number>): Promise<Wanem> {
  const child = spawn(WANEM_PATH, wanemArgs(nsA, nsB, p), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) pids.add(child.pid);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });

  // Every stdout line is one JSON event; stats lines go to whoever waits.
  const waiters: Array<(s: LabStats) => void> = [];
  let finalStats: LabStats | undefined;
  let onReady: (() => void) | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: { event?: string; final?: boolean };
    try {
      event = JSON.parse(line) as { event?: string; final?: boolean };
    } catch {
      return; // not one of the emulator's JSON events
    }
    if (event.event === 'ready') onReady?.();
    if (event.event !== 'stats') return;
    const stats = parseStats(event as Record<string, unknown>);
    if (event.final) finalStats = stats;
    waiters.splice(0).forEach((resolve) => resolve(stats));
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
    if (child.pid !== undefined) pids.delete(child.pid);
    resolve(code);
  }));

  // Ready, or an early exit with the emulator's reason.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`lab: dwcp-wanem not ready after ${READY_TIMEOUT_MS} ms: ${stderr.trim()}`)), READY_TIMEOUT_MS);
    timer.unref();
    onReady = () => { clearTimeout(timer); resolve(); };
    child.once('error', (err) => { clearTimeout(timer); reject(new Error(`lab: start dwcp-wanem: ${err.message}`)); });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`lab: dwcp-wanem exited (${code}): ${stderr.trim()}`)); });
  });

  return {
    child,
    stats: () => new Promise<LabStats>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('lab stats: dwcp-wanem did not answer SIGUSR1')), STATS_TIMEOUT_MS);
      timer.unref();
      waiters.push((s) => { clearTimeout(timer); resolve(s); });
      child.kill('SIGUSR1');
    }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
        timer.unref();
        await exited;
        clearTimeout(timer);
      }
      return finalStats;
    },
  };
}

/** Convert the emulator's snake_case stats line into LabStats. */
function parseStats(event: Record<string, unknown>): LabStats {
  const dir = (raw: unknown): DirectionStats => {
    const d = raw as Record<string, number>;
    return {
      forwardedPackets: d.forwarded_packets,
      forwardedBytes: d.forwarded_bytes,
      lostPackets: d.lost_packets,
      queueDroppedPackets: d.queue_dropped_packets,
    };
  };
  return { aToB: dir(event.a_to_b), bToA: dir(event.b_to_a) };
}

/** Kill what the lab started (by pid), delete its namespaces, forget it. */
async function closeLab(state: { pids: Set<number>; namespaces: string[] }, wanem: Wanem | undefined): Promise<LabStats | undefined> {
  for (const pid of state.pids) {
    if (pid !== wanem?.child.pid) killQuietly(pid, 'SIGKILL');
  }
  const stats = await wanem?.stop();
  if (wanem === undefined) for (const pid of state.pids) killQuietly(pid, 'SIGKILL');

  // Delete every namespace even if one fails, then report the failures.
  const errors: string[] = [];
  for (const ns of state.namespaces.splice(0)) {
    const r = spawnSync('ip', ['netns', 'del', ns], { encoding: 'utf8' });
    if (r.status !== 0) errors.push(`${ns}: ${r.stderr.trim()}`);
  }
  openLabs.delete(state);
  if (errors.length > 0) throw new Error(`lab close: ip netns del: ${errors.join('; ')}`);
  return stats;
}
