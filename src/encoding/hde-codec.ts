// HDE coding of one frame: digest, compress, decompress. Runs in the HDE
// worker threads (hde-worker.ts), and on the calling thread for small
// independent frames (hde-pool.ts INLINE_MAX_BYTES). Independent frames are
// stateless per job (one compressor per level is reused); streaming frames
// (ZSTD_STREAM) use the context this thread holds for their stream key, and
// the pool sends every job of a key to one worker, in order.

import { frameDigest } from './digest.ts';
import { zstd, type NativeCCtx } from './zstd-binding.ts';
import { StreamCompressor, StreamDecompressor } from './stream-context.ts';
import { framePayloadCopy } from '../wire/frame-headroom.ts';
import type { WorkerJob, WorkerResult } from './hde-pool.ts';

const ENCODING_RAW = 0;
const ENCODING_ZSTD = 1;
const ENCODING_ZSTD_STREAM = 2;

const compressors = new Map<number, NativeCCtx>();
/** Streaming contexts by stream key; released by the pool when a session ends. */
const streamCompressors = new Map<string, StreamCompressor>();
const streamDecompressors = new Map<string, StreamDecompressor>();

/** Drop a released stream key's contexts (they hold up to a window each). */
export function release(key: string): void {
  streamCompressors.delete(key);
  streamDecompressors.delete(key);
}

/** The one-shot context of a level (contents size in the frame header, no checksum: frames carry a digest). */
function compressorFor(level: number): NativeCCtx {
  let c = compressors.get(level);
  if (!c) {
    c = new zstd.CCtx();
    c.setParameter(zstd.CParameter.compressionLevel, level);
    c.setParameter(zstd.CParameter.contentSizeFlag, 1);
    c.setParameter(zstd.CParameter.checksumFlag, 0);
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

/** One-shot compressions write here first (per thread, grown to the largest frame's bound). */
let compressScratch = Buffer.alloc(0);

/**
 * data compressed at level, as an exact-size buffer with room for the
 * frame's head in front (wire/frame-headroom.ts); null when it does not
 * shrink. The output goes to a reused scratch buffer first, so the only
 * fresh allocation is the size of the compressed bytes.
 */
function compressOnce(data: Uint8Array, level: number): Buffer | null {
  const bound = zstd.compressBound(data.length);
  if (compressScratch.length < bound) compressScratch = Buffer.allocUnsafeSlow(bound);
  const n = compressorFor(level).compress2(compressScratch, data);
  return n < data.length ? framePayloadCopy(compressScratch.subarray(0, n)) : null;
}

/** Frames smaller than this are compressed without sampling first. */
const SAMPLE_MIN_BYTES = 64 * 1024;
/** Slices sampled, evenly spread over the frame. */
const SAMPLE_SLICES = 4;
/** Bytes per sampled slice. */
const SAMPLE_SLICE_BYTES = 4096;
/** Samples compressing to more than this share of their size mark the frame incompressible. */
const INCOMPRESSIBLE_RATIO = 0.95;
/** Level the sample is compressed at (fast; the verdict does not depend much on it). */
const SAMPLE_LEVEL = 1;
const sample = Buffer.allocUnsafe(SAMPLE_SLICES * SAMPLE_SLICE_BYTES);
/** Room the sample's compression needs. */
const SAMPLE_BOUND_BYTES = zstd.compressBound(SAMPLE_SLICES * SAMPLE_SLICE_BYTES);

/**
 * True when four 4 KiB slices of the frame, compressed together, shrink by
 * less than 5 %: compressing the whole frame would cost ~16x that for
 * nothing. (Measured on the sample tree: zstd spent ~11 CPU s per GiB sent,
 * half of it on random files that came out no smaller.) A frame whose
 * slices happen to miss its compressible parts is sent raw: some ratio
 * lost, never data.
 */
function looksIncompressible(data: Uint8Array): boolean {
  if (data.length < SAMPLE_MIN_BYTES) return false;
  const stride = Math.floor(data.length / SAMPLE_SLICES);
  for (let i = 0; i < SAMPLE_SLICES; i++) sample.set(data.subarray(i * stride, i * stride + SAMPLE_SLICE_BYTES), i * SAMPLE_SLICE_BYTES);
  if (compressScratch.length < SAMPLE_BOUND_BYTES) compressScratch = Buffer.allocUnsafeSlow(SAMPLE_BOUND_BYTES);
  return compressorFor(SAMPLE_LEVEL).compress2(compressScratch, sample) > INCOMPRESSIBLE_RATIO * sample.length;
}

/** Code one frame; throws on corrupt input. */
export function run(job: Exclude<WorkerJob, { op: 'release' }>): WorkerResult {
  switch (job.op) {
    case 'encode': {
      // Digest the plaintext, then compress; keep raw when zstd does not help
      // or when a sample says it will not (random data, media, archives).
      const digest = frameDigest(job.meta, job.data);
      const raw: WorkerResult = { id: job.id, ok: true, payload: job.data, digest, encoding: ENCODING_RAW, resync: false, compressMs: 0 };
      if (job.level === null || job.data.length === 0 || looksIncompressible(job.data)) return raw;
      const started = performance.now();
      const compressed = compressOnce(job.data, job.level);
      const compressMs = performance.now() - started;
      if (compressed === null) return { ...raw, compressMs };
      return { id: job.id, ok: true, payload: compressed, digest, encoding: ENCODING_ZSTD, resync: false, compressMs };
    }
    case 'encodeStream': {
      // Digest the plaintext, then compress through the stream's context.
      // Always ZSTD_STREAM, even when it does not shrink: every frame's data
      // must enter the context's history (incompressible blocks cost ~3 bytes).
      const digest = frameDigest(job.meta, job.data);
      const context = contextFor(streamCompressors, job.key, job.resync, () => new StreamCompressor());
      const started = performance.now();
      const chunk = context.compress(job.data, job.level, job.resync);
      const compressMs = performance.now() - started;
      return { id: job.id, ok: true, payload: chunk.payload, digest, encoding: ENCODING_ZSTD_STREAM, resync: chunk.resync, compressMs };
    }
    case 'decodeStream': {
      // Decode through the stream's context (frames arrive here in sequence order), then digest.
      const context = contextFor(streamDecompressors, job.key, job.resync, () => new StreamDecompressor());
      const data = context.decompress(job.payload, job.rawLength, job.resync);
      return { id: job.id, ok: true, payload: data, digest: frameDigest(job.meta, data), encoding: ENCODING_ZSTD_STREAM, resync: job.resync, compressMs: 0 };
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
      return { id: job.id, ok: true, payload: data, digest, encoding: job.encoding, resync: false, compressMs: 0 };
    }
  }
}

