// Sources and sinks: the two ends of a stream. A stream kind (objects,
// pg-wal) implements both; the link between them knows nothing of the kind.
// Data flows one way: source -> encode -> link -> decode -> verify -> sink,
// then the durable ack flows back and the source is told "done".

import type { ChunkHave, ChunkQuery } from '../wire/messages.ts';

/** One record a source hands to the link. */
export interface SourceRecord {
  /** Kind-specific header (protobuf, see proto/dwcp.proto), opaque to the link. */
  meta: Uint8Array;
  /** Plaintext payload; may be empty. */
  data: Uint8Array;
  /**
   * Bytes of content the payload stands for when a stage encoded it already
   * (dict@1: the file's size); goodput counts these instead of data.length.
   * Default data.length.
   */
  contentBytes?: number;
  /** Called once the destination acknowledged this record durable. */
  onDurable?: () => void;
}

/** What a sender learns from the destination when a stream session starts. */
export interface ResumePoint {
  /** Last durable sequence number at the destination (0 = nothing yet). */
  seq: number;
  /** Kind-specific resume state from the sink (manifest, LSN ...). */
  state: Uint8Array;
  /**
   * False when the destination's position could not be checked against the
   * source region's committed chain (it claims to be ahead of the record,
   * as after a sender died between an ack and its record): a source must
   * then not report anything "done" on the destination's word alone
   * (pg-wal: no flush feedback for the claimed LSN) until a verified ack.
   * Absent means verified.
   */
  verified?: boolean;
  /**
   * Present when this session's link negotiated stage dedup@1: asks the
   * destination which chunks of a file it lacks (a side channel beside the
   * ordered records). It rejects when the link goes down or the answer does
   * not come in time; the source then sends the file whole.
   */
  queryChunks?: (query: ChunkQuery) => Promise<ChunkHave>;
  /** Stage delta@1 negotiated too: chunk queries may ask for delta bases, and PutChunkDelta may be sent. */
  deltaBases?: boolean;
  /** Stage dict@1 negotiated: small objects may travel with the stream's shared dictionary. */
  dictionary?: boolean;
  /** What the session's link measured so far (round trip, rate), or null before it measured both; absent: unknown. */
  link?: () => LinkEstimate | null;
}

/** A link's round trip and the rate it was seen to carry, as a source weighs a round trip against bytes. */
export interface LinkEstimate {
  /** Smoothed round trip of the link's carriers, ms. */
  rttMs: number;
  /** Highest rate the link was seen to carry, bytes/s. */
  bytesPerS: number;
}

/** The sending end of one stream. */
export interface Source {
  readonly streamId: string;
  readonly kind: StreamKind;
  /**
   * Records to send after the destination's resume point. The link pulls
   * the next record only when it has room, so backpressure reaches here.
   * Ends when the signal aborts; for a finite source (a one-shot sync) it
   * may also end by itself.
   */
  records(resume: ResumePoint, signal: AbortSignal): AsyncIterable<SourceRecord>;
  /** Release files, connections and timers. */
  close(): Promise<void>;
}

/** The receiving end of one stream. Records arrive verified and in order. */
export interface Sink {
  readonly streamId: string;
  readonly kind: StreamKind;
  /**
   * Bring the sink to the state of its last checkpoint (sinkState from the
   * checkpoint, empty when none) and return what the sender needs to resume.
   * Anything applied after that checkpoint is rolled back or made harmless.
   */
  recover(sinkState: Uint8Array, seq: number): Promise<Uint8Array>;
  /**
   * Apply one record (not yet durable). Throws a SinkError on refusal. A sink
   * may finish part of the work in the background (the objects sink writes
   * and fsyncs small whole files concurrently); a failure of that work is
   * thrown by a later apply or by flush, never lost.
   */
  apply(seq: number, meta: Uint8Array, data: Uint8Array): Promise<void>;
  /**
   * Make everything applied so far durable (fsync) and return the sink state
   * to store in the checkpoint; the checkpoint is committed only after this
   * resolves ("persist BEFORE acknowledging").
   */
  flush(): Promise<Uint8Array>;
  /**
   * Optional: the checkpoint of seq holding sinkState (what flush returned)
   * is now committed in consensus. Called after each successful checkpoint
   * compare-and-swap; a sink that serves its data onward (the WAL spool's
   * walsender) serves nothing past the last committed checkpoint.
   */
  committed?(seq: number, sinkState: Uint8Array): Promise<void>;
  /**
   * Optional (stage dedup@1): which of the query's chunks this sink lacks,
   * answered from its chunk index off the ordered path; a sink without an
   * index answers with a refusal, so the source sends everything.
   */
  chunkHave?(query: ChunkQuery): Promise<ChunkHave>;
  /** Release files and timers. */
  close(): Promise<void>;
}

/** The stream kinds DWCP moves. */
export type StreamKind = 'objects' | 'pg-wal';

/** A refusal by a sink: the record is not applied and the stream halts. */
export class SinkError extends Error {
  override name = 'SinkError';
}
