// HDE pool: a fixed set of worker threads that encode (digest + zstd) and
// decode (unzstd + digest) frame payloads. Independent frames go to the
// least-loaded worker; streaming frames (one long-lived zstd context per
// stream key) go to the worker that holds the key's context, and since a
// worker runs its jobs in the order they were posted, a caller that submits
// a key's frames in sequence order has them coded in that order. Jobs queue
// in order; the queue is bounded by the callers, not here: senders by the
// encode pipeline and link window, receivers by their decode look-ahead,
// counted in declared plaintext bytes (results waiting count too).
// Small independent frames are coded on the calling thread instead: a
// worker round trip (two structured-clone messages, two event-loop turns)
// costs more than coding a few KiB.

import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { run } from './hde-codec.ts';
import { FRAME_HEADROOM_BYTES, hasFrameHeadroom } from '../wire/frame-headroom.ts';

/**
 * Independent frames whose payload and declared plaintext are both at most
 * this size are coded on the calling thread (zstd-1 of 16 KiB: ~20 us).
 */
export const INLINE_MAX_BYTES = 16 * 1024;

/** A job sent to a worker. */
export type WorkerJob =
  | { id: number; op: 'encode'; level: number | null; meta: Uint8Array; data: Uint8Array }
  | { id: number; op: 'decode'; encoding: number; rawLength: number; meta: Uint8Array; payload: Uint8Array }
  | { id: number; op: 'encodeStream'; key: string; level: number; resync: boolean; meta: Uint8Array; data: Uint8Array }
  | { id: number; op: 'decodeStream'; key: string; rawLength: number; resync: boolean; meta: Uint8Array; payload: Uint8Array }
  | { id: number; op: 'release'; key: string };

/** A worker's answer. */
export type WorkerResult =
  | { id: number; ok: true; payload: Uint8Array; digest: Uint8Array; encoding: number; resync: boolean; compressMs: number; headroom?: number }
  | { id: number; ok: false; error: string };

/** Encoded payload of a frame. */
export interface Encoded {
  payload: Buffer;
  digest: Buffer;
  encoding: number;
  /** Streaming frames: it starts a fresh context (set DataFrame.resync). Always false for independent frames. */
  resync: boolean;
  /** Time the worker spent in zstd on this frame, ms (0: not compressed). */
  compressMs: number;
  /**
   * Bytes right before payload in its ArrayBuffer that nobody else uses (the
   * worker moved the buffer back to us): frameDataFrame may write the
   * frame's head there instead of copying the payload. 0 when unknown.
   */
  headroom: number;
}

/** Decoded plaintext of a frame with its recomputed digest. */
export interface Decoded {
  data: Buffer;
  digest: Buffer;
}

/** A payload may sit in a buffer this much larger (the frame's header) and still be moved. */
const DECODE_SLACK_BYTES = 4096;
/** Smaller buffers are copied: moving them saves nothing. */
const MIN_TRANSFER_BYTES = 64 * 1024;

/** The ArrayBuffer behind a view, as a transfer list, when moving it is safe and worth it. */
export function ownedBuffer(view: Uint8Array, slack = 0): ArrayBuffer[] {
  const buffer = view.buffer;
  if (!(buffer instanceof ArrayBuffer) || view.byteLength < MIN_TRANSFER_BYTES) return [];
  return buffer.byteLength <= view.byteLength + slack ? [buffer] : [];
}

/** Frame data as a transfer list: its whole buffer, or a payload made with room for the frame's head. */
function dataBuffer(view: Uint8Array): ArrayBuffer[] {
  return ownedBuffer(view, hasFrameHeadroom(view) ? FRAME_HEADROOM_BYTES : 0);
}

/**
 * A worker's result payload as a transfer list, and the bytes before it that
 * come along. Every buffer a worker answers with is its own (made there, or
 * moved or copied in with the job), so it moves whole whatever lies around
 * the payload; the headroom before the payload is then free for the frame's
 * head. Small payloads are copied, with no headroom, unless they were made
 * with room for a head (a compressed frame: moving it saves the frame
 * writer's copy).
 */
