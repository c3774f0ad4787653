// Streaming zstd contexts (Encoding ZSTD_STREAM): one long-lived zstd frame
// per stream session, flushed at every DWCP frame, so each frame can refer
// to everything the stream sent before it (measured on pgbench WAL: see
// docs/postgres.md, "Encoding"). The price is order: the decompressor must
// see the frames in sequence order, each exactly once, and a frame only
// decodes after its predecessors did. A resync point restarts the zstd frame
// (fresh history) so a receiver with a fresh context can start there.
//
// Both classes are plain synchronous code over the native contexts; the HDE
// workers own them (hde-worker.ts), one per stream key.

import { zstd, type NativeCCtx, type NativeDCtx } from './zstd-binding.ts';
import { framePayloadCopy } from '../wire/frame-headroom.ts';

/**
 * zstd window of a streaming context, log2 bytes (8 MiB). Half a WAL
 * segment of history; the decompressor holds one window per stream.
 */
export const STREAM_WINDOW_LOG = 23;
/** Largest window a decompressor accepts, log2 bytes: a peer cannot make us hold more. */
export const STREAM_WINDOW_LOG_MAX = STREAM_WINDOW_LOG;
/** Bytes a flushed frame may add over compressBound (frame header, an empty last block). */
const FLUSH_OVERHEAD_BYTES = 64;
/** Calls of compressStream2 per frame before giving up (each one makes progress or ends). */
const MAX_COMPRESS_CALLS = 1024;

/** A compressed streaming frame. */
export interface StreamChunk {
  payload: Buffer;
  /** True when this frame starts a new zstd frame (the receiver must reset its context). */
  resync: boolean;
}

/**
 * The sending side's output is compressed into one buffer reused across
 * frames (sized for the largest frame seen), then copied to an exact-size
 * buffer with room for the frame's head (wire/frame-headroom.ts): one copy
 * of the compressed bytes, instead of a fresh compressBound-sized buffer
 * per frame plus the frame writer's copy.
 */

/** The sending side of one stream's context. */
export class StreamCompressor {
  private readonly cctx: NativeCCtx = new zstd.CCtx();
  private level: number | null = null;
  /** No usable history (new, or an earlier call failed midway): the next frame must resync. */
  private broken = true;
  /** Output of the last frames, reused (its bytes are copied out before compress returns). */
  private scratch = Buffer.alloc(0);

  /**
   * Compress data as the next frame of the stream and flush it. resync (or
   * a new level, or a context that is new or failed) starts a fresh zstd
   * frame; the result says whether it did.
   */
  compress(data: Uint8Array, level: number, resync: boolean): StreamChunk {
    // A resync point: fresh history, parameters set again (a level changes only here).
    const restart = resync || this.broken || level !== this.level;
    if (restart) {
      this.cctx.reset(zstd.ResetDirective.sessionAndParameters);
      this.cctx.setParameter(zstd.CParameter.compressionLevel, level);
      this.cctx.setParameter(zstd.CParameter.windowLog, STREAM_WINDOW_LOG);
      this.cctx.setParameter(zstd.CParameter.checksumFlag, 0);
      this.level = level;
    }
    this.broken = true;

    // Feed everything and flush: the output then holds the whole frame's data.
    const bound = zstd.compressBound(data.length) + FLUSH_OVERHEAD_BYTES;
    if (this.scratch.length < bound) this.scratch = Buffer.allocUnsafeSlow(bound);
    let out = this.scratch;
    let produced = 0;
    let consumed = 0;
    for (let calls = 0; ; calls++) {
      if (calls >= MAX_COMPRESS_CALLS) throw new Error(`zstd stream flush made no progress after ${calls} calls`);
      if (produced === out.length) {
        const bigger = Buffer.allocUnsafe(out.length * 2);
        out.copy(bigger, 0, 0, produced);
        out = this.scratch = bigger;
      }
      const [remaining, wrote, read] = this.cctx.compressStream2(out.subarray(produced), data.subarray(consumed), zstd.EndDirective.flush);
      produced += wrote;
      consumed += read;
      if (remaining === 0 && consumed === data.length) break;
    }
    this.broken = false;
    return { payload: framePayloadCopy(out.subarray(0, produced)), resync: restart };
  }
}

/** The receiving side of one stream's context. */
export class StreamDecompressor {
  private readonly dctx: NativeDCtx = new zstd.DCtx();
  /** No usable history (new, or an earlier frame failed): only a resync frame decodes. */
  private broken = true;
  private readonly probe = Buffer.allocUnsafe(1);

  constructor() {
    this.dctx.setParameter(zstd.DParameter.windowLogMax, STREAM_WINDOW_LOG_MAX);
  }

  /**
   * Decode the next frame of the stream into exactly rawLength bytes. Frames
   * must come in sequence order. Throws on corrupt input, on a payload that
   * decodes to more or fewer bytes than rawLength, and on a non-resync frame
   * when the context has no usable history; after a throw only a resync
   * frame decodes.
   */
  decompress(payload: Uint8Array, rawLength: number, resync: boolean): Buffer {
    // A resync frame starts from fresh history.
    if (resync) this.dctx.reset(zstd.ResetDirective.sessionOnly);
    else if (this.broken) throw new Error('streaming context has no history: frame is not a resync point (new context or an earlier frame failed)');
    this.broken = true;

    // Decode into the declared size; every call reads or writes something, or we stop.
    const out = Buffer.allocUnsafe(rawLength);
    let produced = 0;
    let consumed = 0;
    while (produced < rawLength) {
      const [, wrote, read] = this.dctx.decompressStream(out.subarray(produced), payload.subarray(consumed));
      produced += wrote;
      consumed += read;
      if (wrote === 0 && read === 0) break;
    }
    if (produced !== rawLength) throw new Error(`streaming payload decoded to ${produced} bytes, header says ${rawLength}`);

    // The output is full: whatever is left must decode to nothing.
    for (;;) {
      const [, wrote, read] = this.dctx.decompressStream(this.probe, payload.subarray(consumed));
      if (wrote > 0) throw new Error(`streaming payload decodes past the ${rawLength} bytes the header says`);
      consumed += read;
      if (read === 0) break;
    }
    if (consumed !== payload.length) throw new Error(`streaming payload has ${payload.length - consumed} trailing bytes`);
    this.broken = false;
    return out;
  }
}
