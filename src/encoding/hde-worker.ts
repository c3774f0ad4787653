// HDE worker thread: codes frame payloads (hde-codec.ts) off the event loop
// so carriers keep flowing, and moves result buffers back instead of
// copying them (every buffer a result holds is this thread's own). The pool sends every job of a streaming key to one worker,
// in order, so the contexts this thread holds see their frames in order.

import { parentPort } from 'node:worker_threads';
import { release, run } from './hde-codec.ts';
import { compactView, resultBuffer, type WorkerJob, type WorkerResult } from './hde-pool.ts';

parentPort?.on('message', (job: WorkerJob) => {
  // A released key's contexts go (they hold up to a window each); no answer.
  if (job.op === 'release') {
    release(job.key);
    return;
  }
  let result: WorkerResult;
  try {
    result = run(job);
  } catch (err) {
    result = { id: job.id, ok: false, error: (err as Error).message };
  }
  // Move result buffers back instead of copying them (with the room before the payload).
  if (!result.ok) {
    parentPort?.postMessage(result);
    return;
  }
  const { transfer, headroom } = resultBuffer(result.payload);
  result.headroom = headroom;
  // A payload that does not move goes as a copy of just its bytes, not of the slab around it.
  result.payload = compactView(result.payload, transfer);
  parentPort?.postMessage(result, transfer);
});
