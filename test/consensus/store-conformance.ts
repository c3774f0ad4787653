// One conformance suite for every ConsensusStore backend: each backend's test
// file calls defineConformanceSuite with a way to open stores on it.

import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { ConsensusStore, Lease, WatchEvent } from '../../src/consensus/consensus-store.ts';
import { campaign, currentLeader } from '../../src/consensus/election.ts';
import { checkpointKey, commitCheckpoint, FencedError, leaderKey, loadCheckpoint, type Checkpoint } from '../../src/consensus/checkpoints.ts';

/** How the suite reaches one backend. */
export interface Backend {
  /** Open a client of the backend; two calls may return stores that see each other (or the same store). */
  open(): Promise<ConsensusStore>;
  /** Make the lease expire as it would if its holder stopped keeping it alive. */
  expireLease(store: ConsensusStore, lease: Lease): Promise<void>;
  /** A store whose watches can be cut off from the backend, and a writer that stays connected. */
  openGapped(): Promise<GappedStore>;
}

/** A store on the far side of a gap that a test opens and closes. */
export interface GappedStore {
  store: ConsensusStore;
  /** Writes during the gap go through this store. */
  writer: ConsensusStore;
  /**
   * Cut store off from the backend (its watch streams break), run during,
   * make the backend forget the history written so far (compaction), then
   * reconnect store. A backend whose watches cannot miss anything (one
   * process) just runs during and compacts.
   */
  gap(during: () => Promise<void>): Promise<void>;
}

/** Longest wait for an asynchronous outcome in this suite. */
export const WAIT_MS = 15_000;

/** A fresh key prefix per test so tests on a shared cluster do not meet. */
export function uniquePrefix(name: string): string {
  return `/test/${name}/${randomBytes(4).toString('hex')}/`;
}

/** Resolve p, or fail with what was awaited after ms. */
export async function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collects watch events and lets a test wait for a count. */
export class EventLog {
  readonly events: WatchEvent[] = [];
  private waiters: Array<{ n: number; resolve: () => void }> = [];

  /** The watch callback. */
  readonly onEvent = (event: WatchEvent): void => {
    this.events.push(event);
    this.waiters = this.waiters.filter((w) => {
      if (this.events.length < w.n) return true;
      w.resolve();
      return false;
    });
  };

  /** Wait until at least n events arrived. */
  async waitFor(n: number): Promise<WatchEvent[]> {
    if (this.events.length < n) {
      await within(`${n} watch events (have ${this.events.length})`, WAIT_MS, new Promise<void>((resolve) => this.waiters.push({ n, resolve })));
    }
    return this.events;
  }
}

/** TTL of the leases in the gap tests: longer than a gap and the reconnect after it. */
const GAP_LEASE_TTL_S = 30;

/** Wait until an event for key arrived; returns every event so far. */
async function waitForKey(log: EventLog, key: string): Promise<WatchEvent[]> {
  for (let n = 1; ; n++) {
    const events = await log.waitFor(n);
    if (events.some((e) => e.kv.key === key)) return events;
  }
}

