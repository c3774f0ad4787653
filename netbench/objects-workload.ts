// netbench lab --workload objects: one generated tree replicated over the
// emulated WAN by rsync -a, rsync -az (daemon in the far namespace) and two
// DWCP agent processes, in one run: the initial sync, then an incremental
// phase (a share of files changed by a few KiB, some added, some deleted).
// Every tool is measured with the same counters: wall time to an identical
// tree, bytes on the emulated link (dwcp-wanem, both directions), CPU
// seconds of each side from /proc (children included) and peak RSS (VmHWM).

import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { createLab, type Lab, type LabStats, type LinkProfile } from './lab.ts';
import { LabAgent } from './lab-agent.ts';
import { cpuSeconds, parseProcStat, peakRssBytes, processTree, PeakRssSampler } from './proc-usage.ts';
import { mutateTree, DEFAULT_MUTATION, type MutationOptions, type MutationResult } from './tree-mutation.ts';
import { objectsMarkdown, objectsSvg } from './workload-report.ts';
import { generateSampleTree, type SampleTreeInfo } from '../src/cli/sample-tree.ts';
import { compareTrees } from '../src/cli/tree-compare.ts';
import { writeTwoRegion } from '../src/cli/two-region.ts';

/** rsync daemon port inside the far namespace. */
const RSYNC_PORT = 8730;
/** Time allowed for the rsync daemon to answer a module listing, ms. */
const RSYNC_READY_TIMEOUT_MS = 10_000;
/**
 * Interval of the source agent's in-sync check during a DWCP phase, ms.
 * At 500 ms, plus the tree compare after each positive check, the phase's
 * time ran ~0.5-0.9 s past the agent's last durable ack.
 */
const DWCP_POLL_INTERVAL_MS = 100;
/** Time allowed for an rsync daemon's per-connection process to exit after its client, ms. */
const DAEMON_SETTLE_TIMEOUT_MS = 10_000;
/** Floor of a phase's time limit, s; the limit grows with the data at a tenth of the link rate. */
const PHASE_TIMEOUT_FLOOR_S = 300;
/** Large files of the tree (each up to 200 MB; half the tree at 1 GiB). */
const LARGE_FILES = 3;
/** Share of the other bytes in small files (1..64 KiB): thousands of them at 1 GiB. */
const SMALL_FILES_SHARE = 0.5;
/** Congestion controls the workloads accept (set in both namespaces and for DWCP's carriers). */
export const WORKLOAD_CCS = ['bbr', 'cubic'] as const;

/** One tool's result in one phase. */
export interface PhaseRow {
  tool: string;
  phase: 'initial' | 'incremental';
  /** Wall time from start to an identical destination. */
  seconds: number;
  /** Bytes of the source tree at the end of the phase (MB/s and CPU s/GiB are per this). */
  treeBytes: number;
  /** Bytes on the emulated link, both directions (IP packets as forwarded by dwcp-wanem). */
  wireBytes: number;
  /** CPU seconds of the sending side (rsync client; DWCP source agent). */
  cpuSecondsSource: number;
  /** CPU seconds of the receiving side (rsync daemon and its children; DWCP destination agent). */
  cpuSecondsDest: number;
  /** Peak RSS of the largest process of each side (DWCP: since the agent started). */
  peakRssSourceBytes: number;
  peakRssDestBytes: number;
  /** Destination equal to the source (paths, sizes, modes, mtimes, SHA-256 of contents). */
  identical: boolean;
  /** First differences when not identical, or the failure. */
  notes: string[];
}

/** Options of the objects workload. */
export interface ObjectsWorkloadOptions {
  name: string;
  profile: LinkProfile;
  /** Congestion control of every TCP connection in the lab (both namespaces, DWCP carriers). */
  cc: (typeof WORKLOAD_CCS)[number];
  /** Size of the generated tree, bytes. */
  sizeBytes: number;
  /** Largest file of the tree, bytes (default: the generator's, 200 MB or a third). */
  largestBytes?: number;
  mutation?: MutationOptions;
  out: string;
  /** Keep the work directory (trees, configs) for inspection. */
  keep?: boolean;
  progress: (line: string) => void;
}

/** Everything the objects workload produced. */
export interface ObjectsWorkloadResult {
  name: string;
  profile: LinkProfile;
  cc: string;
  tree: SampleTreeInfo;
  mutation: MutationResult;
  rows: PhaseRow[];
  files: { markdown: string; json: string; svg: string };
}

