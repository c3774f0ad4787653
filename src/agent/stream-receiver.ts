// The receiving end of one stream: per session it recovers the sink to its
// last checkpoint and tells the sender where to resume; then frames arrive
// on any carrier, are decoded and verified on the HDE workers, reordered by
// sequence number, applied in order, and periodically made durable: sink
// flush, then checkpoint CAS in the region consensus, then Ack. Nothing is
// acknowledged durable before it is durable, and nothing unverified is
// applied. A frame accepted into the bounded pending queue is reported
// delivered at once (coalesced, to a sender that reads amst:delivered@1):
// that frees the sender's link window, not the source.
// Streaming frames (Encoding ZSTD_STREAM, pg-wal) share one zstd context per
// session: they decode in sequence order, and one that fails verification
// ends the session (a resend could not be decoded without the history the
// failure lost), so the next one resyncs from the durable checkpoint.
// Memory: frames waiting for their turn are held as they came off the wire
// (bounded by maxPendingBytes); only the run the apply loop is about to use
// is decoded, at most maxDecodeAheadBytes of declared plaintext (plus one
// frame), so a small frame declaring 64 MiB of zeros costs 64 MiB only when
// it is next. Faults: a sink refusal (SinkError) halts the stream until an
// operator acts; any other error of the sink or the audit log (ENOSPC, EIO,
// ...) ends the session, rolls back to the durable checkpoint and tells the
// sender (STREAM_FAULT, or a retryable StreamState refusal while opening),
// which retries with backoff. Nothing here takes the agent down.

import { open, truncate, readFile, mkdir, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Sink } from '../streams/stream.ts';
import { SinkError } from '../streams/stream.ts';
import type { HdePool, Decoded } from '../encoding/hde-pool.ts';
import { GENESIS_CHAIN, chainNext } from '../encoding/digest.ts';
import type { ConsensusStore, Watcher } from '../consensus/consensus-store.ts';
import { FencedError, commitCheckpoint, loadCheckpoint, type Checkpoint } from '../consensus/checkpoints.ts';
import { Encoding, type ChunkHave, type ChunkQuery, type DataFrame, type Envelope, type StreamOpen } from '../wire/messages.ts';
import { checkChunkQuery } from '../wire/dedup-messages.ts';
import type { InboundLink } from '../transport/inbound-link.ts';
import type { Metrics } from './metrics.ts';
import { STREAM_FAULT_CODE, errorMessage, faultCode, isRefusal } from './stream-fault.ts';
import { RecordBatchError, splitBatch } from './record-batch.ts';
import { MAX_OPEN_CHUNK_QUERIES } from './chunk-queries.ts';

/** Verification failures of one sequence number before the stream halts. */
export const MAX_VERIFY_FAILURES = 3;
/** Largest part of a resume state per StreamState message. */
const STATE_PART_BYTES = 4 * 1024 * 1024;
/** Chunk queries answered at once per stream (each reads index pages and delta bases). */
export const MAX_CHUNK_QUERIES_IN_FLIGHT = 4;
/**
 * Chunk queries waiting for their turn per stream, at most; more are
 * refused (the source then sends those files whole). As many as a source
 * keeps open: it asks up to PLAN_AHEAD_FILES files ahead, and when the
 * excess was refused outright 161 of 304 changed files on a 100 ms path
 * went whole instead of as deltas.
 */
export const MAX_QUEUED_CHUNK_QUERIES = MAX_OPEN_CHUNK_QUERIES;
/**
 * Default bound of declared plaintext decoded ahead of the apply loop, bytes
 * (one more frame may exceed it). 16 MiB is 64 frames of 256 KiB, enough to
 * keep every HDE worker busy; 64 MiB cost peak RSS, not throughput.
 */
export const DECODE_AHEAD_BYTES = 16 * 1024 * 1024;

/** Options of a stream receiver. */
export interface StreamReceiverOptions {
  streamId: string;
  kind: string;
  sink: Sink;
  store: ConsensusStore;
  checkpointKey: string;
  pool: HdePool;
  checkpointIntervalMs: number;
  checkpointBytes: number;
  /** Most wire bytes (payload + meta) of unapplied frames held; a peer that exceeds it is cut off. */
  maxPendingBytes: number;
  /** Most declared plaintext bytes decoding or decoded ahead of the apply loop (default DECODE_AHEAD_BYTES); the next frame is always admitted. */
  maxDecodeAheadBytes?: number;
  maxFrameBytes: number;
  /** When set, every durably applied sequence number is recorded here (tests, audits). */
  auditPath?: string;
  logger: Logger;
  metrics: Metrics;
}

