// The sending end of one (stream, destination): per link session it opens
// the stream, learns the destination's durable position, pulls records from
// the source, numbers and encodes them, and hands them to the link. Acks
// flow back here and the source is told "done" only for what the
// destination made durable.

import type { Logger } from 'pino';
import type { Source, SourceRecord } from '../streams/stream.ts';
import type { Encoded, HdePool } from '../encoding/hde-pool.ts';
import { chainNext } from '../encoding/digest.ts';
import { LinkDownError, frameEnvelope, type OutboundLink } from '../transport/link.ts';
import type { Ack, Envelope, Nack, StreamState } from '../wire/messages.ts';
import type { Metrics } from './metrics.ts';
import { compareChains, type ChainRecord } from '../acp/chain-check.ts';
import { initialLevelState, levelOf, nextLevel, type LevelState } from '../encoding/level-chooser.ts';

/** Wait before retrying a session whose consensus check could not be read. */
const CHAIN_CHECK_RETRY_MS = 1000;

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
  };
}

interface Unacked {
  seq: number;
  chain: Buffer;
  rawBytes: number;
  record: SourceRecord;
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
}

/** Status of a sender, for /status and the demo. */
export interface SenderStatus {
  streamId: string;
  destination: string;
  sentSeq: number;
  durableSeq: number;
  halted: string | null;
  session: number;
}

/** One stream to one destination region. */
export class StreamSender {
  readonly options: StreamSenderOptions;
  private session: Session | null = null;
  private sentSeq = 0;
  private durableSeq = 0;
  private haltedReason: string | null = null;
  private readonly labels: { stream: string; destination: string };
  private levelState: LevelState;
  private level: number | null;
  private levelWaits = { encodeMs: 0, linkMs: 0, since: performance.now() };
  /** Streaming contexts opened so far: each session gets a new key, so a late encode of an old session cannot touch the new one's history. */
  private contexts = 0;

  constructor(options: StreamSenderOptions) {
    this.options = options;
    this.labels = { stream: options.streamId, destination: options.destRegion };
    this.level = options.level;
    this.levelState = initialLevelState(options.level);
    options.metrics.hdeLevel.set(this.labels, options.level ?? 0);
  }

  /** Status snapshot. */
  status(): SenderStatus {
    return { streamId: this.options.streamId, destination: this.options.destRegion, sentSeq: this.sentSeq, durableSeq: this.durableSeq, halted: this.haltedReason, session: this.session?.number ?? 0 };
  }

  /** A link session is up: open the stream and start pumping. */
  onLinkUp(sessionNumber: number): void {
    if (this.haltedReason) return;
    this.endSession();
    const session: Session = { number: sessionNumber, abort: new AbortController(), stateParts: [], stateResolve: null, stateReject: null, unacked: [], durableSeq: 0, contextKey: null, resyncNext: true };
    this.session = session;
    this.run(session).catch((err: Error) => {
      if (err instanceof LinkDownError || session.abort.signal.aborted) return;
      this.options.logger.error({ stream: this.options.streamId, err: err.message }, 'stream session failed');
    });
  }

  /** The link session ended: stop pumping; the next session resumes from the destination. */
  onLinkDown(): void {
    this.endSession();
  }

  /** A control message for this stream. */
  onMessage(envelope: Envelope): void {
    const session = this.session;
    if (!session) return;
    if (envelope.streamState) this.onStreamState(session, envelope.streamState);
    else if (envelope.ack) this.onAck(session, envelope.ack);
    else if (envelope.nack) this.onNack(envelope.nack);
    else if (envelope.error) {
      this.options.logger.error({ stream: this.options.streamId, code: envelope.error.code, detail: envelope.error.detail }, 'destination reported an error');
      if (envelope.error.code === 'STREAM_HALTED') this.halt(`destination halted the stream: ${envelope.error.detail}`);
    }
  }

  /** Stop for good (shutdown). */
  stop(): void {
    this.endSession();
  }

  private endSession(): void {
    const session = this.session;
    if (!session) return;
    this.session = null;
    session.abort.abort();
    session.stateReject?.(new LinkDownError('session ended'));
    if (session.contextKey) this.options.pool.release(session.contextKey);
  }

