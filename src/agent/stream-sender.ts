// The sending end of one (stream, destination): per link session it opens
// the stream, learns the destination's durable position, pulls records from
// the source, numbers and encodes them, and hands them to the link. Acks
// flow back here and the source is told "done" only for what the
// destination made durable.
// Faults stay in this stream: a refusal of the data (the destination halted,
// or its resume position contradicts the source region's committed chain)
// halts it until an operator acts; anything that may pass (an open that
// gets no answer within the open timeout, a retryable refusal, a
// STREAM_FAULT from the destination's sink, an error of the source) ends
// the session and opens a new one after a capped, jittered backoff.

import type { Logger } from 'pino';
import type { Source, SourceRecord } from '../streams/stream.ts';
import type { Encoded, HdePool } from '../encoding/hde-pool.ts';
import { chainNext } from '../encoding/digest.ts';
import { LinkDownError, type OutboundLink } from '../transport/link.ts';
import { frameDataFrame } from '../wire/data-frame-writer.ts';
import type { Ack, ChunkQuery, Envelope, Nack, StreamState } from '../wire/messages.ts';
import type { Metrics } from './metrics.ts';
import { compareChains, positionVerified, type ChainRecord } from '../acp/chain-check.ts';
import { initialLevelState, levelOf, nextLevel, type LevelState } from '../encoding/level-chooser.ts';
import { Backoff, type BackoffOptions } from '../util/backoff.ts';
import { STREAM_FAULT_CODE, errorMessage, faultCode } from './stream-fault.ts';
import { LOCAL_STAGES, negotiate, stageVersion } from '../encoding/hde/stages.ts';
import { ChunkQueries } from './chunk-queries.ts';
import { LinkEstimator } from './link-estimate.ts';
import { batchRecords, RECORD_BATCH_CAPABILITY, singleRecords, type FrameRecord } from './record-batch.ts';

/**
 * Default wait for the destination's StreamState after a StreamOpen, ms.
 * Generous: the destination's recover rebuilds an objects manifest by
 * scanning its tree, which takes a while for millions of files.
 */
export const DEFAULT_OPEN_TIMEOUT_MS = 120_000;

/** Frames the chain record's sentSeq is raised ahead of the send position per write (one consensus write per this many frames). */
export const SENT_RESERVE_FRAMES = 1024;

/** How often the online level choice looks at where the sender waited. */
const LEVEL_INTERVAL_MS = 1000;

/** Encodes allowed in flight per stream, so workers stay busy while order is kept. */
const ENCODE_PIPELINE_DEPTH = 8;

/** Options of a stream sender. */
export interface StreamSenderOptions {
  streamId: string;
  kind: string;
  sourceRegion: string;
  destRegion: string;
  source: Source;
  link: OutboundLink;
  pool: HdePool;
  /** zstd level, or null for no compression; with adaptiveLevel, where the choice starts. */
  level: number | null;
  /** Move the level online by where the sender waits (encoders or link). */
  adaptiveLevel?: boolean;
  /**
   * Encode through one long-lived zstd context per session (Encoding
   * ZSTD_STREAM; pg-wal), its first frame a resync point, instead of
   * independent frames. Frames sent while the level is null stay raw.
   */
  streaming?: boolean;
  /** Leadership epoch stamped on frames of a new session. */
  epoch(): Promise<number>;
  logger: Logger;
  metrics: Metrics;
  /** Checked before each frame: false when this sender is no longer the leader (a zombie stops itself). */
  maySend?(): Promise<boolean>;
  /** The source region's committed chain: compared with the destination's on every session start, advanced on acks. */
  chainCheck?: {
    committed(): Promise<ChainRecord | undefined>;
    record(seq: number, chain: Buffer): void;
    /** Raise the record's bound of sent frames to upTo before any of them is sent. */
    reserve(upTo: number): Promise<void>;
  };
  /** Backoff between sessions after a fault that may pass. */
  retry: BackoffOptions;
  /** Wait for the destination's answer to a StreamOpen, ms (default DEFAULT_OPEN_TIMEOUT_MS). */
  openTimeoutMs?: number;
  /** Told, per acknowledged frame, how long after the source handed it over it became durable (replication-slo.ts). */
  delays?: { observe(delaySeconds: number): void };
}

/** The destination did not answer a StreamOpen within the open timeout. */
export class OpenTimeoutError extends Error {
  override name = 'OpenTimeoutError';
}

