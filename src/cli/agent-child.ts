// Run a dwcp agent as a child process: start it with a config file, wait
// until /healthz answers, read /metrics and /status, stop it (SIGTERM) or
// kill -9 it by pid, restart it. Its log lines are kept in memory. The demo,
// the benchmark and the end-to-end tests use it.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { AgentStatus } from '../agent/agent.ts';

const CLI = fileURLToPath(new URL('../cli.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;
/** Log lines kept in memory (the newest). */
const MAX_LOG_LINES = 20_000;

/** Every agent child still running; killed when this process exits, so none outlives it. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A running agent process. */
export class AgentProcess {
  /** Extra log lines also go here (e.g. stderr for a demo), when set. */
  echo: ((line: string) => void) | null = null;
  readonly configPath: string;
  readonly httpPort: number;
  private child: ChildProcess | null = null;
  private exited: Promise<number | null> = Promise.resolve(null);
  /** Every log line (JSON from pino) of every run of this agent. */
  readonly logs: string[] = [];

  constructor(configPath: string, httpPort: number) {
    this.configPath = configPath;
    this.httpPort = httpPort;
  }

  /** True while the last started process has not exited. */
  get running(): boolean {
    const child = this.child;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  /** How the last process ended ('code 1', 'signal SIGKILL'), or null while it runs or before any start. */
  get exitStatus(): string | null {
    const child = this.child;
    if (child === null || this.running) return null;
    return child.signalCode !== null ? `signal ${child.signalCode}` : `code ${child.exitCode}`;
  }

  /** PID of the running process. */
  get pid(): number {
    return this.child?.pid ?? 0;
  }

  /** Start and wait until /healthz answers. */
  async start(extraArgs: string[] = ['--audit']): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'agent', '--config', this.configPath, ...extraArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    const collect = (chunk: Buffer): void => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        this.logs.push(line);
        if (this.logs.length > MAX_LOG_LINES) this.logs.splice(0, this.logs.length - MAX_LOG_LINES);
        this.echo?.(line);
      }
    };
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`agent exited with ${child.exitCode} during start:\n${this.logs.slice(-20).join('\n')}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.httpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`agent did not answer /healthz within ${START_TIMEOUT_MS} ms:\n${this.logs.slice(-20).join('\n')}`);
      await sleep(100);
    }
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch (err) {
      // Already gone (exited between the check and the kill).
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
    await this.exited;
  }

  /** SIGTERM (drain) and wait for the exit; returns the exit code. */
  async terminate(): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill('SIGTERM');
    return this.exited;
  }

  /** Sum of a metric over its labels (0 when absent), from /metrics. */
  async metric(name: string, labelFilter = ''): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.httpPort}/metrics`)).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
      if (labelFilter && !line.includes(labelFilter)) continue;
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return sum;
  }

  /** The agent's /status JSON. */
  async status(): Promise<AgentStatus> {
    return (await fetch(`http://127.0.0.1:${this.httpPort}/status`)).json() as Promise<AgentStatus>;
  }

  /** Resident memory of the process in bytes (Linux /proc). */
  async rssBytes(): Promise<number> {
    const { readFile } = await import('node:fs/promises');
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb * 1024;
  }
}

/** Sleep ms. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until fn returns true or time runs out (then throw with what). */
export async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs: number, intervalMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // keep polling
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