interface Pending {
  frame: DataFrame;
  /** Started in sequence order when the frame comes within the decode look-ahead; null until then. */
  decoded: Promise<Decoded> | null;
  /** Wire bytes held (payload + meta). */
  bytes: number;
  /** Declared plaintext bytes (rawLength; decode verifies it) + meta: what decoding costs. */
  rawBytes: number;
}

interface Session {
  link: InboundLink;
  epoch: number;
  sourceRegion: string;
  pending: Map<number, Pending>;
  pendingBytes: number;
  ended: boolean;
  /** The session's streaming decode context in the HDE pool (its first streaming frame is a resync point). */
  contextKey: string;
  /** Next sequence number whose decode may start: frames decode in this order (streaming ones each once). */
  decodeNext: number;
  /** Declared plaintext bytes of frames decoding or decoded and not yet applied. */
  decodingBytes: number;
  /** The frame the apply loop took out of pending and is applying now (0: none). */
  applying: number;
}

/** Status of a receiver, for /status. */
export interface ReceiverStatus {
  streamId: string;
  appliedSeq: number;
  durableSeq: number;
  halted: string | null;
  /** A fault that may pass (ENOSPC, EIO, ...): the session ended and the sender retries with backoff; null once a frame applies again. */
  faulted: string | null;
  sourceRegion: string | null;
}

/** One stream arriving at this region. */
export class StreamReceiver {
  readonly options: StreamReceiverOptions;
  private session: Session | null = null;
  private appliedSeq = 0;
  private durableSeq = 0;
  private chain: Buffer = GENESIS_CHAIN;
  private durableChain: Buffer = GENESIS_CHAIN;
  private epoch = 0;
  private modRevision = 0;
  private bytesSinceCheckpoint = 0;
  private failures = new Map<number, number>();
  /** Streaming verification failures by sequence number; kept across sessions (each failure ends one). */
  private streamingFailures = new Map<number, number>();
  /** Decode contexts opened so far: each session gets a fresh key. */
  private contexts = 0;
  private haltedReason: string | null = null;
  private faultedReason: string | null = null;
  /** The fault was in the open path: a successful open clears it (an apply fault clears only when a frame applies). */
  private faultedInOpen = false;
  private auditPending: number[] = [];
  private audit: FileHandle | null = null;
  private draining = false;
  /** Opens received so far, and the newest per link: an open its own link overtook while it waited is not answered. */
  private opens = 0;
  private readonly newestOpen = new WeakMap<InboundLink, number>();
  private checkpointDue = false;
  private serial: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout;
  private checkpointWatch: Promise<Watcher> | null = null;
  /** Chunk queries being answered now. */
  private chunkQueries = 0;
  /** Chunk queries waiting for one in flight to end, oldest first. */
  private chunkQueryLine: Array<() => void> = [];

  constructor(options: StreamReceiverOptions) {
    this.options = options;
    this.timer = setInterval(() => {
      if (this.appliedSeq > this.durableSeq) {
        this.checkpointDue = true;
        this.kick();
      }
    }, options.checkpointIntervalMs);
    this.timer.unref();
  }

  /** Status snapshot. */
  status(): ReceiverStatus {
    return { streamId: this.options.streamId, appliedSeq: this.appliedSeq, durableSeq: this.durableSeq, halted: this.haltedReason, faulted: this.faultedReason, sourceRegion: this.session?.sourceRegion ?? null };
  }

  /**
   * A sender opens (or reopens) the stream: recover and answer with the
   * resume point. Never rejects: every failure answers with a refusal.
   */
  open(link: InboundLink, request: StreamOpen): Promise<void> {
    const number = ++this.opens;
    this.newestOpen.set(link, number);
    return this.exclusive(() => this.openSession(link, request, number)).catch((err: unknown) => {
      // Whatever failed, the sender hears it now instead of waiting for a StreamState.
      this.refuseFault(link, 'open stream', err);
    });
  }

