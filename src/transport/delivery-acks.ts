// Per-frame delivery acknowledgements (issue 9 item 3): the destination tells
// the source which data frames it holds (accepted into its bounded reorder
// and apply queue, or applied) before they are durable, as SACK-like ranges
// per stream. Delivery frees the source's carrier and link windows and stops
// resends; durability (the per-stream Ack) still releases the source.
//
// Both sides announce `amst:delivered@1;hold=<bytes>` in the Hello and
// HelloReply: "I send and read Delivered, and I hold at most <bytes> of one
// stream's unapplied frames". A destination sends Delivered only to a source
// that announced it (an older peer would refuse the unknown message), and a
// source bounds what it keeps delivered-but-not-durable by the hold its peer
// announced, so a stalled apply still backpressures it. This file is the
// capability, the coalescing on the destination (one message per few ms or
// per many frames, never one per frame on a fast link) and the ranges codec.

import type { Delivered, StreamRanges } from '../wire/messages.ts';

/** Capability prefix; the hold bound follows it. */
export const DELIVERED_CAPABILITY_PREFIX = 'amst:delivered@1;hold=';
/** Longest a delivered frame waits to be reported, ms (a few ms: delivery feeds the scheduler). */
export const DELIVERED_FLUSH_MS = 5;
/** Frames that make a report go out at once, whatever the timer. */
export const DELIVERED_FLUSH_FRAMES = 64;
/** Most ranges per stream in one message (a new message starts beyond it). */
export const MAX_RANGES_PER_STREAM = 1024;

/** The capability entry announcing delivery acknowledgements with this hold bound, bytes. */
export function deliveryCapability(holdBytes: number): string {
  return `${DELIVERED_CAPABILITY_PREFIX}${Math.max(0, Math.floor(holdBytes))}`;
}

/** The hold bound a peer announced, bytes, or null when it does not speak Delivered. */
export function peerHoldBytes(capabilities: readonly string[]): number | null {
  for (const entry of capabilities) {
    const match = /^amst:delivered@1;hold=([0-9]{1,15})$/.exec(entry);
    if (match) return Number(match[1]);
  }
  return null;
}

/** Sequence numbers of one stream collected as inclusive ranges (in arrival order; adjacent ones merge). */
class RangeList {
  readonly first: number[] = [];
  readonly last: number[] = [];

  add(seq: number): void {
    const n = this.last.length;
    // Frames mostly arrive in order: extend the last range, else start one.
    if (n > 0 && this.last[n - 1] + 1 === seq) this.last[n - 1] = seq;
    else if (n > 0 && this.first[n - 1] - 1 === seq) this.first[n - 1] = seq;
    else {
      this.first.push(seq);
      this.last.push(seq);
    }
  }

  get size(): number {
    return this.first.length;
  }
}

/** Sends coalesced Delivered messages for one inbound link. */
export class DeliveryAcker {
  private readonly send: (delivered: Delivered) => void;
  private streams = new Map<string, RangeList>();
  private frames = 0;
  private timer: NodeJS.Timeout | null = null;

  /** `send` puts one Delivered on the link. */
  constructor(send: (delivered: Delivered) => void) {
    this.send = send;
  }

  /** A frame of a stream is held: report it soon. */
  add(streamId: string, seq: number): void {
    let ranges = this.streams.get(streamId);
    if (!ranges) {
      ranges = new RangeList();
      this.streams.set(streamId, ranges);
    }
    ranges.add(seq);
    this.frames++;
    if (this.frames >= DELIVERED_FLUSH_FRAMES || ranges.size >= MAX_RANGES_PER_STREAM) return this.flush();
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), DELIVERED_FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Send what is collected now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.frames === 0) return;
    const streams: StreamRanges[] = [];
    for (const [streamId, ranges] of this.streams) streams.push({ streamId, first: ranges.first, last: ranges.last });
    this.streams = new Map();
    this.frames = 0;
    this.send({ streams });
  }

  /** Drop what is collected (the link closed). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.streams = new Map();
    this.frames = 0;
  }
}

/** The (stream, first, last) ranges of a Delivered, skipping malformed ones (lengths differ, first > last). */
export function* deliveredRanges(delivered: Delivered): Generator<{ streamId: string; first: number; last: number }> {
  for (const s of delivered.streams) {
    const n = Math.min(s.first.length, s.last.length);
    for (let i = 0; i < n; i++) if (s.first[i] <= s.last[i]) yield { streamId: s.streamId, first: s.first[i], last: s.last[i] };
  }
}