export function resultBuffer(view: Uint8Array): { transfer: ArrayBuffer[]; headroom: number } {
  const buffer = view.buffer;
  // Never by offset alone: a small buffer may be a slice of the thread's
  // shared Buffer pool, and moving that slab would break every later
  // allocation here.
  if (!(buffer instanceof ArrayBuffer) || (view.byteLength < MIN_TRANSFER_BYTES && !hasFrameHeadroom(view))) return { transfer: [], headroom: 0 };
  return { transfer: [buffer], headroom: view.byteOffset };
}

/**
 * A view to post to a worker: itself when its buffer moves or holds just
 * it, else a copy of only its bytes. Structured clone copies a view's whole
 * ArrayBuffer: a 100-byte meta or a 12 KiB payload in Node's 64 KiB pool
 * slab (or in a socket chunk) cost a 64 KiB copy each way (a loop of such
 * posts took 12x the main thread's CPU of compact copies; bench-wal spent
 * ~20 % of each agent's CPU there). A copy of MIN_TRANSFER_BYTES or more
 * is added to transfer: it is nobody else's, so it moves instead of being
 * copied a second time by the post (a 128 KiB XLogData message inside a
 * socket-sized buffer was copied twice per frame).
 */
export function compactView(view: Uint8Array, transfer: ArrayBuffer[]): Uint8Array {
  if (view.byteLength === view.buffer.byteLength || transfer.includes(view.buffer as ArrayBuffer)) return view;
  const copy = new Uint8Array(view);
  if (copy.byteLength >= MIN_TRANSFER_BYTES) transfer.push(copy.buffer);
  return copy;
}