  /**
   * A chunk query of stage dedup@1: answered from the sink's chunk index,
   * beside the ordered path (it changes nothing), MAX_CHUNK_QUERIES_IN_FLIGHT
   * at a time, the rest waiting in line (up to MAX_QUEUED_CHUNK_QUERIES).
   * Only the current session's link is answered; any problem is answered as
   * a refusal, and the source sends that file whole.
   */
  onChunkQuery(link: InboundLink, query: ChunkQuery): void {
    const session = this.session;
    const answer = (have: Omit<ChunkHave, 'streamId' | 'queryId'>): void => {
      link.send({ chunkHave: { streamId: this.options.streamId, queryId: query.queryId, ...have } });
    };
    const refuse = (refusal: string): void => answer({ count: 0, missing: Buffer.alloc(0), refusal });
    if (!session || session.ended || session.link !== link) return refuse('no open session of this stream on this link');
    if (!this.options.sink.chunkHave) return refuse('this sink keeps no chunk index');
    const run = (): void => {
      // Its session may have ended while it waited in line.
      if (this.session !== session || session.ended) return refuse('no open session of this stream on this link');
      this.chunkQueries++;
      (async () => {
        try {
          // The whole answer, delta bases (stage delta@1) included.
          const have = await this.options.sink.chunkHave!(checkChunkQuery(query));
          answer({ count: have.count, missing: have.missing, refusal: have.refusal, bases: have.bases });
        } catch (err) {
          this.options.logger.warn({ stream: this.options.streamId, queryId: query.queryId, err: errorMessage(err) }, 'chunk query refused');
          refuse(`chunk query: ${errorMessage(err)}`);
        } finally {
          this.chunkQueries--;
          this.chunkQueryLine.shift()?.();
        }
      })();
    };
    if (this.chunkQueries < MAX_CHUNK_QUERIES_IN_FLIGHT) return run();
    if (this.chunkQueryLine.length >= MAX_QUEUED_CHUNK_QUERIES) return refuse(`${MAX_QUEUED_CHUNK_QUERIES} chunk queries waiting already`);
    this.chunkQueryLine.push(run);
  }

  /** A data frame arrived on some carrier of a link. */
  onData(link: InboundLink, frame: DataFrame): void {
    const session = this.session;
    const { metrics, streamId } = this.options;
    if (!session || session.ended) return;
    // Fence old epochs (a zombie sender's link, or a stale frame), drop what we already have.
    if (frame.epoch < session.epoch) {
      metrics.framesFenced.inc({ stream: streamId });
      return;
    }
    if (session.link !== link) return;
    if (frame.epoch !== session.epoch) {
      metrics.framesFenced.inc({ stream: streamId });
      return;
    }
    if (frame.seq <= this.appliedSeq || frame.seq === session.applying || session.pending.has(frame.seq)) {
      // Held already (a hedge's second copy, or a resend after a carrier
      // died with our delivery report), or being applied (a copy arriving
      // then, held again, was never applied nor freed: its bytes stayed
      // counted until the pending bound cut the source off): dropped, and
      // reported again.
      metrics.framesDuplicate.inc({ stream: streamId });
      link.delivered(streamId, frame.seq);
      return;
    }
    if (frame.rawLength > this.options.maxFrameBytes) {
      this.cutOff(session, `frame ${frame.seq} declares ${frame.rawLength} plaintext bytes, over the ${this.options.maxFrameBytes} limit`);
      return;
    }
    const bytes = frame.payload.length + frame.meta.length;
    const rawBytes = frame.rawLength + frame.meta.length;
    if (session.pendingBytes + bytes > this.options.maxPendingBytes) {
      this.cutOff(session, `peer has ${session.pendingBytes + bytes} bytes of unapplied frames in flight, over the ${this.options.maxPendingBytes} window`);
      return;
    }
    // The frame waits as it came (wire bytes); it decodes when it comes within
    // the look-ahead of the apply loop (dispatchInOrder); apply happens in order.
    // meta and digest are copied out: decode may move the frame's buffer to a worker.
    frame.meta = Buffer.from(frame.meta);
    frame.digest = Buffer.from(frame.digest);
    session.pending.set(frame.seq, { frame, decoded: null, bytes, rawBytes });
    session.pendingBytes += bytes;
    // Held within maxPendingBytes: delivered (a digest failure at apply Nacks it, and the sender resends).
    link.delivered(streamId, frame.seq);
    this.dispatchInOrder(session);
    if (frame.seq === this.appliedSeq + 1) this.kick();
  }

