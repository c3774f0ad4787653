// Record batching (record-batch@1): small records the source has ready share
// a frame, in order, with every callback kept; large or late records end a
// batch; a malformed batch from a peer is refused naming what is wrong.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BATCH_MAX_BYTES,
  BATCH_MAX_RECORDS,
  BATCH_RECORD_MAX_BYTES,
  batchRecords,
  RecordBatchError,
  splitBatch,
  type FrameRecord,
} from '../../src/agent/record-batch.ts';
import type { SourceRecord } from '../../src/streams/stream.ts';
import { recordBatchCodec } from '../../src/wire/messages.ts';
import { hasFrameHeadroom } from '../../src/wire/frame-headroom.ts';

function record(i: number, bytes: number, done?: number[]): SourceRecord {
  return { meta: Buffer.from(`m${i}`), data: Buffer.alloc(bytes, i % 251), onDurable: done ? () => done.push(i) : undefined };
}

async function collect(source: AsyncIterable<SourceRecord>): Promise<FrameRecord[]> {
  const out: FrameRecord[] = [];
  for await (const frame of batchRecords(source)) out.push(frame);
  return out;
}

/** Every record of the frames, unbatched, in order. */
function unbatch(frames: FrameRecord[]): Array<{ meta: string; data: Buffer }> {
  return frames.flatMap((f) =>
    f.records > 1 ? splitBatch(f.records, f.meta, f.data).map((r) => ({ meta: Buffer.from(r.meta).toString(), data: Buffer.from(r.data) })) : [{ meta: Buffer.from(f.meta).toString(), data: Buffer.from(f.data) }],
  );
}

test('ready small records share frames within the byte and count bounds, in order, every callback kept', async () => {
  const done: number[] = [];
  const inputs = Array.from({ length: 2000 }, (_, i) => record(i, (i * 37) % 3000, done));
  async function* source(): AsyncGenerator<SourceRecord> {
    yield* inputs;
  }
  const frames = await collect(source());
  assert.ok(frames.length < inputs.length / 10, `${frames.length} frames for ${inputs.length} ready records`);
  for (const f of frames) {
    assert.ok(f.records <= BATCH_MAX_RECORDS);
    assert.ok(f.records === 1 || f.data.length <= BATCH_MAX_BYTES, `a batch of ${f.data.length} bytes`);
  }
  assert.deepEqual(unbatch(frames), inputs.map((r) => ({ meta: Buffer.from(r.meta).toString(), data: Buffer.from(r.data) })));
  for (const f of frames) f.onDurable?.();
  assert.deepEqual(done, inputs.map((_, i) => i));
});

test('a large record goes alone and ends the batch before it; a record that is not ready yet ends the batch too', async () => {
  async function* source(): AsyncGenerator<SourceRecord> {
    yield record(0, 10);
    yield record(1, 10);
    yield record(2, BATCH_RECORD_MAX_BYTES + 1);
    yield record(3, 10);
    await sleep(20); // the source is still working: what it had goes out now
    yield record(4, 10);
    yield record(5, 10);
  }
  const frames = await collect(source());
  assert.deepEqual(frames.map((f) => f.records), [2, 1, 1, 2]);
  assert.equal(frames[1].data.length, BATCH_RECORD_MAX_BYTES + 1);
  assert.deepEqual(unbatch(frames).map((r) => r.meta), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
});

test('stopping the consumer ends the source', async () => {
  let returned = false;
  async function* source(): AsyncGenerator<SourceRecord> {
    try {
      for (let i = 0; ; i++) yield record(i, 10);
    } finally {
      returned = true;
    }
  }
  for await (const frame of batchRecords(source())) {
    assert.ok(frame.records >= 1);
    break;
  }
  await sleep(10);
  assert.equal(returned, true);
});

test('a malformed batch is refused naming what is wrong', () => {
  const meta = recordBatchCodec.encode({ records: [{ meta: Buffer.from('a'), length: 3 }, { meta: Buffer.from('b'), length: 4 }] });
  assert.equal(splitBatch(2, meta, Buffer.alloc(7)).length, 2);
  assert.throws(() => splitBatch(3, meta, Buffer.alloc(7)), (e: unknown) => e instanceof RecordBatchError && /lists 2 records, the frame declares 3/.test(e.message));
  assert.throws(() => splitBatch(2, meta, Buffer.alloc(5)), /record 1 claims 4 bytes, only 2 left of 5/);
  assert.throws(() => splitBatch(2, meta, Buffer.alloc(9)), /records hold 7 bytes, the frame 9/);
  assert.throws(() => splitBatch(BATCH_MAX_RECORDS + 1, meta, Buffer.alloc(7)), /over the 512 limit/);
  assert.throws(() => splitBatch(2, Buffer.from([0xff, 0xff, 0xff]), Buffer.alloc(7)), /batch header does not decode/);
});

test('a batch is laid out with room for the frame head, so the sender frames it without copying it', async () => {
  const inputs = [record(1, 100), record(2, 200), record(3, 300)];
  async function* source(): AsyncGenerator<SourceRecord> {
    yield* inputs;
  }
  const frames = await collect(source());
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.records, 3);
  assert.ok(hasFrameHeadroom(frames[0]!.data), 'batch data has no headroom');
  assert.deepEqual(unbatch(frames), inputs.map((r) => ({ meta: Buffer.from(r.meta).toString(), data: Buffer.from(r.data) })));
});
