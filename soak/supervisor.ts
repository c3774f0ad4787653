// What a DaemonSet does for the soak's agents: an agent that exits when the
// chaos script did not kill it is recorded (a finding: "faults stay local"
// says one stream's fault never ends the agent) and started again, so the
// run goes on and shows whether the data survives. Agents the script takes
// down on purpose are held() meanwhile.

import type { AgentProcess } from '../src/cli/agent-child.ts';

/** How often the agents are checked, ms. */
const POLL_MS = 500;
/** Restart attempts per agent before the supervisor gives up on it. */
const MAX_RESTARTS_PER_AGENT = 20;
/** Log lines kept with a finding. */
const LOG_LINES = 16;

/** An agent that exited on its own. */
export interface UnexpectedExit {
  /** Ms since the run started. */
  atMs: number;
  agent: string;
  /** 'code 1', 'signal SIGABRT'. */
  status: string;
  /** The event in progress (or last injected) when it happened. */
  duringEvent: string;
  /** The agent's last error-level log lines. */
  logTail: string[];
  restarted: boolean;
}

/** A running supervisor. */
export interface Supervisor {
  /** Do not restart this agent until release() (the script killed it). */
  hold(agent: AgentProcess): void;
  release(agent: AgentProcess): void;
  exits(): UnexpectedExit[];
  stop(): Promise<void>;
}

/** Watch the agents (named by the map's keys). */
export function startSupervisor(agents: Map<string, AgentProcess>, options: { startedAt: number; currentEvent: () => string }): Supervisor {
  const held = new Set<AgentProcess>();
  const restarts = new Map<AgentProcess, number>();
  const exits: UnexpectedExit[] = [];
  let stopped = false;

  // The agent's last error lines (pino level >= 50), else its last lines.
  const tailOf = (agent: AgentProcess): string[] => {
    const errors = agent.logs.filter((l) => /"level":(5|6)\d/.test(l) || !l.startsWith('{'));
    return (errors.length > 0 ? errors : agent.logs).slice(-LOG_LINES).map((l) => l.slice(0, 600));
  };

  const check = async (): Promise<void> => {
    for (const [name, agent] of agents) {
      if (stopped || held.has(agent) || agent.running || agent.exitStatus === null) continue;
      const tries = restarts.get(agent) ?? 0;
      const exit: UnexpectedExit = { atMs: Date.now() - options.startedAt, agent: name, status: agent.exitStatus, duringEvent: options.currentEvent(), logTail: tailOf(agent), restarted: false };
      exits.push(exit);
      if (tries >= MAX_RESTARTS_PER_AGENT) {
        held.add(agent);
        continue;
      }
      restarts.set(agent, tries + 1);
      try {
        await agent.start();
        exit.restarted = true;
      } catch {
        // Its next exit shows up on a later poll and counts as another finding.
      }
    }
  };

  const loop = (async () => {
    while (!stopped) {
      await check();
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  })();

  return {
    hold: (agent) => held.add(agent),
    release: (agent) => held.delete(agent),
    exits: () => [...exits],
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}