  /**
   * Start decoding the run of frames the apply loop reaches next: in
   * sequence order (streaming frames each once, as their shared context
   * needs; the pool keeps submission order), from the next frame to apply,
   * while the declared plaintext decoding or decoded stays within the
   * look-ahead. The next frame to apply always starts, whatever its size
   * (it is within maxFrameBytes): decoded bytes held never exceed
   * maxDecodeAheadBytes + maxFrameBytes, whatever the peer sends.
   */
  private dispatchInOrder(session: Session): void {
    const limit = this.options.maxDecodeAheadBytes ?? DECODE_AHEAD_BYTES;
    if (session.decodeNext <= this.appliedSeq) session.decodeNext = this.appliedSeq + 1;
    for (let next = session.pending.get(session.decodeNext); next; next = session.pending.get(session.decodeNext)) {
      if (!next.decoded) {
        if (session.decodingBytes > 0 && session.decodingBytes + next.rawBytes > limit) return;
        const { frame } = next;
        next.decoded =
          frame.encoding === Encoding.ZSTD_STREAM
            ? this.options.pool.decodeStream(session.contextKey, frame.meta, frame.payload, frame.rawLength, frame.resync)
            : this.options.pool.decode(frame.meta, frame.payload, frame.encoding, frame.rawLength);
        next.decoded.catch(() => {});
        session.decodingBytes += next.rawBytes;
      }
      session.decodeNext++;
    }
  }

  /** The link carrying the session closed: make applied data durable, end the session. */
  onLinkClosed(link: InboundLink): Promise<void> {
    return this.exclusive(async () => {
      if (this.session?.link !== link) return;
      await this.endSession();
    });
  }

