// Agent membership in a region: each agent puts a record (node id, region,
// capabilities, address) at membershipKey, attached to its lease, so the
// record vanishes when the agent dies or is partitioned for a full TTL. A
// MemberView lists and then watches the region's prefix, so every agent
// sees the same live set (used by sharding to place shards).

import type { ConsensusStore, Watcher } from '../consensus/consensus-store.ts';
import { membershipKey } from '../consensus/checkpoints.ts';
import type { LeaseKeeper } from './lease-keeper.ts';
import { retryAtStart } from '../util/backoff.ts';

/** What an agent publishes about itself. */
export interface MemberRecord {
  nodeId: string;
  region: string;
  capabilities: string[];
  /** host:port of its carrier server. */
  address: string;
  /** Wall-clock time of registration, ms since the Unix epoch. */
  registeredAtMs: number;
}

/** Prefix of all members of a region. */
export function membersPrefix(federation: string, region: string): string {
  return membershipKey(federation, region, 'x').slice(0, -1);
}

/** Decode a member record; undefined when malformed. */
export function decodeMember(value: Buffer): MemberRecord | undefined {
  try {
    const m = JSON.parse(value.toString('utf8')) as MemberRecord;
    if (typeof m.nodeId === 'string' && typeof m.region === 'string' && Array.isArray(m.capabilities) && typeof m.address === 'string') return m;
  } catch {
    // not a member record
  }
  return undefined;
}

/** Registration and the member view at start retry for this long (ms, with backoff) before the agent gives up. */
const START_RETRY = { timeoutMs: 60_000, initialMs: 250, maxMs: 4_000 };

/**
 * Register this agent under the keeper's lease, now and again after every
 * re-granted lease. Resolves once the first registration is written.
 */
export async function registerMember(store: ConsensusStore, federation: string, keeper: LeaseKeeper, record: Omit<MemberRecord, 'registeredAtMs'>, onError: (err: Error) => void): Promise<void> {
  const key = membershipKey(federation, record.region, record.nodeId);
  const put = async (leaseId: number): Promise<void> => {
    const value = Buffer.from(JSON.stringify({ ...record, registeredAtMs: Date.now() } satisfies MemberRecord));
    // Overwrite whatever is there (a previous run's record on an expiring lease).
    const current = await store.get(key);
    const res = await store.compareAndSwap(key, current?.modRevision ?? 0, value, { lease: leaseId });
    if (!res.ok) throw new Error(`register member ${key}: another writer changed it`);
  };
  keeper.onGranted((lease) => put(lease.id).catch((err: Error) => onError(new Error(`register member again: ${err.message}`))));
  // At start the store may be slow (a member down, a leader election): retry
  // with backoff rather than fail the agent's start on one timed-out call.
  await retryAtStart(async () => put((await keeper.current()).id), {
    what: 'register member',
    ...START_RETRY,
    onRetry: (err, delayMs) => onError(new Error(`register member (retrying in ${delayMs} ms): ${err.message}`)),
  });
}

/** The live members of one region, kept current by a prefix watch. */
export class MemberView {
  private readonly members = new Map<string, MemberRecord>();
  private readonly listeners: Array<(members: MemberRecord[]) => void> = [];
  private watcher: Watcher | null = null;

  /**
   * List and watch the region's members. The watch resumes by itself after
   * disconnection and compaction; onError is told if it ends for good (the
   * view then stops changing).
   */
  static async open(store: ConsensusStore, federation: string, region: string, onError?: (err: Error) => void): Promise<MemberView> {
    // At start a store call may time out (a member just went down): retry, as registration does.
    return retryAtStart(() => MemberView.openOnce(store, federation, region, onError), {
      what: `member view of ${region}`,
      ...START_RETRY,
      onRetry: (err, delayMs) => onError?.(new Error(`member view of ${region} (retrying in ${delayMs} ms): ${err.message}`)),
    });
  }

  private static async openOnce(store: ConsensusStore, federation: string, region: string, onError?: (err: Error) => void): Promise<MemberView> {
    const view = new MemberView();
    const prefix = membersPrefix(federation, region);
    // Watch first, then list, so nothing between the two is missed; events are idempotent.
    view.watcher = await store.watchPrefix(prefix, (event) => {
      const nodeId = event.kv.key.slice(prefix.length);
      if (event.type === 'delete') view.members.delete(nodeId);
      else {
        const record = decodeMember(event.kv.value);
        if (record) view.members.set(nodeId, record);
      }
      view.changed();
    }, { onError: (err) => onError?.(new Error(`member view ${prefix}: ${err.message}`, { cause: err })) });
    try {
      for (const kv of await store.list(prefix)) {
        const record = decodeMember(kv.value);
        if (record) view.members.set(kv.key.slice(prefix.length), record);
      }
    } catch (err) {
      // The attempt failed: its watch must not outlive it.
      await view.close().catch(() => {});
      throw err;
    }
    return view;
  }

  /** Live members, sorted by node id. */
  live(): MemberRecord[] {
    return [...this.members.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** Call fn with the live set after every change. */
  onChange(fn: (members: MemberRecord[]) => void): void {
    this.listeners.push(fn);
  }

  /** Stop watching. */
  async close(): Promise<void> {
    await this.watcher?.close();
    this.watcher = null;
  }

  private changed(): void {
    const live = this.live();
    for (const fn of this.listeners) fn(live);
  }
}
