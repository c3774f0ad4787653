// The receiving end of a pg-wal stream: WAL records go into the spool in
// pg_wal layout. Idempotent by position: WAL below what the spool already
// holds is dropped, a gap is a refusal, and so is WAL of another cluster.
// After each committed checkpoint the spool's committed marker moves, and
// readers serve WAL up to it only.

import { mkdir } from 'node:fs/promises';
import { walRecordCodec, walResumeCodec, type WalResume } from '../../wire/messages.ts';
import { SinkError, type Sink, type StreamKind } from '../stream.ts';
import { formatLsn } from './lsn.ts';
import { WalSpoolWriter } from './wal-spool.ts';

/** Options of a WalSink. */
export interface WalSinkOptions {
  streamId: string;
  /** Directory of the spool (created when missing). */
  spoolDir: string;
}

/** Writes one cluster's WAL into a spool. */
export class WalSink implements Sink {
  readonly streamId: string;
  readonly kind: StreamKind = 'pg-wal';
  readonly spoolDir: string;
  #spool: WalSpoolWriter;
  /** recover() found no checkpoint: empty the spool before the first record is applied, not before. */
  #resetPending = false;

  constructor(options: WalSinkOptions) {
    if (!options.spoolDir) throw new Error('pg-wal sink: spoolDir is required');
    this.streamId = options.streamId;
    this.spoolDir = options.spoolDir;
    this.#spool = new WalSpoolWriter(options.spoolDir);
  }

  /** End of WAL made durable by the last flush (0 when none). */
  get flushLsn(): number {
    return Math.max(0, this.#spool.state?.flushLsn ?? 0);
  }

  /**
   * Cut the spool back to the checkpoint's LSN. With no checkpoint the spool
   * starts over, but its files are deleted only when the first record is
   * applied: that is after the sender compared the destination's chain with
   * the source region's record (a lost checkpoint halts the stream there),
   * so WAL that check would keep is never deleted here.
   */
  async recover(sinkState: Uint8Array, _seq: number): Promise<Uint8Array> {
    await mkdir(this.spoolDir, { recursive: true });
    await this.#spool.close();
    this.#spool = new WalSpoolWriter(this.spoolDir);
    if (sinkState.length === 0) {
      this.#resetPending = true;
      return new Uint8Array(0);
    }
    this.#resetPending = false;
    const resume: WalResume = walResumeCodec.decode(sinkState);
    try {
      await this.#spool.truncateTo(resume.systemId, resume.timeline, resume.flushLsn);
      await this.#spool.commit(resume, true);
    } catch (err) {
      // An I/O error may pass (ENOSPC, EIO): the receiver retries. A spool
      // that does not hold the checkpoint (wiped, another system) is refused.
      if ((err as NodeJS.ErrnoException).code !== undefined) throw new Error(`pg-wal recover: ${(err as Error).message}`, { cause: err });
      throw new SinkError(`pg-wal recover: ${(err as Error).message}`);
    }
    return walResumeCodec.encode(resume);
  }

  /** The checkpoint holding sinkState is committed: readers may serve WAL up to it. */
  async committed(_seq: number, sinkState: Uint8Array): Promise<void> {
    if (sinkState.length === 0) return;
    try {
      await this.#spool.commit(walResumeCodec.decode(sinkState), false);
    } catch {
      // Readers stay at the previous committed position; the next checkpoint publishes again.
    }
  }

  /** Apply one WalRecord: system identity, history file or WAL bytes. */
  async apply(_seq: number, meta: Uint8Array, data: Uint8Array): Promise<void> {
    if (this.#resetPending) {
      try {
        await this.#spool.reset();
      } catch (err) {
        throw new Error(`pg-wal apply: empty the spool for a fresh start: ${(err as Error).message}`, { cause: err });
      }
      this.#resetPending = false;
    }
    let record;
    try {
      record = walRecordCodec.decode(meta);
    } catch (err) {
      throw new SinkError(`pg-wal apply: bad record header: ${(err as Error).message}`);
    }
    if (record.system) {
      const current = this.#spool.state;
      if (current && current.systemId !== record.system.systemId) {
        throw new SinkError(`pg-wal apply: system id ${record.system.systemId} differs from spool's ${current.systemId}`);
      }
      this.#spool.setSystem(record.system);
      return;
    }
    if (record.history) {
      if (!this.#spool.state) throw new SinkError('pg-wal apply: history before system identity');
      await this.#spool.writeHistory(record.history.timeline, data);
      return;
    }
    if (record.data) await this.#applyData(record.data.timeline, record.data.startLsn, data);
  }

  async #applyData(timeline: number, startLsn: number, data: Uint8Array): Promise<void> {
    const state = this.#spool.state;
    if (!state) throw new SinkError('pg-wal apply: WAL before system identity');
    const fresh = state.startLsn < 0;
    const end = this.#spool.end;
    try {
      if (fresh || timeline !== state.timeline) {
        if (!fresh && timeline < state.timeline) return; // older timeline: already superseded
        await this.#spool.write(timeline, startLsn, data);
        return;
      }
      // Same timeline: drop what the spool holds, refuse a gap, write the rest.
      if (startLsn > end) {
        throw new SinkError(`pg-wal apply: gap: record starts at ${formatLsn(startLsn)}, spool ends at ${formatLsn(end)}`);
      }
      const skip = end - startLsn;
      if (skip >= data.length) return;
      await this.#spool.write(timeline, end, data.subarray(skip));
    } catch (err) {
      // A refusal halts the stream; an I/O error (ENOSPC, EIO) keeps its cause so the receiver retries.
      if (err instanceof SinkError) throw err;
      throw new Error(`pg-wal apply: ${(err as Error).message}`, { cause: err });
    }
  }

  /** fsync the spool and return {systemId, timeline, flushLsn} to checkpoint. */
  async flush(): Promise<Uint8Array> {
    const state = await this.#spool.flush();
    if (!state) return new Uint8Array(0);
    return walResumeCodec.encode({ systemId: state.systemId, timeline: state.timeline, flushLsn: state.flushLsn });
  }

  /** Close the open segment. */
  async close(): Promise<void> {
    await this.#spool.close();
  }
}
