// A two-region federation of real agent processes on loopback, with a
// generated source tree, for end-to-end tests.

import { mkdtemp, mkdir, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSampleTree, type SampleTreeInfo } from '../../src/cli/sample-tree.ts';
import { writeTwoRegion, type TwoRegion, type TwoRegionOptions } from '../../src/cli/two-region.ts';
import { AgentProcess, waitFor } from './agent-process.ts';

/** A federation under test. */
export interface Federation {
  dir: string;
  sourcePath: string;
  destPath: string;
  tree: SampleTreeInfo;
  setup: TwoRegion;
  source: AgentProcess;
  dest: AgentProcess;
  /** Wait until the source reports everything durable at the destination. */
  waitInSync(timeoutMs: number): Promise<void>;
  /** Durably applied sequence numbers recorded by the destination's audit log. */
  auditSeqs(): Promise<number[]>;
  cleanup(): Promise<void>;
}

/** Options: tree size plus two-region overrides. */
export interface FederationOptions extends Partial<TwoRegionOptions> {
  totalBytes: number;
  largestBytes?: number;
  /** Start the agents now (default true). */
  start?: boolean;
}

/** Make the tree and configs; start destination then source. */
export async function startFederation(options: FederationOptions): Promise<Federation> {
  const dir = await mkdtemp(join(tmpdir(), 'dwcp-e2e-'));
  const sourcePath = join(dir, 'src-tree');
  const destPath = join(dir, 'dst-tree');
  await mkdir(destPath, { recursive: true });
  const tree = await generateSampleTree(sourcePath, { totalBytes: options.totalBytes, largestBytes: options.largestBytes });
  const setup = await writeTwoRegion({ carriers: 4, ...options, dir, sourcePath, destPath });
  const source = new AgentProcess(setup.sourceConfig, setup.ports.sourceHttp);
  const dest = new AgentProcess(setup.destConfig, setup.ports.destHttp);
  if (options.start ?? true) {
    await dest.start();
    await source.start();
  }
  return {
    dir,
    sourcePath,
    destPath,
    tree,
    setup,
    source,
    dest,
    waitInSync: (timeoutMs) =>
      waitFor('source in sync', async () => {
        const s = await source.status();
        return s.senders.length > 0 && s.senders.every((x) => x.progress?.inSync === true);
      }, timeoutMs, 250),
    auditSeqs: async () => {
      const text = await readFile(join(dir, 'us-east', 'audit', `${options.streamId ?? 'sample'}.log`), 'utf8');
      return text.split('\n').filter((l) => l !== '').map(Number);
    },
    cleanup: async () => {
      await source.kill9();
      await dest.kill9();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Each of 1..n exactly once, in order: nothing missing, nothing applied twice. */
export function auditProblems(seqs: number[]): string[] {
  const problems: string[] = [];
  const seen = new Set<number>();
  seqs.forEach((seq, i) => {
    if (seen.has(seq)) problems.push(`seq ${seq} applied twice`);
    seen.add(seq);
    if (seq !== i + 1 && problems.length < 10) problems.push(`position ${i + 1} holds seq ${seq}`);
  });
  return problems.slice(0, 10);
}
