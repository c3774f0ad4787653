// HDE worker thread: compresses and decompresses frame payloads and computes
// plaintext digests, off the event loop so carriers keep flowing. Stateless
// per job (independent zstd frames); one compressor per level is reused.

import { parentPort } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { Compressor } from 'zstd-napi';
import { frameDigest } from './digest.ts';
import { ownedBuffer, type WorkerJob, type WorkerResult } from './hde-pool.ts';

// The raw binding decompresses into a buffer we size ourselves, so a frame
// that lies about its content size cannot make us allocate more than its
// declared (and already bounded) raw length.
const binding = createRequire(import.meta.url)('zstd-napi/binding.js') as {
  decompress(dst: Uint8Array, src: Uint8Array): number;
};

const ENCODING_RAW = 0;
const ENCODING_ZSTD = 1;

const compressors = new Map<number, Compressor>();

function compressorFor(level: number): Compressor {
  let c = compressors.get(level);
  if (!c) {
    c = new Compressor();
    c.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false });
    compressors.set(level, c);
  }
  return c;
}

function run(job: WorkerJob): WorkerResult {
  if (job.op === 'encode') {
    // Digest the plaintext, then compress; keep raw when zstd does not help.
    const digest = frameDigest(job.meta, job.data);
    if (job.level === null || job.data.length === 0) {
      return { id: job.id, ok: true, payload: job.data, digest, encoding: ENCODING_RAW };
    }
    const compressed = compressorFor(job.level).compress(job.data);
    if (compressed.length >= job.data.length) {
      return { id: job.id, ok: true, payload: job.data, digest, encoding: ENCODING_RAW };
    }
    return { id: job.id, ok: true, payload: compressed, digest, encoding: ENCODING_ZSTD };
  }
  // Decode: decompress into exactly rawLength bytes, then digest.
  let data: Uint8Array;
  if (job.encoding === ENCODING_RAW) {
    data = job.payload;
    if (data.length !== job.rawLength) throw new Error(`raw payload is ${data.length} bytes, header says ${job.rawLength}`);
  } else if (job.encoding === ENCODING_ZSTD) {
    const out = Buffer.allocUnsafe(job.rawLength);
    const n = binding.decompress(out, job.payload);
    if (n !== job.rawLength) throw new Error(`zstd payload decoded to ${n} bytes, header says ${job.rawLength}`);
    data = out;
  } else {
    throw new Error(`unsupported encoding ${job.encoding}`);
  }
  const digest = frameDigest(job.meta, data);
  return { id: job.id, ok: true, payload: data, digest, encoding: job.encoding };
}

parentPort?.on('message', (job: WorkerJob) => {
  let result: WorkerResult;
  try {
    result = run(job);
  } catch (err) {
    result = { id: job.id, ok: false, error: (err as Error).message };
  }
  // Move result buffers back instead of copying them.
  parentPort?.postMessage(result, result.ok ? ownedBuffer(result.payload) : []);
});