/** Default worker count: the cores, at most 4. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

interface Pending {
  resolve(result: WorkerResult): void;
}

/** Worker threads for HDE encode/decode. */
export class HdePool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending>();
  /** Worker index holding each stream key's contexts. */
  private readonly pins = new Map<string, number>();
  private readonly pinCount: number[] = [];
  private nextId = 1;
  private closed = false;

  constructor(workerCount: number = defaultWorkers()) {
    for (let i = 0; i < workerCount; i++) {
      const worker = new Worker(new URL('./hde-worker.ts', import.meta.url));
      worker.unref();
      worker.on('message', (result: WorkerResult) => {
        this.load[i]--;
        const p = this.pending.get(result.id);
        this.pending.delete(result.id);
        p?.resolve(result);
      });
      worker.on('error', (err) => {
        // A crashed worker fails everything in flight; callers resend.
        for (const [id, p] of this.pending) p.resolve({ id, ok: false, error: `hde worker crashed: ${err.message}` });
        this.pending.clear();
      });
      this.workers.push(worker);
      this.load.push(0);
      this.pinCount.push(0);
    }
  }

  /**
   * Digest and compress a frame's data (level null = no compression). When
   * data owns its whole ArrayBuffer (or was made by allocFramePayload) it is
   * moved to the worker, not copied, and is unusable (length 0) afterwards:
   * read its length first.
   */
  async encode(meta: Uint8Array, data: Uint8Array, level: number | null): Promise<Encoded> {
    const job: WorkerJob = { id: 0, op: 'encode', level, meta, data };
    const r = data.length <= INLINE_MAX_BYTES ? this.inline(job) : await this.submit(job, dataBuffer(data));
    return { payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest), encoding: r.encoding, resync: false, compressMs: r.compressMs, headroom: r.headroom ?? 0 };
  }

  /**
   * Digest and compress the next frame of a stream through the stream key's
   * long-lived zstd context (Encoding ZSTD_STREAM), flushed so the frame
   * decodes on its own given its predecessors. Call in sequence order; the
   * jobs of one key run in call order on one worker. resync starts a fresh
   * context (the first frame of a session must); the result's resync says
   * whether this frame is a resync point (also when the level changed).
   * Data moves to the worker like encode's.
   */
  async encodeStream(streamKey: string, meta: Uint8Array, data: Uint8Array, level: number, resync: boolean): Promise<Encoded> {
    const worker = this.pinned(streamKey, resync);
    const r = await this.submit({ id: 0, op: 'encodeStream', key: streamKey, level, resync, meta, data }, dataBuffer(data), worker);
    return { payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest), encoding: r.encoding, resync: r.resync, compressMs: r.compressMs, headroom: r.headroom ?? 0 };
  }

  /**
   * Decode the next streaming frame of a stream key to exactly rawLength
   * bytes and digest meta || data. Frames MUST be submitted in sequence
   * order, each once: every frame decodes against the history of those
   * before it. resync (the frame's flag) starts a fresh context. Throws on
   * corrupt input, a size other than rawLength, or a non-resync frame
   * without usable history (after a failure only a resync frame decodes).
   * The payload may move to the worker like decode's.
   */
  async decodeStream(streamKey: string, meta: Uint8Array, payload: Uint8Array, rawLength: number, resync: boolean): Promise<Decoded> {
    const worker = this.pinned(streamKey, resync);
    const r = await this.submit({ id: 0, op: 'decodeStream', key: streamKey, rawLength, resync, meta, payload }, ownedBuffer(payload, DECODE_SLACK_BYTES), worker);
    return { data: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest) };
  }

  /** Drop a stream key's contexts (its session ended); jobs already submitted for it still run first. */
  release(streamKey: string): void {
    const worker = this.pins.get(streamKey);
    if (worker === undefined) return;
    this.pins.delete(streamKey);
    this.pinCount[worker]--;
    if (!this.closed) this.workers[worker].postMessage({ id: 0, op: 'release', key: streamKey } satisfies WorkerJob);
  }

  /** Stream keys holding contexts now. */
  get streamContexts(): number {
    return this.pins.size;
  }

  /**
   * Decompress a payload to exactly rawLength bytes and digest meta || data.
   * Throws on corrupt input. A payload that fills (almost) its whole
   * ArrayBuffer is moved to the worker: the buffer is unusable afterwards,
   * including other views on it (copy meta and digest out first).
   */
  async decode(meta: Uint8Array, payload: Uint8Array, encoding: number, rawLength: number): Promise<Decoded> {
    const job: WorkerJob = { id: 0, op: 'decode', encoding, rawLength, meta, payload };
    const small = payload.length <= INLINE_MAX_BYTES && rawLength <= INLINE_MAX_BYTES;
    const r = small ? this.inline(job) : await this.submit(job, ownedBuffer(payload, DECODE_SLACK_BYTES));
    return { data: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest) };
  }

  /** Worker threads, i.e. frames coded in parallel. */
  get encoders(): number {
    return this.workers.length;
  }

  /** Stop the workers; pending jobs fail. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const [id, p] of this.pending) p.resolve({ id, ok: false, error: 'hde pool closed' });
    this.pending.clear();
  }

  /**
   * The worker of a stream key; a resync pins a new key to the worker with
   * the fewest keys. A non-resync job for an unknown key (released, or never
   * started) gets null: it is refused without touching any worker.
   */
  private pinned(streamKey: string, resync: boolean): number | null {
    const existing = this.pins.get(streamKey);
    if (existing !== undefined || !resync || this.closed) return existing ?? null;
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) {
      if (this.pinCount[i] < this.pinCount[best] || (this.pinCount[i] === this.pinCount[best] && this.load[i] < this.load[best])) best = i;
    }
    this.pins.set(streamKey, best);
    this.pinCount[best]++;
    return best;
  }

  /** Code a small independent frame here and now; throws like a failed worker job. */
  private inline(job: WorkerJob & { op: 'encode' | 'decode' }): WorkerResult & { ok: true } {
    if (this.closed) throw new Error('hde pool closed');
    const r = run(job);
    if (!r.ok) throw new Error(r.error);
    return r;
  }

  private submit(job: WorkerJob, transfer: ArrayBuffer[], worker?: number | null): Promise<WorkerResult & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('hde pool closed'));
    if (worker === null) return Promise.reject(new Error(`no streaming context for "${'key' in job ? job.key : ''}": its first frame must be a resync point`));
    // A pinned job goes to its worker; any other to the least-loaded one.
    let best = 0;
    if (worker !== undefined) best = worker;
    else for (let i = 1; i < this.workers.length; i++) if (this.load[i] < this.load[best]) best = i;
    const id = this.nextId++;
    job.id = id;
    if (job.op !== 'release') {
      job.meta = compactView(job.meta, transfer);
      if ('data' in job) job.data = compactView(job.data, transfer);
      else job.payload = compactView(job.payload, transfer);
    }
    this.load[best]++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (r) => (r.ok ? resolve(r) : reject(new Error(r.error))),
      });
      this.workers[best].postMessage(job, transfer);
    });
  }
}
