// HDE worker thread: compresses and decompresses frame payloads and computes
// plaintext digests, off the event loop so carriers keep flowing.
// Independent frames are stateless per job (one compressor per level is
// reused); streaming frames (ZSTD_STREAM) use the context this worker holds
// for their stream key, and the pool sends every job of a key here, in order.

import { parentPort } from 'node:worker_threads';
import { Compressor } from 'zstd-napi';
import { frameDigest } from './digest.ts';
import { zstd } from './zstd-binding.ts';
import { StreamCompressor, StreamDecompressor } from './stream-context.ts';
import { ownedBuffer, type WorkerJob, type WorkerResult } from './hde-pool.ts';

const ENCODING_RAW = 0;
const ENCODING_ZSTD = 1;
const ENCODING_ZSTD_STREAM = 2;

const compressors = new Map<number, Compressor>();
/** Streaming contexts by stream key; released by the pool when a session ends. */
const streamCompressors = new Map<string, StreamCompressor>();
const streamDecompressors = new Map<string, StreamDecompressor>();

function compressorFor(level: number): Compressor {
  let c = compressors.get(level);
  if (!c) {
    c = new Compressor();
    c.setParameters({ compressionLevel: level, contentSizeFlag: true, checksumFlag: false });
    compressors.set(level, c);
  }
  return c;
}

/** The key's context; a resync frame creates it, any other frame needs it to exist. */
function contextFor<T>(contexts: Map<string, T>, key: string, resync: boolean, create: () => T): T {
  let context = contexts.get(key);
  if (!context) {
    if (!resync) throw new Error(`no streaming context for "${key}": its first frame must be a resync point`);
    context = create();
    contexts.set(key, context);
  }
  return context;
}

function run(job: Exclude<WorkerJob, { op: 'release' }>): WorkerResult {
  switch (job.op) {
    case 'encode': {
      // Digest the plaintext, then compress; keep raw when zstd does not help.
      const digest = frameDigest(job.meta, job.data);
      if (job.level === null || job.data.length === 0) {
        return { id: job.id, ok: true, payload: job.data, digest, encoding: ENCODING_RAW, resync: false };
      }
      const compressed = compressorFor(job.level).compress(job.data);
      if (compressed.length >= job.data.length) {
        return { id: job.id, ok: true, payload: job.data, digest, encoding: ENCODING_RAW, resync: false };
      }
      return { id: job.id, ok: true, payload: compressed, digest, encoding: ENCODING_ZSTD, resync: false };
    }
    case 'encodeStream': {
      // Digest the plaintext, then compress through the stream's context.
      // Always ZSTD_STREAM, even when it does not shrink: every frame's data
      // must enter the context's history (incompressible blocks cost ~3 bytes).
      const digest = frameDigest(job.meta, job.data);
      const context = contextFor(streamCompressors, job.key, job.resync, () => new StreamCompressor());
      const chunk = context.compress(job.data, job.level, job.resync);
      return { id: job.id, ok: true, payload: chunk.payload, digest, encoding: ENCODING_ZSTD_STREAM, resync: chunk.resync };
    }
    case 'decodeStream': {
      // Decode through the stream's context (frames arrive here in sequence order), then digest.
      const context = contextFor(streamDecompressors, job.key, job.resync, () => new StreamDecompressor());
      const data = context.decompress(job.payload, job.rawLength, job.resync);
      return { id: job.id, ok: true, payload: data, digest: frameDigest(job.meta, data), encoding: ENCODING_ZSTD_STREAM, resync: job.resync };
    }
    case 'decode': {
      // Decode: decompress into exactly rawLength bytes, then digest.
      let data: Uint8Array;
      if (job.encoding === ENCODING_RAW) {
        data = job.payload;
        if (data.length !== job.rawLength) throw new Error(`raw payload is ${data.length} bytes, header says ${job.rawLength}`);
      } else if (job.encoding === ENCODING_ZSTD) {
        const out = Buffer.allocUnsafe(job.rawLength);
        const n = zstd.decompress(out, job.payload);
        if (n !== job.rawLength) throw new Error(`zstd payload decoded to ${n} bytes, header says ${job.rawLength}`);
        data = out;
      } else {
        throw new Error(`unsupported encoding ${job.encoding} for an independent frame`);
      }
      const digest = frameDigest(job.meta, data);
      return { id: job.id, ok: true, payload: data, digest, encoding: job.encoding, resync: false };
    }
  }
}

parentPort?.on('message', (job: WorkerJob) => {
  // A released key's contexts go (they hold up to a window each); no answer.
  if (job.op === 'release') {
    streamCompressors.delete(job.key);
    streamDecompressors.delete(job.key);
    return;
  }
  let result: WorkerResult;
  try {
    result = run(job);
  } catch (err) {
    result = { id: job.id, ok: false, error: (err as Error).message };
  }
  // Move result buffers back instead of copying them.
  parentPort?.postMessage(result, result.ok ? ownedBuffer(result.payload) : []);
});
