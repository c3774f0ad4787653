// In-process stand-in for the DWCP link in pg-wal tests: pulls records from
// a Source, applies them to a Sink, flushes, tells the sink the checkpoint
// is committed, then calls onDurable, the order the real link keeps
// ("persist BEFORE acknowledging").

import type { ResumePoint, Sink, Source } from '../../src/streams/stream.ts';

/** A running pump. */
export interface Pump {
  /** Resolves when the source ends or the signal aborts; rejects on a sink or source error. */
  done: Promise<void>;
  /** Records applied so far. */
  readonly applied: number;
  /** Sink states returned by each flush, latest last (the checkpoint the link would store). */
  readonly checkpoints: Uint8Array[];
}

/** Pump records from source into sink until signal aborts. durable=false applies but never flushes or acks. */
export function pump(source: Source, sink: Sink, resume: ResumePoint, signal: AbortSignal, options: { durable?: boolean } = {}): Pump {
  const durable = options.durable ?? true;
  const checkpoints: Uint8Array[] = [];
  let applied = 0;
  let seq = resume.seq;
  const done = (async () => {
    for await (const record of source.records(resume, signal)) {
      seq += 1;
      await sink.apply(seq, record.meta, record.data);
      applied += 1;
      if (!durable) continue;
      const state = await sink.flush();
      checkpoints.push(state);
      await sink.committed?.(seq, state);
      record.onDurable?.();
    }
  })();
  return {
    done,
    get applied() {
      return applied;
    },
    checkpoints,
  };
}

/** Poll fn until it returns a truthy value or timeoutMs passes (then throw with what). */
export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
