// CPU seconds and peak RSS of measured processes, read from /proc: the same
// counters for the DWCP agents and for rsync (client and daemon), so the
// per-side numbers compare.

import { readdir, readFile } from 'node:fs/promises';
import { peakRssBytes } from '../src/util/proc-stat.ts';

/** Interval of the peak-RSS sampler, ms. */
const RSS_SAMPLE_INTERVAL_MS = 200;

export { cpuSeconds, parseProcStat, peakRssBytes, type ProcCpu } from '../src/util/proc-stat.ts';

/** The process and all its descendants still running. */
export async function processTree(pid: number): Promise<number[]> {
  const out: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const p = pending.pop()!;
    out.push(p);
    let tasks: string[];
    try {
      tasks = await readdir(`/proc/${p}/task`);
    } catch {
      continue; // exited
    }
    for (const task of tasks) {
      try {
        const children = await readFile(`/proc/${p}/task/${task}/children`, 'utf8');
        for (const c of children.split(' ').filter(Boolean)) pending.push(Number(c));
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

/** Samples the largest VmHWM of any process in the trees of the given roots until stopped. */
export class PeakRssSampler {
  readonly #roots: number[];
  #peak = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;

  constructor(roots: number[]) {
    this.#roots = roots;
  }

  /** Start sampling (also samples once at once). */
  start(): this {
    void this.sample();
    this.#timer = setInterval(() => void this.sample(), RSS_SAMPLE_INTERVAL_MS);
    this.#timer.unref();
    return this;
  }

  /** Take one sample now. */
  async sample(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (const root of this.#roots) {
        for (const pid of await processTree(root)) this.#peak = Math.max(this.#peak, await peakRssBytes(pid));
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Stop after one last sample; returns the peak in bytes. */
  async stop(): Promise<number> {
    clearInterval(this.#timer);
    await this.sample();
    return this.#peak;
  }
}
