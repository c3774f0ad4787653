// Checkpoints of a (stream, destination) in the region consensus, and the key
// layout of everything DWCP keeps there. A checkpoint commit is a
// compare-and-swap on the key's revision and is refused for an older leader
// epoch: that is the fence that keeps one writer per (stream, destination).

import type { ConsensusStore } from './consensus-store.ts';

/** The durable position of one stream at one destination. */
export interface Checkpoint {
  /** Last applied stream position. */
  seq: number;
  /** Chained digest up to seq, hex. */
  chain: string;
  /** Leader epoch of the writer that committed it. */
  epoch: number;
  /** Sink-specific resume state, base64. */
  sinkState: string;
  /** Wall-clock time of the commit, ms since the Unix epoch. */
  updatedAtMs: number;
}

/** A commit refused because a newer writer (or another writer) got there first. */
export class FencedError extends Error {
  /** Epoch of the refused commit. */
  readonly epoch: number;
  /** Epoch stored in consensus, when known. */
  readonly storedEpoch: number | undefined;

  constructor(message: string, epoch: number, storedEpoch: number | undefined) {
    super(message);
    this.name = 'FencedError';
    this.epoch = epoch;
    this.storedEpoch = storedEpoch;
  }
}

/** Check a path segment: non-empty and without '/'. */
function segment(field: string, value: string): string {
  if (typeof value !== 'string' || value === '' || value.includes('/')) {
    throw new Error(`consensus key: ${field} must be a non-empty string without '/', got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Key of the checkpoint of streamId at destRegion. */
export function checkpointKey(federation: string, streamId: string, destRegion: string): string {
  return `/dwcp/${segment('federation', federation)}/checkpoints/${segment('streamId', streamId)}/${segment('destRegion', destRegion)}`;
}

/** Key of an agent's membership record in its region. */
export function membershipKey(federation: string, region: string, nodeId: string): string {
  return `/dwcp/${segment('federation', federation)}/members/${segment('region', region)}/${segment('nodeId', nodeId)}`;
}

/** Key of the leader (the one sender) of streamId towards destRegion. */
export function leaderKey(federation: string, streamId: string, destRegion: string): string {
  return `/dwcp/${segment('federation', federation)}/leaders/${segment('streamId', streamId)}/${segment('destRegion', destRegion)}`;
}

/** Check a checkpoint's fields; throws naming the bad field. */
function validate(context: string, c: Checkpoint): Checkpoint {
  const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof c !== 'object' || c === null) throw new Error(`${context}: not an object`);
  if (!isCount(c.seq)) throw new Error(`${context}: seq must be a non-negative integer, got ${c.seq}`);
  if (!isCount(c.epoch)) throw new Error(`${context}: epoch must be a non-negative integer, got ${c.epoch}`);
  if (!isCount(c.updatedAtMs)) throw new Error(`${context}: updatedAtMs must be a non-negative integer, got ${c.updatedAtMs}`);
  if (typeof c.chain !== 'string' || !/^[0-9a-fA-F]*$/.test(c.chain)) throw new Error(`${context}: chain must be hex, got ${JSON.stringify(c.chain)}`);
  if (typeof c.sinkState !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(c.sinkState)) {
    throw new Error(`${context}: sinkState must be base64, got ${JSON.stringify(c.sinkState)}`);
  }
  return { seq: c.seq, chain: c.chain, epoch: c.epoch, sinkState: c.sinkState, updatedAtMs: c.updatedAtMs };
}

/** Decode a stored checkpoint (JSON). */
function decode(key: string, value: Buffer): Checkpoint {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value.toString('utf8'));
  } catch (err) {
    throw new Error(`decode checkpoint ${key}: ${(err as Error).message}`);
  }
  return validate(`decode checkpoint ${key}`, parsed as Checkpoint);
}

/** Load the checkpoint at key with its modRevision (the expectedModRevision of the next commit). */
export async function loadCheckpoint(store: ConsensusStore, key: string): Promise<{ checkpoint: Checkpoint; modRevision: number } | undefined> {
  const kv = await store.get(key);
  if (kv === undefined) return undefined;
  return { checkpoint: decode(key, kv.value), modRevision: kv.modRevision };
}

/**
 * Commit next if the stored checkpoint is still the one at expectedModRevision
 * (0 = none yet). Throws FencedError when a newer epoch holds the checkpoint
 * or another writer changed it; throws when seq would go backwards.
 */
export async function commitCheckpoint(store: ConsensusStore, key: string, expectedModRevision: number, next: Checkpoint): Promise<{ modRevision: number }> {
  const checked = validate(`commit checkpoint ${key}`, next);

  // Compare with what is stored: an older epoch or a lost race is fenced.
  const kv = await store.get(key);
  const stored = kv === undefined ? undefined : decode(key, kv.value);
  const storedRevision = kv?.modRevision ?? 0;
  if (stored !== undefined && stored.epoch > checked.epoch) {
    throw fencedByEpoch(key, checked, stored);
  }
  if (storedRevision !== expectedModRevision) {
    throw lostRace(key, checked, expectedModRevision, storedRevision, stored);
  }
  if (stored !== undefined && checked.seq < stored.seq) {
    throw new Error(`commit checkpoint ${key}: seq going backwards from ${stored.seq} to ${checked.seq} (epoch ${checked.epoch})`);
  }

  // The compare-and-swap is the fence: it fails if anything changed since the read.
  const res = await store.compareAndSwap(key, expectedModRevision, Buffer.from(JSON.stringify(checked)));
  if (!res.ok) {
    const now = res.current === undefined ? undefined : decode(key, res.current.value);
    if (now !== undefined && now.epoch > checked.epoch) throw fencedByEpoch(key, checked, now);
    throw lostRace(key, checked, expectedModRevision, res.current?.modRevision ?? 0, now);
  }
  return { modRevision: res.revision };
}

/** The error for a commit from an older epoch than the stored one. */
function fencedByEpoch(key: string, next: Checkpoint, stored: Checkpoint): FencedError {
  return new FencedError(
    `commit checkpoint ${key}: fenced: stream epoch ${next.epoch} is older than stored epoch ${stored.epoch} (seq ${stored.seq})`,
    next.epoch,
    stored.epoch,
  );
}

/** The error for a commit whose compare-and-swap lost to another writer. */
function lostRace(key: string, next: Checkpoint, expected: number, actual: number, stored: Checkpoint | undefined): FencedError {
  const now = stored === undefined ? 'absent' : `epoch ${stored.epoch} seq ${stored.seq}`;
  return new FencedError(
    `commit checkpoint ${key}: fenced: another writer changed it (expected revision ${expected}, now ${actual}: ${now}); this writer's stream epoch is ${next.epoch}`,
    next.epoch,
    stored?.epoch,
  );
}