  /** Flush, checkpoint and stop (SIGTERM drain). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    const watch = this.checkpointWatch;
    this.checkpointWatch = null;
    await watch?.then((w) => w.close()).catch(() => {});
    await this.exclusive(async () => {
      await this.endSession();
      await this.audit?.close();
      this.audit = null;
    });
  }

  // ---- sessions ----

  private async openSession(link: InboundLink, request: StreamOpen, number: number): Promise<void> {
    const { streamId, metrics } = this.options;
    await this.endSession();
    // A sender whose open timed out opened again: answer only its newest (a StreamState does not name its open).
    if (this.newestOpen.get(link) !== number) return;
    const refuse = (refusal: string): void => this.refuse(link, refusal, false);
    if (this.haltedReason) return refuse(`stream is halted: ${this.haltedReason}`);
    if (request.kind !== this.options.kind) return refuse(`stream kind "${request.kind}" does not match this destination's "${this.options.kind}"`);
    // Load the authoritative checkpoint and fence older epochs; a store that
    // cannot answer closes the link, so the sender retries with backoff.
    this.watchCheckpoint();
    let stored: Awaited<ReturnType<typeof loadCheckpoint>>;
    try {
      stored = await loadCheckpoint(this.options.store, this.options.checkpointKey);
    } catch (err) {
      return this.storeUnavailable(link, `load checkpoint: ${(err as Error).message}`);
    }
    let checkpoint: Checkpoint = stored?.checkpoint ?? { seq: 0, chain: GENESIS_CHAIN.toString('hex'), epoch: 0, sinkState: '', updatedAtMs: 0 };
    this.modRevision = stored?.modRevision ?? 0;
    if (request.epoch < checkpoint.epoch) {
      metrics.framesFenced.inc({ stream: streamId });
      return refuse(`fenced: sender epoch ${request.epoch} is older than the checkpoint's epoch ${checkpoint.epoch}`);
    }
    // Claim the checkpoint for the new epoch before answering: from now on an
    // older sender's open is refused and its sessions at other agents of this
    // region are fenced (they watch the key).
    if (request.epoch > checkpoint.epoch) {
      const claimed: Checkpoint = { ...checkpoint, epoch: request.epoch, updatedAtMs: Date.now() };
      try {
        this.modRevision = (await commitCheckpoint(this.options.store, this.options.checkpointKey, this.modRevision, claimed)).modRevision;
        checkpoint = claimed;
      } catch (err) {
        if (err instanceof FencedError) {
          metrics.framesFenced.inc({ stream: streamId });
          return refuse(`fenced: ${err.message}`);
        }
        return this.storeUnavailable(link, `claim checkpoint for epoch ${request.epoch}: ${(err as Error).message}`);
      }
    }
    // Recover the sink to the checkpoint; the audit log follows it. A failure
    // is answered now (a refusal naming it), never left for the sender to wait on.
    let state: Buffer;
    try {
      state = Buffer.from(await this.options.sink.recover(Buffer.from(checkpoint.sinkState, 'base64'), checkpoint.seq));
      await this.recoverAudit(checkpoint.seq);
    } catch (err) {
      return this.refuseFault(link, `recover sink to checkpoint seq ${checkpoint.seq}`, err);
    }
    if (this.newestOpen.get(link) !== number) return;
    if (this.faultedInOpen) this.clearFault();
    this.appliedSeq = this.durableSeq = checkpoint.seq;
    this.chain = this.durableChain = Buffer.from(checkpoint.chain, 'hex');
    this.epoch = request.epoch;
    this.failures.clear();
    // A fresh decode context per session: the sender's first streaming frame is a resync point.
    this.session = { link, epoch: request.epoch, sourceRegion: request.sourceRegion, pending: new Map(), pendingBytes: 0, ended: false, contextKey: `recv/${streamId}/${++this.contexts}`, decodeNext: checkpoint.seq + 1, decodingBytes: 0, applying: 0 };
    this.options.logger.info({ stream: streamId, peer: link.peerNode, epoch: request.epoch, seq: checkpoint.seq }, 'stream session opened');
    // Answer with the resume point, in parts when large.
    for (let offset = 0; offset === 0 || offset < state.length; offset += STATE_PART_BYTES) {
      const part = state.subarray(offset, offset + STATE_PART_BYTES);
      const more = offset + STATE_PART_BYTES < state.length;
      link.send({ streamState: { streamId, durableSeq: checkpoint.seq, chain: this.chain, state: part, more, refusal: '' } });
      if (!more) break;
    }
  }

  /** Answer an open with a refusal; retryable ones the sender retries with backoff, others halt it. */
  private refuse(link: InboundLink, refusal: string, retryable: boolean): void {
    const { streamId } = this.options;
    this.options.logger.warn({ stream: streamId, peer: link.peerNode, refusal, retryable }, 'stream open refused');
    link.send({ streamState: { streamId, durableSeq: 0, chain: Buffer.alloc(0), state: Buffer.alloc(0), more: false, refusal, retryable } });
  }

  /** The open path failed: a refusal of the data halts the stream, anything else is refused as retryable. */
  private refuseFault(link: InboundLink, what: string, err: unknown): void {
    const reason = `${what}: ${errorMessage(err)}`;
    if (isRefusal(err)) {
      this.markHalted(reason);
      return this.refuse(link, `stream is halted: ${reason}`, false);
    }
    this.markFaulted(reason, err);
    this.faultedInOpen = true;
    this.refuse(link, reason, true);
  }

  /** The consensus store could not be read or written: close the link so the sender retries. */
  private storeUnavailable(link: InboundLink, reason: string): void {
    this.options.logger.error({ stream: this.options.streamId, peer: link.peerNode, reason }, 'consensus store unavailable; closing the link');
    link.close(`consensus store unavailable: ${reason}`);
  }

  /** Watch the checkpoint key: a newer epoch committed elsewhere ends this agent's older session. */
  private watchCheckpoint(): void {
    if (this.checkpointWatch) return;
    const watch = this.options.store.watchPrefix(this.options.checkpointKey, (event) => {
      if (event.type !== 'put' || event.kv.key !== this.options.checkpointKey) return;
      let epoch = 0;
      try {
        epoch = (JSON.parse(event.kv.value.toString('utf8')) as Checkpoint).epoch;
      } catch {
        return;
      }
      const session = this.session;
      if (!session || session.ended || epoch <= session.epoch) return;
      void this.exclusive(async () => this.fenceSession(session, epoch));
    });
    watch.catch((err: Error) => {
      this.options.logger.warn({ stream: this.options.streamId, err: err.message }, 'watch checkpoint failed');
      if (this.checkpointWatch === watch) this.checkpointWatch = null;
    });
    this.checkpointWatch = watch;
  }

