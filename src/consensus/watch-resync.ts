// What a prefix watch has seen, and how it catches up when the history it
// missed is gone (etcd compacted it while the watch was disconnected): the
// prefix is re-read, and the difference between what the watcher saw and
// what is there now is delivered as ordinary events. Pure: no I/O.

import type { KeyValue, WatchEvent } from './consensus-store.ts';

/**
 * The keys a watcher knows under its prefix (key -> modRevision of the last
 * write it saw) and the revision up to which it has seen every change.
 */
export class WatchedKeys {
  private readonly keys = new Map<string, number>();
  private seenRevision: number;

  /** Start from a listing of the prefix taken at revision. */
  constructor(listing: readonly KeyValue[], revision: number) {
    for (const kv of listing) this.keys.set(kv.key, kv.modRevision);
    this.seenRevision = revision;
  }

  /** Every change up to this revision has been delivered. */
  get revision(): number {
    return this.seenRevision;
  }

  /** Record a delivered event. */
  apply(event: WatchEvent): void {
    if (event.type === 'delete') this.keys.delete(event.kv.key);
    else this.keys.set(event.kv.key, event.kv.modRevision);
    this.seenRevision = Math.max(this.seenRevision, event.kv.modRevision);
  }

  /** Mark every change up to revision as seen (the store says nothing under the prefix changed before it). */
  advance(revision: number): void {
    this.seenRevision = Math.max(this.seenRevision, revision);
  }

  /**
   * The events that take a watcher from what it saw to a listing taken at
   * revision: a put for every key written since (as it is now), in revision
   * order, then a delete, stamped with the listing's revision, for every key
   * that vanished. Values written and overwritten in between are not seen.
   */
  catchUp(listing: readonly KeyValue[], revision: number): WatchEvent[] {
    const listed = new Set<string>();
    const puts: WatchEvent[] = [];
    for (const kv of listing) {
      listed.add(kv.key);
      if (this.keys.get(kv.key) !== kv.modRevision) puts.push({ type: 'put', kv });
    }
    puts.sort((a, b) => a.kv.modRevision - b.kv.modRevision);
    const deletes: WatchEvent[] = [...this.keys.keys()]
      .filter((key) => !listed.has(key))
      .sort()
      .map((key) => ({ type: 'delete', kv: { key, value: Buffer.alloc(0), modRevision: revision, lease: 0 } }));
    return [...puts, ...deletes];
  }
}
