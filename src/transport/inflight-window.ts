// The link's in-flight window: data frames sent and not yet durable at the
// destination, per stream in sequence order, and the byte bound that is the
// backpressure reaching the sources. A pure structure (no I/O, no clock: the
// caller passes send times), tested on traces like the AMST controller.
//
// Two acknowledgements can free a frame:
// - durable (cumulative, per stream): the destination committed everything
//   up to a sequence number; those frames leave the window for good.
// - delivered (per frame, Delivered ranges of amst:delivered@1,
//   delivery-acks.ts): the destination holds the frame but has not made it
//   durable yet. Its bytes stop counting against the window and it is no
//   longer resent when its carrier dies; it stays listed (and its bytes
//   kept, for a Nack's resend) until durable. So that a stalled apply still
//   backpressures the source, all frames not yet durable, delivered or not,
//   are bounded too: by the hold the destination announced (its bound on a
//   stream's unapplied frames), or by the window's limit when it announced
//   none. A peer that sends no Delivered frees everything by durability, as
//   before.

/** One data frame in flight. */
export interface InflightEntry<F, H> {
  readonly streamId: string;
  readonly seq: number;
  /** The framed bytes (kept for resends until delivered). */
  readonly frame: F;
  /** Size charged to the window, bytes. */
  readonly bytes: number;
  /** When it was first sent (caller's clock, ms). */
  readonly sentAt: number;
  /** The carrier now holding it (set by the caller when it writes the frame); null before the first send. */
  holder: H | null;
  /** When it was last written to a carrier (caller's clock, ms; hedge.ts reads it). */
  writtenAt: number;
  /** A second copy sent by a hedge (hedge.ts), on this carrier; null when none is in flight. */
  hedgeHolder: H | null;
  /** True once a hedge sent it again (at most one hedge per frame). */
  hedged: boolean;
  /** True once the destination reported delivery (not yet durability). */
  delivered: boolean;
}

/** Frames in flight on one link, bounded in bytes. */
export class InflightWindow<F, H> {
  /** Largest sum of undelivered frame bytes, bytes. */
  readonly limitBytes: number;
  /** Largest sum of all frame bytes not yet durable (delivered or not), bytes. */
  private holdLimitBytes: number;
  private readonly streams = new Map<string, Map<number, InflightEntry<F, H>>>();
  /**
   * The undelivered frames of each stream, in sequence order: what the
   * hedge scan (every 50 ms) and a dying carrier look at, without walking
   * the delivered frames the destination holds (up to its whole hold).
   */
  private readonly undeliveredFrames = new Map<string, Map<number, InflightEntry<F, H>>>();
  private undeliveredBytes = 0;
  private allBytes = 0;

  /** A window of limitBytes (a single frame above it is still let in alone, so it cannot block forever). */
  constructor(limitBytes: number) {
    if (!(limitBytes > 0)) throw new Error(`inflight window: limit must be positive, got ${limitBytes}`);
    this.limitBytes = limitBytes;
    this.holdLimitBytes = limitBytes;
  }

  /**
   * Bound all frames not yet durable by the destination's announced hold,
   * bytes (null: by limitBytes, as for a peer that sends no Delivered).
   */
  setHoldLimit(holdBytes: number | null): void {
    this.holdLimitBytes = holdBytes !== null && holdBytes > 0 ? holdBytes : this.limitBytes;
  }

  /** Largest sum of frame bytes not yet durable, bytes (the destination's announced hold, else limitBytes). */
  get holdLimit(): number {
    return this.holdLimitBytes;
  }

  /** Bytes in flight and not yet delivered: what the window bounds. */
  get bytes(): number {
    return this.undeliveredBytes;
  }

  /** Bytes delivered and not yet durable (the destination holds them). */
  get deliveredBytes(): number {
    return this.allBytes - this.undeliveredBytes;
  }

  /** True when a frame of this size may enter now (always when the window is empty). */
  fits(bytes: number): boolean {
    if (this.allBytes === 0) return true;
    return this.undeliveredBytes + bytes <= this.limitBytes && this.allBytes + bytes <= this.holdLimitBytes;
  }

  /** Put a sent frame in flight; its seq must be above the stream's frames already in flight. */
  add(streamId: string, seq: number, frame: F, bytes: number, sentAt: number): InflightEntry<F, H> {
    let frames = this.streams.get(streamId);
    if (!frames) {
      frames = new Map();
      this.streams.set(streamId, frames);
    }
    const entry: InflightEntry<F, H> = { streamId, seq, frame, bytes, sentAt, holder: null, writtenAt: sentAt, hedgeHolder: null, hedged: false, delivered: false };
    frames.set(seq, entry);
    this.markUndelivered(entry, true);
    this.undeliveredBytes += bytes;
    this.allBytes += bytes;
    return entry;
  }

  /** The frame of a stream at seq, if in flight. */
  get(streamId: string, seq: number): InflightEntry<F, H> | undefined {
    return this.streams.get(streamId)?.get(seq);
  }

