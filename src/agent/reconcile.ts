// What a new configuration changes for a running agent, as a plan: the
// one reconcile path (file watch, SIGHUP, Kubernetes CRs) computes it with
// diffConfig and the agent applies it (Agent.reconfigure). Pure: two
// compiled configs in, a plan out. A change that cannot be applied live
// (this agent's identity, its ports, its consensus store) refuses the whole
// new config, so nothing is half-applied and the running config stays.

import type { ConfigIssue } from '../config/config-error.ts';
import type { Config, StreamConfig } from '../config/config.ts';

/** Top-level fields an agent reads once at start: a change needs a restart. */
export const RESTART_ONLY_FIELDS = ['federation', 'region', 'nodeId', 'dataDir', 'listen', 'listenWs', 'listenQuic', 'http', 'tls', 'acp'] as const;

/** Tuning sections every stream reads when it starts: a change restarts each stream (one at a time is not needed: each restarts from its checkpoint). */
export const STREAM_TUNING_FIELDS = ['hde', 'checkpoint'] as const;

/** A stream restarted with its new config, and why. */
export interface RestartedStream {
  stream: StreamConfig;
  reason: string;
}

/** What applying a new config does. */
export interface ConfigDiff {
  /** Why the new config cannot be applied live (field path and reason); empty when it can. */
  refused: ConfigIssue[];
  /** Streams to start. */
  added: StreamConfig[];
  /** Streams to stop (their old config). */
  removed: StreamConfig[];
  /** Streams to stop and start again with their new config; every other stream is left alone. */
  restarted: RestartedStream[];
  /** Regions whose outbound link closes and dials again (endpoints or transport tuning changed). */
  redial: string[];
}

/** The plan that takes a running agent from old to next; refused non-empty means: change nothing. */
export function diffConfig(old: Config, next: Config): ConfigDiff {
  const diff: ConfigDiff = { refused: [], added: [], removed: [], restarted: [], redial: [] };

  // What only a restart can change.
  for (const field of RESTART_ONLY_FIELDS) {
    if (!same(old[field], next[field])) diff.refused.push({ path: field, message: 'cannot change while the agent runs (restart the agent to apply it)', value: next[field] });
  }
  if (old.hde.workers !== next.hde.workers) diff.refused.push({ path: 'hde.workers', message: 'cannot change while the agent runs (the worker pool is sized at start)', value: next.hde.workers });
  next.regions.forEach((region, i) => {
    const before = old.regions.find((r) => r.name === region.name);
    if (before && !same(before.consensus, region.consensus)) diff.refused.push({ path: `regions[${i}].consensus`, message: 'cannot change while the agent runs (restart the agent to apply it)' });
  });
  if (diff.refused.length > 0) return diff;

  // Links: a region whose endpoints changed dials again; transport tuning redials every link.
  const amstChanged = !same(old.amst, next.amst);
  for (const region of old.regions) {
    const after = next.regions.find((r) => r.name === region.name);
    if (region.name === old.region) continue;
    if (amstChanged || !after || !same(region.endpoints, after.endpoints)) diff.redial.push(region.name);
  }

  // Streams by id: added, removed, changed; and the unchanged ones a redial or a tuning change touches.
  const tuning = STREAM_TUNING_FIELDS.filter((field) => !same(old[field], next[field]));
  for (const stream of next.streams) {
    const before = old.streams.find((s) => s.id === stream.id);
    if (!before) {
      diff.added.push(stream);
      continue;
    }
    const reason = restartReason(before, stream, old.region, tuning, diff.redial);
    if (reason !== null) diff.restarted.push({ stream, reason });
  }
  diff.removed = old.streams.filter((s) => !next.streams.some((n) => n.id === s.id));
  return diff;
}

// Why a stream present in both configs restarts, or null when it does not.
function restartReason(before: StreamConfig, after: StreamConfig, region: string, tuning: readonly string[], redial: readonly string[]): string | null {
  if (!same(before, after)) return 'stream retuned';
  if (tuning.length > 0) return `${tuning.join(', ')} changed`;
  // Its senders hold the old link: they move to the new one.
  const peer = before.source.region === region ? before.destinations.find((d) => redial.includes(d.region)) : undefined;
  return peer ? `link to ${peer.region} redials` : null;
}

// Deep equality of compiled config values (plain data built in one key order by compile-config.ts).
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