/** Generate the tree, run every tool over one lab, write the reports. */
export async function runObjectsWorkload(o: ObjectsWorkloadOptions): Promise<ObjectsWorkloadResult> {
  await mkdir(o.out, { recursive: true });
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-netbench-objects-'));
  const source = join(dir, 'source');
  let lab: Lab | undefined;
  const rows: PhaseRow[] = [];
  let tree: SampleTreeInfo;
  let mutation: MutationResult;
  try {
    o.progress(`generating a ${(o.sizeBytes / 2 ** 20).toFixed(0)} MiB tree in ${source}`);
    tree = await generateSampleTree(source, { totalBytes: o.sizeBytes, largestBytes: o.largestBytes, largeFiles: LARGE_FILES, smallShare: SMALL_FILES_SHARE });
    o.progress(`  ${tree.files} files, ${tree.bytes} bytes, largest ${tree.largest}`);
    lab = await createLab(o.profile);
    setCongestionControl(lab, o.cc);
    const phaseTimeoutMs = 1000 * (PHASE_TIMEOUT_FLOOR_S + (o.profile.rateMbit > 0 ? (10 * 8 * o.sizeBytes) / (o.profile.rateMbit * 1e6) : 0));

    // rsync daemon in the far namespace, one module per variant.
    const rsyncVariants = [{ tool: 'rsync -a', flags: ['-a'] }, { tool: 'rsync -az', flags: ['-az'] }];
    const modules = rsyncVariants.map((v, i) => ({ ...v, module: `m${i}`, dest: join(dir, `dest-m${i}`) }));
    for (const m of modules) await mkdir(m.dest);
    const daemon = await startRsyncDaemon(lab, dir, modules);

    const rsyncPhase = async (m: (typeof modules)[number], phase: PhaseRow['phase']): Promise<void> => {
      o.progress(`${m.tool} ${phase}`);
      rows.push(await guard(m.tool, phase, () => rsyncRun(lab!, daemon, m, phase, source)));
    };
    for (const m of modules) await rsyncPhase(m, 'initial');

    // DWCP: destination agent first, the source agent's start begins the initial phase.
    const dwcpDest = join(dir, 'dest-dwcp');
    await mkdir(dwcpDest);
    const fed = await writeTwoRegion({
      dir: join(dir, 'dwcp'), sourcePath: source, destPath: dwcpDest,
      hosts: { source: lab.addrA, dest: lab.addrB }, amstExtra: `  congestionControl: ${o.cc}`,
    });
    const destAgent = await LabAgent.start(lab, lab.nsB, fed.destConfig, fed.ports.destHttp);
    let sourceAgent: LabAgent | undefined;
    try {
      o.progress('dwcp initial');
      rows.push(await guard('dwcp', 'initial', async () => {
        const before = await snapshot(lab!, [destAgent.pid]);
        const started = performance.now();
        sourceAgent = await LabAgent.start(lab!, lab!.nsA, fed.sourceConfig, fed.ports.sourceHttp);
        return dwcpPhase(lab!, 'initial', started, before, sourceAgent, destAgent, source, dwcpDest, phaseTimeoutMs, 0);
      }));
      o.progress('mutating the source tree');
      rows.push(await guard('dwcp', 'incremental', async () => {
        if (!sourceAgent) throw new Error('dwcp source agent did not start');
        const before = await snapshot(lab!, [sourceAgent.pid, destAgent.pid]);
        const started = performance.now();
        mutation = await mutateTree(source, o.mutation ?? DEFAULT_MUTATION);
        const mutationSeconds = (performance.now() - started) / 1000;
        o.progress(`  ${mutation.changed} changed, ${mutation.added} added, ${mutation.deleted} deleted in ${mutationSeconds.toFixed(1)} s; dwcp incremental`);
        return dwcpPhase(lab!, 'incremental', started, before, sourceAgent, destAgent, source, dwcpDest, phaseTimeoutMs, mutationSeconds);
      }));
    } finally {
      for (const agent of [sourceAgent, destAgent]) {
        if (agent && agent.warnings.length > 0) o.progress(`  agent warnings (last): ${agent.warnings.at(-1)}`);
        await agent?.stop();
      }
    }
    // The mutation runs inside the DWCP phase; if that phase failed before it, apply it now.
    mutation ??= await mutateTree(source, o.mutation ?? DEFAULT_MUTATION);
    for (const m of modules) await rsyncPhase(m, 'incremental');
  } finally {
    await lab?.close().catch((err: Error) => o.progress(`lab close: ${err.message}`));
    if (!o.keep) await rm(dir, { recursive: true, force: true });
  }

  const files = { markdown: join(o.out, 'objects.md'), json: join(o.out, 'objects.json'), svg: join(o.out, 'objects.svg') };
  const title = `${o.name}, ${o.cc}`;
  await writeFile(files.markdown, objectsMarkdown(title, o.profile, rows));
  await writeFile(files.json, JSON.stringify({ name: o.name, profile: o.profile, cc: o.cc, tree, mutation, rows }, null, 2) + '\n');
  await writeFile(files.svg, objectsSvg(`objects workload: ${title}`, rows));
  return { name: o.name, profile: o.profile, cc: o.cc, tree, mutation, rows, files };
}

