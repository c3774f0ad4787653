// Streams checked against the source region's consensus. The sender of a
// (stream, destination) records in its own region's store the chained digest
// at each position the destination acknowledged durable. When a link
// (re)starts, the destination reports its checkpoint (seq, chain); the
// sender compares it with that record before sending anything. A mismatch
// means the destination holds a history the source never committed (a
// forked WAL, a restored or tampered checkpoint): the stream halts with
// StreamDivergedError instead of applying anything on top of it.
// The record also bounds what was ever sent: before a sender sends a frame
// past the record's sentSeq it raises sentSeq (in steps, so one write covers
// many frames). A destination claiming a durable position beyond sentSeq
// claims what no sender of this region ever sent: it lies, and the stream
// halts. One between seq and sentSeq may be legitimate (the sender died
// after the destination's ack and before its record): it is accepted, but
// its resume state counts as unverified (ResumePoint.verified false).

import type { ConsensusStore } from '../consensus/consensus-store.ts';

/** The source region's committed position of a (stream, destination). */
export interface ChainRecord {
  /** Position the destination acknowledged durable. */
  seq: number;
  /** Chained digest up to seq, hex. */
  chain: string;
  /** Leader epoch of the sender that recorded it. */
  epoch: number;
  /** Highest sequence number any sender may have sent (absent in records of older versions: no bound known). */
  sentSeq?: number;
}

/** The destination's history does not match what the source region committed. */
export class StreamDivergedError extends Error {
  override name = 'StreamDivergedError';
  readonly streamId: string;
  readonly seq: number;

  constructor(streamId: string, seq: number, detail: string) {
    super(`StreamDivergedError: stream ${streamId}: ${detail}`);
    this.streamId = streamId;
    this.seq = seq;
  }
}

/** Key of the source region's chain record of streamId towards destRegion. */
export function chainKey(federation: string, streamId: string, destRegion: string): string {
  for (const [field, value] of [['federation', federation], ['streamId', streamId], ['destRegion', destRegion]]) {
    if (value === '' || value.includes('/')) throw new Error(`consensus key: ${field} must be a non-empty string without '/', got ${JSON.stringify(value)}`);
  }
  return `/dwcp/${federation}/chains/${streamId}/${destRegion}`;
}

/** Decode a stored record; throws naming the bad field. */
function decode(key: string, value: Buffer): ChainRecord {
  let r: ChainRecord;
  try {
    r = JSON.parse(value.toString('utf8')) as ChainRecord;
  } catch (err) {
    throw new Error(`decode chain record ${key}: ${(err as Error).message}`);
  }
  if (!Number.isSafeInteger(r.seq) || r.seq < 0) throw new Error(`decode chain record ${key}: seq must be a non-negative integer, got ${r.seq}`);
  if (typeof r.chain !== 'string' || !/^[0-9a-f]*$/.test(r.chain)) throw new Error(`decode chain record ${key}: chain must be lowercase hex`);
  if (!Number.isSafeInteger(r.epoch) || r.epoch < 0) throw new Error(`decode chain record ${key}: epoch must be a non-negative integer, got ${r.epoch}`);
  if (r.sentSeq !== undefined && (!Number.isSafeInteger(r.sentSeq) || r.sentSeq < r.seq)) throw new Error(`decode chain record ${key}: sentSeq must be an integer not below seq ${r.seq}, got ${r.sentSeq}`);
  return r.sentSeq === undefined ? { seq: r.seq, chain: r.chain, epoch: r.epoch } : { seq: r.seq, chain: r.chain, epoch: r.epoch, sentSeq: r.sentSeq };
}

/** Load the chain record with its modRevision (undefined when none yet). */
export async function loadChainRecord(store: ConsensusStore, key: string): Promise<{ record: ChainRecord; modRevision: number } | undefined> {
  const kv = await store.get(key);
  return kv === undefined ? undefined : { record: decode(key, kv.value), modRevision: kv.modRevision };
}

/**
 * Compare the destination's checkpoint with the source's record. Returns
 * null when they agree (or the destination is ahead of the record but not
 * beyond what was ever sent, which happens when the sender died between the
 * destination's ack and its record); else the divergence error. Without a
 * record nothing was ever sent, so only position 0 agrees.
 */
export function compareChains(streamId: string, record: ChainRecord | undefined, destSeq: number, destChain: Buffer): StreamDivergedError | null {
  if (record === undefined) {
    if (destSeq === 0) return null;
    return new StreamDivergedError(streamId, destSeq, `destination claims durable seq ${destSeq}, but the source region has no committed record of this stream there (committed seq 0): nothing was ever sent`);
  }
  if (record.sentSeq !== undefined && destSeq > record.sentSeq) {
    return new StreamDivergedError(streamId, destSeq, `destination claims durable seq ${destSeq}, beyond seq ${record.sentSeq} that the source region ever sent (committed seq ${record.seq})`);
  }
  if (destSeq < record.seq) {
    return new StreamDivergedError(streamId, destSeq, `destination is at seq ${destSeq}, behind seq ${record.seq} that the source region recorded as durable there (checkpoint lost or restored)`);
  }
  // A record that only bounds sentSeq (chain '') holds no position to compare yet.
  if (destSeq === record.seq && record.chain !== '' && destChain.toString('hex') !== record.chain) {
    return new StreamDivergedError(streamId, destSeq, `destination chain at seq ${destSeq} does not match the source region's`);
  }
  return null;
}