  /** Frames of a stream in flight (delivered or not). */
  count(streamId: string): number {
    return this.streams.get(streamId)?.size ?? 0;
  }

  /** Send time of a stream's oldest frame in flight, or null. */
  oldestSentAt(streamId: string): number | null {
    const frames = this.streams.get(streamId);
    if (!frames) return null;
    for (const entry of frames.values()) return entry.sentAt;
    return null;
  }

  /** Cumulative durable acknowledgement: remove and return the stream's frames up to upToSeq. */
  durable(streamId: string, upToSeq: number): Array<InflightEntry<F, H>> {
    const frames = this.streams.get(streamId);
    if (!frames) return [];
    const released: Array<InflightEntry<F, H>> = [];
    // Frames sit in insertion order, which is sequence order (add's rule).
    for (const [seq, entry] of frames) {
      if (seq > upToSeq) break;
      frames.delete(seq);
      if (!entry.delivered) {
        this.undeliveredBytes -= entry.bytes;
        this.markDelivered(entry);
      }
      this.allBytes -= entry.bytes;
      released.push(entry);
    }
    if (frames.size === 0) this.streams.delete(streamId);
    return released;
  }

  /** Remove and return every frame of a stream (its sender stopped; none will be acknowledged). */
  forget(streamId: string): Array<InflightEntry<F, H>> {
    return this.durable(streamId, Number.POSITIVE_INFINITY);
  }

  /** Per-frame delivery acknowledgement: returns the entry when this was news, else null. */
  delivered(streamId: string, seq: number): InflightEntry<F, H> | null {
    const entry = this.streams.get(streamId)?.get(seq);
    if (!entry || entry.delivered) return null;
    entry.delivered = true;
    this.undeliveredBytes -= entry.bytes;
    this.markDelivered(entry);
    return entry;
  }

  /**
   * Delivery of a range first..last inclusive: the entries for which it was
   * news. Walks the shorter of the range and the stream's frames, so a
   * peer's huge range costs no more than the frames in flight.
   */
  deliveredRange(streamId: string, first: number, last: number): Array<InflightEntry<F, H>> {
    const frames = this.undeliveredFrames.get(streamId);
    if (!frames || last < first) return [];
    const news: Array<InflightEntry<F, H>> = [];
    if (last - first < frames.size) {
      for (let seq = first; seq <= last; seq++) {
        const entry = frames.get(seq);
        if (entry) news.push(entry);
      }
    } else {
      for (const [seq, entry] of frames) if (seq >= first && seq <= last) news.push(entry);
    }
    for (const entry of news) {
      entry.delivered = true;
      this.undeliveredBytes -= entry.bytes;
      this.markDelivered(entry);
    }
    return news;
  }

  /** The destination could not verify a delivered frame (Nack): it counts as undelivered again, to be resent. */
  undeliver(entry: InflightEntry<F, H>): void {
    if (!entry.delivered || this.streams.get(entry.streamId)?.get(entry.seq) !== entry) return;
    entry.delivered = false;
    this.undeliveredBytes += entry.bytes;
    this.markUndelivered(entry, false);
  }

  /** Undelivered frames with a copy on a carrier (holder or hedge), to act on when it dies; in stream and sequence order. */
  heldBy(holder: H): Array<InflightEntry<F, H>> {
    const held: Array<InflightEntry<F, H>> = [];
    for (const frames of this.undeliveredFrames.values()) {
      for (const entry of frames.values()) if (entry.holder === holder || entry.hedgeHolder === holder) held.push(entry);
    }
    return held;
  }

  /** Undelivered frames, in stream and sequence order (what a hedge looks at). */
  undelivered(): Array<InflightEntry<F, H>> {
    const out: Array<InflightEntry<F, H>> = [];
    for (const frames of this.undeliveredFrames.values()) for (const entry of frames.values()) out.push(entry);
    return out;
  }

  /** Drop everything (the session ended: the next resumes from the destination's durable position). */
  clear(): void {
    this.streams.clear();
    this.undeliveredFrames.clear();
    this.undeliveredBytes = 0;
    this.allBytes = 0;
  }

  // List an entry as undelivered, keeping its stream's list in sequence
  // order: a new frame is the stream's newest (add's rule); a Nack's may be
  // older than some listed (rare: the list is put back in order then).
  private markUndelivered(entry: InflightEntry<F, H>, newest: boolean): void {
    let frames = this.undeliveredFrames.get(entry.streamId);
    if (!frames) {
      frames = new Map();
      this.undeliveredFrames.set(entry.streamId, frames);
    }
    frames.set(entry.seq, entry);
    if (!newest && frames.size > 1) {
      const sorted = [...frames.values()].sort((a, b) => a.seq - b.seq);
      frames.clear();
      for (const e of sorted) frames.set(e.seq, e);
    }
  }

  private markDelivered(entry: InflightEntry<F, H>): void {
    const frames = this.undeliveredFrames.get(entry.streamId);
    if (!frames) return;
    frames.delete(entry.seq);
    if (frames.size === 0) this.undeliveredFrames.delete(entry.streamId);
  }
}