  /** A newer epoch holds the checkpoint: drop this session's unapplied frames and uncommitted position. */
  private fenceSession(session: Session, newerEpoch: number): void {
    if (this.session !== session || session.ended) return;
    this.options.metrics.framesFenced.inc({ stream: this.options.streamId }, Math.max(1, session.pending.size));
    this.options.logger.warn({ stream: this.options.streamId, peer: session.link.peerNode, epoch: session.epoch, newerEpoch, appliedSeq: this.appliedSeq, durableSeq: this.durableSeq }, 'session fenced: a newer epoch committed the checkpoint');
    session.link.send({ error: { code: 'FENCED', detail: `epoch ${session.epoch} fenced by epoch ${newerEpoch}`, streamId: this.options.streamId } });
    this.dropSession(session);
  }

  /** End a session without making anything durable: its unapplied frames and uncommitted position are dropped. */
  private dropSession(session: Session): void {
    session.ended = true;
    if (this.session === session) this.session = null;
    this.options.pool.release(session.contextKey);
    this.appliedSeq = this.durableSeq;
    this.chain = this.durableChain;
    this.auditPending = [];
    this.bytesSinceCheckpoint = 0;
  }

  /**
   * An error of the sink or the audit log while the stream runs. A refusal
   * (SinkError) halts the stream; any other error may pass (ENOSPC, EIO,
   * EACCES after a permission fix ...): the session ends, what it applied
   * after the durable checkpoint is rolled back (recover does it at the next
   * open), and the sender is told to retry with backoff.
   */
  private fault(session: Session | null, what: string, err: unknown): void {
    if (session && isRefusal(err)) return this.halt(session, `${what}: ${errorMessage(err)}`);
    const reason = `${what}: ${errorMessage(err)}`;
    if (isRefusal(err)) this.markHalted(reason);
    else this.markFaulted(reason, err);
    if (!session) {
      // No session to end (a drain or link close was checkpointing): drop the uncommitted position.
      this.appliedSeq = this.durableSeq;
      this.chain = this.durableChain;
      this.auditPending = [];
      return;
    }
    session.link.send({ error: { code: STREAM_FAULT_CODE, detail: reason, streamId: this.options.streamId } });
    this.dropSession(session);
  }

  /** Record a fault that may pass: status, metrics, an error log. */
  private markFaulted(reason: string, err: unknown): void {
    const { streamId, metrics } = this.options;
    this.faultedReason = reason;
    this.faultedInOpen = false;
    metrics.streamFaults.inc({ stream: streamId, side: 'receiver', reason: faultCode(err) });
    metrics.streamRetrying.set({ stream: streamId, side: 'receiver' }, 1);
    this.options.logger.error({ stream: streamId, reason, code: faultCode(err) }, 'stream fault; the session ends and the sender retries with backoff');
  }

  /** The stream works again. */
  private clearFault(): void {
    this.faultedReason = null;
    this.faultedInOpen = false;
    this.options.metrics.streamRetrying.set({ stream: this.options.streamId, side: 'receiver' }, 0);
  }

  /** Record a halt: status, metrics, an error log. */
  private markHalted(reason: string): void {
    const { streamId, metrics } = this.options;
    this.haltedReason = reason;
    metrics.streamHalted.set({ stream: streamId }, 1);
    metrics.streamFaults.inc({ stream: streamId, side: 'receiver', reason: 'halted' });
    metrics.streamRetrying.set({ stream: streamId, side: 'receiver' }, 0);
    this.options.logger.error({ stream: streamId, reason }, 'stream halted');
  }

  private async endSession(): Promise<void> {
    const session = this.session;
    if (!session) return;
    session.ended = true;
    this.session = null;
    this.options.pool.release(session.contextKey);
    // What was verified and applied is legitimate: make it durable now.
    await this.checkpoint(null);
  }