/** True when the destination's position is one the record vouches for (its chain was compared): nothing, or exactly the committed seq. */
export function positionVerified(record: ChainRecord | undefined, destSeq: number): boolean {
  return destSeq === (record?.seq ?? 0);
}

/**
 * Records a sender's acknowledged positions, one write at a time, latest
 * wins. A write never moves the record backwards and never overwrites one
 * of a newer epoch (compare-and-swap on the key's revision).
 */
export class ChainRecorder {
  private readonly store: ConsensusStore;
  private readonly key: string;
  private readonly epoch: number;
  private modRevision: number;
  private stored: ChainRecord | undefined;
  private next: ChainRecord | null = null;
  /** sentSeq wanted by reserve() callers, and their waiters. */
  private wantSent = 0;
  private sentWaiters: Array<{ upTo: number; resolve(): void; reject(err: Error): void }> = [];
  /** True from kick() until flush() returns (set and cleared synchronously, so no request falls between two flushes). */
  private flushing = false;
  private running: Promise<void> = Promise.resolve();
  private readonly onError: (err: Error) => void;

  constructor(store: ConsensusStore, key: string, epoch: number, loaded: { record: ChainRecord; modRevision: number } | undefined, onError: (err: Error) => void) {
    this.store = store;
    this.key = key;
    this.epoch = epoch;
    this.stored = loaded?.record;
    this.modRevision = loaded?.modRevision ?? 0;
    this.onError = onError;
  }

  /** Record (seq, chain) soon; later calls supersede earlier pending ones. */
  record(seq: number, chain: Buffer): void {
    this.next = { seq, chain: chain.toString('hex'), epoch: this.epoch };
    this.kick();
  }

  /** Resolve once the record's sentSeq is at least upTo (written now if needed); rejects when the write fails. */
  reserve(upTo: number): Promise<void> {
    if (this.stored?.sentSeq !== undefined && this.stored.sentSeq >= upTo) return Promise.resolve();
    this.wantSent = Math.max(this.wantSent, upTo);
    const done = new Promise<void>((resolve, reject) => this.sentWaiters.push({ upTo, resolve, reject }));
    this.kick();
    return done;
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    this.running = this.flush();
  }

  /** sentSeq a write carries: never below what was stored, reserved or recorded. */
  private sentBound(seq: number): number {
    return Math.max(seq, this.wantSent, this.stored?.sentSeq ?? this.stored?.seq ?? 0);
  }

  private settleWaiters(err: Error | null): void {
    const sent = this.stored?.sentSeq ?? 0;
    this.sentWaiters = this.sentWaiters.filter((w) => {
      if (err) w.reject(err);
      else if (w.upTo <= sent) w.resolve();
      else return true;
      return false;
    });
  }

  /** Wait for pending writes. */
  async settled(): Promise<void> {
    while (this.flushing) await this.running;
  }

  private async flush(): Promise<void> {
    try {
      await this.flushAll();
    } finally {
      this.flushing = false;
    }
  }

  private async flushAll(): Promise<void> {
    while (this.next || this.sentWaiters.length > 0) {
      let next = this.next;
      this.next = null;
      if (next && this.stored && next.seq <= this.stored.seq && next.epoch <= this.stored.epoch) next = null;
      if (!next) {
        if (this.sentWaiters.length === 0) continue;
        // Only sentSeq moves: the position stays what is stored (or nothing yet).
        next = { seq: this.stored?.seq ?? 0, chain: this.stored?.chain ?? '', epoch: this.epoch };
      }
      next = { ...next, sentSeq: this.sentBound(next.seq) };
      try {
        let res = await this.store.compareAndSwap(this.key, this.modRevision, Buffer.from(JSON.stringify(next)));
        if (!res.ok) {
          // Someone else wrote: re-read, keep the fence, and retry once.
          const current = res.current ? decode(this.key, res.current.value) : undefined;
          if (current && current.epoch > this.epoch) throw new Error(`fenced: record holds epoch ${current.epoch}, newer than this sender's ${this.epoch}`);
          // Never lower what another sender may have sent.
          if (current) next = { ...next, sentSeq: Math.max(next.sentSeq ?? 0, current.sentSeq ?? current.seq) };
          res = await this.store.compareAndSwap(this.key, res.current?.modRevision ?? 0, Buffer.from(JSON.stringify(next)));
          if (!res.ok) throw new Error('another writer changed it twice');
        }
        this.modRevision = res.revision;
        this.stored = next;
        this.settleWaiters(null);
      } catch (err) {
        const failed = new Error(`record chain ${this.key} at seq ${next.seq}: ${(err as Error).message}`);
        this.settleWaiters(failed);
        this.onError(failed);
        return;
      }
    }
  }
}

/**
 * The chain check of one leadership, for StreamSender's chainCheck option:
 * committed() reads the record (and readies the recorder at its revision),
 * record() advances it after each verified ack.
 */
export function sourceChainCheck(store: ConsensusStore, key: string, epoch: number, onError: (err: Error) => void): { committed(): Promise<ChainRecord | undefined>; record(seq: number, chain: Buffer): void; reserve(upTo: number): Promise<void> } {
  let recorder: ChainRecorder | null = null;
  return {
    committed: async () => {
      const loaded = await loadChainRecord(store, key);
      recorder = new ChainRecorder(store, key, epoch, loaded, onError);
      return loaded?.record;
    },
    record: (seq, chain) => recorder?.record(seq, chain),
    reserve: (upTo) => (recorder ? recorder.reserve(upTo) : Promise.reject(new Error(`reserve chain ${key}: committed() was not read first`))),
  };
}
