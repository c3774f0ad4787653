// A two-region federation of real agent processes on loopback, with a
// generated source tree, for end-to-end tests.

import { mkdtemp, mkdir, rm, readFile, writeFile } from 'node:fs/promises';
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
  /** Point the source at a relay instead of the destination, then start both (options.start must be false). */
  startThroughRelay(relayPort: number): Promise<void>;
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
    try {
      await dest.start();
      await source.start();
    } catch (err) {
      // Leave nothing running: a live child would keep the test process alive.
      await Promise.allSettled([source.kill9(), dest.kill9()]);
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }
  return {
    dir,
    sourcePath,
    destPath,
    tree,
    setup,
    source,
    dest,
    waitInSync: async (timeoutMs) => {
      try {
        await waitFor('source in sync', async () => {
          const s = await source.status();
          return s.senders.length > 0 && s.senders.every((x) => x.progress?.inSync === true);
        }, timeoutMs, 250);
      } catch (err) {
        // Say where each side stood, so a failure can be read from the test output.
        const state = async (a: typeof source): Promise<string> => JSON.stringify(await a.status().catch((e: Error) => e.message));
        throw new Error(`${(err as Error).message}\nsource status: ${await state(source)}\ndest status: ${await state(dest)}\nsource log:\n${source.logs.slice(-15).join('\n')}\ndest log:\n${dest.logs.slice(-15).join('\n')}`, { cause: err });
      }
    },
    startThroughRelay: async (relayPort) => {
      const cfg = await readFile(setup.sourceConfig, 'utf8');
      await writeFile(setup.sourceConfig, cfg.replace(`127.0.0.1:${setup.ports.dest}`, `127.0.0.1:${relayPort}`));
      await dest.start();
      await source.start();
    },
    auditSeqs: async () => {
      const text = await readFile(join(dir, 'us-east', 'audit', `${options.streamId ?? 'sample'}.log`), 'utf8');
      return text.split('\n').filter((l) => l !== '').map(Number);
    },
    cleanup: async () => {
      // Both agents die whatever happens to the other; the tree goes last.
      const results = await Promise.allSettled([source.kill9(), dest.kill9()]);
      await rm(dir, { recursive: true, force: true });
      for (const r of results) if (r.status === 'rejected') throw r.reason;
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
