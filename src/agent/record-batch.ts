// Many small records in one data frame (capability record-batch@1). A frame
// costs the same fixed work whatever it carries: a digest, a worker job or
// an inline encode, framing, a TLS write, a slot in the link's window, an
// acknowledgement, an apply call on the far side. Thousands of small files
// paid it once each; batched, a few hundred frames carry them. The sender
// batches only what the source has ready now (it never waits to fill a
// batch), so a lone record, a WAL record at the live edge say, goes out as
// soon as it did before. The destination applies a batch's records in
// order under the frame's seq; they become durable together.

import type { SourceRecord } from '../streams/stream.ts';
import { recordBatchCodec } from '../wire/messages.ts';
import { allocFramePayload } from '../wire/frame-headroom.ts';

/** The Hello capability both ends announce to batch records. */
export const RECORD_BATCH_CAPABILITY = 'record-batch@1';

/** Plaintext data of one batch at most, bytes (a frame of the default chunk size). */
export const BATCH_MAX_BYTES = 256 * 1024;

/** Records in one batch at most (bounds the RecordBatch meta a receiver decodes). */
export const BATCH_MAX_RECORDS = 512;

/** A record with more data than this goes in a frame of its own, bytes. */
export const BATCH_RECORD_MAX_BYTES = 64 * 1024;

/** A record for the link: one source record, or a batch of them (records >= 2). */
export interface FrameRecord extends SourceRecord {
  /** Records in it: 1, or the batch's count (meta is then a RecordBatch). */
  records: number;
}

/** A malformed batch from a peer: what was wrong, for the refusal. */
export class RecordBatchError extends Error {
  override name = 'RecordBatchError';
}

const NOT_READY = Symbol('not ready');

/** The records as they are, each alone in its frame (a peer without record-batch@1). */
export async function* singleRecords(records: AsyncIterable<SourceRecord>): AsyncGenerator<FrameRecord> {
  for await (const record of records) yield { ...record, records: 1 };
}

/**
 * Small records the source has ready now, batched; a large record, or one
 * the source is still working on, ends the batch. Order is kept.
 */
export async function* batchRecords(records: AsyncIterable<SourceRecord>): AsyncGenerator<FrameRecord> {
  const it = records[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<SourceRecord>> | null = null;
  let batch: SourceRecord[] = [];
  let batchBytes = 0;
  try {
    for (;;) {
      const next: Promise<IteratorResult<SourceRecord>> = pending ?? it.next();
      pending = null;
      let result: IteratorResult<SourceRecord> | typeof NOT_READY;
      if (batch.length === 0) {
        result = await next;
      } else {
        // Ready now means settled before the event loop turns (a read ahead, a queued record).
        result = await Promise.race([next, new Promise<typeof NOT_READY>((resolve) => setImmediate(resolve, NOT_READY))]);
        if (result === NOT_READY) {
          pending = next;
          yield joinBatch(batch);
          batch = [];
          batchBytes = 0;
          continue;
        }
      }
      if (result.done) break;
      const record = result.value;
      const bytes = record.data.length;
      if (bytes > BATCH_RECORD_MAX_BYTES) {
        if (batch.length > 0) yield joinBatch(batch);
        batch = [];
        batchBytes = 0;
        yield { ...record, records: 1 };
        continue;
      }
      if (batch.length > 0 && (batchBytes + bytes > BATCH_MAX_BYTES || batch.length >= BATCH_MAX_RECORDS)) {
        yield joinBatch(batch);
        batch = [];
        batchBytes = 0;
      }
      batch.push(record);
      batchBytes += bytes;
    }
    if (batch.length > 0) yield joinBatch(batch);
  } finally {
    if (pending) {
      // A record pulled and never sent: the next session resumes from the destination's state.
      pending.then(() => it.return?.(), () => undefined).catch(() => undefined);
    } else {
      await it.return?.();
    }
  }
}

/** One record of a batch, or the batch: meta a RecordBatch, data back to back, every callback on durable. */
function joinBatch(batch: SourceRecord[]): FrameRecord {
  if (batch.length === 1) return { ...batch[0], records: 1 };
  const meta = recordBatchCodec.encode({ records: batch.map((r) => ({ meta: r.meta, length: r.data.length })) });
  // Room in front for the frame's head (wire/frame-headroom.ts): the frame is written around the batch, not copied.
  const data = allocFramePayload(batch.reduce((sum, r) => sum + r.data.length, 0));
  let at = 0;
  for (const r of batch) {
    data.set(r.data, at);
    at += r.data.length;
  }
  const callbacks = batch.flatMap((r) => (r.onDurable ? [r.onDurable] : []));
  // What the records stand for in content (a dictionary-coded file counts its file's bytes).
  const contentBytes = batch.reduce((sum, r) => sum + (r.contentBytes ?? r.data.length), 0);
  return { meta, data, records: batch.length, contentBytes, onDurable: () => callbacks.forEach((done) => done()) };
}

/** The records of a batched frame (records >= 2), in order; throws a RecordBatchError naming what is wrong. */
export function splitBatch(records: number, meta: Uint8Array, data: Uint8Array): Array<{ meta: Uint8Array; data: Uint8Array }> {
  if (records > BATCH_MAX_RECORDS) throw new RecordBatchError(`batch declares ${records} records, over the ${BATCH_MAX_RECORDS} limit`);
  let batch;
  try {
    batch = recordBatchCodec.decode(meta);
  } catch (err) {
    throw new RecordBatchError(`batch header does not decode: ${(err as Error).message}`);
  }
  if (batch.records.length !== records) throw new RecordBatchError(`batch header lists ${batch.records.length} records, the frame declares ${records}`);
  const out: Array<{ meta: Uint8Array; data: Uint8Array }> = [];
  let at = 0;
  for (const [i, r] of batch.records.entries()) {
    if (r.length > data.length - at) throw new RecordBatchError(`batch record ${i} claims ${r.length} bytes, only ${data.length - at} left of ${data.length}`);
    out.push({ meta: r.meta, data: data.subarray(at, at + r.length) });
    at += r.length;
  }
  if (at !== data.length) throw new RecordBatchError(`batch records hold ${at} bytes, the frame ${data.length}`);
  return out;
}
