// Carry out one event of the chaos script against the lab and return when
// the fault is over (the agent or etcd member runs again, the disk is free,
// the last carrier cut is done). Recovery is measured by the caller.

import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentProcess } from '../src/cli/agent-child.ts';
import { DEST, SOURCE } from '../test/helpers/acp-federation.ts';
import type { ChaosAction, PlannedEvent } from './chaos-plan.ts';
import type { SoakLab } from './lab.ts';
import type { Supervisor } from './supervisor.ts';

/** What happened while injecting. */
export interface Injected {
  /** The concrete target, e.g. "eu-west-node-2" or "us-east etcd m0+m1". */
  target: string;
  /** Extra facts (bytes the filler took, connections cut). */
  note: string;
}

/** Index of the source agent whose /status lists a sender of streamId, or -1. */
async function senderOf(agents: AgentProcess[], streamId: string): Promise<number> {
  for (const [i, a] of agents.entries()) {
    if (!a.running) continue;
    const st = await a.status().catch(() => null);
    if (st?.senders.some((s) => s.streamId === streamId)) return i;
  }
  return -1;
}

/** kill -9 an agent, keep it down for holdMs, start it again. */
async function killAndRestart(agent: AgentProcess, holdMs: number, supervisor: Supervisor): Promise<void> {
  supervisor.hold(agent);
  try {
    await agent.kill9();
    await sleep(holdMs);
    await agent.start();
  } finally {
    supervisor.release(agent);
  }
}

/** Inject one event; throws when the lab could not carry it out (e.g. an agent does not start again). */
export async function inject(lab: SoakLab, event: PlannedEvent, supervisor: Supervisor): Promise<Injected> {
  const action: ChaosAction = event.action;
  const { fed } = lab;
  switch (action.type) {
    case 'kill-sender': {
      const agents = fed.agents[SOURCE];
      let i = await senderOf(agents, lab.streamId(action.stream));
      // No sender right now (an election in progress): kill any running source agent.
      const note = i < 0 ? 'no sender found; killed a running source agent' : '';
      if (i < 0) i = Math.max(0, agents.findIndex((a) => a.running));
      await killAndRestart(agents[i], event.holdMs, supervisor);
      return { target: fed.specs[SOURCE][i].nodeId, note };
    }
    case 'kill-receiver': {
      const agents = fed.agents[DEST];
      await killAndRestart(agents[0], event.holdMs, supervisor);
      return { target: fed.specs[DEST][0].nodeId, note: '' };
    }
    case 'cut-carriers': {
      const relay = fed.relay;
      if (relay === null) throw new Error('cut carriers: the lab has no relay');
      let cut = 0;
      for (let c = 0; c < action.cuts; c++) {
        // Every open connection, bounded by the count at the start of the cut.
        for (let n = relay.connections(); n > 0 && relay.destroyOne(); n--) cut++;
        await sleep(event.holdMs);
      }
      return { target: 'relay', note: `${cut} connections cut` };
    }
    case 'etcd-restart': {
      const region = action.side === 'source' ? SOURCE : DEST;
      const cluster = fed.etcd[region];
      for (const m of action.members) await cluster.kill(m);
      await sleep(event.holdMs);
      await Promise.all(action.members.map((m) => cluster.restart(m)));
      return { target: `${region} etcd ${action.members.map((m) => `m${m}`).join('+')}`, note: '' };
    }
    case 'disk-full': {
      const disk = lab.disk;
      if (disk === null) throw new Error('disk full: the lab has no sink disk (needs root)');
      let bytes = 0;
      try {
        bytes = await disk.fill();
        await sleep(event.holdMs);
      } finally {
        await disk.free();
      }
      return { target: 'sink disk', note: `filler took ${bytes} bytes` };
    }
  }
}