  private halt(reason: string): void {
    this.haltedReason = reason;
    this.options.metrics.streamHalted.set({ stream: this.options.streamId }, 1);
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
    const state = await statePromise;
    if (state.refusal) {
      this.halt(`destination refused the stream: ${state.refusal}`);
      return;
    }
    session.durableSeq = state.durableSeq;
    this.durableSeq = state.durableSeq;
    this.sentSeq = state.durableSeq;
    this.options.metrics.durableSeq.set(this.labels, state.durableSeq);
    this.options.logger.info({ stream: streamId, destination: this.options.destRegion, durableSeq: state.durableSeq, stateBytes: state.state.length }, 'stream session open');

    // Check the destination's history against the source region's committed chain before sending.
    if (this.options.chainCheck) {
      let committed: ChainRecord | undefined;
      try {
        committed = await this.options.chainCheck.committed();
      } catch (err) {
        this.options.logger.warn({ stream: streamId, err: (err as Error).message }, 'cannot read the committed chain; retrying the session');
        setTimeout(() => {
          if (this.session === session) this.onLinkUp(session.number);
        }, CHAIN_CHECK_RETRY_MS).unref();
        return;
      }
      const diverged = compareChains(streamId, committed, state.durableSeq, Buffer.from(state.chain));
      if (diverged) {
        this.halt(diverged.message);
        return;
      }
    }

    // Pull, number and encode (pipelined on the workers); a second loop sends
    // in order as soon as the head is encoded, so an idle source never
    // leaves encoded frames waiting.
    let seq = state.durableSeq;
    let chain: Buffer = Buffer.from(state.chain);
    // Streaming: a fresh context whose first frame is a resync point, so the
    // destination decodes from its checkpoint with a fresh context too.
    if (this.options.streaming && !session.abort.signal.aborted) session.contextKey = `send/${streamId}/${this.options.destRegion}/${++this.contexts}`;
    const pipeline: Array<{ seq: number; record: SourceRecord; rawBytes: number; encoded: Promise<{ framed: Buffer; digest: Buffer }> }> = [];
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
        chain = chainNext(chain, head.seq, digest);
        session.unacked.push({ seq: head.seq, chain, rawBytes: head.rawBytes, record: head.record });
        await link.sendData(session.number, streamId, head.seq, framed);
        this.levelWaits.linkMs += performance.now() - encodedAt;
        this.adaptLevel();
        pipeline.shift();
        this.sentSeq = head.seq;
        this.options.metrics.framesSent.inc({ stream: streamId });
        wake('producer');
      }
    })();
    // If sending fails (link down), stop the producer too; an abort wakes both loops.
    sender.catch(() => session.abort.abort());
    session.abort.signal.addEventListener('abort', () => {
      wake('sender');
      wake('producer');
    });
    const records = this.options.source.records({ seq: state.durableSeq, state: state.state }, session.abort.signal);
    try {
      for await (const record of records) {
        if (session.abort.signal.aborted) break;
        while (pipeline.length >= ENCODE_PIPELINE_DEPTH && !session.abort.signal.aborted) {
          await new Promise<void>((resolve) => (wakers.producer = resolve));
        }
        seq++;
        // Lengths first: encoding may move record.data to a worker.
        pipeline.push({ seq, record, rawBytes: record.meta.length + record.data.length, encoded: this.encode(session, seq, epoch, record) });
        wake('sender');
      }
    } finally {
      producing = false;
      wake('sender');
    }
    await sender;
  }

  /** Every LEVEL_INTERVAL_MS, let the level chooser move the zstd level. */
  private adaptLevel(): void {
    const now = performance.now();
    const intervalMs = now - this.levelWaits.since;
    if (!this.options.adaptiveLevel || intervalMs < LEVEL_INTERVAL_MS) return;
    this.levelState = nextLevel(this.levelState, { intervalMs, encodeWaitMs: this.levelWaits.encodeMs, linkWaitMs: this.levelWaits.linkMs });
    this.levelWaits = { encodeMs: 0, linkMs: 0, since: now };
    const level = levelOf(this.levelState);
    if (level !== this.level) this.options.logger.info({ stream: this.options.streamId, from: this.level, to: level }, 'zstd level changed');
    this.level = level;
    this.options.metrics.hdeLevel.set(this.labels, level ?? 0);
  }

  private async encode(session: Session, seq: number, epoch: number, record: SourceRecord): Promise<{ framed: Buffer; digest: Buffer }> {
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
    const framed = frameEnvelope({
      data: {
        streamId: this.options.streamId,
        seq,
        epoch,
        encoding: enc.encoding as 0 | 1 | 2,
        digest: enc.digest,
        meta: record.meta,
        payload: enc.payload,
        rawLength,
        resync: enc.resync,
      },
    });
    return { framed, digest: enc.digest };
  }

  private onStreamState(session: Session, state: StreamState): void {
    // Large resume states come in parts; the last part has more=false.
    session.stateParts.push(Buffer.from(state.state));
    if (state.more) return;
    const whole = Buffer.concat(session.stateParts);
    session.stateParts = [];
    session.stateResolve?.({ ...state, state: whole });
    session.stateResolve = null;
    session.stateReject = null;
  }

  private onAck(session: Session, ack: Ack): void {
    if (ack.durableSeq <= session.durableSeq) return;
    // The destination's chain must equal ours at that position: else it lies or diverged.
    let last: Unacked | undefined;
    let bytes = 0;
    const done: SourceRecord[] = [];
    while (session.unacked.length > 0 && session.unacked[0].seq <= ack.durableSeq) {
      last = session.unacked.shift()!;
      bytes += last.rawBytes;
      done.push(last.record);
    }
    if (last && last.seq === ack.durableSeq && ack.chain.length > 0 && !last.chain.equals(Buffer.from(ack.chain))) {
      this.halt(`destination chain at seq ${ack.durableSeq} does not match the source's (destination diverged or lies)`);
      return;
    }
    session.durableSeq = ack.durableSeq;
    this.durableSeq = ack.durableSeq;
    if (last && last.seq === ack.durableSeq) this.options.chainCheck?.record(ack.durableSeq, last.chain);
    const oldest = this.options.link.acknowledge(this.options.streamId, ack.durableSeq);
    if (oldest !== null) this.options.metrics.ackLatency.observe({ destination: this.options.destRegion }, (performance.now() - oldest) / 1000);
    this.options.metrics.goodputBytes.inc(this.labels, bytes);
    this.options.metrics.durableSeq.set(this.labels, ack.durableSeq);
    // "done" reaches the source only now, in order.
    for (const record of done) record.onDurable?.();
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
