// `dwcp bench`: the same generated tree replicated on loopback by DWCP (two
// agents, TCP+TLS carriers, zstd, SHA-256 verification, fsync before every
// rename) and by rsync -a (with and without --fsync), in one run. Prints
// times, the ratio, and bytes on the wire. Not asserted anywhere: numbers
// depend on the machine.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { parseSize } from '../config/units.ts';
import { generateSampleTree } from './sample-tree.ts';
import { compareTrees } from './tree-compare.ts';
import { replicateLocally } from './local-replication.ts';
import { formatBytes } from './progress.ts';
import type { ProcCpu } from '../util/proc-stat.ts';

const run = promisify(execFile);

interface Row {
  tool: string;
  seconds: number;
  wireBytes: number;
  /** CPU seconds of every process of the tool (both ends). */
  cpuSeconds: number;
  /** Peak resident set of the tool's largest process, bytes (0: not measured). */
  peakRssBytes: number;
  identical: boolean;
}

/** The children's CPU line of bash's `times` ("0m1.234s 0m0.567s"), in seconds. */
function childrenCpuSeconds(timesOutput: string): number {
  const lines = timesOutput.trim().split('\n');
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(lines[lines.length - 1] ?? '');
  if (!m) throw new Error(`bench: cannot read rsync's CPU time from bash's times output: ${JSON.stringify(timesOutput)}`);
  return Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
}

/** rsync -a src/ dst/ (local, over rsync's own pipe); returns time, "Total bytes sent" and CPU of its processes. */
async function rsync(source: string, dest: string, extra: string[]): Promise<{ seconds: number; wireBytes: number; cpuSeconds: number }> {
  const started = performance.now();
  let stdout: string;
  let stderr: string;
  try {
    // Through bash, whose `times` prints the CPU of its waited-for children: rsync and the processes it forks.
    const script = 'rsync "$@" || exit $?; times >&2';
    ({ stdout, stderr } = await run('bash', ['-c', script, 'rsync', '-a', '--stats', ...extra, `${source}/`, `${dest}/`], { maxBuffer: 1 << 24 }));
  } catch (err) {
    if ((err as { code?: unknown }).code === 127) throw new Error('rsync not found: install the Debian package rsync (npm run setup does this)');
    throw err;
  }
  const seconds = (performance.now() - started) / 1000;
  const sent = /Total bytes sent: ([\d,.]+)/.exec(stdout)?.[1] ?? '0';
  const received = /Total bytes received: ([\d,.]+)/.exec(stdout)?.[1] ?? '0';
  const num = (s: string): number => Number(s.replace(/[,.]/g, ''));
  return { seconds, wireBytes: num(sent) + num(received), cpuSeconds: childrenCpuSeconds(stderr) };
}

/** Entry point of `dwcp bench`. */
export async function benchCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { size: { type: 'string', default: '1GiB' }, 'small-share': { type: 'string', default: '0' }, carriers: { type: 'string', default: '4' }, level: { type: 'string', default: '1' }, keep: { type: 'boolean', default: false }, 'dwcp-only': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('Usage: dwcp bench [--size 1GiB] [--small-share 0] [--carriers 4] [--level 1] [--keep] [--dwcp-only]\n\nReplicates one generated tree on loopback with DWCP and with rsync -a, in one run.\n--small-share S puts that share (0..1) of the mixed bytes in files of 1-64 KiB (netbench\'s objects workload uses 0.5: thousands of small files).\n--dwcp-only skips the rsync rows (for profiling DWCP; the table then has no baseline).\n');
    return 0;
  }
  const out = process.stdout;
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-bench-'));
  try {
    const source = join(dir, 'source');
    out.write(`generating ${values.size} sample tree in ${dir} ...\n`);
    const smallShare = Number(values['small-share']);
    if (!(smallShare >= 0 && smallShare <= 1)) throw new Error(`bench: --small-share must be a number in 0..1, got ${values['small-share']}`);
    const tree = await generateSampleTree(source, { totalBytes: parseSize(values.size), smallShare });
    out.write(`  ${tree.files} files, ${formatBytes(tree.bytes)} (largest ${formatBytes(tree.largest)}, half text, half random)\n`);
    const rows: Row[] = [];

    // rsync first (warms the page cache for everyone alike), then DWCP.
    const baselines = values['dwcp-only'] ? [] : ([['rsync -a', []], ['rsync -a --fsync', ['--fsync']]] as const);
    for (const [tool, extra] of baselines) {
      const dest = join(dir, tool.replace(/\W+/g, '-'));
      await mkdir(dest);
      out.write(`${tool} ...\n`);
      const r = await rsync(source, dest, [...extra]);
      rows.push({ tool, ...r, peakRssBytes: 0, identical: (await compareTrees(source, dest)).identical });
      await rm(dest, { recursive: true, force: true });
    }
    const dest = join(dir, 'dwcp');
    await mkdir(dest);
    out.write(`dwcp (starting with ${values.carriers} TCP+TLS carriers and zstd level ${values.level}; both adapt) ...\n`);
    const d = await replicateLocally({ dir, sourcePath: source, destPath: dest, carriers: Number(values.carriers), level: Number(values.level), out });
    rows.push({
      tool: `dwcp (up to ${d.maxCarriers} carriers, zstd ${values.level} -> ${d.finalLevel === 0 ? 'none' : d.finalLevel})`, seconds: d.seconds, wireBytes: d.wireBytes,
      cpuSeconds: d.cpu.source.withChildrenSeconds + d.cpu.dest.withChildrenSeconds, peakRssBytes: Math.max(d.peakRssBytes.source, d.peakRssBytes.dest),
      identical: (await compareTrees(source, dest)).identical,
    });
    const cpuLine = (c: ProcCpu): string => `${c.withChildrenSeconds.toFixed(1)} s (${c.systemSeconds.toFixed(1)} s of it in the kernel)`;
    out.write(`dwcp CPU: source agent ${cpuLine(d.cpu.source)}, destination agent ${cpuLine(d.cpu.dest)} (start-up included); peak RSS ${formatBytes(d.peakRssBytes.source)} / ${formatBytes(d.peakRssBytes.dest)}; ${d.framesSent} data frames\n`);

    // One table, rsync -a as the baseline (DWCP itself with --dwcp-only).
    const base = rows[0];
    const gib = tree.bytes / 2 ** 30;
    out.write(`\n| tool | time (s) | MB/s | bytes on wire | wire / data | time vs ${base.tool} | CPU s/GiB (both ends) | CPU vs ${base.tool} | peak RSS | identical |\n|---|---|---|---|---|---|---|---|---|---|\n`);
    for (const r of rows) {
      out.write(`| ${r.tool} | ${r.seconds.toFixed(1)} | ${(tree.bytes / r.seconds / 1e6).toFixed(0)} | ${formatBytes(r.wireBytes)} | ${(r.wireBytes / tree.bytes).toFixed(2)} | ${(r.seconds / base.seconds).toFixed(2)}x | ${(r.cpuSeconds / gib).toFixed(1)} | ${(r.cpuSeconds / base.cpuSeconds).toFixed(1)}x | ${r.peakRssBytes > 0 ? formatBytes(r.peakRssBytes) : '-'} | ${r.identical ? 'yes' : 'NO'} |\n`);
    }
    out.write(`\ndata: ${formatBytes(tree.bytes)} in ${tree.files} files; loopback, ${(await import('node:os')).availableParallelism()} cores\n`);
    return rows.every((r) => r.identical) ? 0 : 1;
  } finally {
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}