  /**
   * A streaming frame failed verification: the context lost its history, so
   * neither this frame's resend nor any later frame can decode. Close the
   * link (every stream on it resumes from its durable checkpoint; this one
   * with a resync frame and fresh contexts on both sides). The same
   * sequence number failing MAX_VERIFY_FAILURES times halts the stream.
   */
  private restartStreaming(session: Session, seq: number, problem: string): void {
    const count = (this.streamingFailures.get(seq) ?? 0) + 1;
    this.streamingFailures.set(seq, count);
    if (count >= MAX_VERIFY_FAILURES) return this.halt(session, `streaming frame ${seq} failed verification ${count} times (${problem})`);
    this.options.logger.warn({ stream: this.options.streamId, peer: session.link.peerNode, seq, attempt: count, problem }, 'streaming frame failed verification; closing the link to resync from the checkpoint');
    session.ended = true;
    session.link.close(`stream ${this.options.streamId}: streaming frame ${seq} failed verification; resync from the checkpoint`);
  }

  private cutOff(session: Session, reason: string): void {
    this.options.logger.error({ stream: this.options.streamId, peer: session.link.peerNode, reason }, 'peer broke the stream protocol; closing its link');
    this.options.metrics.protocolErrors.inc({ reason: 'stream' });
    session.link.close(reason);
  }

  // ---- apply loop ----

