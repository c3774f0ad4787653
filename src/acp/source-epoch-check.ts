// The destination's check that a sender's epoch was issued by the source
// region's consensus. A sender's epoch is the modRevision of its leader key
// in the source region's etcd (election.ts). Without this check, any agent
// certified for the source region could open a stream at an epoch of its
// choosing (2^53-1 would fence every later leader for good). With read
// access to the source region's etcd, the destination accepts a StreamOpen
// only when the leader key exists now, at exactly that epoch, naming the
// node whose certificate the link was verified with.

import type { ConsensusStore } from '../consensus/consensus-store.ts';
import { currentLeader } from '../consensus/election.ts';

/** A StreamOpen to verify: the leader key in the source region, and what the certified peer claims. */
export interface EpochClaim {
  /** leaderKey(federation, stream, destination region). */
  key: string;
  epoch: number;
  /** The peer's node, from its certificate. */
  node: string;
}

/**
 * Why the claim does not match the source region's leader record, or null
 * when it does. Throws when the source region's store cannot be read (the
 * caller closes the link so the sender retries; it never guesses).
 */
export async function sourceEpochRefusal(sourceStore: ConsensusStore, claim: EpochClaim): Promise<string | null> {
  const leader = await currentLeader(sourceStore, claim.key);
  if (leader === undefined) return `epoch ${claim.epoch} is not in the source region's consensus: nobody leads ${claim.key}`;
  if (leader.epoch !== claim.epoch || leader.candidateId !== claim.node) {
    return `epoch ${claim.epoch} of node "${claim.node}" is not in the source region's consensus: ${claim.key} is led by "${leader.candidateId}" at epoch ${leader.epoch}`;
  }
  return null;
}