/** Run a phase; a failure becomes a row saying so (the other tools still run). */
async function guard(tool: string, phase: PhaseRow['phase'], run: () => Promise<PhaseRow>): Promise<PhaseRow> {
  try {
    return await run();
  } catch (err) {
    return { tool, phase, seconds: 0, treeBytes: 0, wireBytes: 0, cpuSecondsSource: 0, cpuSecondsDest: 0, peakRssSourceBytes: 0, peakRssDestBytes: 0, identical: false, notes: [`failed: ${(err as Error).message}`] };
  }
}

/**
 * Set the default TCP congestion control of both namespaces (rsync has no
 * option of its own); throws if the kernel refuses. A namespace may only
 * choose an algorithm the host lists in net.ipv4.tcp_allowed_congestion_control
 * (or the host's own default, which new namespaces inherit).
 */
export function setCongestionControl(lab: Lab, cc: string): void {
  for (const ns of [lab.nsA, lab.nsB]) {
    const current = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', 'net.ipv4.tcp_congestion_control'], { encoding: 'utf8' }).stdout.trim();
    if (current === cc) continue;
    const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.tcp_congestion_control=${cc}`], { encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(`netbench: congestion control ${cc} refused in namespace ${ns} (default ${current}): ${r.stderr.trim()}; ` +
        `the host must allow it: add it to net.ipv4.tcp_allowed_congestion_control`);
    }
  }
}

/** Link counters and CPU seconds of some processes at one moment. */
interface Snapshot {
  stats: LabStats;
  cpu: number[];
}

async function snapshot(lab: Lab, pids: number[]): Promise<Snapshot> {
  return { stats: await lab.stats(), cpu: await Promise.all(pids.map(cpuSeconds)) };
}

/** Bytes forwarded by the emulator, both directions, between two readings. */
function wireBytesBetween(a: LabStats, b: LabStats): number {
  return b.aToB.forwardedBytes - a.aToB.forwardedBytes + b.bToA.forwardedBytes - a.bToA.forwardedBytes;
}

/** The source agent's in-sync flag and its session's queued files at one moment. */
async function syncState(agent: LabAgent): Promise<{ inSync: boolean; filesTotal: number }> {
  const progress = await agent.status().then((s) => s.senders[0]?.progress, () => undefined);
  return { inSync: progress?.inSync === true, filesTotal: progress?.filesTotal ?? -1 };
}

/** Wait until the DWCP destination matches the source, then measure. */
async function dwcpPhase(lab: Lab, phase: PhaseRow['phase'], started: number, before: Snapshot, sourceAgent: LabAgent, destAgent: LabAgent,
  source: string, dest: string, timeoutMs: number, mutationSeconds: number): Promise<PhaseRow> {
  // The source agent's in-sync flag (cheap, polled; it may still be set just after the changes,
  // before the agent noticed them), then the trees' metadata, then contents once. The phase
  // ends when the flag was seen, if the trees then compare equal and the agent did nothing
  // meanwhile (still in sync, no file queued since): the compare's own time is the lab's.
  const deadline = started + timeoutMs;
  let seconds: number;
  for (;;) {
    const seenAt = performance.now();
    const seen = await syncState(sourceAgent);
    if (seen.inSync && (await compareTrees(source, dest, { content: false })).identical) {
      const after = await syncState(sourceAgent);
      if (after.inSync && after.filesTotal === seen.filesTotal) {
        seconds = (seenAt - started) / 1000;
        break;
      }
    }
    if (performance.now() > deadline) throw new Error(`dwcp ${phase}: destination not identical after ${timeoutMs / 1000} s: ${sourceAgent.tail()}`);
    await new Promise((r) => setTimeout(r, DWCP_POLL_INTERVAL_MS));
  }
  const stats = await lab.stats();
  const [cpuSource, cpuDest] = await Promise.all([cpuSeconds(sourceAgent.pid), cpuSeconds(destAgent.pid)]);
  const cmp = await compareTrees(source, dest);
  const cpuBeforeSource = before.cpu.length === 2 ? before.cpu[0] : 0;
  const cpuBeforeDest = before.cpu.at(-1)!;
  const notes = [...cmp.differences];
  if (mutationSeconds > 0) notes.push(`includes ${mutationSeconds.toFixed(1)} s of writing the changes (agents watch the tree)`);
  return {
    tool: 'dwcp', phase, seconds, treeBytes: cmp.bytes, wireBytes: wireBytesBetween(before.stats, stats),
    cpuSecondsSource: cpuSource - cpuBeforeSource, cpuSecondsDest: cpuDest - cpuBeforeDest,
    peakRssSourceBytes: await peakRssBytes(sourceAgent.pid), peakRssDestBytes: await peakRssBytes(destAgent.pid),
    identical: cmp.identical, notes,
  };
}

/** The running rsync daemon. */
interface RsyncDaemon {
  pid: number;
}

/** rsyncd.conf with one writable module per variant, started with --no-detach in namespace B. */
async function startRsyncDaemon(lab: Lab, dir: string, modules: Array<{ module: string; dest: string }>): Promise<RsyncDaemon> {
  const conf = join(dir, 'rsyncd.conf');
  const text = ['use chroot = no', 'uid = root', 'gid = root', 'max connections = 4', `pid file = ${join(dir, 'rsyncd.pid')}`, '',
    ...modules.flatMap((m) => [`[${m.module}]`, `  path = ${m.dest}`, '  read only = no', '']),
  ].join('\n');
  await writeFile(conf, text);
  const child = lab.exec(lab.nsB, 'rsync', ['--daemon', '--no-detach', `--config=${conf}`, `--address=${lab.addrB}`, `--port=${RSYNC_PORT}`], { stdio: 'ignore' });
  const deadline = Date.now() + RSYNC_READY_TIMEOUT_MS;
  for (;;) {
    const r = spawnSync('ip', ['netns', 'exec', lab.nsA, 'rsync', `rsync://${lab.addrB}:${RSYNC_PORT}/`], { encoding: 'utf8' });
    if (r.status === 0) break;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`rsync daemon: not answering on ${lab.addrB}:${RSYNC_PORT}: ${r.stderr.trim()}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  return { pid: child.pid! };
}

/** One rsync client run to the daemon; the client's CPU is read by its shell wrapper after it was waited for. */
async function rsyncRun(lab: Lab, daemon: RsyncDaemon, m: { tool: string; flags: string[]; module: string; dest: string }, phase: PhaseRow['phase'],
  source: string): Promise<PhaseRow> {
  const before = await snapshot(lab, [daemon.pid]);
  const started = performance.now();
  // sh waits for rsync, then prints its own stat line: cutime+cstime are rsync's CPU.
  const script = 'rsync "$@"; s=$?; echo "dwcp-cpu $(cat /proc/$$/stat)"; exit $s';
  const client = lab.exec(lab.nsA, 'sh', ['-c', script, 'sh', ...m.flags, '--delete', `${source}/`, `rsync://${lab.addrB}:${RSYNC_PORT}/${m.module}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const sampler = new PeakRssSampler([client.pid!]).start();
  const daemonSampler = new PeakRssSampler([daemon.pid]).start();
  let cpuLine = '';
  let stderr = '';
  createInterface({ input: client.stdout! }).on('line', (line) => {
    if (line.startsWith('dwcp-cpu ')) cpuLine = line.slice('dwcp-cpu '.length);
  });
  client.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
  const seconds = (performance.now() - started) / 1000;
  const peakSource = await sampler.stop();
  if (code !== 0) throw new Error(`${m.tool}: exited ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
  // The daemon's per-connection processes exit after the client; their CPU then counts in the daemon's cutime.
  const settle = Date.now() + DAEMON_SETTLE_TIMEOUT_MS;
  while ((await processTree(daemon.pid)).length > 1 && Date.now() < settle) await new Promise((r) => setTimeout(r, 50));
  const peakDest = await daemonSampler.stop();
  const stats = await lab.stats();
  const cpuDest = (await cpuSeconds(daemon.pid)) - before.cpu[0];
  const cmp = await compareTrees(source, m.dest);
  return {
    tool: m.tool, phase, seconds, treeBytes: cmp.bytes, wireBytes: wireBytesBetween(before.stats, stats),
    cpuSecondsSource: parseProcStat(cpuLine, client.pid!).withChildrenSeconds, cpuSecondsDest: cpuDest,
    peakRssSourceBytes: peakSource, peakRssDestBytes: peakDest, identical: cmp.identical, notes: cmp.differences,
  };
}
