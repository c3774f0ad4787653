// Replicate a directory once between two agent processes (regions eu-west
// -> us-east on loopback, embedded consensus stores), with progress on the
// terminal. The demo and the benchmark both run this; each agent is its own
// process, as in a deployment.

import { join } from 'node:path';
import { writeTwoRegion } from './two-region.ts';
import { AgentProcess, sleep } from './agent-child.ts';
import { formatBytes, formatRate, ProgressLine } from './progress.ts';
import { procCpu, peakRssBytes, type ProcCpu } from '../util/proc-stat.ts';

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
  /** Data frames sent (first transmissions; small records share frames when batched). */
  framesSent: number;
  /** Most live carriers seen during the run (the AMST controller may change the count). */
  maxCarriers: number;
  /** zstd level in use at the end (0 = no compression; the online choice may move it). */
  finalLevel: number;
  /** CPU of each agent process over its whole life (start-up included), with its kernel share. */
  cpu: { source: ProcCpu; dest: ProcCpu };
  /** Peak resident set of each agent, bytes. */
  peakRssBytes: { source: number; dest: number };
}

const PROGRESS_INTERVAL_MS = 500;

/** Start both agents, wait until the source reports everything durable at the destination, stop them. */
export async function replicateLocally(options: LocalReplicationOptions): Promise<LocalReplicationResult> {
  const { out } = options;
  const setup = await writeTwoRegion({ dir: join(options.dir, 'federation'), sourcePath: options.sourcePath, destPath: options.destPath, carriers: options.carriers, level: options.level });
  const dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
  const source = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
  // Warnings and errors of either agent reach the terminal.
  const echo = (region: string) => (line: string): void => {
    if (/"level":(4|5|6)0/.test(line)) out.write(`[${region}] ${line}\n`);
  };
  dest.echo = echo('us-east');
  source.echo = echo('eu-west');
  try {
    // Destination first, then the source; the link dials with backoff either way.
    await dest.start([]);
    const started = performance.now();
    await source.start([]);
    out.write(`agents up: eu-west pid ${source.pid} (metrics http://127.0.0.1:${setup.ports.sourceHttp}/metrics)  ->  us-east pid ${dest.pid}\n`);

    // Progress until the source says everything is durable at the destination.
    const progress = new ProgressLine(out);
    let maxCarriers = 0;
    let shownAt = 0;
    for (;;) {
      const status = await source.status();
      maxCarriers = Math.max(maxCarriers, status.links[0]?.carriers ?? 0);
      const sender = status.senders[0];
      const p = sender?.progress;
      if (p?.inSync) break;
      const seconds = (performance.now() - started) / 1000;
      // The end is polled often, the progress line (a whole /metrics scrape, CPU in the measured agent) twice a second.
      if (p && performance.now() - shownAt >= PROGRESS_INTERVAL_MS) {
        shownAt = performance.now();
        const wire = await source.metric('dwcp_wire_bytes_sent_total');
        progress.update(`replicating: ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} durable, ${p.filesDone}/${p.filesTotal} files, ${formatRate(p.bytesDone / seconds)}, wire ${formatBytes(wire)}, carriers ${status.links[0]?.carriers ?? 0}`);
      }
      await sleep(PROGRESS_INTERVAL_MS / 5);
    }
    const seconds = (performance.now() - started) / 1000;
    progress.done();
    return {
      seconds,
      wireBytes: await source.metric('dwcp_wire_bytes_sent_total'),
      goodputBytes: await source.metric('dwcp_goodput_bytes_total'),
      framesSent: await source.metric('dwcp_frames_sent_total'),
      verifyFailures: await dest.metric('dwcp_verify_failures_total'),
      maxCarriers,
      finalLevel: await source.metric('dwcp_hde_level'),
      cpu: { source: await procCpu(source.pid), dest: await procCpu(dest.pid) },
      peakRssBytes: { source: await peakRssBytes(source.pid), dest: await peakRssBytes(dest.pid) },
    };
  } finally {
    await source.terminate();
    await dest.terminate();
  }
}
