// `dwcp demo`: two agents (regions eu-west and us-east) on loopback, each
// with its embedded consensus store; a generated sample tree replicates
// from one to the other with progress on the terminal, then both trees are
// compared file by file and a verified-identical summary is printed.

import { mkdtemp, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../config/load-config.ts';
import { Agent } from '../agent/agent.ts';
import type { DirSource } from '../streams/objects/dir-source.ts';
import { generateSampleTree } from './sample-tree.ts';
import { compareTrees } from './tree-compare.ts';
import { writeTwoRegion } from './two-region.ts';
import { formatBytes, formatRate, ProgressLine } from './progress.ts';

/** Options of the demo. */
export interface DemoOptions {
  totalBytes: number;
  carriers: number;
  keep: boolean;
  out: NodeJS.WritableStream;
}

/** Run the demo; resolves true when the trees are verified identical. */
export async function runDemo(options: DemoOptions): Promise<boolean> {
  const out = options.out;
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-demo-'));
  const sourcePath = join(dir, 'eu-west-data');
  const destPath = join(dir, 'us-east-data');
  await mkdir(destPath, { recursive: true });
  const agents: Agent[] = [];
  try {
    out.write(`dwcp demo: two regions on loopback, work directory ${dir}\n`);
    out.write(`generating a sample tree of ${formatBytes(options.totalBytes)} ...\n`);
    const tree = await generateSampleTree(sourcePath, { totalBytes: options.totalBytes });
    out.write(`  ${tree.files} files, ${formatBytes(tree.bytes)} (largest ${formatBytes(tree.largest)}, half text, half random)\n`);
    const setup = await writeTwoRegion({ dir, sourcePath, destPath, carriers: options.carriers });
    const logger = pino({ level: 'warn' }, pino.destination(2));

    // Destination first, then the source; the link dials with backoff either way.
    const dest = await Agent.start(await loadConfig(setup.destConfig), { logger: logger.child({ region: 'us-east' }) });
    agents.push(dest);
    const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger: logger.child({ region: 'eu-west' }) });
    agents.push(source);
    out.write(`agents up: eu-west :${source.listenPort} (metrics http://127.0.0.1:${source.httpPort}/metrics)  ->  us-east :${dest.listenPort}\n`);

    // Progress until the source says everything is durable at the destination.
    const started = performance.now();
    const progress = new ProgressLine(out);
    const dirSource = await waitForSource(source, 'sample');
    const ticker = setInterval(async () => {
      const p = dirSource.progress();
      const seconds = (performance.now() - started) / 1000;
      const wire = await source.metrics.total('dwcp_wire_bytes_sent_total');
      progress.update(`replicating: ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} durable, ${p.filesDone}/${p.filesTotal} files, ${formatRate(p.bytesDone / seconds)}, wire ${formatBytes(wire)}, carriers ${source.status().links[0]?.carriers ?? 0}`);
    }, 500);
    ticker.unref();
    await dirSource.whenInSync();
    clearInterval(ticker);
    const seconds = (performance.now() - started) / 1000;
    progress.done();

    // Verify: every file's content, size, mode and mtime.
    const wire = await source.metrics.total('dwcp_wire_bytes_sent_total');
    const verifyFailures = await dest.metrics.total('dwcp_verify_failures_total');
    out.write('verifying both trees file by file ...\n');
    const cmp = await compareTrees(sourcePath, destPath);
    out.write('\nsummary\n');
    out.write(`  files           ${cmp.files}\n`);
    out.write(`  bytes           ${formatBytes(cmp.bytes)}\n`);
    out.write(`  time            ${seconds.toFixed(1)} s (${formatRate(tree.bytes / seconds)})\n`);
    out.write(`  bytes on wire   ${formatBytes(wire)} (${(tree.bytes / Math.max(wire, 1)).toFixed(2)}x smaller than the data)\n`);
    out.write(`  carriers        ${options.carriers} TCP+TLS\n`);
    out.write(`  verify failures ${verifyFailures}\n`);
    out.write(`  result          ${cmp.identical ? 'VERIFIED IDENTICAL (content, size, mode, mtime)' : 'DIFFERENT'}\n`);
    for (const d of cmp.differences) out.write(`    ${d}\n`);
    return cmp.identical;
  } finally {
    for (const a of agents.reverse()) await a.stop().catch(() => {});
    if (!options.keep) await rm(dir, { recursive: true, force: true });
    else out.write(`kept ${dir}\n`);
  }
}

/** The agent creates its source once elected; wait for it. */
async function waitForSource(agent: Agent, streamId: string): Promise<DirSource> {
  for (let i = 0; i < 200; i++) {
    const s = agent.source(streamId);
    if (s) return s as DirSource;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`stream ${streamId}: source did not start within 10 s`);
}