  /** Run fn with the apply loop and other session changes excluded. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn);
    this.serial = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = true;
    const drained = this.exclusive(() => this.drain()).catch((err: unknown) => {
      // Every sink and audit error is handled where it occurs; reaching here is a bug of this stream only.
      this.options.logger.error({ stream: this.options.streamId, err: errorMessage(err) }, 'apply loop failed (a bug); ending the session');
      this.fault(this.session, 'apply loop', err);
    });
    void drained.finally(() => {
      this.draining = false;
      const session = this.session;
      if ((session && session.pending.has(this.appliedSeq + 1)) || this.checkpointDue) this.kick();
    });
  }

  private async drain(): Promise<void> {
    for (;;) {
      const session = this.session;
      if (!session || session.ended) break;
      const next = session.pending.get(this.appliedSeq + 1);
      if (!next) break;
      session.applying = next.frame.seq;
      try {
        await this.applyOne(session, next);
      } finally {
        session.applying = 0;
      }
      if (this.bytesSinceCheckpoint >= this.options.checkpointBytes) this.checkpointDue = true;
      if (this.checkpointDue) await this.checkpoint(session);
    }
    if (this.checkpointDue) await this.checkpoint(this.session);
  }

  private async applyOne(session: Session, item: Pending): Promise<void> {
    const { frame } = item;
    const { streamId, metrics } = this.options;
    session.pending.delete(frame.seq);
    session.pendingBytes -= item.bytes;
    if (item.decoded) session.decodingBytes -= item.rawBytes;
    // Verify: decodes cleanly and the plaintext digest matches.
    let decoded: Decoded | null = null;
    let problem = '';
    try {
      if (!item.decoded) throw new Error('streaming frame was not decoded in sequence order');
      decoded = await item.decoded;
      if (!decoded.digest.equals(Buffer.from(frame.digest))) problem = 'plaintext digest mismatch';
    } catch (err) {
      problem = `decode failed: ${(err as Error).message}`;
    }
    if (problem || !decoded) {
      metrics.verifyFailures.inc({ stream: streamId });
      if (frame.encoding === Encoding.ZSTD_STREAM) return this.restartStreaming(session, frame.seq, problem);
      const count = (this.failures.get(frame.seq) ?? 0) + 1;
      this.failures.set(frame.seq, count);
      this.options.logger.warn({ stream: streamId, seq: frame.seq, attempt: count, problem }, 'frame failed verification; not applied');
      if (count >= MAX_VERIFY_FAILURES) return this.halt(session, `frame ${frame.seq} failed verification ${count} times (${problem})`);
      session.link.send({ nack: { streamId, seq: frame.seq, reason: problem } });
      // The resend decodes when it arrives: the look-ahead starts again here.
      session.decodeNext = Math.min(session.decodeNext, frame.seq);
      return;
    }
    // Apply in order; a sink refusal halts the stream, any other sink error ends the session for a retry.
    try {
      if ((frame.records ?? 0) > 1) {
        // A batch (record-batch@1): its records in order, under this frame's seq.
        for (const record of splitBatch(frame.records!, frame.meta, decoded.data)) await this.options.sink.apply(frame.seq, record.meta, record.data);
      } else {
        await this.options.sink.apply(frame.seq, frame.meta, decoded.data);
      }
    } catch (err) {
      if (err instanceof SinkError || err instanceof RecordBatchError) return this.halt(session, `sink refused frame ${frame.seq}: ${err.message}`);
      return this.fault(session, `apply frame ${frame.seq}`, err);
    }
    this.failures.delete(frame.seq);
    this.streamingFailures.delete(frame.seq);
    this.chain = chainNext(this.chain, frame.seq, decoded.digest);
    this.appliedSeq = frame.seq;
    this.bytesSinceCheckpoint += decoded.data.length + frame.meta.length;
    if (this.options.auditPath) this.auditPending.push(frame.seq);
    metrics.framesApplied.inc({ stream: streamId });
    this.dispatchInOrder(session);
  }

  private halt(session: Session, reason: string): void {
    this.markHalted(reason);
    session.link.send({ error: { code: 'STREAM_HALTED', detail: reason, streamId: this.options.streamId } });
    session.ended = true;
  }

  /** Persist BEFORE acknowledging: sink flush, audit, checkpoint CAS, then Ack. */
  private async checkpoint(session: Session | null): Promise<void> {
    this.checkpointDue = false;
    if (this.appliedSeq === this.durableSeq) return;
    const seq = this.appliedSeq;
    const chain = this.chain;
    let sinkState: Buffer;
    try {
      sinkState = Buffer.from(await this.options.sink.flush());
      await this.flushAudit();
    } catch (err) {
      // A refusal found by the sink's background work halts the stream like any refusal.
      if (err instanceof SinkError && session) return this.halt(session, `sink refused an op before seq ${seq + 1}: ${err.message}`);
      // Not durable: nothing past the last checkpoint counts (recover rolls the sink back).
      return this.fault(session, `flush sink at seq ${seq}`, err);
    }
    const next: Checkpoint = { seq, chain: chain.toString('hex'), epoch: this.epoch, sinkState: sinkState.toString('base64'), updatedAtMs: Date.now() };
    try {
      const { modRevision } = await commitCheckpoint(this.options.store, this.options.checkpointKey, this.modRevision, next);
      this.modRevision = modRevision;
    } catch (err) {
      // Not committed: nothing past the last checkpoint counts; end the session so the sender resumes from it.
      this.options.logger.error({ stream: this.options.streamId, seq, err: (err as Error).message }, 'checkpoint commit failed');
      if (session) this.cutOff(session, `checkpoint commit failed: ${(err as Error).message}`);
      this.appliedSeq = this.durableSeq;
      this.chain = this.durableChain;
      return;
    }
    this.durableSeq = seq;
    this.durableChain = chain;
    this.bytesSinceCheckpoint = 0;
    // A fault is over once data is durable again, not when an apply returns:
    // a sink may finish an apply in the background (the objects sink's small
    // files), so only the flush before this checkpoint proves the disk works.
    if (this.faultedReason !== null) this.clearFault();
    this.options.metrics.checkpoints.inc({ stream: this.options.streamId });
    // The sink learns what is committed (pg-wal serves WAL to its standby only up to here).
    try {
      await this.options.sink.committed?.(seq, sinkState);
    } catch (err) {
      this.options.logger.error({ stream: this.options.streamId, seq, err: errorMessage(err) }, 'sink committed hook failed');
    }
    session?.link.send({ ack: { streamId: this.options.streamId, durableSeq: seq, chain } });
  }

  // ---- audit log ----

  private async recoverAudit(seq: number): Promise<void> {
    const path = this.options.auditPath;
    if (!path) return;
    // Keep only entries the checkpoint covers: later ones were rolled back.
    await this.audit?.close();
    await mkdir(dirname(path), { recursive: true });
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch {
      text = '';
    }
    const lines = text.split('\n').filter((l) => l !== '');
    let keepBytes = 0;
    for (const line of lines) {
      if (Number(line) > seq) break;
      keepBytes += Buffer.byteLength(line) + 1;
    }
    this.audit = await open(path, 'a');
    await truncate(path, keepBytes);
    this.auditPending = [];
  }

  private async flushAudit(): Promise<void> {
    if (!this.audit || this.auditPending.length === 0) return;
    const text = this.auditPending.join('\n') + '\n';
    this.auditPending = [];
    await this.audit.write(text);
    await this.audit.sync();
  }
}
