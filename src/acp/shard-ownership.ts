// Which shards this agent should send, kept current as members come and go.
// An agent campaigns for a shard only while the ring (shard-ring.ts) places
// it here among the live members, and gives the shard up (its leader loop
// resigns) as soon as the ring places it elsewhere. Ownership is only a
// preference: the leader key still decides who sends, and the destination's
// epoch fence keeps a hand-over free of double apply, so two agents that
// briefly disagree about the member set cost a wait, never a wrong write.

import type { MemberRecord } from './membership.ts';
import { ownerOf } from './shard-ring.ts';
import type { SubStream } from './sub-streams.ts';

/** The live member set and its changes (a MemberView). */
export interface LiveMembers {
  live(): MemberRecord[];
  /** Call fn after every change of the live set. */
  onChange(fn: () => void): void;
}

/** A shard held by this agent: its signal aborts when the shard moves away (or the caller's signal aborts). */
export interface ShardTurn {
  signal: AbortSignal;
  /** Resolves with the signal's reason once it aborted, even if it already had when this was read. */
  ended: Promise<Error>;
  /** Stop following membership for this turn. */
  release(): void;
}

/** This agent's share of the sharded streams, following a live member set. */
export class ShardOwnership {
  readonly #members: LiveMembers;
  readonly #nodeId: string;
  readonly #listeners = new Set<() => void>();

  constructor(members: LiveMembers, nodeId: string) {
    this.#members = members;
    this.#nodeId = nodeId;
    members.onChange(() => {
      for (const fn of [...this.#listeners]) fn();
    });
  }

  /** Whether this agent should send the sub-stream now (always, for an unsharded stream). */
  owns(part: SubStream): boolean {
    if (part.shards === 1) return true;
    return ownerOf(part.streamId, part.shard, this.#members.live().map((m) => m.nodeId)) === this.#nodeId;
  }

  /**
   * Wait until this agent owns the sub-stream, then return a turn whose
   * signal aborts once it no longer does. Rejects when signal aborts first.
   */
  async hold(part: SubStream, signal: AbortSignal): Promise<ShardTurn> {
    // Wait for ownership, re-checking after every membership change.
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!this.owns(part)) return;
        done();
        resolve();
      };
      const onAbort = (): void => {
        done();
        reject(signal.reason instanceof Error ? signal.reason : new Error(`hold ${part.id}: aborted`));
      };
      const done = (): void => {
        this.#listeners.delete(check);
        signal.removeEventListener('abort', onAbort);
      };
      if (signal.aborted) return onAbort();
      this.#listeners.add(check);
      signal.addEventListener('abort', onAbort, { once: true });
      check();
    });

    // Then follow membership until the shard moves away.
    const moved = new AbortController();
    const check = (): void => {
      if (this.owns(part)) return;
      this.#listeners.delete(check);
      moved.abort(new Error(`shard ${part.id} moved to another member`));
    };
    this.#listeners.add(check);
    check();
    const turn = AbortSignal.any([signal, moved.signal]);
    const ended = new Promise<Error>((resolve) => {
      const end = (): void => resolve(turn.reason instanceof Error ? turn.reason : new Error(`shard ${part.id}: turn ended`));
      if (turn.aborted) end();
      else turn.addEventListener('abort', end, { once: true });
    });
    return { signal: turn, ended, release: () => this.#listeners.delete(check) };
  }
}
