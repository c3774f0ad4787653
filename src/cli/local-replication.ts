// Replicate a directory once between two in-process agents (regions
// eu-west -> us-east on loopback, embedded consensus stores), with progress
// on the terminal. The demo and the benchmark both run this.

import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../config/load-config.ts';
import { Agent } from '../agent/agent.ts';
import type { DirSource } from '../streams/objects/dir-source.ts';
import { writeTwoRegion } from './two-region.ts';
import { formatBytes, formatRate, ProgressLine } from './progress.ts';

/** What to replicate and how. */
export interface LocalReplicationOptions {
  /** Work directory for certs, configs and agent data. */
  dir: string;
  sourcePath: string;
  destPath: string;
  carriers: number;
  level?: number;
  out: NodeJS.WritableStream;
}

/** What one run measured. */
export interface LocalReplicationResult {
  seconds: number;
  wireBytes: number;
  goodputBytes: number;
  verifyFailures: number;
}

const PROGRESS_INTERVAL_MS = 500;
const SOURCE_START_TIMEOUT_MS = 10_000;

/** Start both agents, wait until the source reports everything durable at the destination, stop them. */
export async function replicateLocally(options: LocalReplicationOptions): Promise<LocalReplicationResult> {
  const { out } = options;
  const setup = await writeTwoRegion({ dir: join(options.dir, 'federation'), sourcePath: options.sourcePath, destPath: options.destPath, carriers: options.carriers, level: options.level });
  const logger = pino({ level: 'warn' }, pino.destination(2));
  const agents: Agent[] = [];
  try {
    // Destination first, then the source; the link dials with backoff either way.
    const dest = await Agent.start(await loadConfig(setup.destConfig), { logger: logger.child({ region: 'us-east' }) });
    agents.push(dest);
    const started = performance.now();
    const source = await Agent.start(await loadConfig(setup.sourceConfig), { logger: logger.child({ region: 'eu-west' }) });
    agents.push(source);
    out.write(`agents up: eu-west :${source.listenPort} (metrics http://127.0.0.1:${source.httpPort}/metrics)  ->  us-east :${dest.listenPort}\n`);

    // Progress until in sync.
    const dirSource = await waitForSource(source, 'sample');
    const progress = new ProgressLine(out);
    const ticker = setInterval(() => {
      void source.metrics.total('dwcp_wire_bytes_sent_total').then((wire) => {
        const p = dirSource.progress();
        const seconds = (performance.now() - started) / 1000;
        progress.update(`replicating: ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} durable, ${p.filesDone}/${p.filesTotal} files, ${formatRate(p.bytesDone / seconds)}, wire ${formatBytes(wire)}, carriers ${source.status().links[0]?.carriers ?? 0}`);
      });
    }, PROGRESS_INTERVAL_MS);
    ticker.unref();
    await dirSource.whenInSync();
    const seconds = (performance.now() - started) / 1000;
    clearInterval(ticker);
    progress.done();
    return {
      seconds,
      wireBytes: await source.metrics.total('dwcp_wire_bytes_sent_total'),
      goodputBytes: await source.metrics.total('dwcp_goodput_bytes_total'),
      verifyFailures: await dest.metrics.total('dwcp_verify_failures_total'),
    };
  } finally {
    for (const a of agents.reverse()) await a.stop().catch(() => {});
  }
}

/** The agent creates its source once elected; wait for it. */
async function waitForSource(agent: Agent, streamId: string): Promise<DirSource> {
  const deadline = performance.now() + SOURCE_START_TIMEOUT_MS;
  for (;;) {
    const s = agent.source(streamId);
    if (s) return s as DirSource;
    if (performance.now() > deadline) throw new Error(`stream ${streamId}: source did not start within ${SOURCE_START_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
