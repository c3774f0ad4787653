// A DWCPStream's status as its elected sender sees it: conditions (Ready,
// Progressing, Degraded with a reason), per destination the durable
// position, lag in bytes and seconds, SLO attainment and last error. Pure:
// the agent's status snapshot in, the CR's status out; lastTransitionTime
// moves only when a condition's status changes.

import type { AgentStatus } from '../agent/agent.ts';
import type { StreamConfig } from '../config/config.ts';
import type { Condition, StreamDestinationStatus, StreamStatus } from './crd-schema.ts';

type SenderEntry = AgentStatus['senders'][number];

/** What goes into one stream's status besides the agent's snapshot. */
export interface StreamStatusInput {
  stream: StreamConfig;
  agent: AgentStatus;
  /** Why the stream's current spec was refused (its running config stays), or null. */
  specProblem: string | null;
  /** Conditions last written, to keep their lastTransitionTime. */
  previous: readonly Condition[];
  /** metadata.generation of the spec this agent runs. */
  generation?: number;
  now: Date;
}

/**
 * True when this agent is the elected sender of the stream's first shard to
 * its first destination: it alone writes the status (destinations whose
 * senders run on other agents of the region are not listed).
 */
export function writesStatus(stream: StreamConfig, agent: AgentStatus): boolean {
  return agent.senders.some((s) => s.stream === stream.id && s.shard === 0 && s.destination === stream.destinations[0].region);
}

/** The status of one stream; null when this agent sends none of it. */
export function streamStatus(input: StreamStatusInput): StreamStatus | null {
  const { stream, agent } = input;
  const senders = agent.senders.filter((s) => s.stream === stream.id);
  if (senders.length === 0) return null;
  const destinations = stream.destinations
    .map((d) => destinationStatus(d.region, senders.filter((s) => s.destination === d.region), stream, agent))
    .filter((d): d is StreamDestinationStatus => d !== null);

  // Conditions, each with a one-word reason.
  const halted = senders.find((s) => s.halted !== null);
  const faulted = senders.find((s) => s.faulted !== null);
  const sourceError = senders.find((s) => s.sourceError);
  const down = senders.find((s) => s.session === 0);
  const behind = senders.some((s) => s.sentSeq > s.durableSeq || s.progress?.inSync === false);
  const degraded: [boolean, string, string] = input.specProblem !== null ? [true, 'InvalidSpec', input.specProblem]
    : halted ? [true, 'Halted', halted.halted!]
    : faulted ? [true, 'Faulted', faulted.faulted!]
    : sourceError ? [true, 'SourceError', sourceError.sourceError!.message]
    : [false, 'AsExpected', ''];
  const ready: [boolean, string, string] = halted ? [false, 'Halted', halted.halted!]
    : down ? [false, 'LinkDown', `no session to ${down.destination}`]
    : faulted ? [false, 'Faulted', faulted.faulted!]
    : [true, 'Replicating', ''];
  const progressing: [boolean, string, string] = behind ? [true, 'Sending', 'changes in flight'] : [false, 'InSync', ''];
  const conditions = [
    condition('Ready', ready, input),
    condition('Progressing', progressing, input),
    condition('Degraded', degraded, input),
  ];
  return {
    conditions,
    sender: agent.nodeId,
    lagSeconds: Math.max(0, ...destinations.map((d) => d.lagSeconds ?? 0)),
    destinations,
    ...(input.generation === undefined ? {} : { observedGeneration: input.generation }),
  };
}

// One destination from its senders (one per shard).
function destinationStatus(region: string, senders: SenderEntry[], stream: StreamConfig, agent: AgentStatus): StreamDestinationStatus | null {
  if (senders.length === 0) return null;
  const lagSeconds = round(Math.max(...senders.map((s) => s.lagSeconds)));
  const error = senders.map((s) => s.halted ?? s.faulted ?? s.sourceError?.message ?? null).find((e) => e !== null) ?? '';
  const attainments = senders.map((s) => s.sloAttainment).filter((a): a is number => a !== null);
  const slo = attainments.length > 0 ? { sloAttainment: Math.min(...attainments) } : {};
  if (stream.kind === 'pg-wal') {
    const wal = agent.pgWal.find((w) => w.streamId === stream.id && w.role === 'source' && w.destination === region);
    return { region, durablePosition: wal?.durableLsn ?? '0/0', lagBytes: wal?.lagBytes ?? 0, lagSeconds: Math.max(lagSeconds, round(wal?.lagSeconds ?? 0)), ...slo, lastError: error };
  }
  // Objects: the position is the sequence number (one per shard: the lowest); lag: bytes queued and not yet durable.
  const lagBytes = senders.reduce((sum, s) => sum + Math.max(0, (s.progress?.bytesTotal ?? 0) - (s.progress?.bytesDone ?? 0)), 0);
  return { region, durablePosition: String(Math.min(...senders.map((s) => s.durableSeq))), lagBytes, lagSeconds, ...slo, lastError: error };
}

// A condition; its lastTransitionTime stays while its status does.
function condition(type: string, [on, reason, message]: [boolean, string, string], input: StreamStatusInput): Condition {
  const status = on ? 'True' : 'False';
  const before = input.previous.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status && before.lastTransitionTime ? before.lastTransitionTime : input.now.toISOString();
  return { type, status, reason, message, lastTransitionTime, ...(input.generation === undefined ? {} : { observedGeneration: input.generation }) };
}

/** The part of a status whose change is written at once (the rest waits for the rate limit). */
export function conditionKey(status: StreamStatus): string {
  return (status.conditions ?? []).map((c) => `${c.type}=${c.status}/${c.reason}`).join(',');
}

// Seconds to milliseconds' precision, so the status does not churn on noise.
function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