interface Unacked {
  seq: number;
  chain: Buffer;
  rawBytes: number;
  record: SourceRecord;
  /** performance.now() when the source handed the record over. */
  readAt: number;
}

interface Session {
  number: number;
  abort: AbortController;
  stateParts: Buffer[];
  stateResolve: ((state: StreamState & { state: Buffer }) => void) | null;
  stateReject: ((err: Error) => void) | null;
  unacked: Unacked[];
  durableSeq: number;
  /** The session's streaming context in the HDE pool (null: independent frames); released when the session ends. */
  contextKey: string | null;
  /** The next streamed frame starts the context (the session's first). */
  resyncNext: boolean;
  /** Chunk queries of this session (stage dedup@1), or null when the link did not negotiate it. */
  queries: ChunkQueries | null;
}

/** Status of a sender, for /status and the demo. */
export interface SenderStatus {
  streamId: string;
  destination: string;
  sentSeq: number;
  durableSeq: number;
  halted: string | null;
  /** A fault that may pass: the session ended and a new one opens after a backoff; null once the destination acknowledges again. */
  faulted: string | null;
  session: number;
}

/** One stream to one destination region. */
export class StreamSender {
  readonly options: StreamSenderOptions;
  private session: Session | null = null;
  private sentSeq = 0;
  private durableSeq = 0;
  private haltedReason: string | null = null;
  private faultedReason: string | null = null;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private readonly labels: { stream: string; destination: string };
  private levelState: LevelState;
  private level: number | null;
  private levelWaits = { encodeMs: 0, linkMs: 0, since: performance.now() };
  /** zstd work in the current level interval: plaintext bytes compressed and the workers' time on them. */
  private compressed = { bytes: 0, ms: 0 };
  /** Frames encoded at the current level in the interval: plaintext bytes in, payload bytes out (its wire ratio). */
  private encodedAtLevel = { plain: 0, wire: 0 };
  /** The link's delivered (reached) bytes at the start of the interval, for its delivered rate over the interval. */
  private linkReached: number | null = null;
  /** Streaming contexts opened so far: each session gets a new key, so a late encode of an old session cannot touch the new one's history. */
  private contexts = 0;
  /** The link's RTT and highest rate, for the source (sampled while sending, and when the source asks). */
  private readonly linkEstimator = new LinkEstimator();
  private linkObservedAt = 0;

  constructor(options: StreamSenderOptions) {
    this.options = options;
    this.labels = { stream: options.streamId, destination: options.destRegion };
    this.level = options.level;
    this.levelState = initialLevelState(options.level);
    this.backoff = new Backoff(options.retry);
    options.metrics.hdeLevel.set(this.labels, options.level ?? 0);
  }

  /** Status snapshot. */
  status(): SenderStatus {
    return { streamId: this.options.streamId, destination: this.options.destRegion, sentSeq: this.sentSeq, durableSeq: this.durableSeq, halted: this.haltedReason, faulted: this.faultedReason, session: this.session?.number ?? 0 };
  }

  /** A link session is up: open the stream and start pumping. */
  onLinkUp(sessionNumber: number): void {
    this.cancelRetry();
    this.startSession(sessionNumber);
  }

  /** The link session ended: stop pumping; the next session resumes from the destination. */
  onLinkDown(): void {
    this.cancelRetry();
    this.endSession();
  }

  /** A control message for this stream. */
  onMessage(envelope: Envelope): void {
    const session = this.session;
    if (!session) return;
    if (envelope.streamState) this.onStreamState(session, envelope.streamState);
    else if (envelope.ack) this.onAck(session, envelope.ack);
    else if (envelope.nack) this.onNack(envelope.nack);
    else if (envelope.chunkHave) session.queries?.answer(envelope.chunkHave);
    else if (envelope.error) {
      this.options.logger.error({ stream: this.options.streamId, code: envelope.error.code, detail: envelope.error.detail }, 'destination reported an error');
      if (envelope.error.code === 'STREAM_HALTED') this.halt(`destination halted the stream: ${envelope.error.detail}`);
      else if (envelope.error.code === STREAM_FAULT_CODE) this.retry(session, `destination stream fault: ${envelope.error.detail}`, 'destination_fault');
    }
  }

  /** Stop for good (shutdown). */
  stop(): void {
    this.stopped = true;
    this.cancelRetry();
    this.endSession();
  }

