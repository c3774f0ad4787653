// The units ACP elects, fences, checkpoints and audits. An unsharded stream
// is one unit under its own id; an objects stream with `shards: K` (K > 1)
// is K units "<stream>~0" .. "<stream>~K-1", each carrying the paths of its
// shard (see shard-ring.ts). Every unit has its own leader key, epoch,
// checkpoint, chain record and audit log, so the single-writer guarantees
// hold per shard without any change to them.

import type { StreamConfig } from '../config/config.ts';
import type { PathFilter } from '../streams/objects/path-filter.ts';
import { shardFilter, shardStreamId } from './shard-ring.ts';

/** One independently elected and checkpointed part of a stream. */
export interface SubStream {
  /** Id on the wire, in consensus keys and in audit logs: the stream id, or <stream>~<shard>. */
  id: string;
  /** The configured stream it is part of. */
  streamId: string;
  /** Its shard, 0..shards-1 (0 when unsharded). */
  shard: number;
  /** Shards of the stream (1: unsharded). */
  shards: number;
  /** The paths it carries (objects streams with shards > 1); undefined: all. */
  include?: PathFilter;
}

/** Shards of a stream (pg-wal streams are never sharded). */
export function shardsOf(stream: StreamConfig): number {
  return stream.kind === 'objects' ? stream.shards : 1;
}

/** The sub-streams of a stream: itself when unsharded, else one per shard. */
export function subStreamsOf(stream: StreamConfig): SubStream[] {
  const shards = shardsOf(stream);
  if (shards === 1) return [{ id: stream.id, streamId: stream.id, shard: 0, shards: 1 }];
  return Array.from({ length: shards }, (_, shard) => ({
    id: shardStreamId(stream.id, shard),
    streamId: stream.id,
    shard,
    shards,
    include: shardFilter(shard, shards),
  }));
}
