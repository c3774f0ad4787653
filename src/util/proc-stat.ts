// CPU seconds and peak RSS of a process, read from /proc (Linux): the same
// counters for DWCP agents and for the plain tools they are compared with.

import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second of /proc/<pid>/stat times (getconf CLK_TCK; 100 on Linux). */
const CLOCK_TICKS_PER_S = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU of one process: utime+stime, and the same plus its waited-for children. */
export interface ProcCpu {
  /** Seconds of the process itself. */
  selfSeconds: number;
  /** Seconds of the process and of its children that exited and were waited for. */
  withChildrenSeconds: number;
  /** Of withChildrenSeconds, the seconds in the kernel on its behalf (system calls: file i/o, fsync, sockets). */
  systemSeconds: number;
}

/** Parse /proc/<pid>/stat text into CPU seconds; throws naming the pid on a malformed line. */
export function parseProcStat(text: string, pid: number): ProcCpu {
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
  const [utime, stime, cutime, cstime] = rest.slice(11, 15).map(Number);
  if ([utime, stime, cutime, cstime].some((n) => !Number.isFinite(n))) throw new Error(`proc usage: malformed /proc/${pid}/stat`);
  return {
    selfSeconds: (utime + stime) / CLOCK_TICKS_PER_S,
    withChildrenSeconds: (utime + stime + cutime + cstime) / CLOCK_TICKS_PER_S,
    systemSeconds: (stime + cstime) / CLOCK_TICKS_PER_S,
  };
}

/** CPU of a running process, children included (user and system); throws if it is gone. */
export async function procCpu(pid: number): Promise<ProcCpu> {
  return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'), pid);
}

/** CPU seconds of a running process, children included; throws if it is gone. */
export async function cpuSeconds(pid: number): Promise<number> {
  return (await procCpu(pid)).withChildrenSeconds;
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