/** The store as it is, but with a promise resolved when a compare-and-swap of key fails. */
function noticeFailedCas(store: ConsensusStore, key: string): { store: ConsensusStore; casFailed: Promise<void> } {
  let failed!: () => void;
  const casFailed = new Promise<void>((resolve) => {
    failed = resolve;
  });
  const watched = new Proxy(store, {
    get(target, prop) {
      if (prop === 'compareAndSwap') {
        return async (...args: Parameters<ConsensusStore['compareAndSwap']>) => {
          const res = await target.compareAndSwap(...args);
          if (!res.ok && args[0] === key) failed();
          return res;
        };
      }
      const value: unknown = Reflect.get(target, prop);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store: watched, casFailed };
}

/** Value helper. */
const b = (s: string): Buffer => Buffer.from(s);

/** A checkpoint with defaults. */
function cp(seq: number, epoch: number): Checkpoint {
  return { seq, chain: 'ab'.repeat(16), epoch, sinkState: Buffer.from(`state-${seq}`).toString('base64'), updatedAtMs: 1_700_000_000_000 + seq };
}

/** Define the shared tests for one backend. */
export function defineConformanceSuite(name: string, backend: () => Backend): void {
  describe(`${name}: ConsensusStore conformance`, () => {
    const opened: ConsensusStore[] = [];
    const open = async (): Promise<ConsensusStore> => {
      const store = await backend().open();
      opened.push(store);
      return store;
    };
    after(async () => {
      await Promise.allSettled(opened.map((s) => s.close()));
    });

    test('get and list return written keys sorted, nothing outside the prefix', async () => {
      const store = await open();
      const p = uniquePrefix('list');
      assert.equal(await store.get(`${p}missing`), undefined);
      const rc = await store.compareAndSwap(`${p}c`, 0, b('3'));
      const ra = await store.compareAndSwap(`${p}a`, 0, b('1'));
      const rb = await store.compareAndSwap(`${p}b`, 0, b('2'));
      await store.compareAndSwap(`${p.slice(0, -1)}x/outside`, 0, b('no'));
      assert.ok(rc.ok && ra.ok && rb.ok);
      assert.ok(rc.revision < ra.revision && ra.revision < rb.revision, 'revisions increase');

      const a = await store.get(`${p}a`);
      assert.equal(a?.value.toString(), '1');
      assert.equal(a?.modRevision, ra.revision);
      assert.equal(a?.lease, 0);

      const all = await store.list(p);
      assert.deepEqual(all.map((kv) => kv.key), [`${p}a`, `${p}b`, `${p}c`]);
      assert.deepEqual(all.map((kv) => kv.value.toString()), ['1', '2', '3']);
      assert.deepEqual(all.map((kv) => kv.modRevision), [ra.revision, rb.revision, rc.revision]);
    });

    test('compare-and-swap succeeds on the expected revision and returns the current value on conflict', async () => {
      const store = await open();
      const key = `${uniquePrefix('cas')}k`;
      const created = await store.compareAndSwap(key, 0, b('v1'));
      assert.equal(created.ok, true);

      const again = await store.compareAndSwap(key, 0, b('other'));
      assert.equal(again.ok, false, 'create-if-absent fails when present');
      assert.equal(again.current?.value.toString(), 'v1');
      assert.equal(again.current?.modRevision, created.revision);

      const swapped = await store.compareAndSwap(key, created.revision, b('v2'));
      assert.equal(swapped.ok, true);
      assert.ok(swapped.revision > created.revision);

      const stale = await store.compareAndSwap(key, created.revision, b('v3'));
      assert.equal(stale.ok, false, 'stale revision loses');
      assert.equal(stale.current?.value.toString(), 'v2');
      assert.equal(stale.current?.modRevision, swapped.revision);
      assert.equal((await store.get(key))?.value.toString(), 'v2');

      const absent = await store.compareAndSwap(`${key}-absent`, 5, b('x'));
      assert.equal(absent.ok, false, 'a non-zero revision on an absent key fails');
      assert.equal(absent.current, undefined);
    });

    test('concurrent writers serialize: one create wins, distinct keys get distinct revisions', async () => {
      const store = await open();
      const p = uniquePrefix('concurrent');
      const racers = await Promise.all(Array.from({ length: 20 }, (_, i) => store.compareAndSwap(`${p}same`, 0, b(`w${i}`))));
      assert.equal(racers.filter((r) => r.ok).length, 1);
      const winner = racers.find((r) => r.ok)!;
      for (const r of racers.filter((r) => !r.ok)) assert.equal(r.current?.modRevision, winner.revision);

      const many = await Promise.all(Array.from({ length: 30 }, (_, i) => store.compareAndSwap(`${p}k${i}`, 0, b(`${i}`))));
      assert.ok(many.every((r) => r.ok));
      assert.equal(new Set(many.map((r) => r.revision)).size, 30);
      assert.equal((await store.list(p)).length, 31);
    });

    test('compare-and-delete honours the revision, 0 deletes unconditionally', async () => {
      const store = await open();
      const key = `${uniquePrefix('cad')}k`;
      const w = await store.compareAndSwap(key, 0, b('x'));
      const wrong = await store.compareAndDelete(key, w.revision + 1000);
      assert.equal(wrong.ok, false);
      assert.equal(wrong.current?.value.toString(), 'x');
      assert.ok(await store.get(key));

      const right = await store.compareAndDelete(key, w.revision);
      assert.equal(right.ok, true);
      assert.equal(await store.get(key), undefined);

      await store.compareAndSwap(key, 0, b('y'));
      assert.equal((await store.compareAndDelete(key, 0)).ok, true);
      assert.equal(await store.get(key), undefined);
      assert.equal((await store.compareAndDelete(key, 0)).ok, true, 'unconditional delete of an absent key is ok');
    });

    test('watch delivers puts and deletes under the prefix in revision order', async () => {
      const store = await open();
      const p = uniquePrefix('watch');
      await store.compareAndSwap(`${p}before`, 0, b('old'));
      const log = new EventLog();
      const watcher = await store.watchPrefix(p, log.onEvent);

      const r1 = await store.compareAndSwap(`${p}a`, 0, b('1'));
      await store.compareAndSwap(`${p.slice(0, -1)}-other/a`, 0, b('not watched'));
      const r2 = await store.compareAndSwap(`${p}b`, 0, b('2'));
      const r3 = await store.compareAndDelete(`${p}a`, r1.revision);
      const r4 = await store.compareAndSwap(`${p}b`, r2.revision, b('3'));
      const r5 = await store.compareAndDelete(`${p}before`, 0);

      const events = await log.waitFor(5);
      await watcher.close();
      assert.deepEqual(
        events.map((e) => [e.type, e.kv.key, e.kv.modRevision]),
        [
          ['put', `${p}a`, r1.revision],
          ['put', `${p}b`, r2.revision],
          ['delete', `${p}a`, r3.revision],
          ['put', `${p}b`, r4.revision],
          ['delete', `${p}before`, r5.revision],
        ],
      );
      assert.equal(events[3].kv.value.toString(), '3');
    });

    test('lease expiry deletes attached keys (with watch events) and resolves lost', async () => {
      const store = await open();
      const p = uniquePrefix('lease-expiry');
      const lease = await store.grantLease(1);
      const put = await store.compareAndSwap(`${p}leased`, 0, b('x'), { lease: lease.id });
      assert.equal(put.ok, true);
      await store.compareAndSwap(`${p}plain`, 0, b('y'));
      assert.equal((await store.get(`${p}leased`))?.lease, lease.id);

      const log = new EventLog();
      const watcher = await store.watchPrefix(p, log.onEvent);
      await backend().expireLease(store, lease);
      const reason = await within('lease lost', WAIT_MS, lease.lost);
      assert.match(reason.message, new RegExp(`lease ${lease.id}`));

      const events = await log.waitFor(1);
      await watcher.close();
      assert.deepEqual(events.map((e) => [e.type, e.kv.key]), [['delete', `${p}leased`]]);
      assert.equal(await store.get(`${p}leased`), undefined);
      assert.equal((await store.get(`${p}plain`))?.value.toString(), 'y');
    });

    test('lease revoke deletes attached keys, resolves lost, and is safe twice', async () => {
      const store = await open();
      const p = uniquePrefix('lease-revoke');
      const lease = await store.grantLease(5);
      await store.compareAndSwap(`${p}a`, 0, b('x'), { lease: lease.id });
      await store.compareAndSwap(`${p}b`, 0, b('x'), { lease: lease.id });
      await lease.revoke();
      await lease.revoke();
      assert.match((await within('lease lost', WAIT_MS, lease.lost)).message, /revoked/);
      assert.deepEqual(await store.list(p), []);
      await assert.rejects(store.compareAndSwap(`${p}c`, 0, b('x'), { lease: lease.id }), /lease/);
    });

    test('election hands over when the leader lease is revoked, with a higher epoch', async () => {
      const storeA = await open();
      const storeB = await open();
      const key = leaderKey('fed', `stream-${randomBytes(3).toString('hex')}`, 'eu');
      const leaseA = await storeA.grantLease(5);
      const leaseB = await storeB.grantLease(5);
      const signal = AbortSignal.timeout(WAIT_MS);

      const a = await campaign(storeA, key, 'agent-a', leaseA, signal);
      assert.deepEqual(await currentLeader(storeB, key), { candidateId: 'agent-a', epoch: a.epoch });

      let bWon = false;
      const bCampaign = campaign(storeB, key, 'agent-b', leaseB, signal).then((l) => {
        bWon = true;
        return l;
      });
      // B stays a follower while A holds the key.
      assert.deepEqual(await currentLeader(storeB, key), { candidateId: 'agent-a', epoch: a.epoch });
      assert.equal(bWon, false);

      await leaseA.revoke();
      assert.match((await within('leadership A lost', WAIT_MS, a.lost)).message, /lost/);
      const bLead = await within('B elected', WAIT_MS, bCampaign);
      assert.ok(bLead.epoch > a.epoch, `epoch grows: ${bLead.epoch} > ${a.epoch}`);
      assert.deepEqual(await currentLeader(storeA, key), { candidateId: 'agent-b', epoch: bLead.epoch });

      await bLead.resign();
      assert.match((await within('B lost after resign', WAIT_MS, bLead.lost)).message, /resigned/);
      assert.equal(await currentLeader(storeA, key), undefined);
      await leaseB.revoke();
    });

    test('campaign rejects on abort while another candidate leads', async () => {
      const store = await open();
      const key = leaderKey('fed', `stream-${randomBytes(3).toString('hex')}`, 'us');
      const leaseA = await store.grantLease(5);
      const leaseB = await store.grantLease(5);
      const a = await campaign(store, key, 'agent-a', leaseA, AbortSignal.timeout(WAIT_MS));
      const controller = new AbortController();
      const waiting = campaign(store, key, 'agent-b', leaseB, controller.signal);
      controller.abort(new Error('test abort'));
      await assert.rejects(within('campaign abort', WAIT_MS, waiting), /test abort/);
      assert.equal((await currentLeader(store, key))?.candidateId, 'agent-a');
      await a.resign();
      await leaseA.revoke();
      await leaseB.revoke();
    });

    test('a watch survives a gap whose history was compacted: keys deleted and changed in the gap are delivered, then later changes', async () => {
      const { store, writer, gap } = await backend().openGapped();
      const p = uniquePrefix('watch-gap');
      const before = {
        gone: await writer.compareAndSwap(`${p}gone`, 0, b('a')),
        changed: await writer.compareAndSwap(`${p}changed`, 0, b('b1')),
        same: await writer.compareAndSwap(`${p}same`, 0, b('c')),
      };
      const log = new EventLog();
      const watcher = await store.watchPrefix(p, log.onEvent, { onError: (err) => log.onEvent({ type: 'delete', kv: { key: `error: ${err.message}`, value: b(''), modRevision: 0, lease: 0 } }) });
      const seenFirst = await writer.compareAndSwap(`${p}first`, 0, b('f'));
      await log.waitFor(1);

      // In the gap: delete one key, change another twice, add one; then the history goes.
      let deleted = 0;
      await gap(async () => {
        deleted = (await writer.compareAndDelete(`${p}gone`, before.gone.revision)).revision;
        const b2 = await writer.compareAndSwap(`${p}changed`, before.changed.revision, b('b2'));
        await writer.compareAndSwap(`${p}changed`, b2.revision, b('b3'));
        await writer.compareAndSwap(`${p}added`, 0, b('d'));
      });

      // After it: one more write (a catch-up may already include it).
      const after = await writer.compareAndSwap(`${p}after`, 0, b('e'));
      const events = await waitForKey(log, `${p}after`);
      await watcher.close();
      assert.ok(!events.some((e) => e.kv.key.startsWith('error: ')), `the watch did not end: ${events.map((e) => e.kv.key).join(', ')}`);
      assert.deepEqual([events[0].type, events[0].kv.key, events[0].kv.modRevision], ['put', `${p}first`, seenFirst.revision]);
      const gapEvents = events.slice(1);
      const deletion = gapEvents.find((e) => e.kv.key === `${p}gone`);
      assert.equal(deletion?.type, 'delete', 'the delete made in the gap is delivered');
      assert.ok(deletion.kv.modRevision >= deleted, `delete stamped at or after its revision (${deletion.kv.modRevision} >= ${deleted})`);
      const changes = gapEvents.filter((e) => e.kv.key === `${p}changed`);
      assert.equal(changes.at(-1)?.kv.value.toString(), 'b3', 'the last value written in the gap is delivered');
      assert.ok(gapEvents.some((e) => e.type === 'put' && e.kv.key === `${p}added`), 'a key added in the gap is delivered');
      assert.ok(!gapEvents.some((e) => e.kv.key === `${p}same`), 'an unchanged key is not delivered again');
      assert.deepEqual(gapEvents.filter((e) => e.kv.key === `${p}after`).map((e) => [e.type, e.kv.modRevision]), [['put', after.revision]]);
      for (let i = 1; i < events.length; i++) assert.ok(events[i].kv.modRevision >= events[i - 1].kv.modRevision, 'revision order');
    });

    test('a campaigner waiting behind a leader takes over when the leader key was deleted in a gap', async () => {
      const { store, writer, gap } = await backend().openGapped();
      const key = leaderKey('fed', `stream-${randomBytes(3).toString('hex')}`, 'eu');
      // Long leases: the waiting candidate's keepalives fail during the gap.
      const leaseA = await writer.grantLease(GAP_LEASE_TTL_S);
      const leaseB = await store.grantLease(GAP_LEASE_TTL_S);
      const signal = AbortSignal.timeout(WAIT_MS * 2);
      const a = await campaign(writer, key, 'agent-a', leaseA, signal);
      // B waits behind A: its watch is up once its create-if-absent has failed.
      const { store: watched, casFailed } = noticeFailedCas(store, key);
      const bCampaign = campaign(watched, key, 'agent-b', leaseB, signal);
      await within('B waiting behind A', WAIT_MS, casFailed);
      assert.deepEqual(await currentLeader(store, key), { candidateId: 'agent-a', epoch: a.epoch });

      await gap(async () => {
        await a.resign();
        // More revisions after the delete, so the compaction is well past it.
        for (let i = 0; i < 3; i++) await writer.compareAndSwap(`${key}-noise-${i}`, 0, b('n'));
      });
      const bLead = await within('B elected after the gap', WAIT_MS * 2, bCampaign);
      assert.ok(bLead.epoch > a.epoch, `epoch grows: ${bLead.epoch} > ${a.epoch}`);
      assert.deepEqual(await currentLeader(writer, key), { candidateId: 'agent-b', epoch: bLead.epoch });
      await bLead.resign();
      await leaseA.revoke();
      await leaseB.revoke();
    });

    test('checkpoint commit refuses an older epoch, a lost compare-and-swap, and seq going backwards', async () => {
      const store = await open();
      const key = checkpointKey('fed', `stream-${randomBytes(3).toString('hex')}`, 'eu');
      assert.equal(await loadCheckpoint(store, key), undefined);

      const first = await commitCheckpoint(store, key, 0, cp(10, 5));
      const loaded = await loadCheckpoint(store, key);
      assert.deepEqual(loaded, { checkpoint: cp(10, 5), modRevision: first.modRevision });

      // An older epoch is fenced even with the right revision.
      const older = commitCheckpoint(store, key, first.modRevision, cp(11, 4));
      await assert.rejects(older, (err: unknown) => {
        assert.ok(err instanceof FencedError);
        assert.match(err.message, /epoch 4/);
        assert.match(err.message, /epoch 5/);
        return true;
      });

      // Two writers of the same epoch from the same revision: the second loses.
      const second = await commitCheckpoint(store, key, first.modRevision, cp(12, 5));
      await assert.rejects(commitCheckpoint(store, key, first.modRevision, cp(13, 5)), (err: unknown) => {
        assert.ok(err instanceof FencedError);
        assert.match(err.message, /another writer/);
        return true;
      });

      // seq never goes backwards.
      await assert.rejects(commitCheckpoint(store, key, second.modRevision, cp(11, 5)), /seq going backwards/);

      // A newer epoch takes over.
      const third = await commitCheckpoint(store, key, second.modRevision, cp(12, 6));
      assert.ok(third.modRevision > second.modRevision);
      assert.deepEqual((await loadCheckpoint(store, key))?.checkpoint, cp(12, 6));
    });
  });
}
