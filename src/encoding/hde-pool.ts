// HDE pool: a fixed set of worker threads that encode (digest + zstd) and
// decode (unzstd + digest) frame payloads. Jobs queue in order; the queue
// is bounded by the callers (the link window), not here.

import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';

/** A job sent to a worker. */
export type WorkerJob =
  | { id: number; op: 'encode'; level: number | null; meta: Uint8Array; data: Uint8Array }
  | { id: number; op: 'decode'; encoding: number; rawLength: number; meta: Uint8Array; payload: Uint8Array };

/** A worker's answer. */
export type WorkerResult =
  | { id: number; ok: true; payload: Uint8Array; digest: Uint8Array; encoding: number }
  | { id: number; ok: false; error: string };

/** Encoded payload of a frame. */
export interface Encoded {
  payload: Buffer;
  digest: Buffer;
  encoding: number;
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
    }
  }

  /**
   * Digest and compress a frame's data (level null = no compression). When
   * data owns its whole ArrayBuffer it is moved to the worker, not copied,
   * and is unusable (length 0) afterwards: read its length first.
   */
  async encode(meta: Uint8Array, data: Uint8Array, level: number | null): Promise<Encoded> {
    const r = await this.submit({ id: 0, op: 'encode', level, meta, data }, ownedBuffer(data));
    return { payload: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest), encoding: r.encoding };
  }

  /**
   * Decompress a payload to exactly rawLength bytes and digest meta || data.
   * Throws on corrupt input. A payload that fills (almost) its whole
   * ArrayBuffer is moved to the worker: the buffer is unusable afterwards,
   * including other views on it (copy meta and digest out first).
   */
  async decode(meta: Uint8Array, payload: Uint8Array, encoding: number, rawLength: number): Promise<Decoded> {
    const r = await this.submit({ id: 0, op: 'decode', encoding, rawLength, meta, payload }, ownedBuffer(payload, DECODE_SLACK_BYTES));
    return { data: Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength), digest: Buffer.from(r.digest) };
  }

  /** Stop the workers; pending jobs fail. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const [id, p] of this.pending) p.resolve({ id, ok: false, error: 'hde pool closed' });
    this.pending.clear();
  }

  private submit(job: WorkerJob, transfer: ArrayBuffer[]): Promise<WorkerResult & { ok: true }> {
    if (this.closed) return Promise.reject(new Error('hde pool closed'));
    // Least-loaded worker gets the job.
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i] < this.load[best]) best = i;
    const id = this.nextId++;
    job.id = id;
    this.load[best]++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, {
        resolve: (r) => (r.ok ? resolve(r) : reject(new Error(r.error))),
      });
      this.workers[best].postMessage(job, transfer);
    });
  }
}
