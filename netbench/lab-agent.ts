// A real dwcp agent process (src/cli.ts agent) inside one of a lab's
// network namespaces. Its HTTP endpoint is only reachable inside the
// namespace: readiness comes from its log ("agent running"), /status is
// read with curl run in the namespace.

import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Lab } from './lab.ts';
import type { AgentStatus } from '../src/agent/agent.ts';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
/** Time allowed from spawn to the "agent running" log line, ms. */
const START_TIMEOUT_MS = 30_000;
/** Time allowed for a drain after SIGTERM before SIGKILL, ms. */
const STOP_TIMEOUT_MS = 15_000;
/** Log lines kept for error messages. */
const KEPT_LOG_LINES = 50;
/** Time allowed for one /status request, s (curl --max-time). */
const STATUS_TIMEOUT_S = 5;

/** A running agent in a lab namespace. */
export class LabAgent {
  readonly #child: ChildProcess;
  readonly #lab: Lab;
  readonly #ns: string;
  readonly #httpPort: number;
  readonly #exited: Promise<number | null>;
  readonly #logs: string[] = [];
  /** Warning and error lines (pino level >= 40) seen so far. */
  readonly warnings: string[] = [];

  private constructor(child: ChildProcess, lab: Lab, ns: string, httpPort: number) {
    this.#child = child;
    this.#lab = lab;
    this.#ns = ns;
    this.#httpPort = httpPort;
    this.#exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const keep = (line: string): void => {
      this.#logs.push(line);
      if (this.#logs.length > KEPT_LOG_LINES) this.#logs.shift();
      if (/"level":(4|5|6)0/.test(line)) this.warnings.push(line);
    };
    createInterface({ input: child.stdout! }).on('line', keep);
    createInterface({ input: child.stderr! }).on('line', keep);
  }

  /** Spawn `dwcp agent --config file` in namespace ns and wait until it logs that it runs; httpPort is the config's. */
  static async start(lab: Lab, ns: string, configFile: string, httpPort: number): Promise<LabAgent> {
    const child = lab.exec(ns, process.execPath, [CLI, 'agent', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    const agent = new LabAgent(child, lab, ns, httpPort);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!agent.#logs.some((l) => l.includes('"agent running"'))) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`lab agent ${configFile}: exited during start: ${agent.tail()}`);
      if (Date.now() > deadline) throw new Error(`lab agent ${configFile}: not running after ${START_TIMEOUT_MS} ms: ${agent.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return agent;
  }

  /** Pid of the agent (ip netns exec replaces itself with the command). */
  get pid(): number {
    return this.#child.pid ?? 0;
  }

  /** The agent's /status JSON (curl inside the namespace); throws naming the failure. */
  async status(): Promise<AgentStatus> {
    const curl = this.#lab.exec(this.#ns, 'curl', ['-sf', '--max-time', String(STATUS_TIMEOUT_S), `http://127.0.0.1:${this.#httpPort}/status`], { stdio: ['ignore', 'pipe', 'ignore'] });
    let body = '';
    curl.stdout!.on('data', (c: Buffer) => { body += c.toString(); });
    const code = await new Promise<number | null>((resolve) => curl.once('exit', resolve));
    if (code !== 0) throw new Error(`lab agent status: curl exited ${code}`);
    return JSON.parse(body) as AgentStatus;
  }

  /** The last log lines, joined. */
  tail(): string {
    return this.#logs.slice(-10).join('\n');
  }

  /** SIGTERM, SIGKILL after the grace; resolves on exit. */
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    timer.unref();
    await this.#exited;
    clearTimeout(timer);
  }
}
