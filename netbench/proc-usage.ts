// CPU seconds and peak RSS of measured processes, read from /proc: the same
// counters for the DWCP agents and for rsync (client and daemon), so the
// per-side numbers compare.

import { readFile, readdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second of /proc/<pid>/stat times (getconf CLK_TCK; 100 on Linux). */
const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
/** Interval of the peak-RSS sampler, ms. */
const RSS_SAMPLE_INTERVAL_MS = 200;

/** CPU of one process: utime+stime, and the same plus its waited-for children. */
export interface ProcCpu {
  /** Seconds of the process itself. */
  selfSeconds: number;
  /** Seconds of the process and of its children that exited and were waited for. */
  withChildrenSeconds: number;
}

/** Parse /proc/<pid>/stat text into CPU seconds; throws naming the pid on a malformed line. */
export function parseProcStat(text: string, pid: number): ProcCpu {
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
  const [utime, stime, cutime, cstime] = rest.slice(11, 15).map(Number);
  if ([utime, stime, cutime, cstime].some((n) => !Number.isFinite(n))) throw new Error(`proc usage: malformed /proc/${pid}/stat`);
  return { selfSeconds: (utime + stime) / CLOCK_TICKS_PER_S, withChildrenSeconds: (utime + stime + cutime + cstime) / CLOCK_TICKS_PER_S };
}

/** CPU seconds of a running process, children included; throws if it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'), pid).withChildrenSeconds;
}

/** Peak resident set (VmHWM) of a running process in bytes, or 0 when it is gone. */
export async function peakRssBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0; // exited
  }
}

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
