// Kubernetes mode: every tick, the agent writes the status of each
// DWCPStream whose sender it is elected for (stream-status.ts says which
// and what), through the rate-limited StatusWriter. A stream CR refused
// before it ever ran has no sender: every agent that sees it marks it
// Degraded (the writer skips a status already written, so once each).

import type { Agent } from '../agent/agent.ts';
import type { Condition, StreamStatus } from './crd-schema.ts';
import type { KubeConfigSource } from './kube-config-source.ts';
import type { StatusWriter } from './status-writer.ts';
import { conditionKey, streamStatus, writesStatus } from './stream-status.ts';

/** How often the agent looks at its streams' status, ms (writes are rate-limited by the writer). */
export const STATUS_TICK_MS = 1_000;

/** Writes the status of the streams this agent sends. */
export class StatusReporter {
  private readonly agent: Agent;
  private readonly source: KubeConfigSource;
  private readonly writer: StatusWriter;
  private readonly timer: NodeJS.Timeout;
  private readonly conditions = new Map<string, Condition[]>();
  private ticking: Promise<void> = Promise.resolve();

  constructor(agent: Agent, source: KubeConfigSource, writer: StatusWriter, tickMs: number = STATUS_TICK_MS) {
    this.agent = agent;
    this.source = source;
    this.writer = writer;
    this.timer = setInterval(() => {
      this.ticking = this.ticking.then(() => this.tick());
    }, tickMs);
    this.timer.unref();
  }

  /** Write what is due now. */
  async tick(): Promise<void> {
    if (this.agent.lifecycle !== 'RUNNING') return;
    const snapshot = this.agent.status();
    const now = new Date();
    const writes: Array<Promise<void>> = [];
    for (const stream of this.agent.config.streams) {
      const resource = this.source.resourceOf(stream.id);
      if (!resource || !writesStatus(stream, snapshot)) continue;
      const status = streamStatus({ stream, agent: snapshot, specProblem: this.source.specProblem(stream.id), previous: this.conditions.get(resource.name) ?? [], generation: resource.generation, now });
      if (status) writes.push(this.offer(resource.name, status));
    }
    for (const [name, message] of this.source.refusedWithoutConfig()) {
      const degraded: Condition = { type: 'Degraded', status: 'True', reason: 'InvalidSpec', message, lastTransitionTime: (this.conditions.get(name)?.[0]?.lastTransitionTime) ?? now.toISOString() };
      writes.push(this.offer(name, { conditions: [degraded] }));
    }
    await Promise.all(writes);
  }

  /** Stop ticking; resolves after the tick under way. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }

  private async offer(name: string, status: StreamStatus): Promise<void> {
    this.conditions.set(name, status.conditions ?? []);
    await this.writer.offer(name, status, conditionKey(status));
  }
}
