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

const run = promisify(execFile);

interface Row {
  tool: string;
  seconds: number;
  wireBytes: number;
  identical: boolean;
}

/** rsync -a src/ dst/ (local, over rsync's own pipe); returns time and "Total bytes sent". */
async function rsync(source: string, dest: string, extra: string[]): Promise<{ seconds: number; wireBytes: number }> {
  const started = performance.now();
  let stdout: string;
  try {
    ({ stdout } = await run('rsync', ['-a', '--stats', ...extra, `${source}/`, `${dest}/`], { maxBuffer: 1 << 24 }));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('rsync not found: install the Debian package rsync (npm run setup does this)');
    throw err;
  }
  const seconds = (performance.now() - started) / 1000;
  const sent = /Total bytes sent: ([\d,.]+)/.exec(stdout)?.[1] ?? '0';
  const received = /Total bytes received: ([\d,.]+)/.exec(stdout)?.[1] ?? '0';
  const num = (s: string): number => Number(s.replace(/[,.]/g, ''));
  return { seconds, wireBytes: num(sent) + num(received) };
}

/** Entry point of `dwcp bench`. */
export async function benchCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { size: { type: 'string', default: '1GiB' }, carriers: { type: 'string', default: '4' }, level: { type: 'string', default: '1' }, keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write('Usage: dwcp bench [--size 1GiB] [--carriers 4] [--level 1] [--keep]\n\nReplicates one generated tree on loopback with DWCP and with rsync -a, in one run.\n');
    return 0;
  }
  const out = process.stdout;
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-bench-'));
  try {
    const source = join(dir, 'source');
    out.write(`generating ${values.size} sample tree in ${dir} ...\n`);
    const tree = await generateSampleTree(source, { totalBytes: parseSize(values.size) });
    out.write(`  ${tree.files} files, ${formatBytes(tree.bytes)} (largest ${formatBytes(tree.largest)}, half text, half random)\n`);
    const rows: Row[] = [];

    // rsync first (warms the page cache for everyone alike), then DWCP.
    for (const [tool, extra] of [['rsync -a', []], ['rsync -a --fsync', ['--fsync']]] as const) {
      const dest = join(dir, tool.replace(/\W+/g, '-'));
      await mkdir(dest);
      out.write(`${tool} ...\n`);
      const r = await rsync(source, dest, [...extra]);
      rows.push({ tool, ...r, identical: (await compareTrees(source, dest)).identical });
      await rm(dest, { recursive: true, force: true });
    }
    const dest = join(dir, 'dwcp');
    await mkdir(dest);
    out.write(`dwcp (starting with ${values.carriers} TCP+TLS carriers and zstd level ${values.level}; both adapt) ...\n`);
    const d = await replicateLocally({ dir, sourcePath: source, destPath: dest, carriers: Number(values.carriers), level: Number(values.level), out });
    rows.push({ tool: `dwcp (up to ${d.maxCarriers} carriers, zstd ${values.level} -> ${d.finalLevel === 0 ? 'none' : d.finalLevel})`, seconds: d.seconds, wireBytes: d.wireBytes, identical: (await compareTrees(source, dest)).identical });

    // One table, rsync -a as the baseline.
    const base = rows[0];
    out.write(`\n| tool | time (s) | MB/s | bytes on wire | wire / data | time vs rsync -a | identical |\n|---|---|---|---|---|---|---|\n`);
    for (const r of rows) {
      out.write(`| ${r.tool} | ${r.seconds.toFixed(1)} | ${(tree.bytes / r.seconds / 1e6).toFixed(0)} | ${formatBytes(r.wireBytes)} | ${(r.wireBytes / tree.bytes).toFixed(2)} | ${(r.seconds / base.seconds).toFixed(2)}x | ${r.identical ? 'yes' : 'NO'} |\n`);
    }
    out.write(`\ndata: ${formatBytes(tree.bytes)} in ${tree.files} files; loopback, ${(await import('node:os')).availableParallelism()} cores\n`);
    return rows.every((r) => r.identical) ? 0 : 1;
  } finally {
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}