  private startSession(sessionNumber: number): void {
    if (this.haltedReason || this.stopped) return;
    this.endSession();
    const session: Session = { number: sessionNumber, abort: new AbortController(), stateParts: [], stateResolve: null, stateReject: null, unacked: [], durableSeq: 0, contextKey: null, resyncNext: true, queries: null };
    this.session = session;
    this.run(session).catch((err: unknown) => {
      if (err instanceof LinkDownError || session.abort.signal.aborted) return;
      // Any other failure (the source, an encode, the chain record) stops this stream's session only.
      this.retry(session, `stream session failed: ${errorMessage(err)}`, err instanceof OpenTimeoutError ? 'open_timeout' : faultCode(err));
    });
  }

  /**
   * A fault that may pass: end the session (the destination resumes from
   * its durable checkpoint), count and log it, and open a new session on the
   * same link session after a backoff.
   */
  private retry(session: Session, reason: string, code: string): void {
    if (this.session !== session || this.haltedReason || this.stopped) return;
    const { streamId, metrics } = this.options;
    this.endSession();
    // Frames of the failed session still in the link's windows are never acknowledged to it.
    this.options.link.forgetStream(streamId);
    const delayMs = this.backoff.next();
    this.faultedReason = reason;
    metrics.streamFaults.inc({ stream: streamId, side: 'sender', reason: code });
    metrics.streamRetrying.set({ stream: streamId, side: 'sender' }, 1);
    this.options.logger.error({ stream: streamId, destination: this.options.destRegion, reason, code, attempt: this.backoff.attempts, retryInMs: delayMs }, 'stream session stopped by a fault; retrying with backoff');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.session === null && this.options.link.session === session.number) this.startSession(session.number);
    }, delayMs);
    this.retryTimer.unref();
  }

  private cancelRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private endSession(): void {
    const session = this.session;
    if (!session) return;
    this.session = null;
    session.abort.abort();
    session.stateReject?.(new LinkDownError('session ended'));
    session.queries?.close(new LinkDownError('session ended'));
    if (session.contextKey) this.options.pool.release(session.contextKey);
  }

  private halt(reason: string): void {
    this.haltedReason = reason;
    this.cancelRetry();
    this.options.metrics.streamHalted.set({ stream: this.options.streamId }, 1);
    this.options.metrics.streamRetrying.set({ stream: this.options.streamId, side: 'sender' }, 0);
    this.options.logger.error({ stream: this.options.streamId, destination: this.options.destRegion, reason }, 'stream halted');
    this.endSession();
  }

  private async run(session: Session): Promise<void> {
    const { link, streamId } = this.options;
    // Open the stream and wait for the destination's resume point.
    const epoch = await this.options.epoch();
    const statePromise = new Promise<StreamState & { state: Buffer }>((resolve, reject) => {
      session.stateResolve = resolve;
      session.stateReject = reject;
    });
    if (!link.sendControl({ streamOpen: { streamId, kind: this.options.kind, epoch, sourceRegion: this.options.sourceRegion } })) {
      throw new LinkDownError('no carrier to open the stream on');
    }
    const state = await this.answer(statePromise);
    if (state.refusal) {
      if (state.retryable) this.retry(session, `destination refused the stream for now: ${state.refusal}`, 'open_refused');
      else this.halt(`destination refused the stream: ${state.refusal}`);
      return;
    }
    // Check the destination's history against the source region's committed
    // chain before sending or telling the source anything: a position past
    // what was ever sent, or a chain that differs where it can be compared,
    // halts the stream; a position ahead of the record but within what was
    // sent is resumed from with its state marked unverified.
    const { chainCheck } = this.options;
    let verified = true;
    if (chainCheck) {
      let committed: ChainRecord | undefined;
      try {
        committed = await chainCheck.committed();
      } catch (err) {
        this.retry(session, `read the committed chain: ${errorMessage(err)}`, 'chain_unreadable');
        return;
      }
      const diverged = compareChains(streamId, committed, state.durableSeq, Buffer.from(state.chain));
      if (diverged) {
        this.options.metrics.streamFaults.inc({ stream: streamId, side: 'sender', reason: 'diverged' });
        this.halt(diverged.message);
        return;
      }
      verified = positionVerified(committed, state.durableSeq);
      if (!verified) this.options.logger.warn({ stream: streamId, destination: this.options.destRegion, durableSeq: state.durableSeq, committedSeq: committed?.seq ?? 0 }, 'destination is ahead of the committed chain record (a sender died before recording its ack); its resume state is unverified');
    }
    // Only a position that passed the check becomes this sender's.
    session.durableSeq = state.durableSeq;
    this.durableSeq = state.durableSeq;
    this.sentSeq = state.durableSeq;
    this.options.metrics.durableSeq.set(this.labels, state.durableSeq);
    this.options.logger.info({ stream: streamId, destination: this.options.destRegion, durableSeq: state.durableSeq, stateBytes: state.state.length, verified }, 'stream session open');
    let reservedUpTo = 0;

    // Pull, number and encode (pipelined on the workers); a second loop sends
    // in order as soon as the head is encoded, so an idle source never
    // leaves encoded frames waiting.
    let seq = state.durableSeq;
    let chain: Buffer = Buffer.from(state.chain);
    // Streaming: a fresh context whose first frame is a resync point, so the
    // destination decodes from its checkpoint with a fresh context too.
    if (this.options.streaming && !session.abort.signal.aborted) session.contextKey = `send/${streamId}/${this.options.destRegion}/${++this.contexts}`;
    const pipeline: Array<{ seq: number; record: SourceRecord; rawBytes: number; readAt: number; encoded: Promise<{ framed: Buffer; digest: Buffer }> }> = [];
    const wakers: { sender: (() => void) | null; producer: (() => void) | null } = { sender: null, producer: null };
    const wake = (which: 'sender' | 'producer'): void => {
      const w = wakers[which];
      wakers[which] = null;
      w?.();
    };
    let producing = true;
    const sender = (async (): Promise<void> => {
      for (;;) {
        if (pipeline.length === 0) {
          if (!producing || session.abort.signal.aborted) return;
          await new Promise<void>((resolve) => (wakers.sender = resolve));
          continue;
        }
        const head = pipeline[0];
        const waitStart = performance.now();
        const { framed, digest } = await head.encoded;
        const encodedAt = performance.now();
        this.levelWaits.encodeMs += encodedAt - waitStart;
        // A paused leader re-checks its leadership before sending another frame.
        if (this.options.maySend && !(await this.options.maySend())) {
          this.options.metrics.framesFenced.inc({ stream: streamId }, pipeline.length);
          session.abort.abort();
          return;
        }
        // The record bounds what was ever sent before any frame goes past it.
        if (chainCheck && head.seq > reservedUpTo) {
          reservedUpTo = head.seq + SENT_RESERVE_FRAMES;
          await chainCheck.reserve(reservedUpTo);
        }
        chain = chainNext(chain, head.seq, digest);
        session.unacked.push({ seq: head.seq, chain, rawBytes: head.rawBytes, record: head.record, readAt: head.readAt });
        await link.sendData(session.number, streamId, head.seq, framed, session.abort.signal);
        this.levelWaits.linkMs += performance.now() - encodedAt;
        this.adaptLevel();
        this.observeLink(false);
        pipeline.shift();
        this.sentSeq = head.seq;
        this.options.metrics.framesSent.inc({ stream: streamId });
        wake('producer');
      }
    })();
    // If sending fails (link down, a reserve failed), stop the producer too; an abort wakes both loops.
    let sendFailure: unknown = null;
    sender.catch((err: unknown) => {
      sendFailure = err;
      session.abort.abort();
    });
    session.abort.signal.addEventListener('abort', () => {
      wake('sender');
      wake('producer');
    });
    // Stage dedup@1 when both ends announced it: the source may ask which chunks the destination lacks.
    const stages = negotiate(LOCAL_STAGES, link.peerCapabilities);
    if (stageVersion(stages, 'dedup') === 1) {
      session.queries = new ChunkQueries((query) => link.sendControl({ chunkQuery: query }));
    }
    const queries = session.queries;
    const queryChunks = queries ? (query: ChunkQuery) => queries.ask(query) : undefined;
    // Stage delta@1 on top: queries ask for delta bases.
    const deltaBases = stageVersion(stages, 'delta') === 1;
    // Stage dict@1: small objects may go with the stream's shared dictionary.
    const dictionary = stageVersion(stages, 'dict') === 1;
    const linkEstimate = () => {
      this.observeLink(true);
      return this.linkEstimator.estimate();
    };
    const sourced = this.options.source.records({ seq: state.durableSeq, state: state.state, verified, queryChunks, deltaBases, dictionary, link: linkEstimate }, session.abort.signal);
    // Small records the source has ready go many to a frame when the peer reads batches.
    const records = link.peerCapabilities.includes(RECORD_BATCH_CAPABILITY) ? batchRecords(sourced) : singleRecords(sourced);
    try {
      for await (const record of records) {
        if (session.abort.signal.aborted) break;
        while (pipeline.length >= ENCODE_PIPELINE_DEPTH && !session.abort.signal.aborted) {
          await new Promise<void>((resolve) => (wakers.producer = resolve));
        }
        const readAt = performance.now();
        seq++;
        // Lengths first: encoding may move record.data to a worker.
        pipeline.push({ seq, record, rawBytes: record.meta.length + (record.contentBytes ?? record.data.length), readAt, encoded: this.encode(session, seq, epoch, record) });
        wake('sender');
      }
    } finally {
      producing = false;
      wake('sender');
    }
    await sender.catch(() => {});
    // The session's own abort is not a failure; a send that failed is (run's caller retries).
    if (sendFailure !== null && !(sendFailure instanceof LinkDownError)) throw sendFailure;
  }

  /** The destination's StreamState, or OpenTimeoutError when it does not come within the open timeout. */
  private async answer<T>(statePromise: Promise<T>): Promise<T> {
    const timeoutMs = this.options.openTimeoutMs ?? DEFAULT_OPEN_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OpenTimeoutError(`destination did not answer the stream open within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
    });
    try {
      return await Promise.race([statePromise, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sample the link's path counters into its estimate: every LEVEL_INTERVAL_MS while sending, or now. */
  private observeLink(now: boolean): void {
    const at = performance.now();
    if (!now && at - this.linkObservedAt < LEVEL_INTERVAL_MS) return;
    this.linkObservedAt = at;
    this.linkEstimator.observe(this.options.link.carrierPaths().map((p) => p.stats));
  }

  /** Every LEVEL_INTERVAL_MS, let the level chooser move the zstd level. */
  private adaptLevel(): void {
    const now = performance.now();
    const intervalMs = now - this.levelWaits.since;
    if (!this.options.adaptiveLevel || intervalMs < LEVEL_INTERVAL_MS) return;
    // What the link delivered in the interval (delivery reports, not the later durable acks), the encoders' rate and the wire ratio at this level.
    const reached = this.options.link.reachedBytes;
    const linkBytesPerS = this.linkReached === null ? 0 : ((reached - this.linkReached) * 1000) / intervalMs;
    this.linkReached = reached;
    this.levelState = nextLevel(this.levelState, {
      intervalMs,
      encodeWaitMs: this.levelWaits.encodeMs,
      linkWaitMs: this.levelWaits.linkMs,
      linkBytesPerS,
      encodeBytesPerS: this.compressed.ms > 0 ? (this.compressed.bytes * 1000) / this.compressed.ms : 0,
      plainBytes: this.encodedAtLevel.plain,
      wireBytes: this.encodedAtLevel.wire,
      // A streaming context runs on one worker: one encoder, however many the pool has.
      encoders: this.options.streaming ? 1 : this.options.pool.encoders,
    });
    this.levelWaits = { encodeMs: 0, linkMs: 0, since: now };
    this.compressed = { bytes: 0, ms: 0 };
    this.encodedAtLevel = { plain: 0, wire: 0 };
    const level = levelOf(this.levelState);
    if (level !== this.level) this.options.logger.info({ stream: this.options.streamId, from: this.level, to: level }, 'zstd level changed');
    this.level = level;
    this.options.metrics.hdeLevel.set(this.labels, level ?? 0);
  }

  private async encode(session: Session, seq: number, epoch: number, record: FrameRecord): Promise<{ framed: Buffer; digest: Buffer }> {
    const rawLength = record.data.length;
    // Streamed frames go through the session's context; calls reach the pool
    // in sequence order (before the first await), which keeps that order.
    // An ended session's context is released: nothing may pin it again.
    const { pool } = this.options;
    const level = this.level;
    let enc: Encoded;
    if (session.contextKey && level !== null && !session.abort.signal.aborted) {
      const resync = session.resyncNext;
      session.resyncNext = false;
      enc = await pool.encodeStream(session.contextKey, record.meta, record.data, level, resync);
    } else {
      enc = await pool.encode(record.meta, record.data, level);
    }
    if (enc.compressMs > 0) {
      this.compressed.bytes += rawLength;
      this.compressed.ms += enc.compressMs;
    }
    if (level === this.level) {
      this.encodedAtLevel.plain += rawLength;
      this.encodedAtLevel.wire += enc.payload.length;
    }
    const framed = frameDataFrame({
      streamId: this.options.streamId,
      seq,
      epoch,
      encoding: enc.encoding as 0 | 1 | 2,
      digest: enc.digest,
      meta: record.meta,
      payload: enc.payload,
      rawLength,
      resync: enc.resync,
      records: record.records,
    }, enc.headroom);
    return { framed, digest: enc.digest };
  }

  private onStreamState(session: Session, state: StreamState): void {
    // Large resume states come in parts; the last part has more=false.
    session.stateParts.push(Buffer.from(state.state));
    if (state.more) return;
    const whole = Buffer.concat(session.stateParts);
    session.stateParts = [];
    const resolve = session.stateResolve;
    session.stateResolve = null;
    session.stateReject = null;
    if (resolve) return resolve({ ...state, state: whole });
    // A second answer: the destination reopened the stream for an earlier open
    // of ours (it timed out here) and dropped what this session sent; start over from it.
    this.options.logger.warn({ stream: this.options.streamId, destination: this.options.destRegion, durableSeq: state.durableSeq }, 'destination answered an earlier open again; restarting the session');
    if (this.haltedReason || this.stopped) return;
    this.endSession();
    this.options.link.forgetStream(this.options.streamId);
    this.startSession(session.number);
  }

  private onAck(session: Session, ack: Ack): void {
    if (ack.durableSeq <= session.durableSeq) return;
    // The destination's chain must equal ours at that position: else it lies or diverged.
    let last: Unacked | undefined;
    let bytes = 0;
    const done: Unacked[] = [];
    while (session.unacked.length > 0 && session.unacked[0].seq <= ack.durableSeq) {
      last = session.unacked.shift()!;
      bytes += last.rawBytes;
      done.push(last);
    }
    if (last && last.seq === ack.durableSeq && ack.chain.length > 0 && !last.chain.equals(Buffer.from(ack.chain))) {
      this.halt(`destination chain at seq ${ack.durableSeq} does not match the source's (destination diverged or lies)`);
      return;
    }
    session.durableSeq = ack.durableSeq;
    this.durableSeq = ack.durableSeq;
    // Progress: the next fault starts the backoff from its first step again.
    this.backoff.reset();
    if (this.faultedReason !== null) {
      this.faultedReason = null;
      this.options.metrics.streamRetrying.set({ stream: this.options.streamId, side: 'sender' }, 0);
    }
    if (last && last.seq === ack.durableSeq) this.options.chainCheck?.record(ack.durableSeq, last.chain);
    const oldest = this.options.link.acknowledge(this.options.streamId, ack.durableSeq);
    if (oldest !== null) this.options.metrics.ackLatency.observe({ destination: this.options.destRegion }, (performance.now() - oldest) / 1000);
    this.options.metrics.goodputBytes.inc(this.labels, bytes);
    this.options.metrics.durableSeq.set(this.labels, ack.durableSeq);
    // Each change's replication delay, from the source handing it over to this ack (one observation per frame).
    const now = performance.now();
    for (const frame of done) this.options.delays?.observe((now - frame.readAt) / 1000);
    // "done" reaches the source only now, in order; a source that fails to take it fails this stream's session only.
    try {
      for (const { record } of done) record.onDurable?.();
    } catch (err) {
      this.retry(session, `source did not take "done" for seq ${ack.durableSeq}: ${errorMessage(err)}`, faultCode(err));
      return;
    }
    this.updateLag();
  }

  private onNack(nack: Nack): void {
    this.options.logger.warn({ stream: this.options.streamId, seq: nack.seq, reason: nack.reason }, 'destination could not verify a frame; resending');
    if (this.options.link.resend(this.options.streamId, nack.seq)) {
      this.options.metrics.framesResent.inc({ stream: this.options.streamId, reason: 'nack' });
    }
  }

  private updateLag(): void {
    const { link, streamId } = this.options;
    this.options.metrics.streamLagFrames.set(this.labels, link.inflightFrames(streamId));
    const oldest = link.oldestInflight(streamId);
    this.options.metrics.streamLagSeconds.set(this.labels, oldest === null ? 0 : (performance.now() - oldest) / 1000);
  }
}
