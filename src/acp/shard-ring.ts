// Sharding of an objects stream across the agents of a region. A path maps
// to one of K virtual shards by a hash of its top-level directory (so a
// directory's files stay in one ordered sub-stream); each shard is a
// sub-stream "<stream>~<shard>" with its own leader key and checkpoint. The
// shard's preferred owner is chosen by rendezvous (highest-random-weight)
// hashing over the live members: when a member joins or leaves, only the
// shards it gains or loses move (about K/N of them). Ownership is only a
// preference: the one sender of a shard is still whoever holds its leader
// key, so a move is "old owner resigns, new owner campaigns" and the
// destination's epoch fence keeps it free of double apply.

import { createHash } from 'node:crypto';

/** Separator between a stream id and its shard number in sub-stream ids. */
export const SHARD_SEPARATOR = '~';

/** 64-bit unsigned hash of the parts, as a bigint (SHA-256 prefix: stable across versions and platforms). */
function hash64(...parts: string[]): bigint {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest().readBigUInt64BE(0);
}

/** The shard key of a relative path: its top-level directory, or the file name at the root. */
export function shardKeyOf(relativePath: string): string {
  const trimmed = relativePath.replace(/^\/+/, '');
  const slash = trimmed.indexOf('/');
  return slash < 0 ? trimmed : trimmed.slice(0, slash);
}

/** The shard (0..shards-1) a relative path belongs to. */
export function shardOf(relativePath: string, shards: number): number {
  if (!Number.isSafeInteger(shards) || shards < 1) throw new Error(`shard of ${relativePath}: shards must be an integer >= 1, got ${shards}`);
  return Number(hash64('shard', shardKeyOf(relativePath)) % BigInt(shards));
}

/** Filter of the paths of one shard (closed under descent: a directory's paths share its shard). */
export function shardFilter(shard: number, shards: number): (relativePath: string) => boolean {
  return (relativePath) => shardOf(relativePath, shards) === shard;
}

/** Sub-stream id of a shard. */
export function shardStreamId(streamId: string, shard: number): string {
  return `${streamId}${SHARD_SEPARATOR}${shard}`;
}

/** The live member that should own a shard (rendezvous hashing); undefined with no members. */
export function ownerOf(streamId: string, shard: number, memberIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestWeight = -1n;
  for (const id of memberIds) {
    const w = hash64('owner', streamId, String(shard), id);
    if (w > bestWeight || (w === bestWeight && best !== undefined && id < best)) {
      best = id;
      bestWeight = w;
    }
  }
  return best;
}

/** Shards of a stream that memberId should own among memberIds. */
export function shardsOwnedBy(streamId: string, shards: number, memberIds: readonly string[], memberId: string): number[] {
  const owned: number[] = [];
  for (let s = 0; s < shards; s++) if (ownerOf(streamId, s, memberIds) === memberId) owned.push(s);
  return owned;
}
